"""The ``taskpulse`` command line: its parser, and ``main``."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from datetime import UTC
from typing import Any, Final

from producer_api.cli import (
    catalog,
    failures,
    monitoring,
    schedules,
    tasks,
    tokens,
    watch,
    workflows,
)
from producer_api.cli.arguments import parse_time
from producer_api.cli.client import DEFAULT_URL, Api, CliError
from producer_api.cli.output import Output

TIME_OPTIONS: Final = ("since", "until")  # typed as text, sent to the API as epoch seconds
EPILOG: Final = """\
examples:
  taskpulse tasks list --state FAILURE --since 2h
  taskpulse tasks send demo.test_task --kwargs '{"message": "hi"}' --wait
  taskpulse tasks watch
  taskpulse catalog

Every command takes --json (the API's JSON, for scripts) and --utc (times in UTC instead of the
local zone); they may come before or after the command.
Environment: TASKPULSE_API_URL, TASKPULSE_TOKEN, TASKPULSE_API_TOKENS_FILE (tokens commands)."""


class _Help(argparse.HelpFormatter):
    """Wraps a paragraph to the terminal; keeps text laid out by hand (examples) as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


class _Parser(argparse.ArgumentParser):
    """Every (sub)command's parser: subparsers are made of the parent's class."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Help)
        super().__init__(**kwargs)


def _common() -> argparse.ArgumentParser:
    """Options every command takes, before or after its name (hence SUPPRESS defaults)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--api-url", default=argparse.SUPPRESS,
                        help=f"API base URL (TASKPULSE_API_URL, default {DEFAULT_URL})")
    common.add_argument("--token", default=argparse.SUPPRESS, help="bearer token (TASKPULSE_TOKEN)")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="print the API's JSON instead of tables")
    common.add_argument("--utc", action="store_true", default=argparse.SUPPRESS,
                        help="show times in UTC (default: the local zone), and read ISO times "
                        "without an offset as UTC")  # fmt: skip
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = _Parser(
        prog="taskpulse", parents=[common], epilog=EPILOG,
        description="Send, inspect and control taskpulse (Celery) tasks through the API. "
        "Times are ISO 8601 with their offset; structured values are JSON.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    group = sub.add_parser("tasks", help="find, inspect, send, follow and control tasks",
                           description="Tasks one by one: list, count, show, send, watch, tree, "
                           "revoke, retry, annotate, forget.")  # fmt: skip
    tsub = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    tasks.register(tsub, common)
    watch.register(tsub, common)
    workflows.register_tree(tsub, common)
    workflows.register(sub, common)
    schedules.register(sub, common)
    catalog.register(sub, common)
    monitoring.register(sub, common)
    failures.register(sub, common)
    tasks.register_test_task(sub, common)
    tokens.register(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = Output(json_mode=getattr(args, "json", False),
                 tz=UTC if getattr(args, "utc", False) else None)  # fmt: skip
    now = time.time()
    for key in TIME_OPTIONS:
        if getattr(args, key, None) is not None:
            setattr(args, key, parse_time(getattr(args, key), now, out.tz))
    url = getattr(args, "api_url", None) or os.environ.get("TASKPULSE_API_URL") or DEFAULT_URL
    token = getattr(args, "token", None) or os.environ.get("TASKPULSE_TOKEN")
    try:
        return args.func(Api(url, token), out, args)
    except CliError as exc:
        print(f"taskpulse: {exc}", file=sys.stderr)
        return exc.code
    except BrokenPipeError:  # e.g. piped into head
        return 0
    except KeyboardInterrupt:
        return 130
