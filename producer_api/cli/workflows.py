"""``taskpulse workflows send`` and ``taskpulse tasks tree``: chains, groups and chords."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from event_collector.workflows import CHORD_BODY
from producer_api.cli.client import EXIT_USAGE, Api, CliError
from producer_api.cli.output import Output


def _workflow_body(text: str) -> Any:
    """The workflow JSON: inline, ``@path`` to a file, or ``-`` for standard input."""
    if text == "-":
        text = sys.stdin.read()
    elif text.startswith("@"):
        text = Path(text[1:]).read_text()
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CliError(f"the workflow is not valid JSON: {exc}", EXIT_USAGE) from None


def cmd_send(api: Api, out: Output, args: argparse.Namespace) -> int:
    accepted = api.call("POST", "/workflows", _workflow_body(args.workflow))

    def show(a: dict[str, Any]) -> None:
        print(f"{a['kind']} {a['root_id']} sent ({len(a['tasks'])} tasks)")
        out.table(a["tasks"], ["id", "name", "queue"])
        print(f"\nfollow it: taskpulse tasks tree {a['root_id']}")

    out.emit(accepted, show)
    return 0


def render_tree(tree: dict[str, Any]) -> list[str]:
    """Lines of the tree, box-drawn, each task with its state (and exception when failed). A
    chord's body comes after its header, marked as the body: by parent id it would hang under
    whichever header task finished last."""
    failed = ", ".join(tree.get("failed_nodes", []))
    lines = [f"workflow {tree['root_id']}: {tree['state']}" + (f" ({failed})" if failed else "")]

    def label(node: dict[str, Any]) -> str:
        if node.get("virtual"):
            return f"{node['id']}  (group/chord root)"
        text = f"{node.get('name') or '?'}  {node['id']}  {node.get('state') or 'UNKNOWN'}"
        text += f"  {node['exception']}" if node.get("exception") else ""
        return f"⤷ chord body: {text}" if node.get("role") == CHORD_BODY else text

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


def cmd_tree(api: Api, out: Output, args: argparse.Namespace) -> int:
    tree = api.call("GET", f"/tasks/{args.id}/tree")
    out.emit(tree, lambda t: print("\n".join(render_tree(t))))
    return 0


def register_tree(tsub: Any, common: argparse.ArgumentParser) -> None:
    p = tsub.add_parser("tree", parents=[common], help="a task's whole workflow as a tree",
                        description="The workflow a task belongs to, as a tree with each "
                        "task's state and the workflow's roll-up state.")  # fmt: skip
    p.add_argument("id", help="the root id or any task of the workflow")
    p.set_defaults(func=cmd_tree)


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    wf = sub.add_parser("workflows", help="send chains, groups and chords of tasks (operator)")
    wsub = wf.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = wsub.add_parser(
        "send", parents=[common], help="send a workflow (JSON, @file or -)",
        description="Send a chain, group or chord. Each step is a task ({\"name\", \"args\", "
        "\"kwargs\", ...} as for tasks send) or another chain/group/chord.",
        epilog="examples:\n"
        "  taskpulse workflows send '{\"chain\": [{\"name\": \"demo.test_task\"}, "
        "{\"name\": \"demo.test_task\"}]}'\n"
        "  taskpulse workflows send @nightly.json\n"
        "  taskpulse workflows send - < nightly.json",
    )
    p.add_argument("workflow", help="the workflow JSON, @path to a file, or - for stdin")
    p.set_defaults(func=cmd_send)
