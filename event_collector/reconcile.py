"""Complete tasks whose final event never arrived, from the Celery result backend.

Events are lost while no collector listens (Redis fanout is PUB/SUB), so a task can sit in
PENDING / RECEIVED / STARTED forever although it finished. Past ``stuck_after`` seconds (counted
from the task's first event, the index score), the reconciler reads the task's result from the
Redis result backend (``celery-task-meta-<id>``: JSON with status, result, traceback, date_done)
and, when it is final, feeds a synthetic task-succeeded / task-failed / task-revoked event through
the store's normal ``apply`` — so dedup, state precedence and counters work as for real events.
Two reconcilers build the same event id for the same result, so the second one is a duplicate.

Tasks still unresolved are counted per (name, queue) for ``taskpulse_tasks_stuck``. Each run looks
at the ``batch_limit`` most recently stuck tasks per state: they are the ones whose results the
backend still holds (``result_expires``, 1 day by default); ``total_stuck`` counts them all.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import msgspec
import orjson
from redis.asyncio import Redis

from event_collector import timeline
from event_collector.events import Event
from event_collector.keys import TIMELINE_FIELD, Keys
from event_collector.normalize import event_id
from event_collector.replies import text
from event_collector.segments import Indexes
from event_collector.task_ids import task_id_of

log = logging.getLogger(__name__)

STUCK_STATES: Final = ("PENDING", "RECEIVED", "STARTED")
RESULT_KEY_PREFIX: Final = "celery-task-meta-"  # celery.backends.base.KeyValueStoreBackend
RECONCILER_HOSTNAME: Final = "reconciler"
_EVENT_FOR_STATUS: Final = {
    "SUCCESS": "task-succeeded", "FAILURE": "task-failed", "REVOKED": "task-revoked",
}
_TASK_FIELDS: Final = ("name", "queue", "worker", TIMELINE_FIELD)

ApplyEvents = Callable[[Sequence[Event]], Awaitable[object]]


class ReconcileReport(msgspec.Struct, frozen=True):
    checked: int
    completed: tuple[Event, ...]
    # (name, queue) -> tasks examined and still without a final state
    still_stuck: dict[tuple[str, str], int]
    total_stuck: int


class _Task(msgspec.Struct, frozen=True):
    id: str
    name: str
    queue: str
    worker: str
    started: float | None


class Reconciler:
    """Finds stuck tasks and completes them from the result backend; ``run_once`` per interval."""

    def __init__(
        self,
        store: Redis,
        backend: Redis,
        keys: Keys,
        apply: ApplyEvents,
        *,
        stuck_after_seconds: float = 600.0,
        grace_seconds: float = 60.0,
        batch_limit: int = 1000,
        result_key_prefix: str = RESULT_KEY_PREFIX,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._backend = backend
        self._keys = keys
        self._indexes = Indexes(store, keys)
        self._apply = apply
        self._stuck_after = stuck_after_seconds
        self._grace = grace_seconds
        self._limit = batch_limit
        self._result_prefix = result_key_prefix
        self._clock = clock

    async def run_once(self) -> ReconcileReport:
        now = self._clock()
        cutoff = now - self._stuck_after
        tasks, total = await self._stuck_tasks(cutoff)
        results = []
        if tasks:
            results = await self._backend.mget([self._result_prefix + t.id for t in tasks])
        completed: list[Event] = []
        still: Counter[tuple[str, str]] = Counter()
        for task, raw in zip(tasks, results, strict=True):
            event = self._final_event(task, raw, now)
            if event is None:
                still[(task.name or "unknown", task.queue or "unknown")] += 1
            else:
                completed.append(event)
        if completed:
            await self._apply(completed)
            log.info("reconciled %d stuck task(s) from the result backend", len(completed))
        return ReconcileReport(
            checked=len(tasks), completed=tuple(completed), still_stuck=dict(still),
            total_stuck=total - len(completed),
        )

    async def _stuck_tasks(self, cutoff: float) -> tuple[list[_Task], int]:
        k = self._keys
        stuck = [k.index_state(state) for state in STUCK_STATES]
        ranges = await self._indexes.ranges(stuck, cutoff, "-inf", self._limit)
        ids = [task_id_of(m) for entries in ranges for m, _ in entries]
        total = sum(await self._indexes.counts(stuck, "-inf", cutoff))
        if not ids:
            return [], total
        async with self._store.pipeline(transaction=False) as pipe:
            for task_id in ids:
                pipe.hmget(k.task(task_id), _TASK_FIELDS)
            rows = await pipe.execute()
        tasks = [
            _Task(id=task_id, name=text(name), queue=text(queue), worker=text(worker),
                  started=timeline.timestamps(text(events)).get("started"))
            for task_id, (name, queue, worker, events) in zip(ids, rows, strict=True)
            if events  # the hash expired: the sweeper unindexes it
        ]
        return tasks, total

    def _final_event(self, task: _Task, raw: bytes | None, now: float) -> Event | None:
        meta = _decode_meta(raw)
        if meta is None:
            return None
        type_ = _EVENT_FOR_STATUS.get(meta.get("status", ""))
        done = _timestamp(meta.get("date_done"))
        if type_ is None or done is None or done > now - self._grace:
            return None  # not final, or so recent that the real event may still be on its way
        hostname = task.worker or RECONCILER_HOSTNAME
        fields: dict[str, Any] = {}
        if type_ == "task-succeeded":
            fields["result"] = repr(meta.get("result"))
        elif type_ == "task-failed":
            fields["exception"] = _exception_repr(meta.get("result"))
            fields["traceback"] = meta.get("traceback") or ""
        if type_ != "task-revoked" and task.started is not None:
            fields["runtime"] = max(0.0, done - task.started)
        return Event(
            id=event_id(type_, task.id, hostname, 0, 0, done), type=type_, timestamp=done,
            hostname=hostname, uuid=task.id, **fields,
        )


def _decode_meta(raw: bytes | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        meta = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None  # pickle/msgpack result serializers: not readable here, stays stuck
    return meta if isinstance(meta, dict) else None


def _timestamp(date_done: object) -> float | None:
    if not isinstance(date_done, str):
        return None
    try:
        parsed = datetime.fromisoformat(date_done)
    except ValueError:
        return None
    if parsed.tzinfo is None:  # Celery writes UTC; older versions without the offset
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _exception_repr(result: object) -> str:
    """``{"exc_type": "ValueError", "exc_message": ["boom"]}`` -> ``ValueError('boom')``,
    the form Celery's task-failed event carries."""
    if not isinstance(result, dict) or not isinstance(result.get("exc_type"), str):
        return "UnknownException()"
    message = result.get("exc_message", [])
    args = message if isinstance(message, list) else [message]
    return f"{result['exc_type']}({', '.join(repr(a) for a in args)})"
