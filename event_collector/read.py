"""The read side of the event store: typed queries over the projections in ``keys.py``.

Every query costs a bounded number of round trips whatever the number of stored tasks: listings
walk one index sorted set by score with a cursor (never SCAN), or with no filter merge the
per-state indexes (every task is in exactly one, keys.py), stats and history read counters.

A partitioned store (``TASKPULSE_PARTITIONS``) has each of those per partition: a listing merges
the partitions' indexes by score, reading one page's worth from each (the same merge as the
per-state indexes, ``_index_slice``); counts, stats and history sum the partitions; a task is
read straight from its own partition. A task's children and a workflow's members are indexed in
the child's own partition (one script call touches one partition), so those lists ask every
partition and merge by score.
Failure groups are one sorted set and a hash per group; an exception type is the merge of its
groups' indexes. A text search (``q``) has no index: it reads the records it walks, in Redis
(search.lua), up to a bound, and says so (``exact``) when it stopped there.
"""

from __future__ import annotations

import asyncio
import base64
import heapq
import itertools
import time
from collections.abc import Sequence
from importlib import resources
from typing import Any, Final, NamedTuple

import msgspec
import orjson
import redis.asyncio as aioredis

from event_collector import timeline
from event_collector.connection import is_cluster
from event_collector.events import STATE_PRECEDENCE, TASK_EVENT_KINDS, Event
from event_collector.keys import (
    BUCKET_SECONDS,
    COUNTER_FIELD_SEPARATOR,
    FAILURE_HOUR_SLOTS,
    TIMELINE_FIELD,
    Keys,
    bucket_start,
)
from event_collector.records import (
    DEFAULT_PAGE_SIZE,
    MAX_HISTORY_BUCKETS,
    MAX_PAGE_SIZE,
    SEARCH_TEXT_MAX,
    FailureGroup,
    FailurePage,
    History,
    HistoryBucket,
    Progress,
    QueueInfo,
    Stats,
    TaskCount,
    TaskPage,
    TaskRecord,
    TaskSummary,
    TimelineEntry,
    WorkerInfo,
)
from event_collector.replies import hash_text, integer, number, text
from event_collector.scripts import run_many
from event_collector.segments import Indexes, size_of
from event_collector.stored import decode_stored
from event_collector.task_ids import task_id_of
from event_collector.workers import worker_info

# A combined filter (e.g. state + name) walks the smallest index and checks the rest per task;
# these bound the work one request may do. A listing returns a cursor to continue from; a count
# says it is not exact. A text search (``q``) reads every record it walks: its own bound, which
# the API's settings may change per deployment (docs/operations.md, "Search").
LIST_SCAN_MAX: Final = 5_000
# How old the index sizes a filtered listing picks its walk by may be. They only choose which
# index to walk (the other filters are checked per row): a stale size costs a longer walk, never
# a wrong row, and not asking costs one round trip less per page (on a cluster one per node).
INDEX_SIZES_MAX_AGE: Final = 1.0
_INDEX_SIZES_KEPT: Final = 1024
COUNT_SCAN_MAX: Final = 20_000
SEARCH_SCAN_MAX: Final = 20_000
STATES: Final = STATE_PRECEDENCE
KINDS: Final = tuple(TASK_EVENT_KINDS.values())

# Hash fields a listing row is built from: first_seen is the index score, updated the
# timeline's newest entry.
_SUMMARY_FIELDS: Final = (
    "name", "state", "queue", "worker", "runtime", "retries", "exception", "fingerprint",
    TIMELINE_FIELD,
)  # fmt: skip
_SUMMARY_FIELDS_RAW: Final = tuple(f.encode() for f in _SUMMARY_FIELDS)
_READ_LUA: Final = resources.files("event_collector").joinpath("read.lua").read_text()
_SEARCH_LUA: Final = resources.files("event_collector").joinpath("search.lua").read_text()
# A failure group's fields as ``failure_groups`` reads them (its hour slots follow).
_GROUP_FIELDS: Final = ("exception", "count", "first", "last", "message", "example", "names")
# Filters that are a task hash field with an index of their own (keys.py).
_FILTER_FIELDS: Final = ("state", "name", "queue", "worker", "fingerprint")
# Field -> allowed values (any of them), as a walk checks them per task.
Constraints = dict[str, frozenset[str]]


_INDEX_BUILDERS: Final = {
    "state": Keys.index_state, "name": Keys.index_name, "queue": Keys.index_queue,
    "worker": Keys.index_worker, "fingerprint": Keys.index_fingerprint,
}


class InvalidCursor(ValueError):
    """The cursor was not produced by ``list_tasks`` (or was tampered with)."""


class TaskQuery(msgspec.Struct, frozen=True, omit_defaults=True):
    """Filters for listing and counting tasks. Time bounds apply to ``first_seen``.

    ``exception`` is an exception type (every failure group of that type); ``q`` a text the
    task's args, kwargs, result or exception contain, looked for in at most ``scan_max``
    records per call (default SEARCH_SCAN_MAX)."""

    state: str | None = None
    name: str | None = None
    queue: str | None = None
    worker: str | None = None
    fingerprint: str | None = None
    exception: str | None = None
    q: str | None = None
    since: float | None = None
    until: float | None = None
    limit: int = DEFAULT_PAGE_SIZE
    cursor: str | None = None
    scan_max: int | None = None

    def filters(self) -> dict[str, str]:
        return {f: v for f in _FILTER_FIELDS if (v := getattr(self, f)) is not None}


def encode_cursor(score: float, member: str) -> str:
    """Where a listing stopped: the last row's score and index member (task_ids.py)."""
    raw = orjson.dumps([score, member])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        score, member = orjson.loads(raw)
        return float(score), str(member)
    except (ValueError, TypeError) as exc:
        raise InvalidCursor(cursor) from exc


class EventReader:
    """Async queries over one store. Create once per process with the shared Redis pool."""

    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._partitions = keys.each_partition()
        self._streams = keys.streams
        self._indexes = Indexes(redis, keys)
        self._hmget_many = redis.register_script(_READ_LUA)
        self._sizes: dict[tuple[str, ...], tuple[float, int]] = {}  # indexes -> (when, entries)
        self._search_many = redis.register_script(_SEARCH_LUA)

    # ----------------------------------------------------------------- single tasks

    async def get_task(self, task_id: str) -> TaskRecord | None:
        raw = await self.redis.hgetall(self.keys.task(task_id))
        return _task_record(task_id, hash_text(raw)) if raw else None

    async def get_tasks(self, task_ids: Sequence[str]) -> list[TaskRecord | None]:
        """Several records in one round trip, in order; None where a task is unknown."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for task_id in task_ids:
                pipe.hgetall(self.keys.task(task_id))
            raws = await pipe.execute()
        return [
            _task_record(task_id, hash_text(raw)) if raw else None
            for task_id, raw in zip(task_ids, raws, strict=True)
        ]

    async def timeline(self, task_id: str) -> list[TimelineEntry]:
        raw = await self.redis.hget(self.keys.task(task_id), TIMELINE_FIELD)
        return timeline.entries(text(raw))

    async def task_detail(
        self, task_id: str, children_max: int = 100
    ) -> tuple[TaskRecord, list[TimelineEntry], list[str]] | None:
        """Record, timeline and direct children in one round trip."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.keys.task(task_id))
            _queue_oldest(pipe, [k.index_children(task_id) for k in self._partitions], children_max)
            raw, *children = await pipe.execute()
        if not raw:
            return None
        fields = hash_text(raw)
        events = timeline.entries(fields.get(TIMELINE_FIELD, ""))
        return _task_record(task_id, fields), events, _oldest(children, children_max)

    async def children(self, task_id: str, limit: int = 1000) -> list[str]:
        return await self._oldest_members([k.index_children(task_id) for k in self._partitions],
                                          limit)

    async def workflow(self, root_id: str, limit: int = 1000) -> list[str]:
        return await self._oldest_members([k.index_root(root_id) for k in self._partitions],
                                          limit)

    async def _oldest_members(self, indexes: Sequence[str], limit: int) -> list[str]:
        async with self.redis.pipeline(transaction=False) as pipe:
            _queue_oldest(pipe, indexes, limit)
            return _oldest(await pipe.execute(), limit)

    # ----------------------------------------------------------------- listings

    def _index_keys(self, field: str, value: str) -> list[str]:
        """The index of ``field`` = ``value`` in every partition."""
        return [_INDEX_BUILDERS[field](k, value) for k in self._partitions]

    async def _constraints(self, query: TaskQuery) -> Constraints | None:
        """The filters as field -> allowed values; ``exception`` becomes the fingerprints of its
        groups (in any partition). None when nothing can match (an exception type no failure
        had)."""
        constraints = {f: frozenset({v}) for f, v in query.filters().items()}
        if query.exception is not None:
            async with self.redis.pipeline(transaction=False) as pipe:
                for k in self._partitions:
                    pipe.smembers(k.failure_exception(query.exception))
                groups = frozenset(text(m) for raw in await pipe.execute() for m in raw)
            constraints["fingerprint"] = constraints.get("fingerprint", groups) & groups
        if any(not values for values in constraints.values()):
            return None
        return constraints

    async def _pick_index(
        self, query: TaskQuery
    ) -> tuple[Sequence[str], dict[str, frozenset[bytes]]] | None:
        """The indexes to walk (the smallest filter's in every partition, several merged when it
        allows several values; or every state index of every partition when there is no
        filter), and the filters left to check per task. None when nothing can match."""
        constraints = await self._constraints(query)
        if constraints is None:
            return None
        if not constraints:
            return [key for k in self._partitions for key in k.state_indexes], {}
        candidates = [
            (f, [key for v in sorted(values) for key in self._index_keys(f, v)])
            for f, values in constraints.items()
        ]
        if len(candidates) == 1:
            return candidates[0][1], {}
        totals = await self._index_sizes([keys for _, keys in candidates])
        field, keys = min(zip(candidates, totals, strict=True), key=lambda c: c[1])[0]
        rest = {
            f: frozenset(v.encode() for v in values)
            for f, values in constraints.items() if f != field
        }  # fmt: skip
        return keys, rest

    async def _index_sizes(self, groups: Sequence[Sequence[str]]) -> list[int]:
        """Entries in each group of indexes, at most ``INDEX_SIZES_MAX_AGE`` seconds old."""
        now = time.monotonic()
        wanted = [tuple(g) for g in groups]
        stale = [g for g in wanted
                 if (seen := self._sizes.get(g)) is None or now - seen[0] > INDEX_SIZES_MAX_AGE]
        if stale:
            sizes = iter(await self._indexes.sizes([key for group in stale for key in group]))
            if len(self._sizes) > _INDEX_SIZES_KEPT:  # many distinct filters: start over
                self._sizes.clear()
            for group in stale:
                self._sizes[group] = (now, sum(next(sizes) for _ in group))
        return [self._sizes[g][1] for g in wanted]

    async def list_tasks(self, query: TaskQuery) -> TaskPage:
        """Newest first. Walks the index(es) from the cursor; stops at ``limit`` or the scan bound.

        With extra filters the walk fetches a page's worth first and widens (x4) only while
        few rows match, so a common combination costs about what an unfiltered page does.
        """
        limit = max(1, min(query.limit, MAX_PAGE_SIZE))
        picked = await self._pick_index(query)
        if picked is None:
            return TaskPage(items=[])
        indexes, rest = picked
        wanted = {_SUMMARY_FIELDS.index(f): values for f, values in rest.items()}
        needle = _needle(query.q)
        scan_max = query.scan_max or (SEARCH_SCAN_MAX if needle else LIST_SCAN_MAX)
        upper: float | str = query.until if query.until is not None else "+inf"
        lower: float | str = query.since if query.since is not None else "-inf"
        after: tuple[float, str] | None = None
        if query.cursor:
            after = decode_cursor(query.cursor)
            upper = after[0] if query.until is None else min(after[0], query.until)
        items: list[TaskSummary] = []
        scanned, batch = 0, limit
        last: tuple[float, str] | None = None
        while len(items) < limit and scanned < scan_max:
            rows = await self._index_slice(
                indexes, upper, lower, min(batch, scan_max - scanned), after
            )
            if rows is None:  # a run of equal scores longer than the batch: widen and retry
                if batch >= LIST_SCAN_MAX:  # pathological: step past the tied score instead
                    upper, after = f"({after[0]!r}", None  # type: ignore[index]
                else:
                    batch *= 2
                continue
            if not rows:
                return TaskPage(items=items, next_cursor=None)
            found = len(items)
            task_ids = [task_id_of(member) for member, _ in rows]
            values = await self._hmget_summaries(task_ids, needle)
            for (member, score), task_id, raw in zip(rows, task_ids, values, strict=True):
                scanned += 1
                last = (score, member)  # the cursor walks members, in the index's own order
                # a search answers [] for a task that does not contain the text
                if raw and all(raw[i] in v for i, v in wanted.items()) and (
                    row := _summary(task_id, score, raw)
                ):
                    items.append(row)
                    if len(items) == limit:
                        break
            if len(items) - found < batch // 2:
                batch = min(batch * 4, 1000)
            after, upper = last, last[0]  # type: ignore[index]
        next_cursor = encode_cursor(*last) if last is not None else None
        return TaskPage(items=items, next_cursor=next_cursor, exact=len(items) == limit)

    async def _index_slice(
        self,
        indexes: Sequence[str],
        upper: float | str,
        lower: float | str,
        count: int,
        after: tuple[float, str] | None,
    ) -> list[tuple[str, float]] | None:
        """Up to ``count`` (id, score) strictly after the cursor, newest first, over the indexes
        merged (one round trip).

        Equal scores come in reverse member order under REV, so entries tied with the cursor's
        score are skipped while their member is >= the cursor's id. An index that filled its
        fetch may hold more past its last row: merged rows below that row are left for the next
        slice. ``None`` means every entry kept was such a tie and the caller must fetch more.

        Over several partitions each index is asked for its share of the rows, not all of them:
        a task's partition is a hash, so the next ``count`` rows split about evenly, and twice
        the even share plus 8 falls short (the caller then takes another slice) in ~0.2 % of
        50-row pages over 8 partitions (simulated), while reading 21 rows a partition, not 51
        (on a cluster, 8 script calls' worth of rows for the nodes to produce and the API to
        merge).
        """
        partitions = self.keys.partitions
        share = count if partitions == 1 else min(count, -(-2 * count // partitions) + 8)
        fetch = share + (1 if after else 0)
        replies = await self._indexes.ranges(indexes, upper, lower, fetch)
        merged: list[tuple[float, str]] = []
        edge: tuple[float, str] | None = None
        for raw in replies:
            rows = [(float(s), text(m)) for m, s in raw]
            if len(raw) == fetch:
                edge = rows[-1] if edge is None else max(edge, rows[-1])
            if after is not None:
                rows = [(s, m) for s, m in rows if not (s == after[0] and m >= after[1])]
            merged += rows
        if edge is not None:
            merged = [row for row in merged if row >= edge]
            if not merged:
                return None
        merged.sort(reverse=True)
        return [(m, s) for s, m in merged[:count]]

    async def _hmget_summaries(
        self, task_ids: Sequence[str], needle: str | None = None
    ) -> list[list[bytes | None]]:
        """The listing fields of each task; with a search text, [] for the tasks without it."""
        if needle:
            return await self._per_record(self._search_many, task_ids,
                                          [needle, *_SUMMARY_FIELDS_RAW])
        return await self._per_record(self._hmget_many, task_ids, _SUMMARY_FIELDS_RAW)

    async def _per_record(
        self, script: Any, task_ids: Sequence[str], args: Sequence[str | bytes]
    ) -> list[list[bytes | None]]:
        """``script`` over many task records, one reply row each, in order: one call; on a
        cluster one per partition (a call's keys must share a slot), all at once
        (``run_many``)."""
        if not task_ids:
            return []
        if not is_cluster(self.redis):  # one Redis runs a script over any keys: one call
            keys = [self.keys.task(task_id) for task_id in task_ids]
            return await script(keys=keys, args=args)  # type: ignore[no-any-return]
        groups: dict[int, list[int]] = {}
        for i, task_id in enumerate(task_ids):
            groups.setdefault(self.keys.partition_of(task_id), []).append(i)
        replies = await run_many(self.redis, script, [
            ([self.keys.task(task_ids[i]) for i in at], args) for at in groups.values()
        ])
        rows: list[list[bytes | None]] = [[] for _ in task_ids]
        for at, reply in zip(groups.values(), replies, strict=True):
            for i, row in zip(at, reply, strict=True):
                rows[i] = row
        return rows

    async def count_tasks(self, query: TaskQuery) -> TaskCount:
        """ZCOUNT on the filter's index(es) (the state indexes without a filter); combined
        filters and a search check up to COUNT_SCAN_MAX (a search: its scan bound) tasks."""
        picked = await self._pick_index(query)
        if picked is None:
            return TaskCount(count=0)
        indexes, rest = picked
        lower = query.since if query.since is not None else "-inf"
        upper = query.until if query.until is not None else "+inf"
        needle = _needle(query.q)
        if not rest and not needle:
            return TaskCount(count=sum(await self._indexes.counts(indexes, lower, upper)))
        bound = query.scan_max or (SEARCH_SCAN_MAX if needle else COUNT_SCAN_MAX)
        ranges = await self._indexes.ranges(indexes, upper, lower, bound)
        members = [m for found in ranges for m, _ in found]
        members = members[:bound]
        wanted = {_SUMMARY_FIELDS.index(f): values for f, values in rest.items()}
        total = 0
        for start in range(0, len(members), 1000):
            task_ids = [task_id_of(m) for m in members[start : start + 1000]]
            rows = await self._hmget_summaries(task_ids, needle)
            total += sum(
                1 for row in rows if row and all(row[i] in v for i, v in wanted.items())
            )
        return TaskCount(count=total, exact=len(members) < bound)

    # ----------------------------------------------------------------- failure groups

    async def failure_groups(
        self, limit: int = DEFAULT_PAGE_SIZE, cursor: str | None = None,
        now: float | None = None,
    ) -> FailurePage:
        """Groups by last seen, newest first, each with its hourly counts over the last day:
        two round trips whatever the number of failures."""
        now = time.time() if now is None else now
        upper: float | str = "+inf"
        after = decode_cursor(cursor) if cursor else None
        if after is not None:
            upper = after[0]
        # ties with the cursor's score come first under REV: fetch past them. Each partition
        # groups its own tasks' failures: a fingerprint is in several, newest last seen wins.
        async with self.redis.pipeline(transaction=False) as pipe:
            for k in self._partitions:
                pipe.zrange(
                    k.failure_groups, upper, "-inf", byscore=True, desc=True, offset=0,
                    num=limit + 1 + (limit if after else 0), withscores=True,
                )  # fmt: skip
            newest: dict[str, float] = {}
            for raw in await pipe.execute():
                for m, s in raw:
                    newest[text(m)] = max(float(s), newest.get(text(m), float(s)))
        rows = sorted(((m, s) for m, s in newest.items()), key=lambda r: (r[1], r[0]),
                      reverse=True)
        if after is not None:
            rows = [(m, s) for m, s in rows if not (s == after[0] and m >= after[1])]
        page, more = rows[:limit], len(rows) > limit
        fingerprints = [m for m, _ in page]
        this_hour = bucket_start(now, "hour")
        # the slots oldest hour first, and the "<hour start>:" each must hold to count
        starts = [this_hour - 3600 * i for i in range(FAILURE_HOUR_SLOTS - 1, -1, -1)]
        slots = [f"h{start // 3600 % FAILURE_HOUR_SLOTS}" for start in starts]
        prefixes = [f"{start}:".encode() for start in starts]
        # each page group's hash in every partition: one call per partition (a slot each)
        groups = await run_many(self.redis, self._hmget_many, [
            ([k.failure_group(fp) for fp in fingerprints], [*_GROUP_FIELDS, *slots])
            for k in self._partitions
        ]) if fingerprints else []
        parts: dict[str, list[FailureGroup]] = {}
        for rows_of_partition in groups:
            for fp, values in zip(fingerprints, rows_of_partition, strict=True):
                if values[0] is not None:
                    parts.setdefault(fp, []).append(_failure_group(fp, values, prefixes))
        items = [_merged_group(parts[fp]) for fp in fingerprints if fp in parts]
        next_cursor = encode_cursor(page[-1][1], page[-1][0]) if more and page else None
        return FailurePage(items=items, next_cursor=next_cursor)

    # ----------------------------------------------------------------- aggregates

    async def stats(self, now: float | None = None) -> Stats:
        """Sums over the partitions (each task is in one state index of one partition)."""
        per_partition = 2 + len(STATES)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.keys.queues)
            for k in self._partitions:
                pipe.hmget(k.index_summaries, [k.index_stateless,
                                               *(k.index_state(state) for state in STATES)])
                pipe.hgetall(k.counters_total)
            queues, *replies = await pipe.execute()
        results: list[Any] = []
        for sizes, totals in zip(replies[0::2], replies[1::2], strict=True):
            results += [*(size_of(summary) for summary in sizes), totals]
        stored = 0
        by_state_raw = [0] * len(STATES)
        events_total: dict[str, int] = dict.fromkeys(KINDS, 0)
        by_name: dict[str, dict[str, int]] = {}
        for at in range(0, len(results), per_partition):
            stateless, *states, totals = results[at : at + per_partition]
            stored += int(stateless) + sum(int(n) for n in states)
            by_state_raw = [a + int(b) for a, b in zip(by_state_raw, states, strict=True)]
            for field, value in totals.items():
                name, _, kind = text(field).rpartition(COUNTER_FIELD_SEPARATOR)
                events_total[kind] = events_total.get(kind, 0) + int(value)
                named = by_name.setdefault(name, {})
                named[kind] = named.get(kind, 0) + int(value)
        workers = await self.workers(now)
        return Stats(
            tasks_stored=int(stored),
            by_state={s: int(n) for s, n in zip(STATES, by_state_raw, strict=True)},
            events_total=events_total,
            by_name=by_name,
            workers_online=sum(1 for w in workers if w.alive),
            workers_total=len(workers),
            queue_lengths={text(q): int(n) for q, n in queues.items()},
        )

    async def history(
        self, granularity: str, since: float, until: float, name: str | None = None
    ) -> History:
        """Counts per bucket from ``since`` to ``until`` (inclusive of both buckets)."""
        size = BUCKET_SECONDS[granularity]
        first, last = bucket_start(since, granularity), bucket_start(until, granularity)
        starts = list(range(first, last + 1, size))
        if len(starts) > MAX_HISTORY_BUCKETS:
            raise ValueError(f"{len(starts)} buckets asked for, at most {MAX_HISTORY_BUCKETS}")
        partitions = self._partitions
        async with self.redis.pipeline(transaction=False) as pipe:
            for start in starts:
                for k in partitions:
                    pipe.hgetall(k.counters(granularity, start))
            hashes = await pipe.execute()
        n = len(partitions)
        buckets = [
            HistoryBucket(start=start, counts=_bucket_counts(hashes[i * n : (i + 1) * n], name))
            for i, start in enumerate(starts)
        ]
        return History(granularity=granularity, buckets=buckets)

    async def workers(self, now: float | None = None) -> list[WorkerInfo]:
        now = time.time() if now is None else now
        hosts = [text(h) for h in await self.redis.zrevrange(self.keys.workers, 0, -1)]
        async with self.redis.pipeline(transaction=False) as pipe:
            for host in hosts:
                pipe.hgetall(self.keys.worker(host))
            hashes = await pipe.execute()
        return [
            worker_info(host, hash_text(raw), now) for host, raw in zip(hosts, hashes, strict=True)
        ]

    async def queues(self) -> list[QueueInfo]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in (self.keys.queues, self.keys.queue_consumers, self.keys.queue_workers,
                        self.keys.queue_processes):
                pipe.hgetall(key)
            pipe.get(self.keys.queues_updated)
            *hashes, updated = await pipe.execute()
        lengths, consumers, workers, processes = (hash_text(h) for h in hashes)
        names = sorted(lengths.keys() | consumers.keys() | workers.keys() | processes.keys())
        return [
            QueueInfo(
                name=name, length=integer(lengths.get(name)),
                consumers=integer(consumers.get(name)), workers=integer(workers.get(name)),
                processes=integer(processes.get(name)), updated=number(updated),
            )
            for name in names
        ]

    # ----------------------------------------------------------------- the stream

    async def last_event_id(self) -> str:
        """The id of the newest stream entry, or ``0-0``: where a live tail starts."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream in self._streams:
                pipe.xrevrange(stream, count=1)
            newest = [text(reply[0][0]) for reply in await pipe.execute() if reply]
        return max(newest, key=_position) if newest else "0-0"

    def resume_point(self, last_seen: str) -> str:
        """Where a reader that saw up to ``last_seen`` goes on from. One stream: right after it.
        Several (a partitioned store): from the start of its millisecond, since other streams'
        entries of that millisecond may have ids on either side of it: some entries are sent
        again rather than any lost."""
        if len(self._streams) == 1:
            return last_seen
        millis = _position(last_seen)[0]
        return f"{millis - 1}-{_MAX_SEQUENCE}" if millis else "0-0"

    async def stream_heads(self) -> dict[str, str]:
        """Each stream's newest entry id (``0-0`` when empty): where a live tail starts."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream in self._streams:
                pipe.xrevrange(stream, count=1)
            replies = await pipe.execute()
        return {s: text(r[0][0]) if r else "0-0" for s, r in zip(self._streams, replies,
                                                                   strict=True)}

    async def read_live(
        self, heads: dict[str, str], count: int, block_ms: int
    ) -> tuple[EventPage, dict[str, str]]:
        """Entries after each stream's own head, merged in id order, and the heads moved past
        them: every entry of every stream once, whatever order the streams were written in
        (entry ids of different streams are not in the order the entries were added)."""
        reply = await self._xread(heads, count, block_ms)
        moved = dict(heads)
        for stream, entries in reply or ():
            moved[text(stream)] = text(entries[-1][0])
        entries = [e for _, r in reply or () for e in r]
        entries.sort(key=lambda e: _position(text(e[0])))
        return _event_page(entries), moved

    async def _xread(self, heads: dict[str, str], count: int, block_ms: int | None) -> Any:
        if len(heads) > 1 and is_cluster(self.redis):  # one XREAD names one slot
            return await self._xread_each(heads, count, block_ms)
        return await self.redis.xread(heads, count=count, block=block_ms)

    async def _xread_each(
        self, heads: dict[str, str], count: int, block_ms: int | None
    ) -> list[Any]:
        """XREAD of several streams on a cluster, where one XREAD may name one slot's keys
        only: each stream on its own, without blocking; when none has anything, a short wait
        (at most ``block_ms``) stands for the block."""
        replies = await asyncio.gather(*(
            self.redis.xread({stream: after}, count=count) for stream, after in heads.items()
        ))
        found = [r for reply in replies for r in reply or ()]
        if not found and block_ms:
            await asyncio.sleep(min(block_ms, _CLUSTER_POLL_MS) / 1000)
        return found

    async def read_events(
        self, after_id: str, count: int = 100, block_ms: int | None = None
    ) -> EventPage:
        """Entries strictly after ``after_id``; waits up to ``block_ms`` when there are none.

        A partitioned store has several streams: an entry id is then a position in time across
        them (one server clock; on a cluster, each node's), entries merged in id order."""
        heads = dict.fromkeys(self._streams, after_id)
        reply = await self._xread(heads, count, block_ms)
        return _merged_page([entries for _, entries in reply or ()], count)

    async def read_range(self, after_id: str, until_id: str, count: int) -> EventPage:
        """Entries strictly after ``after_id`` up to ``until_id`` included, oldest first."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream in self._streams:
                pipe.xrange(stream, min=f"({after_id}", max=until_id, count=count)
            return _merged_page(await pipe.execute(), count)


class EventPage(NamedTuple):
    """Stream entries read in one call. ``last_id`` is the id of the last entry read, readable
    or not, so a reader moves past an entry it had to skip; None when nothing was read."""

    last_id: str | None
    size: int
    events: list[tuple[str, Event]]


_MAX_SEQUENCE: Final = 2**64 - 1  # a stream id's largest sequence number
_CLUSTER_POLL_MS: Final = 50  # how often a live read polls a cluster's streams when idle


def _position(entry_id: str) -> tuple[int, int]:
    millis, _, seq = entry_id.partition("-")
    return int(millis), int(seq or 0)


def _merged_page(replies: Sequence[list[Any]], count: int) -> EventPage:
    """Several streams' entries as one page in id order. A stream that filled ``count`` may
    hold more past its last entry: entries of the others past that point are left for the next
    read (whose ``after`` is this page's last id), and the page reports itself full."""
    full = [_position(text(r[-1][0])) for r in replies if len(r) >= count]
    entries = sorted((e for r in replies for e in r), key=lambda e: _position(text(e[0])))
    if full:
        edge = min(full)
        entries = [e for e in entries if _position(text(e[0])) <= edge]
    page = _event_page(entries)
    return page._replace(size=count) if full else page


def _event_page(entries: list[Any]) -> EventPage:
    events: list[tuple[str, Event]] = []
    for entry_id, fields in entries:
        payload = fields.get(b"e", fields.get("e"))
        try:
            events.append((text(entry_id), decode_stored(payload)))
        except (msgspec.DecodeError, TypeError):
            continue  # an entry we cannot read is skipped, not fatal to every reader
    last_id = text(entries[-1][0]) if entries else None
    return EventPage(last_id, len(entries), events)


def _task_record(task_id: str, fields: dict[str, str]) -> TaskRecord:
    times = timeline.timestamps(fields.pop(TIMELINE_FIELD, ""), fields.pop("first_seen", None))
    progress = None
    if (current := fields.pop("progress_current", None)) is not None:
        total = fields.pop("progress_total", None)
        progress = Progress(
            current=float(current),
            total=float(total) if total else None,
            timestamp=times.get("progress_ts"),
        )
    times.pop("progress_ts", None)
    labels = orjson.loads(fields.pop("labels")) if fields.get("labels") else None
    fields = {k: v for k, v in fields.items() if v != "" and not k.startswith("_")}
    record = msgspec.convert(
        {**fields, **times, "labels": labels, "id": task_id}, TaskRecord, strict=False
    )
    return msgspec.structs.replace(record, progress=progress) if progress else record


def _failure_group(
    fingerprint: str, values: list[bytes | None], prefixes: list[bytes]
) -> FailureGroup:
    """A group from its hash's ``_GROUP_FIELDS`` then its hour slots (keys.py); a slot counts
    when it still holds the hour it is read for."""
    exception, count, first, last, message, example, names = values[: len(_GROUP_FIELDS)]
    slots = values[len(_GROUP_FIELDS) :]
    hourly = [
        int(raw[len(prefix) :]) if raw is not None and raw.startswith(prefix) else 0
        for raw, prefix in zip(slots, prefixes, strict=True)
    ]
    return FailureGroup(
        fingerprint=fingerprint,
        exception=text(exception),
        count=integer(count) or 0,
        first_seen=number(first) or 0.0,
        last_seen=number(last) or 0.0,
        message=text(message),
        example_id=text(example),
        names=sorted(text(names).split("\n")) if names else [],
        hourly=hourly,
    )


def _merged_group(parts: Sequence[FailureGroup]) -> FailureGroup:
    """One fingerprint's group from the partitions holding some of its failures: counts and
    hours summed, the span of all, the message and example of the newest."""
    newest = max(parts, key=lambda g: g.last_seen)
    if len(parts) == 1:
        return newest
    return msgspec.structs.replace(
        newest,
        count=sum(g.count for g in parts),
        first_seen=min(g.first_seen for g in parts),
        names=sorted({n for g in parts for n in g.names}),
        hourly=[sum(hours) for hours in zip(*(g.hourly for g in parts), strict=True)],
    )


def _needle(q: str | None) -> str | None:
    """The search text as search.lua compares it (lower-case), or None for no search."""
    return q.lower()[:SEARCH_TEXT_MAX] if q else None


def _summary(task_id: str, first_seen: float, values: list[bytes | None]) -> TaskSummary | None:
    if all(v is None for v in values):
        return None  # expired task still in an index until the next sweep
    fields = {f: text(v) for f, v in zip(_SUMMARY_FIELDS, values, strict=True) if v}
    updated = timeline.last_timestamp(fields.pop(TIMELINE_FIELD, ""))
    return msgspec.convert(
        {**fields, "first_seen": first_seen, "updated": updated, "id": task_id},
        TaskSummary, strict=False,
    )  # fmt: skip


def _bucket_counts(hashes: Sequence[dict[Any, Any]], name: str | None) -> dict[str, int]:
    """One bucket's counts by kind, summed over the partitions' hashes of it."""
    counts: dict[str, int] = {}
    for raw in hashes:
        for field, value in raw.items():
            task_name, _, kind = text(field).rpartition(COUNTER_FIELD_SEPARATOR)
            if name is None or task_name == name:
                counts[kind] = counts.get(kind, 0) + int(value)
    return counts


def _queue_oldest(pipe: Any, indexes: Sequence[str], limit: int) -> None:
    for index in indexes:
        pipe.zrange(index, 0, limit - 1, withscores=True)


def _oldest(replies: Sequence[list[tuple[bytes, float]]], limit: int) -> list[str]:
    """The ``limit`` lowest-scored members of several indexes' ZRANGE replies, as task ids
    (ties in member order, as one sorted set orders them)."""
    merged = heapq.merge(*([(s, m) for m, s in rows] for rows in replies))
    return [task_id_of(m) for _, m in itertools.islice(merged, limit)]
