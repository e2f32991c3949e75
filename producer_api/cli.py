"""``taskpulse``: operator commands over the HTTP API (the seed's ``celery_manage``, grown up).

Configured by ``TASKPULSE_API_URL`` (default http://127.0.0.1:8080) and ``TASKPULSE_TOKEN``;
``--api-url``/``--token`` override them. Output is a readable table; ``--json`` prints the API's
JSON for scripts. ``tokens`` commands edit the tokens file directly when one is given (``--file``
or ``TASKPULSE_API_TOKENS_FILE``) — that is how the first admin token is made — and go through the
API otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from producer_api.auth import TokenStore

DEFAULT_URL = "http://127.0.0.1:8080"
FINAL_STATES = frozenset({"SUCCESS", "FAILURE", "REVOKED", "REJECTED"})
EXIT_API_ERROR, EXIT_UNREACHABLE = 1, 3


class CliError(Exception):
    def __init__(self, message: str, code: int = EXIT_API_ERROR) -> None:
        super().__init__(message)
        self.code = code


class Api:
    """A small JSON-over-HTTP client with errors worded for a person at a terminal."""

    def __init__(self, base_url: str, token: str | None, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def _request(self, method: str, path: str, body: Any = None,
                 query: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> urllib.request.Request:
        params = {k: v for k, v in (query or {}).items() if v is not None}
        url = f"{self.base_url}/api/v1{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        data = None if body is None else json.dumps(body).encode()
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        if self.token:
            all_headers["Authorization"] = f"Bearer {self.token}"
        return urllib.request.Request(url, data=data, method=method, headers=all_headers)

    def call(self, method: str, path: str, body: Any = None,
             query: dict[str, Any] | None = None) -> Any:
        request = self._request(method, path, body, query)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise self._http_error(exc) from None
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            raise self._unreachable(exc) from None

    def stream(self, path: str, query: dict[str, Any],
               last_event_id: str | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
        """(stream id, event) pairs from an SSE endpoint, until interrupted."""
        headers = {"Last-Event-ID": last_event_id} if last_event_id else None
        request = self._request("GET", path, query=query, headers=headers)
        try:
            response = urllib.request.urlopen(request, timeout=120)
        except urllib.error.HTTPError as exc:
            raise self._http_error(exc) from None
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            raise self._unreachable(exc) from None
        with response:
            entry_id, data = "", ""
            for raw in response:
                line = raw.decode().rstrip("\n")
                if line.startswith("id: "):
                    entry_id = line[4:]
                elif line.startswith("data: "):
                    data = line[6:]
                elif not line and data:
                    yield entry_id, json.loads(data)
                    entry_id, data = "", ""

    def _http_error(self, exc: urllib.error.HTTPError) -> CliError:
        try:
            error = json.loads(exc.read())["error"]
            message, details = error["message"], error.get("details")
        except (ValueError, KeyError, TypeError):
            message, details = exc.reason, None
        hint = {
            401: " — set TASKPULSE_TOKEN (or --token) to a valid token",
            403: " — this token's role is not allowed to do that",
            503: " — the API cannot reach Redis or the broker; try again shortly",
        }.get(exc.code, "")
        where = f" [{details['field']}]" if isinstance(details, dict) and "field" in details else ""
        return CliError(f"HTTP {exc.code}: {message}{where}{hint}")

    def _unreachable(self, exc: Exception) -> CliError:
        reason = getattr(exc, "reason", exc)
        return CliError(
            f"cannot reach the taskpulse API at {self.base_url}: {reason} "
            "(is it running? set TASKPULSE_API_URL or --api-url)", EXIT_UNREACHABLE,
        )


# ----------------------------------------------------------------------------- output


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    if not rows:
        print("(none)")
        return
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)))
    for r in cells:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and value > 1e9:
        return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def emit(args: argparse.Namespace, value: Any, show: Any) -> None:
    if args.json:
        print(json.dumps(value, indent=2))
    else:
        show(value)


def show_record(record: dict[str, Any]) -> None:
    skip = {"timeline", "children", "progress", "traceback"}
    width = max(len(k) for k in record)
    for key, value in record.items():
        if key not in skip:
            print(f"{key.ljust(width)}  {_cell(value)}")
    if record.get("progress"):
        p = record["progress"]
        print(f"{'progress'.ljust(width)}  {p['current']:g}/{p.get('total') or '?'}")
    if record.get("traceback"):
        print("\n" + record["traceback"])
    if record.get("timeline"):
        print("\ntimeline:")
        for entry in record["timeline"]:
            print(f"  {_cell(entry['timestamp'])}  {entry['type']:<16} {entry.get('hostname', '')}")
    if record.get("children"):
        print("\nchildren: " + ", ".join(record["children"]))


# ----------------------------------------------------------------------------- commands


def _json_arg(text: str, kind: type, what: str) -> Any:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise CliError(f"{what} is not valid JSON: {exc}", 2) from None
    if not isinstance(value, kind):
        raise CliError(f"{what} must be a JSON {'array' if kind is list else 'object'}", 2)
    return value


def cmd_tasks_list(api: Api, args: argparse.Namespace) -> int:
    query = {k: getattr(args, k) for k in ("state", "name", "queue", "worker", "limit", "cursor")}
    page = api.call("GET", "/tasks", query=query)

    def show(p: dict[str, Any]) -> None:
        print_table(p["items"], ["id", "name", "state", "queue", "worker", "first_seen",
                                 "runtime"])
        if p.get("next_cursor"):
            print(f"\nmore: taskpulse tasks list --cursor {p['next_cursor']}")

    emit(args, page, show)
    return 0


def cmd_tasks_count(api: Api, args: argparse.Namespace) -> int:
    query = {k: getattr(args, k) for k in ("state", "name", "queue", "worker")}
    result = api.call("GET", "/tasks/count", query=query)
    emit(args, result, lambda r: print(r["count"] if r["exact"] else f">= {r['count']}"))
    return 0


def cmd_tasks_show(api: Api, args: argparse.Namespace) -> int:
    emit(args, api.call("GET", f"/tasks/{args.id}"), show_record)
    return 0


def _send(api: Api, args: argparse.Namespace, body: dict[str, Any]) -> int:
    accepted = api.call("POST", "/tasks", body)
    if not args.wait:
        emit(args, accepted, lambda a: print(
            f"{a['id']}  {a['name']} -> {a['queue']} ({a['priority']})"
            + ("  [duplicate: already sent with this idempotency key]" if a.get("duplicate")
               else "")))
        return 0
    if not args.json:
        print(f"sent {accepted['id']} ({accepted['name']}); waiting for the result...",
              file=sys.stderr)
    record = wait_for(api, accepted["id"], args.timeout, show_progress=not args.json)
    emit(args, record, show_record)
    return 0 if record.get("state") == "SUCCESS" else EXIT_API_ERROR


def wait_for(api: Api, task_id: str, timeout: float, show_progress: bool) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    record: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            record = api.call("GET", f"/tasks/{task_id}")
        except CliError as exc:
            if "HTTP 404" not in str(exc):  # not seen by the collector yet
                raise
        if show_progress and sys.stderr.isatty():
            sys.stderr.write("\r" + _progress_line(record) + "\033[K")
            sys.stderr.flush()
        if record.get("state") in FINAL_STATES:
            if show_progress and sys.stderr.isatty():
                sys.stderr.write("\n")
            return record
        time.sleep(0.3)
    raise CliError(f"task {task_id} not finished after {timeout:g}s "
                   f"(last state {record.get('state', 'unknown')})")


def _progress_line(record: dict[str, Any]) -> str:
    state = record.get("state", "PENDING")
    progress = record.get("progress")
    if not progress or not progress.get("total"):
        return f"  {state}"
    done = min(1.0, progress["current"] / progress["total"])
    bar = "#" * int(done * 30)
    return f"  {state} [{bar:<30}] {progress['current']:g}/{progress['total']:g}"


def cmd_tasks_send(api: Api, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {
        "name": args.name,
        "args": _json_arg(args.args, list, "--args"),
        "kwargs": _json_arg(args.kwargs, dict, "--kwargs"),
    }
    for key in ("queue", "priority", "countdown", "eta", "expires", "idempotency_key"):
        if getattr(args, key) is not None:
            body[key] = getattr(args, key)
    return _send(api, args, body)


def cmd_test_task(api: Api, args: argparse.Namespace) -> int:
    body = {"name": "demo.test_task", "kwargs": {"message": args.message}}
    return _send(api, args, body)


def cmd_tasks_revoke(api: Api, args: argparse.Namespace) -> int:
    body = {"terminate": args.terminate, "signal": args.signal}
    result = api.call("POST", f"/tasks/{args.id}/revoke", body)
    emit(args, result, lambda r: print(
        f"revoked {r['id']}" + (" (terminating if running)" if r["terminate"] else "")))
    return 0


def cmd_tasks_retry(api: Api, args: argparse.Namespace) -> int:
    result = api.call("POST", f"/tasks/{args.id}/retry", {})
    emit(args, result, lambda r: print(f"{r['id']}  retry of {r['parent_id']} ({r['name']})"))
    return 0


def cmd_tasks_watch(api: Api, args: argparse.Namespace) -> int:
    query = {"name": args.name, "state": args.state, "task_id": args.task_id}
    last_id = args.last_event_id
    try:
        while True:  # the server ends a stream when Redis blips; carry on from the last id
            for entry_id, event in api.stream("/events", query, last_id):
                last_id = entry_id or last_id
                if args.json:
                    print(json.dumps({"stream_id": entry_id, **event}), flush=True)
                else:
                    print(f"{_cell(event['timestamp'])}  {event['type']:<16} "
                          f"{event.get('uuid', '')[:36]:<36} {event.get('name', '')} "
                          f"{event.get('hostname', '')}", flush=True)
            time.sleep(1)
    except KeyboardInterrupt:
        return 0


def cmd_workers(api: Api, args: argparse.Namespace) -> int:
    emit(args, api.call("GET", "/workers"), lambda rows: print_table(
        rows, ["hostname", "alive", "active", "processed", "last_heartbeat", "sw_ver"]))
    return 0


def cmd_queues(api: Api, args: argparse.Namespace) -> int:
    emit(args, api.call("GET", "/queues"), lambda rows: print_table(
        rows, ["name", "length", "consumers", "updated"]))
    return 0


def cmd_stats(api: Api, args: argparse.Namespace) -> int:
    def show(s: dict[str, Any]) -> None:
        print(f"tasks stored: {s['tasks_stored']}   workers online: "
              f"{s['workers_online']}/{s['workers_total']}\n")
        print_table([{"state": k, "tasks": v} for k, v in s["by_state"].items()],
                    ["state", "tasks"])
        print()
        kinds = list(s["events_total"])
        rows = [{"name": n, **c} for n, c in sorted(s["by_name"].items())]
        print_table(rows, ["name", *kinds])

    emit(args, api.call("GET", "/stats"), show)
    return 0


def cmd_history(api: Api, args: argparse.Namespace) -> int:
    query = {"granularity": args.granularity, "since": args.since, "name": args.name}
    result = api.call("GET", "/history", query=query)

    def show(h: dict[str, Any]) -> None:
        rows = [{"start": float(b["start"]), **b["counts"]} for b in h["buckets"]]
        print_table(rows, ["start", "SENT", "SUCCESS", "FAILURE", "RETRY", "REVOKED"])

    emit(args, result, show)
    return 0


def _token_store(args: argparse.Namespace) -> TokenStore | None:
    path = args.file or os.environ.get("TASKPULSE_API_TOKENS_FILE")
    return TokenStore(path) if path else None


def cmd_tokens_create(api: Api, args: argparse.Namespace) -> int:
    store = _token_store(args)
    if store is not None:
        entry, secret = store.create(args.name, args.role)
        created = {"id": entry.id, "name": entry.name, "role": entry.role,
                   "created": entry.created, "token": secret}
    else:
        created = api.call("POST", "/tokens", {"name": args.name, "role": args.role})
    emit(args, created, lambda c: print(
        f"created {c['role']} token {c['id']} ({c['name']}). It is shown only once:\n\n"
        f"    {c['token']}\n\nexport TASKPULSE_TOKEN={c['token']}"))
    return 0


def cmd_tokens_list(api: Api, args: argparse.Namespace) -> int:
    store = _token_store(args)
    if store is not None:
        tokens = [{"id": e.id, "name": e.name, "role": e.role, "created": e.created}
                  for e in store.list()]
    else:
        tokens = api.call("GET", "/tokens")["tokens"]
    emit(args, {"tokens": tokens},
         lambda t: print_table(t["tokens"], ["id", "name", "role", "created"]))
    return 0


def cmd_tokens_revoke(api: Api, args: argparse.Namespace) -> int:
    store = _token_store(args)
    if store is not None:
        if not store.revoke(args.id):
            raise CliError(f"no token {args.id!r} in {store.path}")
    else:
        api.call("DELETE", f"/tokens/{args.id}")
    emit(args, {"id": args.id, "deleted": True}, lambda r: print(f"revoked token {r['id']}"))
    return 0


# ----------------------------------------------------------------------------- parser


def _filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state", type=str.upper, help="PENDING, STARTED, SUCCESS, FAILURE, ...")
    parser.add_argument("--name", help="task name, e.g. finance.check_pending_bills")
    parser.add_argument("--queue")
    parser.add_argument("--worker", help="worker hostname")


def _send_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--wait", action="store_true",
                        help="wait for the result, showing progress")
    parser.add_argument("--timeout", type=float, default=300, help="seconds --wait waits")


def build_parser() -> argparse.ArgumentParser:
    # Imported here: those commands build on this module's Api and output helpers.
    from producer_api.cli_workflows import add_commands, add_task_commands

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--api-url", default=argparse.SUPPRESS,
                        help=f"API base URL (TASKPULSE_API_URL, default {DEFAULT_URL})")
    common.add_argument("--token", default=argparse.SUPPRESS, help="bearer token (TASKPULSE_TOKEN)")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="print JSON instead of tables")
    parser = argparse.ArgumentParser(
        prog="taskpulse", parents=[common],
        description="Send, inspect and control taskpulse (Celery) tasks through the API.",
        epilog="Environment: TASKPULSE_API_URL, TASKPULSE_TOKEN, TASKPULSE_API_TOKENS_FILE.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    tasks = sub.add_parser("tasks", help="list, show, send, revoke, retry, watch tasks")
    tsub = tasks.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = tsub.add_parser("list", parents=[common], help="tasks, newest first")
    _filters(p)
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--cursor", help="continue from a previous page")
    p.set_defaults(func=cmd_tasks_list)
    p = tsub.add_parser("count", parents=[common], help="how many tasks match")
    _filters(p)
    p.set_defaults(func=cmd_tasks_count)
    p = tsub.add_parser("show", parents=[common], help="one task with its timeline")
    p.add_argument("id")
    p.set_defaults(func=cmd_tasks_show)
    p = tsub.add_parser(
        "send", parents=[common], help="enqueue a task by name",
        epilog="example: taskpulse tasks send notifications.send_notification_email "
        "--kwargs '{\"to\": \"a@example.com\", \"subject\": \"hi\", \"body\": \"...\"}' "
        "--priority high --wait",
    )
    p.add_argument("name", help="task name from the catalog (GET /api/v1/catalog)")
    p.add_argument("--args", default="[]", help="positional arguments, JSON array")
    p.add_argument("--kwargs", default="{}", help="keyword arguments, JSON object")
    p.add_argument("--queue")
    p.add_argument("--priority", choices=["low", "normal", "high", "critical"])
    p.add_argument("--countdown", type=float, help="run no earlier than N seconds from now")
    p.add_argument("--eta", help="run no earlier than this ISO 8601 time")
    p.add_argument("--expires", type=float, help="discard if not started within N seconds")
    p.add_argument("--idempotency-key", help="same key again -> same task, not a second one")
    _send_options(p)
    p.set_defaults(func=cmd_tasks_send)
    p = tsub.add_parser("revoke", parents=[common], help="revoke a task (admin)")
    p.add_argument("id")
    p.add_argument("--terminate", action="store_true", help="also kill it if running")
    p.add_argument("--signal", default="SIGTERM")
    p.set_defaults(func=cmd_tasks_revoke)
    p = tsub.add_parser("retry", parents=[common], help="re-send a failed task")
    p.add_argument("id")
    p.set_defaults(func=cmd_tasks_retry)
    p = tsub.add_parser("watch", parents=[common], help="live tail of events (Ctrl-C stops)")
    p.add_argument("--name")
    p.add_argument("--state", type=str.upper)
    p.add_argument("--task-id")
    p.add_argument("--last-event-id", help="resume after this stream id")
    p.set_defaults(func=cmd_tasks_watch)
    add_task_commands(tsub, common)

    for name, func, text in (
        ("workers", cmd_workers, "workers and whether they are alive"),
        ("queues", cmd_queues, "queue lengths"),
        ("stats", cmd_stats, "totals by state and task name"),
    ):
        sub.add_parser(name, parents=[common], help=text).set_defaults(func=func)
    p = sub.add_parser("history", parents=[common], help="event counts per time bucket")
    p.add_argument("--granularity", choices=["minute", "hour", "day"], default="hour")
    p.add_argument("--since", type=float, help="epoch seconds (default: 60 buckets ago)")
    p.add_argument("--name")
    p.set_defaults(func=cmd_history)
    p = sub.add_parser("test-task", parents=[common], help="send demo.test_task")
    p.add_argument("--message", default="hello from taskpulse")
    _send_options(p)
    p.set_defaults(func=cmd_test_task)

    tokens = sub.add_parser("tokens", help="API tokens (admin)")
    ksub = tokens.add_subparsers(dest="action", required=True, metavar="ACTION")
    file_help = "edit this tokens file directly instead of going through the API " \
                "(default: TASKPULSE_API_TOKENS_FILE if set)"
    p = ksub.add_parser("create", parents=[common], help="create a token (shown once)")
    p.add_argument("--role", required=True, choices=["viewer", "operator", "admin"])
    p.add_argument("--name", default=os.environ.get("USER", "operator"))
    p.add_argument("--file", help=file_help)
    p.set_defaults(func=cmd_tokens_create)
    p = ksub.add_parser("list", parents=[common], help="list tokens")
    p.add_argument("--file", help=file_help)
    p.set_defaults(func=cmd_tokens_list)
    p = ksub.add_parser("revoke", parents=[common], help="revoke a token by id")
    p.add_argument("id")
    p.add_argument("--file", help=file_help)
    p.set_defaults(func=cmd_tokens_revoke)
    add_commands(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.json = getattr(args, "json", False)
    url = getattr(args, "api_url", None) or os.environ.get("TASKPULSE_API_URL") or DEFAULT_URL
    token = getattr(args, "token", None) or os.environ.get("TASKPULSE_TOKEN")
    try:
        return args.func(Api(url, token), args)
    except CliError as exc:
        print(f"taskpulse: {exc}", file=sys.stderr)
        return exc.code
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
