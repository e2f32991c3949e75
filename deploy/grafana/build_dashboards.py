"""Generate taskpulse's Grafana dashboards (deploy/grafana/dashboards/*.json).

The JSON is generated, not hand-edited, so the four dashboards share one set of variables, one
datasource and one way of aggregating across the two hot-standby collectors:

- counters are summed (each collector counts only the events it applied first);
- gauges both collectors export identically (queue length, worker up, stuck tasks) go through
  ``max by (...)`` first, so a standby pair is not counted twice.

Variables follow the celery-exporter mixin (``job``, ``queue_name``, ``task``) so its users feel
at home. Run ``python deploy/grafana/build_dashboards.py`` after a change and commit the output;
``--check`` exits non-zero when the committed JSON is out of date (the test suite runs it).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from pathlib import Path

OUT_DIR = Path(__file__).resolve().parent / "dashboards"
DS = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"
CELERY = 'job="$job"'
CELERY_Q = 'job="$job", queue_name=~"$queue_name"'
CELERY_T = 'job="$job", name=~"$task"'
STATES = ("sent", "received", "started", "succeeded", "failed", "retried", "revoked")


# --- building blocks ------------------------------------------------------------------------------


def finished(selector: str, by: str = "", fn: str = "rate", window: str = RATE) -> str:
    """Succeeded + failed per group, present when either side has series.

    Not ``{__name__=~"celery_task_(succeeded|failed)_total"}``: rate() drops the metric name, and
    the collector's zero-initialised failed series (no ``exception``) then collide with succeeded.
    """
    group = f"sum by ({by}) " if by else "sum "
    ok = f"{group}({fn}(celery_task_succeeded_total{{{selector}}}[{window}]))"
    failed = f"{group}({fn}(celery_task_failed_total{{{selector}}}[{window}]))"
    return f"(({ok} or {failed} * 0) + ({failed} or {ok} * 0))"


def target(expr: str, legend: str = "", *, instant: bool = False, table: bool = False) -> dict:
    out: dict = {"datasource": DS, "expr": expr, "legendFormat": legend or "__auto"}
    if instant:
        out["instant"] = True
        out["range"] = False
    if table:
        out["format"] = "table"
    return out


def panel(kind: str, title: str, targets: list[dict], *, unit: str = "short", width: int = 12,
          height: int = 8, description: str = "") -> dict:
    for ref, tgt in zip("ABCDEFGHIJKLMNOP", targets, strict=False):
        tgt["refId"] = ref
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": targets,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "gridPos": {"w": width, "h": height},
        "options": {"legend": {"displayMode": "table", "placement": "right"}} if kind ==
        "timeseries" else {},
    }


def stat(title: str, expr: str, unit: str = "short", description: str = "") -> dict:
    return panel("stat", title, [target(expr, instant=True)], unit=unit, width=6, height=4,
                 description=description)


def graph(title: str, targets: list[dict], unit: str = "short", width: int = 12,
          description: str = "") -> dict:
    return panel("timeseries", title, targets, unit=unit, width=width, description=description)


def table(title: str, expr: str, description: str = "") -> dict:
    return panel("table", title, [target(expr, instant=True, table=True)], width=12,
                 description=description)


def quantiles(metric: str, selector: str, by: str = "", qs: Iterable[float] = (0.5, 0.95, 0.99)
              ) -> list[dict]:
    group = f"le, {by}" if by else "le"
    suffix = f" {{{{{by}}}}}" if by else ""
    return [
        target(
            f"histogram_quantile({q}, sum by ({group}) "
            f"(rate({metric}_bucket{{{selector}}}[{RATE}])))",
            f"p{round(q * 100)}{suffix}",
        )
        for q in qs
    ]


def variable(name: str, label: str, query: str, *, multi: bool = False) -> dict:
    out: dict = {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "query": {"query": query, "refId": f"{name}-var"},
        "definition": query,
        "refresh": 2,
        "sort": 1,
        "multi": multi,
        "includeAll": multi,
    }
    if multi:
        out["allValue"] = ".*"
        out["current"] = {"text": "All", "value": "$__all"}
    return out


DATASOURCE_VAR = {
    "name": "datasource",
    "label": "Data source",
    "type": "datasource",
    "query": "prometheus",
    "current": {"text": "Prometheus", "value": "prometheus"},
}
JOB_VAR = variable("job", "Job", "label_values(celery_worker_up, job)")
QUEUE_VAR = variable(
    "queue_name", "Queue", 'label_values(celery_queue_length{job="$job"}, queue_name)', multi=True
)
TASK_VAR = variable(
    "task", "Task", 'label_values(celery_task_received_total{job="$job"}, name)', multi=True
)


def layout(panels: list[dict]) -> list[dict]:
    """Place panels left to right, wrapping at Grafana's 24 columns; ids in reading order."""
    x = y = row_height = 0
    for number, item in enumerate(panels, start=1):
        pos = item["gridPos"]
        if x + pos["w"] > 24:
            x, y, row_height = 0, y + row_height, 0
        pos.update(x=x, y=y)
        x += pos["w"]
        row_height = max(row_height, pos["h"])
        item["id"] = number
    return panels


def dashboard(uid: str, title: str, description: str, variables: list[dict],
              panels: list[dict]) -> dict:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["taskpulse", "celery"],
        "timezone": "utc",
        "editable": True,
        "schemaVersion": 38,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [DATASOURCE_VAR, *variables]},
        "links": [{"type": "dashboards", "tags": ["taskpulse"], "asDropdown": True,
                   "title": "taskpulse"}],
        "panels": layout(panels),
    }


# --- dashboards -----------------------------------------------------------------------------------


def overview() -> dict:
    done = finished(CELERY_Q)
    failed = f"sum(rate(celery_task_failed_total{{{CELERY_Q}}}[{RATE}]))"
    panels = [
        stat("Workers up", f"sum(max by (hostname) (celery_worker_up{{{CELERY}}}))"),
        stat("Tasks running", f"sum(max by (hostname) (celery_worker_tasks_active{{{CELERY}}}))"),
        stat("Tasks finished / s", done, "reqps"),
        stat("Failure rate", f"{failed} / {done}", "percentunit"),
        graph("Task throughput by state", [
            target(f"sum(rate(celery_task_{state}_total{{{CELERY_Q}}}[{RATE}]))", state)
            for state in STATES
        ], "reqps", width=24),
        graph("Failure rate by task", [target(
            f"sum by (name) (rate(celery_task_failed_total{{{CELERY_Q}}}[{RATE}]))"
            f" / {finished(CELERY_Q, 'name')}", "{{name}}",
        )], "percentunit"),
        graph("Runtime (succeeded tasks)", quantiles("celery_task_runtime", CELERY_Q), "s"),
        graph("Queue wait (sent to started)",
              quantiles("celery_task_queue_wait_time", CELERY_Q, "queue_name", (0.5, 0.95)), "s"),
        graph("Queue length", [target(
            f"max by (queue_name) (celery_queue_length{{{CELERY_Q}}})", "{{queue_name}}")]),
        graph("Workers", [target(f"max by (hostname) (celery_worker_up{{{CELERY}}})",
                                 "{{hostname}}")]),
        table("Top failures (time range)",
              f"sort_desc(sum by (name, exception) "
              f"(increase(celery_task_failed_total{{{CELERY_Q}}}[$__range])))"),
    ]
    return dashboard("taskpulse-overview", "taskpulse / Overview",
                     "Throughput, failures, runtimes, queues and workers across all tasks.",
                     [JOB_VAR, QUEUE_VAR], panels)


def per_task() -> dict:
    done = finished(CELERY_T, "name", "increase", "$__range")
    panels = [
        stat("Runs finished (time range)", f"sum({done})"),
        stat("Failed (time range)",
             f"sum(increase(celery_task_failed_total{{{CELERY_T}}}[$__range]))"),
        stat("Success rate (time range)",
             f"sum(increase(celery_task_succeeded_total{{{CELERY_T}}}[$__range]))"
             f" / sum({done})", "percentunit"),
        stat("Stuck now", f"sum(max by (name, queue_name) (taskpulse_tasks_stuck{{{CELERY_T}}}))"
             " or vector(0)",
             description="Tasks past the stuck threshold the result backend could not finish."),
        graph("Completed by state", [
            target(f"sum by (name) (rate(celery_task_{state}_total{{{CELERY_T}}}[{RATE}]))",
                   f"{state} {{{{name}}}}")
            for state in ("succeeded", "failed", "retried", "revoked", "received", "started")
        ], "reqps", width=24),
        graph("Runtime (succeeded)", quantiles("celery_task_runtime", CELERY_T, "name"), "s"),
        graph("Runtime (failed)",
              quantiles("taskpulse_task_failed_runtime_seconds", CELERY_T, "name", (0.5, 0.95)),
              "s"),
        graph("Queue wait", quantiles("celery_task_queue_wait_time", CELERY_T, "name",
                                      (0.5, 0.95)), "s"),
        table("Exceptions (time range)",
              f"sort_desc(sum by (name, exception) "
              f"(increase(celery_task_failed_total{{{CELERY_T}}}[$__range])))"),
    ]
    return dashboard("taskpulse-task", "taskpulse / Task",
                     "One task name (or several) in detail: outcomes, runtimes, exceptions.",
                     [JOB_VAR, TASK_VAR], panels)


def workers_queues() -> dict:
    by_host = finished(CELERY, "hostname")
    panels = [
        stat("Workers up", f"sum(max by (hostname) (celery_worker_up{{{CELERY}}}))"),
        stat("Workers down", f"count(max by (hostname) (celery_worker_up{{{CELERY}}}) == 0)"
             " or vector(0)"),
        stat("Queues without a worker",
             f"count(max by (queue_name) (celery_active_worker_count{{{CELERY_Q}}}) == 0)"
             " or vector(0)",
             description="Messages there wait forever: check the workers' -Q lists."),
        stat("Messages waiting", f"sum(max by (queue_name) (celery_queue_length{{{CELERY_Q}}}))"),
        graph("Worker up", [target(f"max by (hostname) (celery_worker_up{{{CELERY}}})",
                                   "{{hostname}}")]),
        graph("Tasks running per worker", [target(
            f"max by (hostname) (celery_worker_tasks_active{{{CELERY}}})", "{{hostname}}")]),
        graph("Tasks finished per worker", [target(by_host, "{{hostname}}")], "reqps"),
        graph("Workers and processes per queue", [
            target(f"max by (queue_name) (celery_active_worker_count{{{CELERY_Q}}})",
                   "workers {{queue_name}}"),
            target(f"max by (queue_name) (celery_active_process_count{{{CELERY_Q}}})",
                   "processes {{queue_name}}"),
        ]),
        graph("Queue length", [target(
            f"max by (queue_name) (celery_queue_length{{{CELERY_Q}}})", "{{queue_name}}")]),
        graph("Received per queue", [target(
            f"sum by (queue_name) (rate(celery_task_received_total{{{CELERY_Q}}}[{RATE}]))",
            "{{queue_name}}")], "reqps"),
        graph("Queue wait p95 per queue",
              quantiles("celery_task_queue_wait_time", CELERY_Q, "queue_name", (0.95,)), "s",
              width=24),
    ]
    return dashboard("taskpulse-workers-queues", "taskpulse / Workers & queues",
                     "Worker liveness and load, queue backlog and consumers.",
                     [JOB_VAR, QUEUE_VAR], panels)


def self_monitoring() -> dict:
    col = 'job="$collector_job"'
    api = 'job="$api_job"'
    redis = 'job=~"$redis_job"'
    panels = [
        stat("Collectors up", f"sum(up{{{col}}})"),
        stat("Events / s", f"sum(rate(taskpulse_events_total{{{col}}}[{RATE}]))", "reqps"),
        stat("Worst lag", f"max(taskpulse_collector_lag_seconds{{{col}}})", "s"),
        stat("Stream length", f"max(taskpulse_stream_length{{{col}}})"),
        graph("Events applied by type", [target(
            f"sum by (type) (rate(taskpulse_events_total{{{col}}}[{RATE}]))", "{{type}}")],
            "reqps"),
        graph("Events applied per collector (hot standby split)", [target(
            f"sum by (instance) (rate(taskpulse_events_total{{{col}}}[{RATE}]))",
            "{{instance}}")], "reqps"),
        graph("Collector lag", [target(
            f"max by (instance) (taskpulse_collector_lag_seconds{{{col}}})", "{{instance}}")],
            "s"),
        graph("Invalid and duplicate events", [
            target(f"sum by (reason) (rate(taskpulse_events_invalid_total{{{col}}}[{RATE}]))",
                   "invalid {{reason}}"),
            target(f"sum(rate(taskpulse_events_duplicate_total{{{col}}}[{RATE}]))",
                   "duplicate"),
        ], "reqps",
            description="Duplicates are normal with two collectors: each sees every event."),
        graph("Event stream length", [target(f"max(taskpulse_stream_length{{{col}}})",
                                             "entries")]),
        graph("Redis memory", [target(
            f"max by (instance) (redis_memory_used_bytes{{{redis}}})",
            "{{instance}}")], "bytes",
            description="From redis_exporter (compose service redis-exporter)."),
        graph("API requests by status", [target(
            f"sum by (status) (rate(taskpulse_api_requests_total{{{api}}}[{RATE}]))",
            "{{status}}")], "reqps"),
        graph("API latency p95 by route",
              quantiles("taskpulse_api_request_duration_seconds", api, "route", (0.95,)), "s"),
    ]
    variables = [
        variable("collector_job", "Collector job", "label_values(taskpulse_events_total, job)"),
        variable("api_job", "API job", "label_values(taskpulse_api_requests_total, job)"),
        variable("redis_job", "Redis job", "label_values(redis_memory_used_bytes, job)"),
    ]
    return dashboard("taskpulse-self", "taskpulse / Self-monitoring",
                     "Is the monitoring itself healthy: collectors, event flow, store, API.",
                     variables, panels)


DASHBOARDS = {
    "overview.json": overview,
    "task.json": per_task,
    "workers-queues.json": workers_queues,
    "self-monitoring.json": self_monitoring,
}


def render() -> dict[str, str]:
    return {name: json.dumps(build(), indent=2) + "\n" for name, build in DASHBOARDS.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="only verify the committed JSON matches; write nothing")
    args = parser.parse_args(argv)
    stale = []
    for name, text in render().items():
        path = OUT_DIR / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            OUT_DIR.mkdir(exist_ok=True)
            path.write_text(text)
    if stale:
        print(f"out of date: {', '.join(stale)}; run {Path(__file__).name}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
