"""``taskpulse stats | history | workers | queues``: the fleet at a glance."""

from __future__ import annotations

import argparse
from typing import Any, Final

from event_collector.events import TASK_EVENT_KINDS
from producer_api.cli import fleet
from producer_api.cli.arguments import GRANULARITIES, time_option
from producer_api.cli.client import Api
from producer_api.cli.output import Output

KINDS: Final = tuple(TASK_EVENT_KINDS.values())  # SENT, RECEIVED, ... in a task's life order


def cmd_stats(api: Api, out: Output, args: argparse.Namespace) -> int:
    def show(s: dict[str, Any]) -> None:
        print(f"tasks stored: {s['tasks_stored']}   workers online: "
              f"{s['workers_online']}/{s['workers_total']}\n")
        out.table([{"state": k, "tasks": v} for k, v in s["by_state"].items()], ["state", "tasks"])
        print()
        kinds = [k for k in KINDS if any(c.get(k) for c in s["by_name"].values())]
        rows = [{"name": n, **{k: c.get(k, 0) for k in kinds}}
                for n, c in sorted(s["by_name"].items())]  # fmt: skip
        out.table(rows, ["name", *kinds])

    out.emit(api.call("GET", "/stats"), show)
    return 0


def show_history(out: Output, history: dict[str, Any], everything: bool) -> None:
    buckets = history["buckets"]
    shown = buckets if everything else [b for b in buckets if any(b["counts"].values())]
    kinds = [k for k in KINDS if any(b["counts"].get(k) for b in shown)] or list(KINDS)
    rows = [{"start": b["start"], **{k: b["counts"].get(k, 0) for k in kinds}} for b in shown]
    out.table(rows, ["start", *kinds])
    if hidden := len(buckets) - len(shown):
        print(f"({hidden} of {len(buckets)} {history['granularity']} buckets had no events; "
              "--all shows them)")


def cmd_history(api: Api, out: Output, args: argparse.Namespace) -> int:
    query = {"granularity": args.granularity, "since": args.since, "until": args.until,
             "name": args.name}  # fmt: skip
    out.emit(api.call("GET", "/history", query=query), lambda h: show_history(out, h, args.all))
    return 0


def cmd_workers(api: Api, out: Output, args: argparse.Namespace) -> int:
    out.emit(api.call("GET", "/workers"), lambda rows: out.table(
        rows, ["hostname", "alive", "active", "processed", "last_heartbeat", "sw_ver"]))
    return 0


def cmd_queues(api: Api, out: Output, args: argparse.Namespace) -> int:
    out.emit(api.call("GET", "/queues"), lambda rows: out.table(
        [{"paused": False, **row} for row in rows], ["name", "length", "consumers", "paused",
                                                      "updated"]))
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    for name, func, text, actions, register_actions in (
        ("workers", cmd_workers, "workers, whether they are alive, their last heartbeat",
         "pool, consumers, shutdown", fleet.register_workers),
        ("queues", cmd_queues, "messages waiting per queue, consumers, paused or not",
         "pause, resume, purge, peek", fleet.register_queues),
    ):
        p = sub.add_parser(name, parents=[common], help=f"{text}; {actions}",
                           description=f"{text[0].upper() + text[1:]} (without an ACTION); "
                           f"or operate them: {actions}.")
        p.set_defaults(func=func)
        register_actions(p.add_subparsers(dest="action", required=False, metavar="ACTION"),
                         common)
    text = "totals by state and by task name"
    sub.add_parser("stats", parents=[common], help=text, description=text[0].upper() + text[1:]
                   + ".").set_defaults(func=cmd_stats)  # fmt: skip
    p = sub.add_parser(
        "history", parents=[common], help="event counts per minute/hour/day",
        description="Task events counted per time bucket (by default the last 60 buckets up to "
        "now). Only buckets with events are printed unless --all.",
        epilog="examples:\n  taskpulse history --granularity minute --since 30m\n"
        "  taskpulse history --granularity day --since 2026-01-01 --name demo.test_task",
    )
    p.add_argument("--granularity", choices=GRANULARITIES, default="hour")
    p.add_argument("--since", type=time_option, metavar="WHEN",
                   help="from: 2h, 30m, 7d, an ISO 8601 time or epoch seconds "
                   "(default: 60 buckets before --until)")
    p.add_argument("--until", type=time_option, metavar="WHEN",
                   help="to (same forms as --since; default: now)")
    p.add_argument("--name", help="only this task name")
    p.add_argument("--all", action="store_true", help="also print buckets without events")
    p.set_defaults(func=cmd_history)
