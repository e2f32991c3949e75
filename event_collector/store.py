"""Write side of the event store: one Lua call per batch appends and projects (``store.lua``).

The script does dedup, state precedence, the task hash, timeline, indexes, counters and workers
atomically, so two collectors writing the same events at once stay exact (see DESIGN.md, Loss).
Python's part is to flatten each ``Event`` into the script's ARGV layout with little allocation.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from importlib import resources
from typing import Final

import msgspec
import orjson
from redis.asyncio import Redis

from event_collector.config import Retention
from event_collector.connection import AsyncStore, node_targets
from event_collector.events import (
    AUDIT_EVENT,
    TASK_EVENT_KINDS,
    TASK_FAILED,
    TASK_FLAG_FIELDS,
    TASK_NUMBER_FIELDS,
    TASK_PROGRESS,
    TASK_TEXT_FIELDS,
    TIMELINE_CODES,
    WORKER_NUMBER_FIELDS,
    WORKER_TEXT_FIELDS,
    Event,
)
from event_collector.failures import failure_of
from event_collector.keys import FAILURE_HOUR_SLOTS, Keys
from event_collector.lifecycle import TaskLifecycle, is_forget_event
from event_collector.scripts import run_many
from event_collector.segments import with_library
from event_collector.stored import decode_stored
from event_collector.stream import ENTRY_FIELD, EventStream
from event_collector.task_ids import compact_id, member_of


def _lua_event_tables() -> str:
    """events.py's tables (and keys.py's failure hour slots) as the Lua locals store.lua reads
    (see its header)."""
    kinds = ", ".join(f"['{type_}'] = '{kind}'" for type_, kind in TASK_EVENT_KINDS.items())
    codes = ", ".join(f"{kind} = '{TIMELINE_CODES[t]}'" for t, kind in TASK_EVENT_KINDS.items())
    return (
        f"local KIND = {{ {kinds} }}\nlocal KIND_CODE = {{ {codes} }}\n"
        f"local TL_PROGRESS = '{TIMELINE_CODES[TASK_PROGRESS]}'\n"
        f"local FAILURE_HOUR_SLOTS = {FAILURE_HOUR_SLOTS}\n"
    )


LUA_SOURCE: Final = with_library(
    _lua_event_tables()
    + resources.files("event_collector").joinpath("store.lua").read_text()
)

# Timeline entries repeat only small state fields; args/result/traceback stay in the task hash.
_TIMELINE_FIELDS: Final = (
    "retries", "runtime", "exception", "progress_current", "progress_total", "terminated",
    "expired", "signum", "requeue",
)
TIMELINE_EXCEPTION_MAX: Final = 200
_PACK: Final = msgspec.msgpack.Encoder().encode
# ``EventStore.call_group`` for events of no task (worker events): the global keys' call.
GLOBAL: Final = -1


class TaskFacts(msgspec.Struct, frozen=True):
    """What the store knew about an applied task event's task, for metric labels."""

    name: str
    queue: str
    # task-started: seconds since task-sent (queue wait); task-failed: seconds since
    # task-started (its runtime); None when unknown or for other kinds.
    seconds: float | None = None
    # False for a final kind the task already had (counted once per task, see store.lua).
    counted: bool = True


class ApplyResult(msgspec.Struct, frozen=True):
    """Outcome of one ``apply``: which events this call applied first, and how many it dropped."""

    applied: tuple[Event, ...]
    duplicates: int
    # Events without a projection (audit events): neither applied nor duplicate.
    ignored: int = 0
    # Parallel to ``applied``: the task's facts for task-state events, None for the others.
    facts: tuple[TaskFacts | None, ...] = ()


def _facts(event: Event, raw: bytes, counted: bool) -> TaskFacts:
    name, queue, ref = raw.decode().split("\t")
    seconds = event.timestamp - float(ref) if ref else None
    return TaskFacts(name, queue, seconds, counted)


def _number(value: float | int) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def _task_fields(event: Event, out: list[str]) -> None:
    for name in TASK_TEXT_FIELDS:
        value = getattr(event, name)
        if value:
            out += (name, value)
    if event.retries:
        out += ("retries", str(event.retries))
    for name in TASK_NUMBER_FIELDS:
        value = getattr(event, name)
        if value is not None:
            out += (name, _number(value))
    for name in TASK_FLAG_FIELDS:
        if getattr(event, name):
            out += (name, "1")


def _worker_fields(event: Event, out: list[str]) -> None:
    for name in WORKER_TEXT_FIELDS:
        value = getattr(event, name)
        if value:
            out += (name, value)
    for name in WORKER_NUMBER_FIELDS:
        value = getattr(event, name)
        if value is not None:
            out += (name, _number(value))
    if event.loadavg:
        out += ("loadavg", orjson.dumps(event.loadavg).decode())
    if event.pid:
        out += ("pid", str(event.pid))


def timeline_extra(event: Event) -> str:
    """The JSON of the small state fields a timeline entry keeps (keys.py ``_tl``), or "".
    Type code, id, timestamp and hostname are added by the script."""
    extra: dict[str, object] = {}
    for name in _TIMELINE_FIELDS:
        value = getattr(event, name)
        if value:
            extra[name] = value
    if event.exception:
        extra["exception"] = event.exception[:TIMELINE_EXCEPTION_MAX]
    return orjson.dumps(extra).decode() if extra else ""


def event_row(event: Event, stream_bytes: int, member: str) -> list[str]:
    """One event in the script's layout: type id uuid ts host stream-length timeline-JSON
    index-member fields...

    All strings: Redis's cmsgpack does not read MessagePack's bin type (so the binary stream
    entries travel in an argument of their own, see ``EventStore.apply``)."""
    is_task = event.is_task_event
    row: list[str] = [
        event.type, event.id, event.uuid, repr(float(event.timestamp)), event.hostname,
        str(stream_bytes), timeline_extra(event) if is_task else "",
        member,
    ]
    if is_task:
        _task_fields(event, row)
        if event.type == TASK_FAILED:
            failure = failure_of(event.exception)
            row += ("fingerprint", failure.fingerprint, "_exc", failure.exception_type)
    else:
        _worker_fields(event, row)
    return row


LISTPACK_VALUE_OPTIONS: Final = ("zset-max-listpack-value", "hash-max-listpack-value")


async def raise_listpack_limits(redis: AsyncStore, wanted: int) -> list[tuple[str, int]]:
    """Raise the server's listpack value limits to ``wanted`` bytes where they are lower, so
    task hashes with their timeline (over 64 bytes from the second event on) stay in the
    compact encoding. On a cluster, on every node (a replica may become the primary). Returns
    what was changed as (option, previous value), once per option; ``wanted`` 0 changes
    nothing."""
    changed: dict[str, int] = {}
    for option in LISTPACK_VALUE_OPTIONS if wanted else ():
        for target in await node_targets(redis):
            current = int((await redis.config_get(option, **target)).get(option, 0))
            if current < wanted:
                await redis.config_set(option, wanted, **target)
                changed.setdefault(option, current)
    return list(changed.items())


class EventStore:
    """Writes batches of events to the stream and projections of one Redis (keys from ``keys``)."""

    def __init__(self, redis: Redis, keys: Keys, retention: Retention | None = None) -> None:
        self.redis = redis
        self.keys = keys
        self.retention = retention or Retention()
        r = self.retention
        self.stream = EventStream(keys, r.stream_max_length, r.stream_max_age_seconds)
        self._script = redis.register_script(LUA_SOURCE)
        self._config = [
            "1", self.stream.script_maxlen, str(r.timeline_max),
            str(r.task_ttl_success_seconds), str(r.task_ttl_failure_seconds),
            str(r.task_ttl_other_seconds), str(r.task_ttl_unfinished_seconds),
            str(r.counters_minute_ttl_seconds), str(r.counters_hour_ttl_seconds),
            str(r.counters_day_ttl_seconds), str(r.worker_dedup_ttl_seconds),
        ]
        self._templates = [k.store_script_templates() for k in keys.each_partition()]

    def call_group(self, event: Event) -> int:
        """Which script call an event goes to: its task's partition, or ``GLOBAL`` for events
        of no task (worker events). Untagged (one partition, one Redis): always 0, one call."""
        if not self.keys.tagged:
            return 0
        if event.uuid and event.is_task_event:
            return self.keys.partition_of(event.uuid)
        return GLOBAL

    async def apply(self, events: Sequence[Event], *, append: bool = True) -> ApplyResult:
        """Append the non-duplicate events to the stream (unless ``append`` is false, as in
        rebuild) and fold them into the projections: one atomic script call per partition
        the batch touches (each touches one hash slot), all at once (``scripts.run_many``)."""
        if not events:
            return ApplyResult(applied=(), duplicates=0)
        groups: dict[int, list[int]] = {}
        for i, event in enumerate(events):
            groups.setdefault(self.call_group(event), []).append(i)
        calls = [(group, [events[i] for i in at]) for group, at in groups.items()]
        replies = await run_many(
            self.redis, self._script, [self._call(group, part, append) for group, part in calls]
        )
        flag_of: list[str] = [""] * len(events)
        fact_of: list[bytes | None] = [None] * len(events)
        for (group, _), reply in zip(calls, replies, strict=True):
            raw_facts = iter(reply[1:])
            for i, flag in zip(groups[group], reply[0].decode(), strict=True):
                flag_of[i] = flag
                if (flag == "1" or flag == "2") and events[i].type in TASK_EVENT_KINDS:
                    fact_of[i] = next(raw_facts)
        applied: list[Event] = []
        facts: list[TaskFacts | None] = []
        for event, flag, raw in zip(events, flag_of, fact_of, strict=True):
            if flag == "1" or flag == "2":
                applied.append(event)
                facts.append(_facts(event, raw, flag == "1") if raw is not None else None)
        return ApplyResult(
            applied=tuple(applied), duplicates=flag_of.count("0"), ignored=flag_of.count("-"),
            facts=tuple(facts),
        )

    def _call(
        self, group: int, events: Sequence[Event], append: bool
    ) -> tuple[list[str], list[str | bytes]]:
        """The keys and arguments of one script call for one partition's events (or the
        global ones)."""
        keys = self.keys.in_partition(max(group, 0))
        stream = keys.global_events if group == GLOBAL else keys.events
        argv: list[str | bytes] = list(self._config)
        argv[0] = "1" if append else "0"
        # the canonical-UUID check once per event, for its stream entry and its index member
        task_ids = [compact_id(event.uuid) for event in events]
        stored = (
            [self.stream.encode(e, t) for e, t in zip(events, task_ids, strict=True)]
            if append else []
        )
        argv.append(_PACK([
            event_row(event, len(stored[i]) if append else 0, member_of(task_ids[i]))
            for i, event in enumerate(events)
        ]))
        argv.append(b"".join(stored))
        argv += self._templates[max(group, 0)]
        return [stream], argv

    async def drop_projections(self) -> int:
        """Delete every key of the prefix except those ``Keys.kept_on_rebuild`` names."""
        keep = self.keys.kept_on_rebuild
        dropped = 0
        batch: list[bytes] = []
        async for key in self.redis.scan_iter(match=self.keys.all_pattern, count=1000):
            if key.decode().startswith(keep):
                continue
            batch.append(key)
            if len(batch) >= 1000:
                dropped += await self.redis.unlink(*batch)
                batch.clear()
        if batch:
            dropped += await self.redis.unlink(*batch)
        return dropped

    async def stream_events(self, chunk: int = 2000) -> AsyncIterator[list[Event]]:
        """Every stream (each partition's, then the global one) from oldest to newest, decoded,
        in chunks (audit events included). A task's events and its audit events share its
        partition's stream, so each keeps its order."""
        for stream in self.keys.streams:
            async for events in self._stream_chunks(stream, chunk):
                yield events

    async def _stream_chunks(self, stream: str, chunk: int) -> AsyncIterator[list[Event]]:
        start = "-"
        while True:
            entries = await self.redis.xrange(stream, min=start, count=chunk)
            if not entries:
                return
            events = []
            for _entry_id, fields in entries:
                raw = fields.get(ENTRY_FIELD.encode())
                try:
                    events.append(decode_stored(raw))
                except (msgspec.DecodeError, TypeError):
                    continue  # an unreadable entry cannot be folded; the rest still can
            yield events
            last = entries[-1][0].decode()
            start = "(" + last

    async def rebuild(self, chunk: int = 2000) -> tuple[int, int]:
        """Drop the projections and refold them from the stream. Returns (events, applied).

        Tasks an operator forgot (a ``forget`` audit event in the stream) stay forgotten: the
        stream still holds their events, so each chunk's forgotten ids are forgotten again
        right after the chunk is folded."""
        await self.drop_projections()
        lifecycle = TaskLifecycle(self.redis, self.keys, self.stream)
        seen = applied = 0
        async for events in self.stream_events(chunk):
            folded = [e for e in events if e.type != AUDIT_EVENT]
            seen += len(events)
            result = await self.apply(folded, append=False)
            applied += len(result.applied)
            for event in events:
                if is_forget_event(event):
                    await lifecycle.forget(event.uuid, audit=None, only_finished=False)
        return seen, applied
