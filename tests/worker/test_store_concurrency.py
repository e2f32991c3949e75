"""Several worker processes share one SQLite store; opening it together must never fail a task."""

from __future__ import annotations

import multiprocessing
import sqlite3
import uuid
from pathlib import Path

from worker.domain.store import open_store, transaction


def _write_runs(path: str, runs: int, errors: multiprocessing.Queue) -> None:
    for _ in range(runs):
        try:
            with open_store(Path(path)) as conn, transaction(conn):
                conn.execute(
                    "INSERT INTO task_attempts (task_id, attempts) VALUES (?, 1)",
                    (uuid.uuid4().hex,),
                )
        except sqlite3.OperationalError as exc:
            errors.put(str(exc))


def test_processes_opening_a_new_store_together_never_see_it_locked(tmp_path: Path) -> None:
    # Each fresh store is a race to switch it to WAL; before the fix one to three stores in 40
    # raised "database is locked", which the worker turns into a spurious retry.
    context = multiprocessing.get_context("fork")
    errors = context.Queue()
    for store in range(100):
        path = str(tmp_path / f"store-{store}.db")
        writers = [context.Process(target=_write_runs, args=(path, 10, errors))
                   for _ in range(3)]
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join(timeout=60)
            assert writer.exitcode == 0

    seen = []
    while not errors.empty():
        seen.append(errors.get())
    assert seen == []
