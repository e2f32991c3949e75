"""CLI commands for workflows, schedules and task records (hooked into ``producer_api.cli``).

taskpulse workflows send '{"chain": [{"name": "demo.test_task"}, ...]}'   (or @file.json, -)
taskpulse tasks tree ID            the workflow as an indented tree with its roll-up state
taskpulse tasks annotate ID --note TEXT --label k=v     /  taskpulse tasks forget ID
taskpulse schedules list | show NAME | add NAME TASK --every 30 | --cron "0 2 * * *"
                    | pause NAME | resume NAME | remove NAME
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from producer_api.cli import Api, CliError, emit, print_table, show_record

CRON_FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")


def _workflow_body(text: str) -> Any:
    """The workflow JSON: inline, ``@path`` to a file, or ``-`` for standard input."""
    if text == "-":
        text = sys.stdin.read()
    elif text.startswith("@"):
        text = Path(text[1:]).read_text()
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CliError(f"the workflow is not valid JSON: {exc}", 2) from None


def cmd_workflows_send(api: Api, args: argparse.Namespace) -> int:
    accepted = api.call("POST", "/workflows", _workflow_body(args.workflow))

    def show(a: dict[str, Any]) -> None:
        print(f"{a['kind']} {a['root_id']} sent ({len(a['tasks'])} tasks)")
        print_table(a["tasks"], ["id", "name", "queue"])
        print(f"\nfollow it: taskpulse tasks tree {a['root_id']}")

    emit(args, accepted, show)
    return 0


def render_tree(tree: dict[str, Any]) -> list[str]:
    """Lines of the tree, box-drawn, each task with its state (and exception when failed)."""
    failed = ", ".join(tree.get("failed_nodes", []))
    lines = [f"workflow {tree['root_id']}: {tree['state']}" + (f" ({failed})" if failed else "")]

    def label(node: dict[str, Any]) -> str:
        if node.get("virtual"):
            return f"{node['id']}  (group/chord root)"
        text = f"{node.get('name') or '?'}  {node['id']}  {node.get('state') or 'UNKNOWN'}"
        return text + (f"  {node['exception']}" if node.get("exception") else "")

    def walk(node: dict[str, Any], prefix: str, last: bool, top: bool) -> None:
        branch = "" if top else ("└── " if last else "├── ")
        lines.append(prefix + branch + label(node))
        children = node.get("children", [])
        inner = prefix if top else prefix + ("    " if last else "│   ")
        for i, child in enumerate(children):
            walk(child, inner, i == len(children) - 1, False)

    walk(tree["root"], "", True, True)
    if tree.get("truncated"):
        lines.append(f"(truncated: showing {tree['total']} tasks)")
    return lines


def cmd_tasks_tree(api: Api, args: argparse.Namespace) -> int:
    tree = api.call("GET", f"/tasks/{args.id}/tree")
    emit(args, tree, lambda t: print("\n".join(render_tree(t))))
    return 0


def _labels(pairs: list[str] | None) -> dict[str, str] | None:
    if pairs is None:
        return None
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise CliError(f"--label {pair!r} is not key=value", 2)
        out[key] = value
    return out


def cmd_tasks_annotate(api: Api, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {}
    if args.note is not None:
        body["note"] = args.note
    if args.clear_labels:
        body["labels"] = {}
    elif (labels := _labels(args.label)) is not None:
        body["labels"] = labels
    if not body:
        raise CliError("give --note and/or --label (or --clear-labels)", 2)
    emit(args, api.call("PATCH", f"/tasks/{args.id}", body), show_record)
    return 0


def cmd_tasks_forget(api: Api, args: argparse.Namespace) -> int:
    result = api.call("DELETE", f"/tasks/{args.id}")
    emit(args, result, lambda r: print(f"forgot {r['id']} (an audit event stays in the stream)"))
    return 0


# ----------------------------------------------------------------------------- schedules


def _when(s: dict[str, Any]) -> str:
    if s.get("interval"):
        return f"every {s['interval']['every']:g}s"
    c = s.get("crontab", {})
    return "cron " + " ".join(c.get(f, "*") for f in CRON_FIELDS)


def show_schedules(items: list[dict[str, Any]]) -> None:
    rows = [{**s, "when": _when(s), "enabled": "yes" if s["enabled"] else "paused"} for s in items]
    print_table(rows, ["name", "task", "when", "queue", "enabled", "last_run_at", "next_run_at"])


def cmd_schedules_list(api: Api, args: argparse.Namespace) -> int:
    emit(args, api.call("GET", "/schedules"), lambda r: show_schedules(r["items"]))
    return 0


def cmd_schedules_show(api: Api, args: argparse.Namespace) -> int:
    emit(args, api.call("GET", f"/schedules/{args.name}"), lambda s: show_schedules([s]))
    return 0


def _cron(text: str) -> dict[str, str]:
    parts = text.split()
    if len(parts) != 5:
        raise CliError(f"--cron needs 5 fields (minute hour day month weekday), got {text!r}", 2)
    return dict(zip(CRON_FIELDS, parts, strict=True))


def cmd_schedules_add(api: Api, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {
        "name": args.name, "task": args.task, "args": json.loads(args.args),
        "kwargs": json.loads(args.kwargs), "enabled": not args.paused,
    }  # fmt: skip
    if args.queue:
        body["queue"] = args.queue
    if args.every is not None:
        body["interval"] = {"every": args.every}
    else:
        body["crontab"] = _cron(args.cron)
    emit(args, api.call("POST", "/schedules", body), lambda s: show_schedules([s]))
    return 0


def _set_enabled(api: Api, args: argparse.Namespace, enabled: bool) -> int:
    changed = api.call("PATCH", f"/schedules/{args.name}", {"enabled": enabled})
    emit(args, changed, lambda s: show_schedules([s]))
    return 0


def cmd_schedules_remove(api: Api, args: argparse.Namespace) -> int:
    api.call("DELETE", f"/schedules/{args.name}")
    if not args.json:
        print(f"removed schedule {args.name}")
    return 0


# ----------------------------------------------------------------------------- parsers


def add_task_commands(tsub: Any, common: argparse.ArgumentParser) -> None:
    """``tasks tree|annotate|forget`` under the existing ``tasks`` command."""
    p = tsub.add_parser("tree", parents=[common], help="a task's whole workflow as a tree")
    p.add_argument("id", help="the root id or any task of the workflow")
    p.set_defaults(func=cmd_tasks_tree)
    p = tsub.add_parser("annotate", parents=[common], help="set a task's note/labels")
    p.add_argument("id")
    p.add_argument("--note", help='free text ("" removes it)')
    p.add_argument("--label", action="append", metavar="KEY=VALUE",
                   help="repeatable; replaces all labels")  # fmt: skip
    p.add_argument("--clear-labels", action="store_true")
    p.set_defaults(func=cmd_tasks_annotate)
    p = tsub.add_parser("forget", parents=[common],
                        help="delete a finished task's record (admin)")  # fmt: skip
    p.add_argument("id")
    p.set_defaults(func=cmd_tasks_forget)


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """``workflows`` and ``schedules`` top-level commands."""
    wf = sub.add_parser("workflows", help="send chains, groups and chords of tasks")
    wsub = wf.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = wsub.add_parser("send", parents=[common], help="send a workflow (JSON, @file or -)")
    p.add_argument("workflow", help='e.g. \'{"group": [{"name": "demo.test_task"}]}\'')
    p.set_defaults(func=cmd_workflows_send)

    sc = sub.add_parser("schedules", help="beat's periodic tasks, editable at runtime")
    ssub = sc.add_subparsers(dest="action", required=True, metavar="ACTION")
    ssub.add_parser("list", parents=[common], help="every schedule").set_defaults(
        func=cmd_schedules_list
    )
    p = ssub.add_parser("show", parents=[common], help="one schedule")
    p.add_argument("name")
    p.set_defaults(func=cmd_schedules_show)
    p = ssub.add_parser("add", parents=[common], help="add a schedule (admin)")
    p.add_argument("name")
    p.add_argument("task", help="task name from the catalog")
    when = p.add_mutually_exclusive_group(required=True)
    when.add_argument("--every", type=float, help="interval in seconds")
    when.add_argument("--cron", help='"minute hour day-of-month month day-of-week"')
    p.add_argument("--args", default="[]", help="JSON array")
    p.add_argument("--kwargs", default="{}", help="JSON object")
    p.add_argument("--queue")
    p.add_argument("--paused", action="store_true", help="add it disabled")
    p.set_defaults(func=cmd_schedules_add)
    for action, enabled, text in (
        ("pause", False, "stop running it"),
        ("resume", True, "run it again"),
    ):
        p = ssub.add_parser(action, parents=[common], help=f"{text} (admin)")
        p.add_argument("name")
        p.set_defaults(func=lambda api, args, on=enabled: _set_enabled(api, args, on))
    p = ssub.add_parser("remove", parents=[common], help="delete a schedule (admin)")
    p.add_argument("name")
    p.set_defaults(func=cmd_schedules_remove)
