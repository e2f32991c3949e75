"""``taskpulse tasks watch``: the live event stream, one line per event.

Quiet by default: worker heartbeats (one per worker every few seconds) are hidden unless
``--heartbeats``. Celery sends the task name only with task-sent/received, so later events of a
task are named from its record (``GET /tasks/{id}``), remembered for the next events.

It outlives its connection: the server ends a stream when Redis blips, when the client falls too
far behind, or when the API stops; the watch then connects again with the last stream id it
printed, so nothing is missed or shown twice. While the API is unreachable or answers 503 it
retries with a short backoff, saying so on stderr; any other refusal (401, 403, 422) ends it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Final

from event_collector.events import AUDIT_EVENT
from producer_api.cli.client import EXIT_UNREACHABLE, Api, ApiError, CliError
from producer_api.cli.output import NOTHING, Output, event_detail
from producer_api.cli.tasks import add_state

HEARTBEAT: Final = "worker-heartbeat"
_NAMES_KEPT: Final = 1000
RETRY_FIRST, RETRY_MAX = 0.5, 5.0  # seconds between attempts to reach the API, doubling
RESUME_AFTER: Final = 1.0  # seconds before reconnecting to a stream the server ended


class TaskNames:
    """A task's name: the event's own when it has one, else looked up once and remembered."""

    def __init__(self, lookup: Callable[[str], str], size: int = _NAMES_KEPT) -> None:
        self.lookup = lookup
        self.size = size
        self.known: OrderedDict[str, str] = OrderedDict()

    def __call__(self, event: dict[str, Any]) -> str:
        task_id, name = event.get("uuid") or "", event.get("name") or ""
        if not task_id:
            return name
        if not name:
            name = self.known.get(task_id) or self.lookup(task_id)
        if name:  # an unnamed record may be named by a later event: ask again then
            self.known[task_id] = name
            self.known.move_to_end(task_id)
            if len(self.known) > self.size:
                self.known.popitem(last=False)
        return name


def name_from_record(api: Api) -> Callable[[str], str]:
    def lookup(task_id: str) -> str:
        try:
            return api.call("GET", f"/tasks/{task_id}").get("name") or ""
        except CliError:  # forgotten, or the API briefly unavailable: the line goes unnamed
            return ""

    return lookup


class EventLines:
    """Which events are shown, and each one as ``time type task-id name host detail``."""

    def __init__(self, out: Output, names: Callable[[dict[str, Any]], str],
                 heartbeats: bool = False) -> None:
        self.out = out
        self.names = names
        self.heartbeats = heartbeats

    def shown(self, event: dict[str, Any]) -> bool:
        return self.heartbeats or event["type"] != HEARTBEAT

    def line(self, event: dict[str, Any]) -> str:
        kind = event["type"]
        if kind == AUDIT_EVENT:
            detail = " ".join(filter(None, (event.get("actor"), event.get("action"),
                                            event.get("detail"))))  # fmt: skip
        elif kind == HEARTBEAT:
            detail = f"active {event.get('active', 0)}"
        else:
            detail = event_detail(event)
        cells = [
            self.out.time(event["timestamp"]), f"{kind:<16}",
            f"{event.get('uuid') or NOTHING:<36}", self.names(event) or NOTHING,
            event.get("hostname") or NOTHING, detail,
        ]  # fmt: skip
        return "  ".join(cells).rstrip()


def passing(exc: CliError) -> bool:
    """Whether a failure to connect may pass by itself: the API unreachable, or 503."""
    return exc.code == EXIT_UNREACHABLE or (isinstance(exc, ApiError) and exc.status == 503)


def cmd_watch(api: Api, out: Output, args: argparse.Namespace) -> int:
    lines = EventLines(out, TaskNames(name_from_record(api)), args.heartbeats)
    query = {"name": args.name, "state": args.state, "task_id": args.task_id}
    last_id, delay = args.last_event_id, RETRY_FIRST
    try:
        while True:
            try:
                events = api.stream("/events", query, last_id)
            except CliError as exc:
                if not passing(exc):
                    raise
                reason = f"HTTP 503: {exc.message}" if isinstance(exc, ApiError) else str(exc)
                print(f"taskpulse: {reason}; retrying in {delay:g}s", file=sys.stderr, flush=True)
                time.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
                continue
            delay = RETRY_FIRST
            for entry_id, event in events:
                last_id = entry_id or last_id
                if not lines.shown(event):
                    continue
                text = json.dumps({"stream_id": entry_id, **event}) if out.json else lines.line(
                    event)
                print(text, flush=True)
            time.sleep(RESUME_AFTER)  # the server ended the stream: carry on after last_id
    except KeyboardInterrupt:
        return 0


def register(tsub: Any, common: argparse.ArgumentParser) -> None:
    p = tsub.add_parser(
        "watch", parents=[common], help="live tail of events (Ctrl-C stops)",
        description="Events as they happen, one per line: time, type, task id, task name, host, "
        "and what the event adds (progress, runtime, exception). Worker heartbeats are hidden "
        "unless --heartbeats.",
        epilog="examples:\n  taskpulse tasks watch --state FAILURE\n"
        "  taskpulse tasks watch --task-id ID --json",
    )
    p.add_argument("--name", help="only this task name")
    add_state(p)
    p.add_argument("--task-id", help="only this task")
    p.add_argument("--heartbeats", action="store_true", help="also show worker heartbeats")
    p.add_argument("--last-event-id", help="resume after this stream id")
    p.set_defaults(func=cmd_watch)
