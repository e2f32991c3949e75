"""Operator actions on a task *record*: forget it, or annotate it (note, labels).

The collector is the only writer of projections, except for these two admin/operator actions,
which the API runs through one Lua script (``lifecycle.lua``) so the change and its audit event
(``taskpulse-audit`` in ``P events``, built by the caller) land atomically. A task's state is
never edited here.

Replay: ``rebuild`` refolds the stream, which still holds the forgotten task's events. To keep it
forgotten, rebuild calls ``TaskLifecycle.forget(task_id, audit=None, only_finished=False)`` when
it meets a ``taskpulse-audit`` event with ``action == "forget"`` (see ``is_forget_event``).
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Final

import msgspec
import redis.asyncio as aioredis

from event_collector.config import Retention
from event_collector.events import (
    AUDIT_EVENT,
    READY_STATES,
    STATE_PRECEDENCE,
    Event,
)
from event_collector.keys import Keys
from event_collector.replies import text
from event_collector.segments import with_library
from event_collector.stream import EventStream
from event_collector.task_ids import index_member

SCRIPT_PATH: Final = Path(__file__).with_name("lifecycle.lua")
# The audit action the API records for a forget, and rebuild looks for.
FORGET_ACTION: Final = "forget"
_IDENTITY_FIELDS: Final = ("name", "queue", "worker", "parent_id", "root_id")
_FINISHED: Final = sorted(READY_STATES)
# The collector may change a task between our read and the script (a late event): re-read.
_MAX_ATTEMPTS: Final = 5


class ForgetOutcome(Enum):
    FORGOTTEN = "forgotten"
    MISSING = "missing"
    UNFINISHED = "unfinished"


class ForgetResult(msgspec.Struct, frozen=True):
    outcome: ForgetOutcome
    state: str | None = None  # the blocking state when UNFINISHED


class Annotation(msgspec.Struct, frozen=True):
    """What to change: ``None`` keeps a field, ``""`` / ``{}`` removes it."""

    note: str | None = None
    labels: dict[str, str] | None = None


def is_forget_event(event: Event) -> bool:
    return event.type == AUDIT_EVENT and event.action == FORGET_ACTION and bool(event.uuid)


def _field_op(value: object) -> str:
    if value is None:
        return "keep"
    return "set" if value else "del"


class TaskLifecycle:
    """Forget/annotate task records in one store. Create once per process. ``stream`` is the
    store's (its retention trims the audit appends); by default the default retention's."""

    def __init__(
        self, redis: aioredis.Redis, keys: Keys, stream: EventStream | None = None
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.stream = stream or EventStream(keys, Retention().stream_max_length)
        self._script = redis.register_script(with_library(SCRIPT_PATH.read_text()))

    def _forget_keys(self, task_id: str, ident: dict[str, str]) -> list[str]:
        k = self.keys.of_task(task_id)  # the record, its indexes and stream share a slot
        return [
            k.task(task_id), k.events,
            k.index_stateless, *(k.index_state(s) for s in STATE_PRECEDENCE),
            k.index_name(ident["name"]), k.index_queue(ident["queue"]),
            k.index_worker(ident["worker"]), k.index_children(ident["parent_id"]),
            k.index_root(ident["root_id"]),
        ]  # fmt: skip

    async def forget(
        self, task_id: str, audit: Event | None, only_finished: bool = True
    ) -> ForgetResult:
        """Delete the record (with its timeline) and its index entries; counters stay."""
        for _ in range(_MAX_ATTEMPTS):
            raw = await self.redis.hmget(self.keys.task(task_id), _IDENTITY_FIELDS)
            ident = {f: text(v) for f, v in zip(_IDENTITY_FIELDS, raw, strict=True)}
            k = self.keys.of_task(task_id)
            reply = await self._script(
                keys=self._forget_keys(task_id, ident),
                args=[
                    "forget", self.stream.script_maxlen, index_member(task_id),
                    *(ident[f] for f in _IDENTITY_FIELDS),
                    "1" if only_finished else "0",
                    self.stream.encode(audit) if audit is not None else "",
                    k.index_segment_prefix, k.index_summaries, *_FINISHED,
                ],
            )  # fmt: skip
            status = text(reply[0])
            if status == "ok":
                return ForgetResult(ForgetOutcome.FORGOTTEN)
            if status == "missing":
                return ForgetResult(ForgetOutcome.MISSING)
            if status == "unfinished":
                return ForgetResult(ForgetOutcome.UNFINISHED, state=text(reply[1]))
        raise RuntimeError(f"task {task_id} kept changing while being forgotten")

    async def annotate(self, task_id: str, change: Annotation, audit: Event) -> bool:
        """Set or remove the note/labels; False when the task is unknown."""
        labels = msgspec.json.encode(change.labels).decode() if change.labels else ""
        reply = await self._script(
            keys=[self.keys.task(task_id), self.keys.of_task(task_id).events],
            args=[
                "annotate", self.stream.script_maxlen, _field_op(change.note), change.note or "",
                _field_op(change.labels), labels, self.stream.encode(audit),
            ],
        )  # fmt: skip
        return text(reply[0]) == "ok"
