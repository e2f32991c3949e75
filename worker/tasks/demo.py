"""Tasks for trying the system out: a configurable test task and a long task with progress."""

# ``test_task`` is a fixed Celery task name, not a pytest test: its defaults are intended.
# ruff: noqa: PT028

from __future__ import annotations

import time
from typing import Any

from worker.domain.store import transaction
from worker.errors import PermanentError, TransientError
from worker.tasks.base import TaskpulseTask
from worker.tasks.params import Message, PlannedFailures, Seconds, Steps


def test_task(
    self: TaskpulseTask,
    message: Message = "ok",
    sleep_seconds: Seconds = 0.0,
    fail: bool = False,
    fail_times: PlannedFailures = 0,
) -> dict[str, Any]:
    """Record a run of ``message`` in the store, after sleeping ``sleep_seconds``.

    ``fail`` fails permanently (no retry). ``fail_times`` fails the first N attempts with a
    transient error, so the retry policy can be watched: N ≤ 3 ends in success, more in failure.
    Attempts are counted in the store per task id, which retries keep.
    """
    started = time.time()
    with self.store() as conn, transaction(conn):
        conn.execute(
            "INSERT INTO task_attempts (task_id, attempts) VALUES (?, 1) ON CONFLICT (task_id)"
            " DO UPDATE SET attempts = attempts + 1",
            (self.request.id,),
        )
        attempt = conn.execute(
            "SELECT attempts FROM task_attempts WHERE task_id = ?", (self.request.id,)
        ).fetchone()[0]
    if fail:
        raise PermanentError(f"test_task asked to fail: {message}")
    if attempt <= fail_times:
        raise TransientError(f"test_task attempt {attempt} of {fail_times} planned failures")
    time.sleep(sleep_seconds)
    with self.store() as conn, transaction(conn):
        conn.execute(
            "INSERT INTO demo_runs (task_id, message, started_at, finished_at) VALUES (?, ?, ?, ?)",
            (self.request.id, message, started, time.time()),
        )
    return {"message": message, "attempts": attempt, "retries": self.request.retries}


def long_running_task(
    self: TaskpulseTask, total: Steps = 10, step_seconds: Seconds = 1.0
) -> dict[str, Any]:
    """Work through ``total`` steps of ``step_seconds`` each, reporting progress after each.

    Progress goes two ways: ``update_state('PROGRESS')`` for whoever polls the result backend,
    and a ``task-progress`` event for whoever watches the event stream.
    """
    started = time.monotonic()
    for current in range(1, total + 1):
        time.sleep(step_seconds)
        self.update_state(state="PROGRESS", meta={"current": current, "total": total})
        self.send_event("task-progress", current=current, total=total)
    return {"total": total, "seconds": round(time.monotonic() - started, 3)}


TASKS = (test_task, long_running_task)
