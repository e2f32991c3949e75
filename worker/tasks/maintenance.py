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
from worker.tasks.base import TaskpulseTask
from worker.tasks.params import AuditDays, AuditKeep, BackupsKept, BatchSize, CacheKeyPart, Days


def backup_database(self: TaskpulseTask, keep: BackupsKept = 7) -> dict[str, Any]:
    """Copy the store with SQLite's online backup API, then keep only the ``keep`` newest."""
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
    self: TaskpulseTask, under: CacheKeyPart = "", batch_size: BatchSize = 500
) -> dict[str, Any]:
    """Delete the cache keys whose names start with the deployment's cache prefix followed by
    ``under`` (empty: the whole cache), with SCAN + UNLINK in batches (never KEYS).

    The Redis and the prefix are the deployment's (``TASKPULSE_CACHE_REDIS_URL``,
    ``TASKPULSE_CACHE_KEY_PREFIX``), never the caller's: a caller-chosen server or pattern could
    reach any host or delete the broker's queues, the schedules or the monitoring store.
    ``under`` has no glob characters (its annotation), so the match cannot leave the prefix.
    SCAN walks the keyspace a batch at a time, so a big cache never blocks Redis the way KEYS
    would; UNLINK frees the memory in the background.
    """
    pattern = f"{self.settings.cache_key_prefix}{under}*"
    client = redis.Redis.from_url(self.settings.cache_url)
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


def cleanup_expired_data(self: TaskpulseTask, export_days: Days = 7) -> dict[str, int]:
    """Delete expired sessions and export files older than ``export_days`` days."""
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
    self: TaskpulseTask,
    days: AuditDays = 365,
    keep: AuditKeep | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Delete audit entries older than ``days`` (0: no age limit) and/or beyond the newest
    ``keep``; with ``dry_run`` only count them."""
    with self.store() as conn:
        result = _cleanup_audit_logs(conn, days=days, keep=keep, dry_run=dry_run)
    return msgspec.to_builtins(result)


TASKS = (backup_database, cleanup_cache, cleanup_expired_data, cleanup_audit_logs)
