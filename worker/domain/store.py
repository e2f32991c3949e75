"""Opening the store and writing to it all-or-nothing."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from worker.domain.schema import SCHEMA


def connect(path: Path) -> sqlite3.Connection:
    """A connection with the schema in place, in autocommit mode so ``transaction`` owns BEGIN."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, timeout=30.0)
    conn.row_factory = sqlite3.Row
    _use_wal(conn)
    conn.execute("PRAGMA foreign_keys=ON")
    conn.executescript(SCHEMA)
    return conn


def _use_wal(conn: sqlite3.Connection, timeout: float = 30.0) -> None:
    """WAL lets readers (exports, reports) run while a writer commits, and it is a property of
    the file: switch once. Switching takes an exclusive lock that SQLite's busy timeout does not
    wait for, so when worker processes open a new store together the losers see "locked":
    they look again (the winner has switched it) rather than fail the task."""
    deadline = time.monotonic() + timeout
    while conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        try:
            conn.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


@contextmanager
def open_store(path: Path) -> Iterator[sqlite3.Connection]:
    with closing(connect(path)) as conn:
        yield conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE … COMMIT, or ROLLBACK on any exception: nothing is ever half-written.

    IMMEDIATE takes the write lock up front, so two workers running the same task serialise here
    instead of both reading and then one failing to upgrade its lock.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def audit(conn: sqlite3.Connection, action: str, actor: str = "worker", **detail: Any) -> None:
    """Record what a task changed, inside the caller's transaction."""
    conn.execute(
        "INSERT INTO audit_logs (action, actor, detail, created_at) VALUES (?, ?, ?, ?)",
        (action, actor, json.dumps(detail, sort_keys=True, default=str), time.time()),
    )
