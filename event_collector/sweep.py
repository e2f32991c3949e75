"""Retention: keep the indexes and the stream bounded; everything else expires by TTL.

What expires by itself (TTLs set by ``store.lua`` as it writes): task hashes and timelines
(per-state TTL once finished, another while unfinished) and counter buckets (minute / hour / day
TTLs). What does not, and is trimmed here:
- index entries (``P idx:*``) older than the horizon — scores are first_seen, so whole segments
  of the segmented indexes go at once (segments.py), ZREMRANGEBYSCORE on the plain ones;
- index entries of tasks whose hash already expired (a success kept 1 day must not stay listed
  for 30) — the state indexes (every task is in exactly one) are walked one after the other,
  oldest first, a few segments at a time up to a budget per run, with a cursor that wraps;
  the task's ``idx:children:<id>`` / ``idx:root:<id>`` go with it;
- failure groups (``P fail:g:<fp>``, keys.py) last seen before the horizon, with their entries
  in ``P fail:groups`` and ``P fail:exc:<type>``; their ``idx:fp:<fp>`` indexes are index keys
  like the others (found from ``P fail:groups``);
- stream entries older than the stream's max age (XTRIM MINID, stream ids are insertion times)
  and beyond its max length (XTRIM MAXLEN ~).

Index keys are found without walking the keyspace on every run: the fixed ones (each state),
those derivable from small sets (names from ``cnt:total``, workers from ``P workers``, queues from
``P queues`` and settings), plus a ``SCAN MATCH P idx:*`` at most once per ``discovery_interval``
to catch the rest (queues outside the settings, children / root indexes).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence

import msgspec
from redis.asyncio import Redis

from event_collector.keys import COUNTER_FIELD_SEPARATOR, Keys
from event_collector.segments import Indexes
from event_collector.stream import EventStream
from event_collector.task_ids import task_id_of


class SweepReport(msgspec.Struct, frozen=True):
    index_keys: int
    index_entries_trimmed: int
    expired_tasks_unindexed: int
    failure_groups_trimmed: int
    stream_entries_trimmed: int


class RetentionSweeper:
    """Trims indexes and stream; ``run_once`` is cheap enough to call every minute.

    ``index_retention_seconds`` should be the longest task TTL (an index entry must not outlive
    every task it could point to by much); 0 disables that trim, as does 0 for the stream age.
    """

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        *,
        index_retention_seconds: float,
        stream_max_age_seconds: float,
        stream_maxlen: int = 0,
        queues: Sequence[str] = (),
        expired_check_budget: int = 10_000,
        page_size: int = 1000,
        discovery_interval_seconds: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._indexes = Indexes(redis, keys)
        self._index_retention = index_retention_seconds
        self._stream = EventStream(keys, stream_maxlen, stream_max_age_seconds)
        self._queues = list(queues)
        self._budget = expired_check_budget
        self._page = page_size
        self._discovery_interval = discovery_interval_seconds
        self._clock = clock
        self._discovered: set[str] = set()
        self._discovered_at: float | None = None
        # where the expired-task walk resumes: which of Keys.state_indexes, and the start of the
        # last segment walked in it ("" = from its start)
        self._cursor = (0, "")

    async def run_once(self) -> SweepReport:
        now = self._clock()
        cutoff = now - self._index_retention
        index_keys = await self._dimension_keys()
        trimmed = 0
        if self._discovered_at is None or now - self._discovered_at >= self._discovery_interval:
            per_task_keys = await self._discover(index_keys)
            self._discovered_at = now
            # Children / root indexes are one per parent task: trimmed on discovery runs only.
            trimmed += await self._trim_indexes(per_task_keys, cutoff)
        index_keys = sorted({*index_keys, *self._discovered})
        unindexed = await self._unindex_expired_tasks(index_keys)
        trimmed += await self._trim_indexes(index_keys, cutoff)
        groups_trimmed = await self._trim_failure_groups(cutoff)
        stream_trimmed = await self._stream.trim(self._redis, now)
        return SweepReport(
            index_keys=len(index_keys),
            index_entries_trimmed=trimmed,
            expired_tasks_unindexed=unindexed,
            failure_groups_trimmed=groups_trimmed,
            stream_entries_trimmed=stream_trimmed,
        )

    async def _dimension_keys(self) -> set[str]:
        """Index keys derivable from small sets: states, names, workers, queues."""
        k = self._keys
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hkeys(k.counters_total)
            pipe.zrange(k.workers, 0, -1)
            pipe.hkeys(k.queues)
            pipe.zrange(k.failure_groups, 0, -1)
            counter_fields, workers, queues, groups = await pipe.execute()
        names = {f.decode().rsplit(COUNTER_FIELD_SEPARATOR, 1)[0] for f in counter_fields}
        found = set(k.state_indexes)
        found |= {k.index_name(n) for n in names}
        found |= {k.index_worker(w.decode()) for w in workers}
        found |= {k.index_queue(q) for q in {*self._queues, *(q.decode() for q in queues)}}
        found |= {k.index_fingerprint(fp.decode()) for fp in groups}
        return found

    async def _discover(self, known: set[str]) -> list[str]:
        """SCAN for index keys; remember unknown dimension keys, return the per-task ones."""
        per_task_prefixes = self._keys.per_task_index_prefixes
        per_task: list[str] = []
        self._discovered = set()
        async for raw in self._redis.scan_iter(
            match=self._keys.index_pattern, count=1000, _type="zset"
        ):
            key = raw.decode()
            if key.startswith(per_task_prefixes):
                per_task.append(key)
            elif key not in known:
                self._discovered.add(key)
        return per_task

    async def _unindex_expired_tasks(self, index_keys: Sequence[str]) -> int:
        """Walk the state indexes from the cursor; drop ids whose task hash is gone from every
        index. A run ends at its budget or after the last state index (the next starts over)."""
        walk = self._keys.state_indexes
        checked = removed = 0
        position, after = self._cursor
        while checked < self._budget:
            entries, after = await self._indexes.page(walk[position], after, self._page)
            if not entries:
                position, after = (position + 1) % len(walk), ""
                if position == 0:
                    break
                continue
            async with self._redis.pipeline(transaction=False) as pipe:
                for member, _ in entries:
                    pipe.exists(self._keys.task(task_id_of(member)))
                alive = await pipe.execute()
            gone = [(member, score) for (member, score), a in zip(entries, alive, strict=True)
                    if not a]
            await self._unindex(index_keys, gone)
            checked += len(entries)
            removed += len(gone)
        self._cursor = (position, after)
        return removed

    async def _unindex(self, index_keys: Sequence[str], gone: Sequence[tuple[str, float]]) -> None:
        if not gone:
            return
        k = self._keys
        members = [member for member, _ in gone]
        await self._indexes.remove([key for key in index_keys if k.is_segmented(key)], gone)
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in index_keys:
                if not k.is_segmented(key):
                    pipe.zrem(key, *members)
            pipe.delete(*_per_task_keys(k, (task_id_of(m) for m in members)))
            await pipe.execute()

    async def _trim_indexes(self, index_keys: Sequence[str], cutoff: float) -> int:
        if self._index_retention <= 0:
            return 0  # tasks are kept forever, so are their index entries
        k = self._keys
        trimmed = await self._indexes.trim([key for key in index_keys if k.is_segmented(key)],
                                           cutoff)
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in index_keys:
                if not k.is_segmented(key):
                    pipe.zremrangebyscore(key, "-inf", f"({cutoff!r}")
            return trimmed + sum(await pipe.execute())

    async def _trim_failure_groups(self, cutoff: float) -> int:
        """Forget groups with no failure since the horizon (their counts included)."""
        if self._index_retention <= 0:
            return 0
        k = self._keys
        stale = [
            fp.decode()
            for fp in await self._redis.zrange(k.failure_groups, "-inf", f"({cutoff!r}",
                                               byscore=True)
        ]
        if not stale:
            return 0
        async with self._redis.pipeline(transaction=False) as pipe:
            for fp in stale:
                pipe.hget(k.failure_group(fp), "exception")
            types = await pipe.execute()
        async with self._redis.pipeline(transaction=False) as pipe:
            for fp, type_ in zip(stale, types, strict=True):
                if type_ is not None:
                    pipe.srem(k.failure_exception(type_.decode()), fp)
                pipe.delete(k.failure_group(fp), k.index_fingerprint(fp))
            pipe.zrem(k.failure_groups, *stale)
            await pipe.execute()
        return len(stale)


def _per_task_keys(keys: Keys, task_ids: Iterable[str]) -> list[str]:
    out: list[str] = []
    for task_id in task_ids:
        out += [keys.index_children(task_id), keys.index_root(task_id)]
    return out
