"""Move a store from the one-partition layout to a partitioned one, in place, exactly.

    TASKPULSE_PARTITIONS=8 taskpulse-collector repartition     (collectors stopped; docs/scaling.md)

The unpartitioned layout (keys.py: one partition on one Redis, no hash tags) becomes the tagged
layout of ``TASKPULSE_PARTITIONS`` partitions on the same Redis, keeping everything as it is:
- each task record is RENAMEd to its partition's name (TTL kept, O(1) each);
- each index is split by its members' partitions (each entry added to its partition's index
  with its score; the segmented ones through segments.py, their old segments dropped);
- counters and failure groups are RENAMEd to partition 0's names: readers sum the partitions
  (merge groups by fingerprint), so the history stays exact without refolding anything (and
  counters older than the stream are kept);
- the stream is split into the partitions' streams (and the global one for worker events and
  task-less audit events), entry ids kept, so a live tail's ids stay comparable;
- worker and queue keys are RENAMEd to their global (``{g}``) names; the rest (API and console
  keys, collector bookkeeping) has the same name in both layouts and stays.
A store in the tagged layout can then be copied to a Redis Cluster key by key (``redis-cli
--cluster import``): every script call touches one slot. Going from N to M partitions in place
is refused (names of both layouts overlap): refold into a new prefix instead (docs/scaling.md).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Final

import msgspec
from redis.asyncio import Redis

from event_collector.keys import Keys
from event_collector.replies import text
from event_collector.segments import Indexes
from event_collector.stored import decode_stored
from event_collector.stream import ENTRY_FIELD
from event_collector.task_ids import task_id_of

log = logging.getLogger("taskpulse.collector.repartition")

BATCH: Final = 1000


class RepartitionReport(msgspec.Struct, frozen=True):
    tasks: int = 0
    index_keys: int = 0
    index_entries: int = 0
    counter_keys: int = 0
    stream_entries: int = 0
    global_keys: int = 0


class RepartitionError(ValueError):
    """The move asked for is not one this command does (see the module docstring)."""


class Repartitioner:
    """Moves ``target.prefix``'s one-partition store to ``target``'s partitioned layout."""

    def __init__(self, redis: Redis, target: Keys) -> None:
        if not target.tagged:
            raise RepartitionError(
                "the target layout is the one-partition layout already: set TASKPULSE_PARTITIONS"
                " above 1")
        self.redis = redis
        self.source = Keys.layout(target.prefix)  # untagged: the names keys.py lists
        self.target = target
        self._source_indexes = Indexes(redis, self.source)
        self._target_indexes = Indexes(redis, target)

    async def _source_keys(self) -> AsyncIterator[str]:
        tagged_start = self.target.prefix + "{"  # already in the target layout
        async for raw in self.redis.scan_iter(match=self.source.all_pattern, count=BATCH):
            key = text(raw)
            if not key.startswith(tagged_start):
                yield key

    async def run(self) -> RepartitionReport:
        src = self.source
        tasks_start = src.task("")
        # counters and failure groups are sums over the partitions: partition 0 holds the old
        counters_starts = (
            src.counters_total, *(src.counters_template(g) for g in ("minute", "hour", "day")),
            src.failure_groups, src.failure_group(""), src.failure_exception(""),
        )  # fmt: skip
        index_start = src.index_pattern.removesuffix("*")
        segments_start = src.index_segment_prefix  # go with their index (_split_index)
        # the queue keys are P queues and P queues:<what>
        worker_starts = (src.worker(""), src.worker_dedup(""), src.queues + ":")
        report: dict[str, int] = dict.fromkeys(msgspec.structs.asdict(RepartitionReport()), 0)
        renames: dict[str, list[tuple[str, str]]] = {"tasks": [], "counter_keys": [],
                                                     "global_keys": []}
        indexes: set[str] = set()
        async for key in self._source_keys():
            if key.startswith(tasks_start):
                renames["tasks"].append((key, self.target.task(key[len(tasks_start):])))
            elif key.startswith(index_start):
                indexes.add(key)
            elif key.startswith(segments_start):
                continue
            elif key.startswith(counters_starts):
                renames["counter_keys"].append((key, self._in_partition(key, 0)))
            elif key in (src.workers, src.queues) or key.startswith(worker_starts):
                renames["global_keys"].append((key, self._global(key)))
            for what, pairs in renames.items():
                if len(pairs) >= BATCH:
                    report[what] += await self._rename(pairs)
        for what, pairs in renames.items():
            report[what] += await self._rename(pairs)
        for key in indexes:
            report["index_entries"] += await self._split_index(key)
        report["index_keys"] = len(indexes)
        report["stream_entries"] = await self._split_stream()
        return RepartitionReport(**report)

    def _in_partition(self, key: str, partition: int) -> str:
        return self.target.tagged_name(key, partition)

    def _global(self, key: str) -> str:
        return self.target.tagged_name(key, None)

    async def _rename(self, renames: list[tuple[str, str]]) -> int:
        """RENAME each pair; returns how many were renamed. SCAN may return a key twice, the
        second time after it was renamed already: that one is skipped."""
        if not renames:
            return 0
        async with self.redis.pipeline(transaction=False) as pipe:
            for old, new in renames:
                pipe.rename(old, new)
            replies = await pipe.execute(raise_on_error=False)
        renames.clear()
        for reply in replies:
            if isinstance(reply, Exception) and "no such key" not in str(reply):
                raise reply
        return sum(1 for reply in replies if not isinstance(reply, Exception))

    async def _split_index(self, key: str) -> int:
        moved = 0
        segmented = self.source.is_segmented(key)
        chunks = (self._source_indexes.entries(key) if segmented else self._zscan(key))
        async for chunk in chunks:
            by_partition: dict[int, dict[str, float]] = {}
            for member, score in chunk:
                partition = self.target.partition_of(task_id_of(member))
                by_partition.setdefault(partition, {})[text(member)] = score
            if segmented:
                for partition, members in by_partition.items():
                    await self._target_indexes.add(self._in_partition(key, partition),
                                                   list(members.items()))
            else:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for partition, members in by_partition.items():
                        pipe.zadd(self._in_partition(key, partition), members)
                    await pipe.execute()
            moved += len(chunk)
        if segmented:
            await self._source_indexes.drop([key])
        else:
            await self.redis.unlink(key)
        return moved

    async def _zscan(self, key: str) -> AsyncIterator[list[tuple[str | bytes, float]]]:
        cursor = 0
        while True:
            cursor, chunk = await self.redis.zscan(key, cursor, count=BATCH)
            if chunk:
                yield chunk
            if cursor == 0:
                return

    async def _split_stream(self) -> int:
        """Each entry to its task's partition's stream (or the global one), id kept: in id
        order, so every new stream's ids increase as XADD requires."""
        source, moved, start = self.source.events, 0, "-"
        while entries := await self.redis.xrange(source, min=start, count=BATCH):
            async with self.redis.pipeline(transaction=False) as pipe:
                for entry_id, fields in entries:
                    pipe.xadd(self._stream_for(fields.get(ENTRY_FIELD.encode())),
                              fields, id=entry_id)
                await pipe.execute()
            moved += len(entries)
            start = "(" + text(entries[-1][0])
        await self.redis.unlink(source)
        return moved

    def _stream_for(self, raw: bytes | None) -> str:
        try:
            event = decode_stored(raw)  # type: ignore[arg-type]
        except (msgspec.DecodeError, TypeError):
            return self.target.global_events  # unreadable: kept, where no task claims it
        if event.uuid:
            return self.target.of_task(event.uuid).events
        return self.target.global_events
