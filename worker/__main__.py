"""``python -m worker``: operator commands for the worker's store and catalog.

The worker and beat themselves run under Celery's own CLI:
``celery -A worker worker -E -Q default,finance,reports,email`` and ``celery -A worker beat``.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

import msgspec

from worker.config import WorkerSettings, load_settings
from worker.domain.audit_cleanup import cleanup_audit_logs
from worker.domain.periods import local_now
from worker.domain.seed import seed_demo
from worker.domain.store import open_store
from worker.errors import InvalidArguments


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = load_settings()
    try:
        return args.command(settings, args)
    except InvalidArguments as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="python -m worker",
        description="taskpulse worker commands. Settings come from TASKPULSE_* variables "
        "(TASKPULSE_DATA_DIR holds the SQLite store).",
    )
    sub = root.add_subparsers(required=True, metavar="COMMAND")
    seed = sub.add_parser("seed-demo", help="fill an empty store with demo data")
    seed.add_argument("--users", type=int, default=8, help="demo users (5 bills each)")
    seed.set_defaults(command=cmd_seed_demo)
    audit = sub.add_parser(
        "audit-cleanup",
        help="delete old audit-log entries",
        description="Delete audit-log entries older than --days and/or beyond the newest --keep.",
    )
    audit.add_argument(
        "--days",
        type=int,
        default=365,
        help="delete entries older than this many days; 0 = no age limit (default: 365)",
    )
    audit.add_argument(
        "--keep", type=int, default=None, help="also delete all but the newest KEEP entries"
    )
    audit.add_argument("--dry-run", action="store_true", help="only report what would be deleted")
    audit.set_defaults(command=cmd_audit_cleanup)
    catalog = sub.add_parser("catalog", help="print the task catalog as JSON (for the API)")
    catalog.set_defaults(command=cmd_catalog)
    return root


def cmd_seed_demo(settings: WorkerSettings, args: argparse.Namespace) -> int:
    with open_store(settings.db_path) as conn:
        summary = seed_demo(conn, local_now(settings.zone).date(), users=args.users)
    if summary.skipped:
        print(f"store {settings.db_path} already has users; left it as it is")
    else:
        print(
            f"seeded {settings.db_path}: "
            + ", ".join(
                f"{count} {name}"
                for name, count in msgspec.to_builtins(summary).items()
                if name != "skipped"
            )
        )
    return 0


def cmd_audit_cleanup(settings: WorkerSettings, args: argparse.Namespace) -> int:
    with open_store(settings.db_path) as conn:
        result = cleanup_audit_logs(conn, days=args.days, keep=args.keep, dry_run=args.dry_run)
    rules = []
    if result.days:
        rules.append(f"older than {result.days} days")
    if result.keep is not None:
        rules.append(f"beyond the newest {result.keep}")
    verb = "would delete" if result.dry_run else "deleted"
    span = ""
    if result.matched:
        span = f", created {_when(result.oldest)} … {_when(result.newest)}"
    print(
        f"{verb} {result.matched} audit-log entries ({' or '.join(rules)}{span}); "
        f"{result.remaining} remain"
    )
    return 0


def cmd_catalog(settings: WorkerSettings, args: argparse.Namespace) -> int:
    # Built from default settings, not the environment: the committed file must not depend on
    # who generated it.
    from worker.application import create_app
    from worker.catalog import catalog_json

    sys.stdout.write(catalog_json(create_app(WorkerSettings())))
    return 0


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts or 0, UTC).strftime("%Y-%m-%d %H:%M UTC")


if __name__ == "__main__":
    sys.exit(main())
