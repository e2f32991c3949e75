"""``taskpulse tasks ...`` (and ``test-task``): find, inspect, send and control single tasks."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from event_collector.events import READY_STATES
from producer_api.cli.arguments import (
    PRIORITIES,
    SIGNALS,
    STATES,
    json_arg,
    labels_arg,
    time_option,
)
from producer_api.cli.client import EXIT_API_ERROR, EXIT_USAGE, Api, ApiError, CliError
from producer_api.cli.failures import add_bulk_options, run_bulk
from producer_api.cli.output import Output, event_detail, format_duration, format_progress

LIST_COLUMNS = ("id", "name", "state", "queue", "worker", "first_seen", "runtime")
TIMELINE_COLUMNS = ("timestamp", "elapsed", "type", "hostname", "detail")
_NOT_FIELDS = frozenset({"timeline", "children", "traceback"})


def show_record(out: Output, record: dict[str, Any]) -> None:
    """A task: its fields, traceback, timeline (with time since the first event) and children."""
    out.fields(record, [k for k in record if k not in _NOT_FIELDS])
    if record.get("traceback"):
        print("\n" + record["traceback"].rstrip())
    timeline = record.get("timeline") or []
    if timeline:
        first = timeline[0]["timestamp"]
        rows = [{
            "timestamp": e["timestamp"],
            "elapsed": "+" + format_duration(e["timestamp"] - first),
            "type": e["type"],
            "hostname": e.get("hostname"),
            "detail": event_detail(e.get("fields", {})),
        } for e in timeline]  # fmt: skip
        print("\ntimeline:")
        out.table(rows, TIMELINE_COLUMNS, indent="  ")
    if record.get("children"):
        print("\nchildren: " + ", ".join(record["children"]))


def _filters(args: argparse.Namespace) -> dict[str, Any]:
    return {k: getattr(args, k) for k in ("state", "name", "queue", "worker", "exception",
                                          "fingerprint", "q", "since", "until")}


def cmd_list(api: Api, out: Output, args: argparse.Namespace) -> int:
    page = api.call("GET", "/tasks", query={**_filters(args), "limit": args.limit,
                                            "cursor": args.cursor})  # fmt: skip

    def show(p: dict[str, Any]) -> None:
        out.table(p["items"], LIST_COLUMNS)
        if not p.get("exact", True):
            print("\n(stopped at the search's scan bound: more may match past the cursor; "
                  "narrow with --since/--until or a filter)")
        if p.get("next_cursor"):
            print(f"\nmore: add --cursor {p['next_cursor']}")

    out.emit(page, show)
    return 0


def cmd_count(api: Api, out: Output, args: argparse.Namespace) -> int:
    result = api.call("GET", "/tasks/count", query=_filters(args))
    out.emit(result, lambda r: print(r["count"] if r["exact"] else f">= {r['count']}"))
    return 0


def cmd_show(api: Api, out: Output, args: argparse.Namespace) -> int:
    out.emit(api.call("GET", f"/tasks/{args.id}"), lambda r: show_record(out, r))
    return 0


def _send(api: Api, out: Output, args: argparse.Namespace, body: dict[str, Any]) -> int:
    accepted = api.call("POST", "/tasks", body)
    if not args.wait:
        out.emit(accepted, lambda a: print(
            f"{a['id']}  {a['name']} -> {a['queue']} ({a['priority']})"
            + ("  [duplicate: already sent with this idempotency key]" if a.get("duplicate")
               else "")))  # fmt: skip
        return 0
    if not out.json:
        print(f"sent {accepted['id']} ({accepted['name']}); waiting for the result...",
              file=sys.stderr)
    record = wait_for(api, accepted["id"], args.timeout, show_progress=not out.json)
    out.emit(record, lambda r: show_record(out, r))
    return 0 if record.get("state") == "SUCCESS" else EXIT_API_ERROR


def wait_for(api: Api, task_id: str, timeout: float, show_progress: bool) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    record: dict[str, Any] = {}
    live = show_progress and sys.stderr.isatty()
    while time.monotonic() < deadline:
        try:
            record = api.call("GET", f"/tasks/{task_id}")
        except ApiError as exc:
            if exc.status != 404:  # 404: not seen by the collector yet
                raise
        if live:
            sys.stderr.write("\r" + progress_line(record) + "\033[K")
            sys.stderr.flush()
        if record.get("state") in READY_STATES:
            if live:
                sys.stderr.write("\n")
            return record
        time.sleep(0.3)
    raise CliError(f"task {task_id} not finished after {format_duration(timeout)} "
                   f"(last state {record.get('state', 'unknown')})")


def progress_line(record: dict[str, Any]) -> str:
    state = record.get("state", "PENDING")
    progress = record.get("progress")
    if not progress or not progress.get("total"):
        return f"  {state}"
    done = min(1.0, progress["current"] / progress["total"])
    bar = "#" * int(done * 30)
    return f"  {state} [{bar:<30}] {format_progress(progress['current'], progress['total'])}"


def cmd_send(api: Api, out: Output, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {
        "name": args.name,
        "args": json_arg(args.args, list, "--args"),
        "kwargs": json_arg(args.kwargs, dict, "--kwargs"),
    }
    for key in ("queue", "priority", "countdown", "eta", "expires", "idempotency_key"):
        if getattr(args, key) is not None:
            body[key] = getattr(args, key)
    return _send(api, out, args, body)


def cmd_test_task(api: Api, out: Output, args: argparse.Namespace) -> int:
    return _send(api, out, args, {"name": "demo.test_task", "kwargs": {"message": args.message}})


def _one_or_filter(args: argparse.Namespace, action: str) -> bool:
    """True for the bulk form (``--filter``); a usage error unless exactly one form is given."""
    if (args.id is None) == (not args.filter):
        raise CliError(f"give a task id or --filter (to {action} every matching task)",
                       EXIT_USAGE)
    if args.id is not None and args.dry_run:
        raise CliError("--dry-run goes with --filter", EXIT_USAGE)
    return bool(args.filter)


def cmd_revoke(api: Api, out: Output, args: argparse.Namespace) -> int:
    if _one_or_filter(args, "revoke"):
        return run_bulk(api, out, args, "revoke")
    result = api.call("POST", f"/tasks/{args.id}/revoke",
                      {"terminate": args.terminate, "signal": args.signal})  # fmt: skip
    out.emit(result, lambda r: print(
        f"revoked {r['id']}" + (" (terminating if running)" if r["terminate"] else "")))
    return 0


def cmd_retry(api: Api, out: Output, args: argparse.Namespace) -> int:
    if _one_or_filter(args, "retry"):
        return run_bulk(api, out, args, "retry")
    result = api.call("POST", f"/tasks/{args.id}/retry", {})
    out.emit(result, lambda r: print(f"{r['id']}  retry of {r['parent_id']} ({r['name']})"))
    return 0


def cmd_annotate(api: Api, out: Output, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {}
    if args.note is not None:
        body["note"] = args.note
    if args.clear_labels:
        body["labels"] = {}
    elif args.label is not None:
        body["labels"] = labels_arg(args.label)
    if not body:
        raise CliError("give --note and/or --label (or --clear-labels)", EXIT_USAGE)
    out.emit(api.call("PATCH", f"/tasks/{args.id}", body), lambda r: show_record(out, r))
    return 0


def cmd_forget(api: Api, out: Output, args: argparse.Namespace) -> int:
    result = api.call("DELETE", f"/tasks/{args.id}")
    out.emit(result, lambda r: print(f"forgot {r['id']} (an audit event stays in the stream)"))
    return 0


# ----------------------------------------------------------------------------- parsers


def add_state(p: argparse.ArgumentParser) -> None:
    p.add_argument("--state", type=str.upper, choices=STATES, metavar="STATE",
                   help=f"one of {', '.join(STATES)}")


def add_filters(p: argparse.ArgumentParser) -> None:
    add_state(p)
    p.add_argument("--name", help="task name, e.g. finance.check_pending_bills")
    p.add_argument("--queue")
    p.add_argument("--worker", help="worker hostname, e.g. w1@box")
    p.add_argument("--since", type=time_option, metavar="WHEN",
                   help="first seen at or after: 2h, 30m, 7d, an ISO 8601 time or epoch seconds")
    p.add_argument("--until", type=time_option, metavar="WHEN",
                   help="first seen at or before (same forms as --since)")
    p.add_argument("--exception", help="exception type of the failure, e.g. KeyError")
    p.add_argument("--fingerprint", help="a failure group, as taskpulse failures prints it")
    p.add_argument("--search", dest="q", metavar="TEXT",
                   help="text in the args, kwargs, result or exception (reads a bounded "
                   "number of records per page: narrow it with --since/--until)")


def add_send_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--wait", action="store_true", help="wait for the result, showing progress")
    p.add_argument("--timeout", type=float, default=300, help="seconds --wait waits (300)")


def register(tsub: Any, common: argparse.ArgumentParser) -> None:
    """``tasks list|count|show|send|revoke|retry|annotate|forget``."""
    p = tsub.add_parser(
        "list", parents=[common], help="tasks, newest first",
        description="Tasks the collector has seen, newest first, filtered by any of the options.",
        epilog="examples:\n  taskpulse tasks list --state FAILURE --since 2h\n"
        "  taskpulse tasks list --name demo.test_task --since 2026-01-31T08:00:00+08:00",
    )
    add_filters(p)
    p.add_argument("--limit", type=int, default=20, help="rows per page (20)")
    p.add_argument("--cursor", help="the next page, as printed under the previous one")
    p.set_defaults(func=cmd_list)

    p = tsub.add_parser("count", parents=[common], help="how many tasks match",
                        description="How many tasks match the filters (as tasks list).",
                        epilog="example:\n  taskpulse tasks count --state FAILURE --since 1d")
    add_filters(p)
    p.set_defaults(func=cmd_count)

    p = tsub.add_parser("show", parents=[common], help="one task with its timeline",
                        description="Everything known about one task: fields, progress, "
                        "traceback, the timeline of its events and its children.")  # fmt: skip
    p.add_argument("id")
    p.set_defaults(func=cmd_show)

    p = tsub.add_parser(
        "send", parents=[common], help="enqueue a task by name (operator)",
        description="Send a task from the catalog (taskpulse catalog lists them).",
        epilog="examples:\n  taskpulse tasks send demo.test_task --kwargs '{\"message\": \"hi\"}'"
        " --wait\n  taskpulse tasks send finance.calculate_monthly_revenue --kwargs "
        "'{\"month\": \"2026-10\"}' --priority high",
    )
    p.add_argument("name", help="task name from the catalog")
    p.add_argument("--args", default="[]", help="positional arguments, a JSON array")
    p.add_argument("--kwargs", default="{}", help="keyword arguments, a JSON object")
    p.add_argument("--queue", help="another queue than the task's own")
    p.add_argument("--priority", choices=PRIORITIES)
    p.add_argument("--countdown", type=float, help="run no earlier than N seconds from now")
    p.add_argument("--eta", help="run no earlier than this ISO 8601 time")
    p.add_argument("--expires", type=float, help="discard if not started within N seconds")
    p.add_argument("--idempotency-key", help="the same key again gives the same task, not a "
                   "second one")
    add_send_options(p)
    p.set_defaults(func=cmd_send)

    p = tsub.add_parser(
        "revoke", parents=[common], help="revoke a task, or every task a filter matches (admin)",
        description="Revoke a task: workers will not run it. With --filter: every unfinished "
        "task matching.",
        epilog="example:\n  taskpulse tasks revoke --filter name=reports.generate_daily_report "
        "--filter state=RECEIVED --dry-run",
    )
    p.add_argument("id", nargs="?")
    add_bulk_options(p)
    p.add_argument("--terminate", action="store_true", help="also kill it if running")
    p.add_argument("--signal", choices=SIGNALS, default="SIGTERM",
                   help="the signal --terminate sends (SIGTERM)")
    p.set_defaults(func=cmd_revoke)

    p = tsub.add_parser(
        "retry", parents=[common], help="re-send a failed task, or every one a filter matches "
        "(operator)",
        description="Send a finished task again with the same arguments; the new task's parent "
        "is the old one. With --filter: every matching task (in state FAILURE unless "
        "state= says otherwise), each once.",
        epilog="example:\n  taskpulse tasks retry --filter name=demo.test_task "
        "--filter exception=KeyError --dry-run",
    )
    p.add_argument("id", nargs="?")
    add_bulk_options(p)
    p.set_defaults(func=cmd_retry)

    p = tsub.add_parser(
        "annotate", parents=[common], help="set a task's note/labels (operator)",
        epilog="example:\n  taskpulse tasks annotate ID --note 'seen, harmless' --label team=ops",
    )
    p.add_argument("id")
    p.add_argument("--note", help='free text ("" removes it)')
    p.add_argument("--label", action="append", metavar="KEY=VALUE",
                   help="repeatable; replaces all labels")  # fmt: skip
    p.add_argument("--clear-labels", action="store_true")
    p.set_defaults(func=cmd_annotate)

    p = tsub.add_parser("forget", parents=[common], help="delete a finished task's record (admin)")
    p.add_argument("id")
    p.set_defaults(func=cmd_forget)


def register_test_task(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("test-task", parents=[common], help="send demo.test_task",
                       description="Send demo.test_task: a quick end-to-end check.",
                       epilog="example:\n  taskpulse test-task --wait")
    p.add_argument("--message", default="hello from taskpulse")
    add_send_options(p)
    p.set_defaults(func=cmd_test_task)
