"""Several worker processes share one SQLite store; opening it together must never fail a task."""

from __future__ import annotations

import multiprocessing
import sqlite3
import uuid
from multiprocessing.synchronize import Barrier
from pathlib import Path

from worker.domain.store import open_store, transaction

WRITERS = 3
FRESH_STORES = 100


def _write_to_each_store(
    paths: list[str], together: Barrier, errors: multiprocessing.Queue
) -> None:
    for path in paths:
        together.wait(timeout=30)  # all writers open this fresh store at the same moment
        for _ in range(3):
            try:
                with open_store(Path(path)) as conn, transaction(conn):
                    conn.execute(
                        "INSERT INTO task_attempts (task_id, attempts) VALUES (?, 1)",
                        (uuid.uuid4().hex,),
                    )
            except sqlite3.OperationalError as exc:
                errors.put(str(exc))


def test_processes_opening_a_new_store_together_never_see_it_locked(tmp_path: Path) -> None:
    # Each fresh store is a race to switch it to WAL; before the fix some of them raised
    # "database is locked", which the worker turns into a spurious retry of the task.
    # forkserver: forking pytest itself, with other tests' threads alive, can deadlock a child.
    context = multiprocessing.get_context("forkserver")
    together, errors = context.Barrier(WRITERS), context.Queue()
    paths = [str(tmp_path / f"store-{n}.db") for n in range(FRESH_STORES)]
    writers = [context.Process(target=_write_to_each_store, args=(paths, together, errors))
               for _ in range(WRITERS)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=120)
        assert writer.exitcode == 0

    seen = []
    while not errors.empty():
        seen.append(errors.get())
    assert seen == []
