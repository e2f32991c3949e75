"""``taskpulse failures``, and ``tasks retry|revoke --filter``: failures by group, and acting on
every task a filter matches."""

from __future__ import annotations

import argparse
import time
from typing import Any, Final

from producer_api.cli.arguments import parse_time
from producer_api.cli.client import EXIT_USAGE, Api, CliError
from producer_api.cli.output import Output

FAILURE_COLUMNS: Final = ("fingerprint", "exception", "count", "last_seen", "last_24h", "names",
                          "message")
# Keys ``--filter`` takes: the filters of GET /tasks (``q`` is the search text).
FILTER_KEYS: Final = ("state", "name", "queue", "worker", "exception", "fingerprint", "q",
                      "since", "until")
_SPARKS: Final = ".▁▂▃▄▅▆▇█"


def sparkline(counts: list[int]) -> str:
    """One character per hour, scaled to the busiest hour; a dot is an hour with none."""
    top = max(counts, default=0) or 1
    return "".join(_SPARKS[0] if n == 0 else _SPARKS[max(1, round(n / top * 8))] for n in counts)


def _row(group: dict[str, Any]) -> dict[str, Any]:
    names = ", ".join(group.get("names", []))
    return {**group, "last_24h": sparkline(group["hourly"]), "names": names}


def cmd_failures(api: Api, out: Output, args: argparse.Namespace) -> int:
    page = api.call("GET", "/failures", query={"limit": args.limit, "cursor": args.cursor})

    def show(p: dict[str, Any]) -> None:
        out.table([_row(g) for g in p["items"]], FAILURE_COLUMNS)
        if p["items"]:
            print("\ntasks of a group: taskpulse tasks list --fingerprint FINGERPRINT")
        if p.get("next_cursor"):
            print(f"\nmore: add --cursor {p['next_cursor']}")

    out.emit(page, show)
    return 0


def filter_arg(pairs: list[str], out: Output) -> dict[str, Any]:
    """``--filter key=value`` (repeatable) as the bulk body's ``filter``."""
    found: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in FILTER_KEYS:
            raise CliError(f"--filter {pair!r}: give KEY=VALUE, KEY one of "
                           f"{', '.join(FILTER_KEYS)}", EXIT_USAGE)
        if key in ("since", "until"):
            try:
                found[key] = parse_time(value, time.time(), out.tz)
            except ValueError as exc:
                raise CliError(f"--filter {pair!r}: {exc}", EXIT_USAGE) from None
        else:
            found[key] = value.upper() if key == "state" else value
    return found


def run_bulk(api: Api, out: Output, args: argparse.Namespace, action: str) -> int:
    """A dry run prints how many tasks match and the first ids; a real run goes chunk by chunk
    (each a request of at most --chunk tasks) until the filter is exhausted."""
    body: dict[str, Any] = {"filter": filter_arg(args.filter, out), "limit": args.chunk}
    path = f"/tasks/bulk/{action}"
    if args.dry_run:
        result = api.call("POST", path, {**body, "dry_run": True})
        out.emit(result, lambda r: _show_dry_run(out, r, action))
        return 0
    chunks, cursor = [], None
    while True:
        result = api.call("POST", path, {**body, "dry_run": False, "cursor": cursor})
        chunks.append(result)
        if not out.json:
            _show_chunk(result)
        cursor = result.get("next_cursor")
        if not cursor:
            break
    done = sum(len(c["ids"]) for c in chunks)
    skipped = sum(c["skipped"] for c in chunks)
    verb = "retried" if action == "retry" else "revoked"
    out.emit(chunks, lambda _: print(f"{verb} {done} tasks" +
                                     (f" ({skipped} skipped: state changed or finished)"
                                      if skipped else "")))  # fmt: skip
    return 0


def _show_dry_run(out: Output, result: dict[str, Any], action: str) -> None:
    count = result["matched"] if result["exact"] else f">= {result['matched']}"
    noun = "task matches" if count == 1 else "tasks match"
    print(f"{count} {noun}; a run without --dry-run would {action} them")
    if result["ids"]:
        print()
        out.table([{"id": i} for i in result["ids"]], ["id"])
        if len(result["ids"]) < result["matched"]:
            print(f"(first {len(result['ids'])})")


def _show_chunk(result: dict[str, Any]) -> None:
    for item in result["items"]:
        if item.get("error"):
            print(f"{item['id']}  not retried: {item['error']}")
        elif item.get("new_id"):
            print(f"{item['new_id']}  retry of {item['id']}")
        else:
            print(f"revoked {item['id']}")


def add_bulk_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE",
                   help=f"act on every task matching (repeatable, AND); KEY one of "
                   f"{', '.join(FILTER_KEYS)}; since/until as --since")
    p.add_argument("--dry-run", action="store_true",
                   help="only count the matching tasks and print the first ids")
    p.add_argument("--chunk", type=int, default=100, help="tasks per request (100)")


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "failures", parents=[common], help="failures grouped by exception and message",
        description="Failure groups: the same exception type and message once numbers, hex, "
        "UUIDs and quoted strings are masked; most recently seen first, with failures per "
        "hour over the last 24 hours.",
        epilog="examples:\n  taskpulse failures\n"
        "  taskpulse tasks list --fingerprint 0123456789abcdef\n"
        "  taskpulse tasks retry --filter fingerprint=0123456789abcdef --dry-run",
    )
    p.add_argument("--limit", type=int, default=20, help="groups per page (20)")
    p.add_argument("--cursor", help="the next page, as printed under the previous one")
    p.set_defaults(func=cmd_failures)
