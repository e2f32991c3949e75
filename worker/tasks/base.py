"""What every taskpulse task shares: settings, the store, retry policy, argument checks."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from celery import Task

from worker.domain.store import open_store
from worker.errors import InvalidArguments, TransientError

if TYPE_CHECKING:
    from worker.config import WorkerSettings


class TaskpulseTask(Task):
    """Base class: gives a task its settings and a store connection."""

    abstract = True

    @property
    def settings(self) -> WorkerSettings:
        return self.app.settings  # set by worker.application.TaskpulseCelery

    @contextmanager
    def store(self) -> Iterator[sqlite3.Connection]:
        try:
            with open_store(self.settings.db_path) as conn:
                yield conn
        except sqlite3.OperationalError as exc:
            # Another process held the write lock past the busy timeout: worth a retry.
            if "locked" in str(exc) or "busy" in str(exc):
                raise TransientError(f"SQLite store busy: {exc}") from exc
            raise


def retry_options(settings: WorkerSettings) -> dict[str, Any]:
    """Transient errors retry with exponential backoff and full jitter; nothing else retries."""
    return {
        "autoretry_for": (TransientError,),
        "retry_backoff": settings.retry_backoff,
        "retry_backoff_max": settings.retry_backoff_max,
        "retry_jitter": True,
        "max_retries": settings.max_retries,
    }


def require(condition: bool, message: str) -> None:
    """Reject bad arguments before any work: the task fails at once, with ``message``."""
    if not condition:
        raise InvalidArguments(message)
