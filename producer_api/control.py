"""Celery's remote control, asked from the API: commands to workers, replies gathered.

The API's Celery app (``publisher.producer_app``: broker and queues, no task code) broadcasts
the command with ``reply=True``; replies are gathered until every addressed worker answered or
the timeout passed. A worker that does not answer is not an error: it is listed in
``no_reply``, next to the workers that did answer and what they said. kombu blocks, so every
broadcast runs in a small thread pool of its own (publishing never waits behind a control call).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

import msgspec
import redis.exceptions
from amqp.exceptions import AMQPError
from celery import Celery
from kombu.exceptions import KombuError, OperationalError

# ``{hostname}`` in a route: every worker.
ALL_WORKERS: Final = "*"
CONTROL_THREADS: Final = 2


class _AllAnswered(Exception):
    """Raised from the reply callback to stop gathering once every expected worker answered
    (kombu's own ``limit`` counts replies, and a worker the store does not know yet would
    count in place of one it does)."""


class WorkerReply(msgspec.Struct, frozen=True, omit_defaults=True):
    """What one worker answered: Celery's ``{"ok": ...}`` or ``{"error": ...}``."""

    ok: str | None = None
    error: str | None = None


class ControlResult(msgspec.Struct, frozen=True):
    """Replies by worker hostname; ``no_reply``: addressed workers that did not answer in time
    (for ``*``: the workers the store counts alive)."""

    workers: dict[str, WorkerReply]
    no_reply: list[str]


def destination_of(hostname: str) -> list[str] | None:
    """Celery's ``destination``: None addresses every worker."""
    return None if hostname == ALL_WORKERS else [hostname]


def _as_reply(value: Any) -> WorkerReply:
    if isinstance(value, Mapping) and ("ok" in value or "error" in value):
        ok, error = value.get("ok"), value.get("error")
        return WorkerReply(ok=None if ok is None else str(ok),
                           error=None if error is None else str(error))
    return WorkerReply(ok=str(value))


class WorkerControl:
    def __init__(self, app: Celery, timeout: float) -> None:
        self.app = app
        self.timeout = timeout
        self._executor = ThreadPoolExecutor(CONTROL_THREADS, thread_name_prefix="control")
        # Connections of its own, not the publisher's pool: a broadcast holds one for the whole
        # timeout, and enqueues must not wait behind it. One per thread, kept between calls.
        self._connections = app.connection_for_write().Pool(limit=CONTROL_THREADS)

    async def _run(self, fn: Any, *args: Any) -> Any:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        except (KombuError, AMQPError, OSError, redis.exceptions.RedisError) as exc:
            if isinstance(exc, OperationalError | redis.exceptions.RedisError):
                raise
            raise OperationalError(f"broker: {type(exc).__name__}: {exc}") from exc

    def _broadcast(self, command: str, arguments: dict[str, Any],
                   destination: list[str] | None, expected: Sequence[str]) -> dict[str, Any]:
        replies: dict[str, Any] = {}
        waiting = set(expected)

        def collect(reply: dict[str, Any]) -> None:
            replies.update(reply)
            if waiting and waiting <= replies.keys():
                raise _AllAnswered

        with self._connections.acquire(block=True) as conn, contextlib.suppress(_AllAnswered):
            self.app.control.broadcast(
                command, arguments=arguments, destination=destination, reply=True,
                timeout=self.timeout, callback=collect, connection=conn,
            )
        return replies

    async def ask(self, command: str, arguments: dict[str, Any],
                  destination: list[str] | None, expected: Sequence[str] = ()) -> dict[str, Any]:
        """Raw replies by hostname (inspect commands answer with data, not ok/error), gathered
        until every ``expected`` worker answered: a healthy fleet answers at once, and only a
        silent worker (or ``*`` while the store knows no worker) waits out the timeout."""
        return await self._run(self._broadcast, command, arguments, destination, expected)

    async def command(self, command: str, arguments: dict[str, Any],
                      destination: list[str] | None, expected: Sequence[str]) -> ControlResult:
        replies = await self.ask(command, arguments, destination, expected)
        return result_of({host: _as_reply(value) for host, value in replies.items()}, expected)

    async def cast(self, command: str, arguments: dict[str, Any],
                   destination: list[str] | None) -> None:
        """Send without waiting: for commands after which a worker cannot answer (shutdown)."""
        await self._run(self._cast, command, arguments, destination)

    def _cast(self, command: str, arguments: dict[str, Any],
              destination: list[str] | None) -> None:
        with self._connections.acquire(block=True) as conn:
            self.app.control.broadcast(command, arguments=arguments, destination=destination,
                                       reply=False, connection=conn)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._connections.force_close_all()


def result_of(replies: dict[str, WorkerReply], expected: Sequence[str]) -> ControlResult:
    return ControlResult(workers=dict(sorted(replies.items())),
                         no_reply=sorted(set(expected) - set(replies)))
