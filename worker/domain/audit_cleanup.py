"""Audit-log retention: drop entries older than N days and/or beyond the newest N.

Shared by the ``maintenance.cleanup_audit_logs`` task and ``python -m worker audit-cleanup``.
"""

from __future__ import annotations

import sqlite3
import time

import msgspec

from worker.domain.store import audit, transaction
from worker.errors import InvalidArguments


class AuditCleanup(msgspec.Struct, frozen=True):
    """What a cleanup removed (or, on a dry run, would remove)."""

    dry_run: bool
    matched: int
    remaining: int
    days: int
    keep: int | None
    oldest: float | None = None
    newest: float | None = None


def cleanup_audit_logs(
    conn: sqlite3.Connection, days: int = 365, keep: int | None = None, dry_run: bool = False
) -> AuditCleanup:
    """Delete audit entries older than ``days`` days (0: no age limit) or not among the newest
    ``keep`` (None: no count limit). A dry run only counts them."""
    if days < 0:
        raise InvalidArguments(f"days must be 0 (no age limit) or more, got {days}")
    if keep is not None and keep < 0:
        raise InvalidArguments(f"keep must be 0 or more, got {keep}")
    if days == 0 and keep is None:
        raise InvalidArguments("nothing to do: give days > 0 and/or keep")
    cutoff = time.time() - days * 86400 if days else float("-inf")
    where = (
        "created_at < :cutoff OR (:keep IS NOT NULL AND id NOT IN"
        " (SELECT id FROM audit_logs ORDER BY created_at DESC, id DESC LIMIT :keep))"
    )
    params = {"cutoff": cutoff, "keep": keep}
    with transaction(conn):
        matched, oldest, newest = conn.execute(
            f"SELECT COUNT(*), MIN(created_at), MAX(created_at) FROM audit_logs WHERE {where}",
            params,
        ).fetchone()
        if not dry_run and matched:
            conn.execute(f"DELETE FROM audit_logs WHERE {where}", params)
        remaining = conn.execute("SELECT COUNT(*) FROM audit_logs").fetchone()[0]
        if not dry_run:
            # The record of the cleanup is the newest entry, so it survives its own rule.
            audit(conn, "audit_logs.cleaned", deleted=matched, days=days, keep=keep)
    return AuditCleanup(
        dry_run=dry_run,
        matched=matched,
        remaining=remaining,
        days=days,
        keep=keep,
        oldest=oldest,
        newest=newest,
    )
