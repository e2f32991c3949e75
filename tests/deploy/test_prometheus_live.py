"""Every dashboard panel and every alert, evaluated by a real Prometheus on real data.

One stack for the module: a private redis-server, a Celery worker, two collectors (the hot-standby
pair), the API and Debian's ``prometheus`` scraping them every second with the shipped
``local.yml`` (targets moved to the test's ports) and ``alerts.yml``. A short workload covers every
outcome the dashboards plot: successes, failures, a retry, a revoke, a task left running past the
stuck threshold, tasks on several queues. Then every query goes through ``/api/v1/query``.

Alert expressions are empty on a healthy system by design (``X > 0.1``), so each is checked as its
signal (``tests.deploy.promql``): comparisons made ``bool``, ``unless`` operands separately. That
proves selectors, aggregations and label matching work on the real series; promtool's unit tests
prove the thresholds.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.deploy.deployfiles import DEPLOY, load_yaml
from tests.deploy.promql import fill_grafana_variables, signals
from tests.services import (
    RedisServer,
    ServiceProcess,
    celery_worker,
    free_port,
    taskpulse_env,
    wait_until,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus not installed"),
]

FIXTURES = Path(__file__).parent / "fixtures"
COLLECTOR_JOB = "taskpulse-collector"
API_JOB = "taskpulse-api"
GRAFANA_VALUES = {
    "job": COLLECTOR_JOB,
    "collector_job": COLLECTOR_JOB,
    "api_job": API_JOB,
    "queue_name": ".*",
    "task": ".*",
    "redis_job": "redis",
    "__rate_interval": "1m",
    "__range": "10m",
    "__interval": "15s",
}
# The compose stack's redis_exporter; Debian ships it as prometheus-redis-exporter (.ci/run
# installs it). Without it, only the Redis-memory panel goes unchecked.
REDIS_EXPORTER = shutil.which("prometheus-redis-exporter") or shutil.which("redis_exporter")
REDIS_JOB = "redis"
# Metrics nothing in this run can produce, and why. Everything else must return data.
NOT_SERVED_HERE = {
    **({} if REDIS_EXPORTER else {"redis_memory_used_bytes": "redis_exporter is not installed"}),
    # the stack's collectors are a hot-standby pair on one partition: no leases to export
    # (tests/collector/test_partition_leases.py scrapes them on 8 partitions)
    "taskpulse_partitions_held": "one partition here",
}
# Queries known to be empty on real data because of a defect elsewhere. The test fails once they
# return data, so the entry cannot outlive the fix.
KNOWN_EMPTY: dict[str, str] = {}
# Celery sends task-rejected only when a task raises celery.exceptions.Reject; no task does.
NEVER_HAPPENS_HERE = {"celery_task_rejected_total"}
FAILING_RUNS = 3


@dataclass
class Stack:
    prometheus_url: str
    collector_urls: list[str]
    api_url: str
    worker: ServiceProcess


def http_get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def answers(url: str) -> bool:
    try:
        http_get(url, timeout=1.0)
    except OSError:
        return False
    return True


def query(stack: Stack, expr: str) -> list[dict]:
    url = f"{stack.prometheus_url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    try:
        body = json.loads(http_get(url))
    except urllib.error.HTTPError as exc:  # 400/422: the query itself is wrong
        body = json.loads(exc.read())
    assert body["status"] == "success", f"{expr}\n{body.get('error')}"
    return body["data"]["result"]


def prometheus_config(
    path: Path, collectors: list[int], api: int, redis_exporter: int | None
) -> Path:
    """The shipped local.yml with 1 s scrapes, the test's ports and the Redis exporter if any."""
    config = load_yaml(DEPLOY / "prometheus" / "local.yml")
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(DEPLOY / "prometheus" / rules) for rules in config["rule_files"]]
    targets = {
        COLLECTOR_JOB: [f"127.0.0.1:{port}" for port in collectors],
        API_JOB: [f"127.0.0.1:{api}"],
    }
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": targets[job["job_name"]]}]
    if redis_exporter is not None:
        config["scrape_configs"].append({
            "job_name": REDIS_JOB,
            "static_configs": [{"targets": [f"127.0.0.1:{redis_exporter}"]}],
        })
    path.write_text(yaml.safe_dump(config))
    return path


def start_collectors(env: dict[str, str], workdir: Path, ports: list[int]) -> list[ServiceProcess]:
    procs = []
    for number, port in enumerate(ports, start=1):
        collector_env = {
            **env,
            "TASKPULSE_METRICS_HOST": "127.0.0.1",
            "TASKPULSE_METRICS_PORT": str(port),
            "TASKPULSE_COLLECTOR_ID": f"live-{number}",
            # Short intervals so a 20 s run shows queue polls, reconciliation and stuck tasks.
            "TASKPULSE_QUEUE_POLL_SECONDS": "1",
            "TASKPULSE_RECONCILE_INTERVAL_SECONDS": "1",
            "TASKPULSE_STUCK_AFTER_SECONDS": "3",
        }
        procs.append(ServiceProcess([sys.executable, "-m", "event_collector"], collector_env,
                                    workdir / f"collector-{number}.log"))
    for proc, port in zip(procs, ports, strict=True):
        wait_until(lambda p=port, c=proc: c.process.poll() is None
                   and answers(f"http://127.0.0.1:{p}/health"), timeout=30,
                   what=f"collector /health on {port}")
    return procs


def run_workload(env: dict[str, str]) -> str:
    """Send every kind of outcome; returns the id of the task left running (stuck)."""
    from worker import create_app, load_settings

    app = create_app(load_settings(env))
    send = app.send_task
    finished = [send("demo.test_task", kwargs={"message": f"ok {i}"}) for i in range(6)]
    finished += [send("demo.test_task", kwargs={"fail": True}) for _ in range(FAILING_RUNS)]
    finished.append(send("demo.test_task", kwargs={"fail_times": 1}))  # one retry, then success
    finished += [send("reports.generate_hourly_report"), send("finance.check_pending_bills")]
    revoked = send("demo.long_running_task", kwargs={"total": 200, "step_seconds": 0.5})
    wait_until(lambda: revoked.state == "PROGRESS", timeout=30, what="long task running")
    app.control.revoke(revoked.id, terminate=True)
    stuck = send("demo.long_running_task", kwargs={"total": 400, "step_seconds": 0.5})
    with app.connection_for_write() as conn:  # one event the collector must count as invalid
        app.events.Dispatcher(conn, hostname="live-test@host", enabled=True).send("task-bogus")
    for result in finished:
        result.get(timeout=60, propagate=False)
    return stuck.id


@pytest.fixture(scope="module")
def stack(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("live")
    (workdir / "data").mkdir()
    redis_server.client().flushall()
    env = taskpulse_env(redis_server, workdir / "data", TASKPULSE_RETRY_BACKOFF="1")
    collector_ports, api_port, prom_port = [free_port(), free_port()], free_port(), free_port()
    with ExitStack() as services:
        collectors = start_collectors(env, workdir, collector_ports)
        for proc in collectors:
            services.callback(proc.stop)
        api = ServiceProcess(
            [sys.executable, "-m", "producer_api"],
            {**env, "TASKPULSE_API_HOST": "127.0.0.1", "TASKPULSE_API_PORT": str(api_port),
             "TASKPULSE_API_TOKENS_FILE": str(workdir / "tokens.json")},
            workdir / "api.log",
        )
        services.callback(api.stop)
        worker = celery_worker(env, workdir / "worker.log", concurrency=3)
        services.callback(worker.stop)
        exporter_port = None
        if REDIS_EXPORTER:
            exporter_port = free_port()
            exporter = ServiceProcess(
                [REDIS_EXPORTER, f"-redis.addr=redis://127.0.0.1:{redis_server.port}",
                 f"-web.listen-address=127.0.0.1:{exporter_port}"],
                os.environ, workdir / "redis-exporter.log",
            )
            services.callback(exporter.stop)
        config = prometheus_config(workdir / "prometheus.yml", collector_ports, api_port,
                                   exporter_port)
        prometheus = ServiceProcess(
            ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={workdir / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prom_port}"],
            os.environ, workdir / "prometheus.log",
        )
        services.callback(prometheus.stop)
        live = Stack(f"http://127.0.0.1:{prom_port}",
                     [f"http://127.0.0.1:{port}" for port in collector_ports],
                     f"http://127.0.0.1:{api_port}", worker)
        wait_until(lambda: answers(f"{live.prometheus_url}/-/ready"), timeout=30,
                   what="prometheus ready")
        wait_until(lambda: answers(f"http://127.0.0.1:{api_port}/healthz"), timeout=30,
                   what="API /healthz")
        for path in ("/healthz", "/readyz", "/api/v1/catalog", "/api/v1/nope"):
            # 401/404 are requests too: all the API's metrics need is traffic.
            with contextlib.suppress(OSError):
                http_get(f"http://127.0.0.1:{api_port}{path}")
        stuck_id = run_workload(env)
        wait_for_scrapes(live)
        yield live
        from worker import create_app, load_settings

        create_app(load_settings(env)).control.revoke(stuck_id, terminate=True)


def wait_for_scrapes(stack: Stack) -> None:
    """Until Prometheus holds every outcome of the workload, over several scrapes."""
    needed = [
        f'sum(celery_task_failed_total{{name="demo.test_task"}}) >= {FAILING_RUNS}',
        "sum(celery_task_retried_total) > 0",
        "sum(celery_task_revoked_total) > 0",
        "sum(taskpulse_tasks_stuck) > 0",
        "count_over_time(celery_task_runtime_count[1m]) > 5",
        "sum(taskpulse_events_invalid_total) > 0",
    ]
    for expr in needed:
        wait_until(lambda e=expr: query(stack, e), timeout=60, interval=0.5, what=expr)
    time.sleep(3)  # a few more scrapes, so every rate() window holds several samples


def dashboard_queries() -> list[tuple[str, str, str]]:
    out = []
    for path in sorted((DEPLOY / "grafana" / "dashboards").glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel["targets"]:
                out.append((path.name, panel["title"], target["expr"]))
    return out


def alert_rules() -> list[dict]:
    rules = load_yaml(DEPLOY / "prometheus" / "alerts.yml")
    return [rule for group in rules["groups"] for rule in group["rules"]]


def test_every_dashboard_query_returns_data(stack: Stack) -> None:
    empty, fixed = [], []
    for board, title, expr in dashboard_queries():
        if any(metric in expr for metric in NOT_SERVED_HERE):
            continue
        has_data = bool(query(stack, fill_grafana_variables(expr, GRAFANA_VALUES)))
        if any(metric in expr for metric in KNOWN_EMPTY):
            if has_data:
                fixed.append(f"{board} / {title}")
        elif not has_data:
            empty.append(f"{board} / {title}: {expr}")
    assert not empty, "queries without data:\n" + "\n".join(empty)
    assert not fixed, f"now served, remove from KNOWN_EMPTY: {fixed}"


def test_every_alert_signal_returns_data_with_the_labels_its_text_uses(stack: Stack) -> None:
    problems = []
    for rule in alert_rules():
        if any(metric in rule["expr"] for metric in NOT_SERVED_HERE):
            continue
        labels = set(re.findall(r"\$labels\.(\w+)", json.dumps(rule["annotations"])))
        for part in signals(rule["expr"]):
            result = query(stack, part)
            if not result:
                problems.append(f"{rule['alert']}: no data for {part}")
            elif missing := labels - result[0]["metric"].keys():
                problems.append(f"{rule['alert']}: series lack {sorted(missing)}")
    assert not problems, "\n".join(problems)


def test_prometheus_evaluates_every_shipped_rule_without_error(stack: Stack) -> None:
    body = json.loads(http_get(f"{stack.prometheus_url}/api/v1/rules"))
    loaded = {r["name"]: r for g in body["data"]["groups"] for r in g["rules"]}
    assert set(loaded) == {rule["alert"] for rule in alert_rules()}
    assert {name: r["health"] for name, r in loaded.items() if r["health"] != "ok"} == {}


def test_health_alerts_stay_quiet_on_a_healthy_run(stack: Stack) -> None:
    # Pending shows a condition that holds right now, long before `for:` would let it fire.
    active = {a["metric"]["alertname"] for a in query(stack, "ALERTS")}
    # The workload really has a stuck task and a task failing 3 runs out of 10.
    assert active <= {"TaskpulseTasksStuck", "CeleryTaskHighFailRate"}


def test_summing_over_both_collectors_counts_each_failure_once(stack: Stack) -> None:
    result = query(stack, 'sum(celery_task_failed_total{name="demo.test_task"})')
    assert float(result[0]["value"][1]) == FAILING_RUNS
    instances = query(stack, f'count(up{{job="{COLLECTOR_JOB}"}} == 1)')
    assert float(instances[0]["value"][1]) == 2


def test_celery_exporter_dashboards_find_every_metric_and_label(stack: Stack) -> None:
    wanted = json.loads((FIXTURES / "celery_exporter_dashboards.json").read_text())["series"]
    exposed = http_get(f"{stack.collector_urls[0]}/metrics").decode()
    problems = []
    for item in wanted:
        metric = item["metric"]
        family = re.sub(r"_(total|bucket|sum|count)$", "", metric)
        if not re.search(rf"^# TYPE {family}(_total)? ", exposed, re.MULTILINE):
            problems.append(f"{metric}: not exported at all")
            continue
        if metric in NEVER_HAPPENS_HERE:
            continue
        series = query(stack, metric)
        if not series:
            problems.append(f"{metric}: no series")
        # Any series will do: zero-initialised failed series legitimately lack `exception`.
        elif not any(set(item["labels"]) <= s["metric"].keys() for s in series):
            problems.append(f"{metric}: no series has all of {item['labels']}")
    assert not problems, "\n".join(problems)


def test_every_exported_metric_is_in_the_metrics_reference(stack: Stack) -> None:
    reference = (DEPLOY.parent / "docs" / "metrics.md").read_text()
    for url in (stack.collector_urls[0], stack.api_url):
        exposed = http_get(f"{url}/metrics").decode()
        families = set(re.findall(r"^# TYPE (\w+) (?:counter|gauge|histogram)", exposed, re.M))
        # prometheus_client's own process/platform collectors are not ours to document.
        ours = {f for f in families if f.startswith(("celery_", "taskpulse_"))}
        assert ours, url
        # Text format names a counter family `x_total`, plus a `x_created` gauge-like family.
        names = {re.sub(r"_created$", "_total", f) for f in ours}
        missing = {n for n in names if f"`{n}`" not in reference
                   and f"`{n.removesuffix('_total')}`" not in reference}
        assert not missing, f"{url}: undocumented {sorted(missing)}"


# Keep last: it kills the module's worker.
def test_a_crashed_worker_stays_visible_as_down_so_the_alert_goes_pending(stack: Stack) -> None:
    stack.worker.stop(signal.SIGKILL)  # a crash: no worker-offline event, heartbeats just stop
    down = f'max by (job, hostname) (celery_worker_up{{job="{COLLECTOR_JOB}"}}) == 0'
    wait_until(lambda: query(stack, down), timeout=30, interval=0.5, what="worker_up == 0")
    pending = 'ALERTS{alertname="CeleryWorkerDown", alertstate="pending"}'
    wait_until(lambda: query(stack, pending), timeout=15, interval=0.5, what=pending)
