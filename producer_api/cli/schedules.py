"""``taskpulse schedules ...``: beat's periodic tasks, read and changed at runtime."""

from __future__ import annotations

import argparse
from typing import Any, Final

from producer_api.cli.arguments import json_arg, parse_duration
from producer_api.cli.client import EXIT_USAGE, Api, CliError
from producer_api.cli.output import Output, format_duration

# The order people write a crontab in; the API names each field.
CRON_FIELDS: Final = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")
LIST_COLUMNS: Final = ("name", "task", "when", "queue", "enabled", "last_run_at", "next_run_at")
SHOW_FIELDS: Final = ("name", "task", "when", "queue", "enabled", "args", "kwargs",
                      "last_run_at", "next_run_at", "total_run_count")  # fmt: skip


def when(schedule: dict[str, Any]) -> str:
    if schedule.get("interval"):
        return "every " + format_duration(schedule["interval"]["every"])
    cron = schedule.get("crontab", {})
    return "cron " + " ".join(cron.get(f, "*") for f in CRON_FIELDS)


def show_list(out: Output, items: list[dict[str, Any]]) -> None:
    out.table([{**s, "when": when(s)} for s in items], LIST_COLUMNS)


def show_one(out: Output, schedule: dict[str, Any]) -> None:
    out.fields({**schedule, "when": when(schedule)}, SHOW_FIELDS)


def cmd_list(api: Api, out: Output, args: argparse.Namespace) -> int:
    out.emit(api.call("GET", "/schedules"), lambda r: show_list(out, r["items"]))
    return 0


def cmd_show(api: Api, out: Output, args: argparse.Namespace) -> int:
    out.emit(api.call("GET", f"/schedules/{args.name}"), lambda s: show_one(out, s))
    return 0


def _cron(text: str) -> dict[str, str]:
    parts = text.split()
    if len(parts) != len(CRON_FIELDS):
        raise CliError(f"--cron needs 5 fields (minute hour day month weekday), got {text!r}",
                       EXIT_USAGE)
    return dict(zip(CRON_FIELDS, parts, strict=True))


def cmd_add(api: Api, out: Output, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {
        "name": args.name, "task": args.task, "args": json_arg(args.args, list, "--args"),
        "kwargs": json_arg(args.kwargs, dict, "--kwargs"), "enabled": not args.paused,
    }  # fmt: skip
    if args.queue:
        body["queue"] = args.queue
    if args.every is not None:
        body["interval"] = {"every": args.every}
    else:
        body["crontab"] = _cron(args.cron)
    created = api.call("POST", "/schedules", body)
    out.emit(created, lambda s: show_one(out, s))
    return 0


def _set_enabled(api: Api, out: Output, args: argparse.Namespace, enabled: bool) -> int:
    changed = api.call("PATCH", f"/schedules/{args.name}", {"enabled": enabled})
    out.emit(changed, lambda s: show_one(out, s))
    return 0


def cmd_remove(api: Api, out: Output, args: argparse.Namespace) -> int:
    api.call("DELETE", f"/schedules/{args.name}")
    out.emit({"name": args.name, "deleted": True},
             lambda r: print(f"removed schedule {r['name']}"))  # fmt: skip
    return 0


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    sc = sub.add_parser("schedules", help="beat's periodic tasks, editable at runtime")
    ssub = sc.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = ssub.add_parser("list", parents=[common], help="every schedule, with last and next run")
    p.set_defaults(func=cmd_list)
    p = ssub.add_parser("show", parents=[common], help="one schedule, with its arguments")
    p.add_argument("name")
    p.set_defaults(func=cmd_show)
    p = ssub.add_parser(
        "add", parents=[common], help="add a schedule (admin)",
        description="Add a periodic task. --cron fields are read in the beat's timezone "
        "(TASKPULSE_TIMEZONE), whatever zone times are displayed in.",
        epilog="examples:\n"
        "  taskpulse schedules add nightly-export exports.export_data --cron '0 2 * * *' "
        "--kwargs '{\"fmt\": \"json\"}'\n"
        "  taskpulse schedules add ping demo.test_task --every 5m --paused",
    )
    p.add_argument("name")
    p.add_argument("task", help="task name from the catalog")
    timing = p.add_mutually_exclusive_group(required=True)
    timing.add_argument("--every", type=_duration, metavar="DURATION",
                        help="interval: seconds, or 90s, 5m, 2h, 1d")
    timing.add_argument("--cron", help='"minute hour day-of-month month day-of-week"')
    p.add_argument("--args", default="[]", help="positional arguments, a JSON array")
    p.add_argument("--kwargs", default="{}", help="keyword arguments, a JSON object")
    p.add_argument("--queue", help="another queue than the task's own")
    p.add_argument("--paused", action="store_true", help="add it disabled")
    p.set_defaults(func=cmd_add)
    for action, enabled, text in (("pause", False, "stop running it"),
                                  ("resume", True, "run it again")):  # fmt: skip
        p = ssub.add_parser(action, parents=[common], help=f"{text} (admin)")
        p.add_argument("name")
        p.set_defaults(func=lambda api, out, args, on=enabled: _set_enabled(api, out, args, on))
    p = ssub.add_parser("remove", parents=[common], help="delete a schedule (admin)")
    p.add_argument("name")
    p.set_defaults(func=cmd_remove)
