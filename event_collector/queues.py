"""Queue lengths and consumers, polled from the broker into the monitoring store.

Celery events say nothing about messages still waiting, so the broker is asked directly:
- Redis: kombu stores a queue with priorities as several lists, one per priority step
  (``broker.priority_lists``). The length is their sum, read in one pipelined LLEN round trip.
- RabbitMQ: a passive ``queue_declare`` returns message and consumer counts; the client blocks, so
  it runs in a thread.
Optionally the workers are asked (Celery ``inspect``, in a thread, every
``inspect_interval_seconds``) which queues they consume, for the per-queue worker and process
counts; between inspections the stored counts are left as they were. Results go to
``P queues``, ``P queues:consumers``, ``P queues:workers``, ``P queues:processes`` and
``P queues:updated`` (keys.py), written in one transaction so readers never see half a poll.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

import msgspec
from amqp.exceptions import AMQPError
from celery import Celery
from kombu import Connection
from kombu.exceptions import KombuError
from redis.asyncio import Redis

from event_collector.broker import REDIS_PRIORITY_STEPS, broker_kind, priority_lists
from event_collector.keys import Keys

_T = TypeVar("_T")


class QueueReport(msgspec.Struct, frozen=True):
    lengths: dict[str, int]
    consumers: dict[str, int] = {}
    workers: dict[str, int] | None = None
    processes: dict[str, int] | None = None


class QueuePoller:
    """Polls the broker for ``queues`` and stores what it found. One instance per collector."""

    def __init__(
        self,
        store: Redis,
        keys: Keys,
        broker_url: str,
        queues: Sequence[str],
        *,
        priority_steps: Sequence[int] = REDIS_PRIORITY_STEPS,
        inspect_workers: bool = True,
        inspect_timeout: float = 1.0,
        inspect_interval_seconds: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        is_redis = broker_kind(broker_url) == "redis"
        self._store = store
        self._keys = keys
        self._broker_url = broker_url
        self._broker_redis = Redis.from_url(broker_url) if is_redis else None
        self._queues = list(queues)
        self._steps = list(priority_steps)
        self._inspect_timeout = inspect_timeout
        self._inspect_interval = inspect_interval_seconds
        self._inspected_at: float | None = None
        self._app = Celery(broker=broker_url, set_as_current=False) if inspect_workers else None
        self._clock = clock

    async def aclose(self) -> None:
        if self._broker_redis is not None:
            await self._broker_redis.aclose()
        if self._app is not None:
            self._app.close()

    async def run_once(self) -> QueueReport:
        """Poll the broker (and workers) once and write the result to the store."""
        if self._broker_redis is not None:
            report = QueueReport(lengths=await self._redis_lengths(self._broker_redis))
        else:
            lengths, consumers = await _in_thread(self._amqp_counts)
            report = QueueReport(lengths=lengths, consumers=consumers)
        if self._inspect_due():
            self._inspected_at = self._clock()
            workers, processes = await _in_thread(self._inspect_workers)
            report = msgspec.structs.replace(report, workers=workers, processes=processes)
        await self._write(report)
        return report

    def _inspect_due(self) -> bool:
        # Each inspect is two broadcasts that wait ``inspect_timeout`` for replies, and which
        # queues workers consume changes rarely: ask less often than lengths are polled.
        if self._app is None:
            return False
        last = self._inspected_at
        return last is None or self._clock() - last >= self._inspect_interval

    async def _redis_lengths(self, broker: Redis) -> dict[str, int]:
        async with broker.pipeline(transaction=False) as pipe:
            for queue in self._queues:
                for key in priority_lists(queue, self._steps):
                    pipe.llen(key)
            sizes = await pipe.execute()
        per_queue = len(self._steps)
        return {
            queue: sum(sizes[i * per_queue:(i + 1) * per_queue])
            for i, queue in enumerate(self._queues)
        }

    def _amqp_counts(self) -> tuple[dict[str, int], dict[str, int]]:
        lengths: dict[str, int] = {}
        consumers: dict[str, int] = {}
        with Connection(self._broker_url, connect_timeout=5) as conn:
            for queue in self._queues:
                # A passive declare of a missing queue closes the channel: one channel per queue.
                channel = conn.channel()
                try:
                    _, lengths[queue], consumers[queue] = channel.queue_declare(
                        queue=queue, passive=True
                    )
                except conn.channel_errors:
                    lengths[queue] = consumers[queue] = 0  # not declared yet: nothing waits
                finally:
                    channel.close()
        return lengths, consumers

    def _inspect_workers(self) -> tuple[dict[str, int], dict[str, int]]:
        assert self._app is not None
        inspect = self._app.control.inspect(timeout=self._inspect_timeout)
        active_queues = inspect.active_queues() or {}
        # stats() is a second broadcast; skip it when no worker answered the first.
        stats = (inspect.stats() or {}) if active_queues else {}
        workers: Counter[str] = Counter({queue: 0 for queue in self._queues})
        processes: Counter[str] = Counter({queue: 0 for queue in self._queues})
        for node, queues in active_queues.items():
            pool = stats.get(node, {}).get("pool", {})
            size = len(pool.get("processes", ())) if isinstance(pool, Mapping) else 0
            for queue in {q["name"] for q in queues}:
                workers[queue] += 1
                processes[queue] += size
        return dict(workers), dict(processes)

    async def _write(self, report: QueueReport) -> None:
        k = self._keys
        async with self._store.pipeline(transaction=True) as pipe:
            _replace_hash(pipe, k.queues, report.lengths)
            _replace_hash(pipe, k.queue_consumers, report.consumers)
            if report.workers is not None and report.processes is not None:
                _replace_hash(pipe, k.queue_workers, report.workers)
                _replace_hash(pipe, k.queue_processes, report.processes)
            pipe.set(k.queues_updated, repr(self._clock()))
            await pipe.execute()


async def _in_thread(call: Callable[[], _T]) -> _T:
    """Run a blocking kombu call in a thread; its many broker error types become one
    ``ConnectionError`` (an ``OSError``), which the caller's retry loop understands."""
    try:
        return await asyncio.to_thread(call)
    except (KombuError, AMQPError) as exc:
        raise ConnectionError(f"broker: {type(exc).__name__}: {exc}") from exc


def _replace_hash(pipe, key: str, values: Mapping[str, int]) -> None:
    pipe.delete(key)
    if values:
        pipe.hset(key, mapping=values)
