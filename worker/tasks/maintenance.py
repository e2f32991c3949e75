"""Backups, cache and data cleanup, audit-log retention."""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing
from datetime import UTC, datetime
from typing import Any

import msgspec
import redis

from worker.domain.audit_cleanup import cleanup_audit_logs as _cleanup_audit_logs
from worker.domain.store import audit, transaction
from worker.errors import TransientError
from worker.files import rotate
from worker.tasks.base import TaskpulseTask, require


def backup_database(self: TaskpulseTask, keep: int = 7) -> dict[str, Any]:
    """Copy the store with SQLite's online backup API, then keep only the ``keep`` newest."""
    require(1 <= keep <= 1000, f"keep must be between 1 and 1000, got {keep}")
    backups = self.settings.data_dir / "backups"
    backups.mkdir(parents=True, exist_ok=True)
    path = backups / f"taskpulse-{datetime.now(UTC):%Y%m%dT%H%M%S%f}.db"
    tmp = path.with_name(path.name + ".tmp")
    with self.store() as conn:
        # The backup API copies a consistent snapshot page by page while writers carry on.
        with closing(sqlite3.connect(tmp)) as target:
            conn.backup(target)
        tmp.replace(path)
        removed = rotate(backups, "taskpulse-*.db", keep, key=lambda p: p.name)
        with transaction(conn):
            audit(conn, "database.backed_up", path=str(path), removed=len(removed))
    return {"path": str(path), "bytes": path.stat().st_size, "removed": [str(p) for p in removed]}


def cleanup_cache(
    self: TaskpulseTask,
    pattern: str = "taskpulse:cache:*",
    redis_url: str | None = None,
    batch_size: int = 500,
) -> dict[str, Any]:
    """Delete Redis keys matching ``pattern`` with SCAN + UNLINK in batches (never KEYS).

    SCAN walks the keyspace a batch at a time, so a big cache never blocks Redis the way KEYS
    would; UNLINK frees the memory in the background.
    """
    # A pattern starting with a wildcard could match the broker's own queues.
    require(bool(pattern) and pattern[0] not in "*?[", f"pattern needs a prefix: {pattern!r}")
    require(1 <= batch_size <= 10000, f"batch_size must be 1..10000, got {batch_size}")
    url = redis_url or self.settings.cache_url
    client = redis.Redis.from_url(url)
    deleted = 0
    try:
        batch: list[bytes] = []
        for key in client.scan_iter(match=pattern, count=batch_size):
            batch.append(key)
            if len(batch) >= batch_size:
                deleted += client.unlink(*batch)
                batch.clear()
        if batch:
            deleted += client.unlink(*batch)
    except redis.ConnectionError as exc:
        raise TransientError(f"cache Redis unreachable: {exc}") from exc
    finally:
        client.close()
    return {"deleted": deleted, "pattern": pattern}


def cleanup_expired_data(self: TaskpulseTask, export_days: int = 7) -> dict[str, int]:
    """Delete expired sessions and export files older than ``export_days`` days."""
    require(export_days >= 1, f"export_days must be at least 1, got {export_days}")
    now = time.time()
    cutoff = now - export_days * 86400
    exports = self.settings.data_dir / "exports"
    old_files = [p for p in exports.glob("*") if p.is_file() and p.stat().st_mtime < cutoff]
    with self.store() as conn, transaction(conn):
        sessions = conn.execute("DELETE FROM sessions WHERE expires_at < ?", (now,)).rowcount
        audit(conn, "data.expired_removed", sessions=sessions, export_files=len(old_files))
    # Files go only once the database part is committed; deleting one twice is harmless.
    for path in old_files:
        path.unlink(missing_ok=True)
    return {"sessions_deleted": sessions, "export_files_deleted": len(old_files)}


def cleanup_audit_logs(
    self: TaskpulseTask, days: int = 365, keep: int | None = None, dry_run: bool = False
) -> dict[str, Any]:
    """Delete audit entries older than ``days`` (0: no age limit) and/or beyond the newest
    ``keep``; with ``dry_run`` only count them."""
    with self.store() as conn:
        result = _cleanup_audit_logs(conn, days=days, keep=keep, dry_run=dry_run)
    return msgspec.to_builtins(result)


TASKS = (backup_database, cleanup_cache, cleanup_expired_data, cleanup_audit_logs)
