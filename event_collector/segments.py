"""Segmented indexes: reads and upkeep (``index.lua``), and the Lua library the writers share
(``segments.lua``; keys.py "Indexes" has the layout).

Every task is in four big indexes (its state, name, queue and worker). As plain sorted sets of
millions of entries Redis keeps them as skiplists, ~130 B an entry; cut into segments of at most
``INDEX_SEGMENT_MAX`` entries each stays a listpack, ~50 B an entry. Readers never see the
segments: they ask this module for a range, a count or a size, one script call per partition
(a call's keys share the partition's hash slot), all partitions at once (``run_many``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from importlib import resources
from typing import Any, Final

from event_collector.keys import INDEX_SEGMENT_MAX, Keys
from event_collector.replies import text
from event_collector.scripts import run_many

LIBRARY: Final = (
    f"local SEGMENT_MAX = {INDEX_SEGMENT_MAX}\n"
    + resources.files("event_collector").joinpath("segments.lua").read_text()
)


def with_library(script: str) -> str:
    """A script's source with the segmented-index library in front of it."""
    return f"{LIBRARY}\n{script}"


INDEX_SCRIPT: Final = with_library(
    resources.files("event_collector").joinpath("index.lua").read_text()
)

Bound = float | str  # a ZRANGE BYSCORE bound: a number, "(x", "+inf", "-inf"


def _bound(value: Bound) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def script_head(partition_keys: Keys, op: str) -> list[str]:
    """The first arguments of an ``INDEX_SCRIPT`` call on that partition's indexes."""
    return [op, partition_keys.index_segment_prefix, partition_keys.index_summaries]


def size_of(summary: bytes | str | None) -> int:
    """An index's number of entries from its ``Keys.index_summaries`` field (None: empty)."""
    return int(summary.split()[0]) if summary else 0


def range_args(upper: Bound, lower: Bound, limit: int, desc: bool = True) -> list[Any]:
    """The arguments after ``script_head(k, "range")``: the reply is one flat member, score
    list per index (a client without asyncio calls ``INDEX_SCRIPT`` itself: bench/)."""
    return [_bound(upper), _bound(lower), limit, "desc" if desc else "asc"]


class Indexes:
    """Index reads and upkeep for one store. Index keys may be of any partitions (each call is
    split by partition, keys.py ``Keys.partition_of_index``) and of either kind: the plain
    sorted sets (children, root, fingerprint) are read with the sorted-set commands."""

    def __init__(self, redis: Any, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._script = redis.register_script(INDEX_SCRIPT)

    def _by_partition(self, indexes: Sequence[str]) -> dict[int, list[int]]:
        """Positions of ``indexes`` by the partition each belongs to (one script call each)."""
        groups: dict[int, list[int]] = {}
        for i, index in enumerate(indexes):
            groups.setdefault(self.keys.partition_of_index(index), []).append(i)
        return groups

    async def _run_each_partition(
        self, indexes: Sequence[str], op: str, args: Sequence[Any],
        groups: dict[int, list[int]] | None = None,
    ) -> list[Any]:
        """``op`` once per partition over that partition's indexes: one reply per call."""
        if not indexes:
            return []
        groups = self._by_partition(indexes) if groups is None else groups
        return await run_many(self.redis, self._script, [
            ([indexes[i] for i in at], self._head(op, partition) + list(args))
            for partition, at in groups.items()
        ])  # fmt: skip

    async def _per_partition(
        self, indexes: Sequence[str], op: str, args: Sequence[Any]
    ) -> list[Any]:
        """``op`` over ``indexes`` (one reply item per index, in their order)."""
        groups = self._by_partition(indexes)
        replies = await self._run_each_partition(indexes, op, args, groups)
        out: list[Any] = [None] * len(indexes)
        for at, reply in zip(groups.values(), replies, strict=True):
            for i, item in zip(at, reply, strict=True):
                out[i] = item
        return out

    async def _by_kind(
        self, indexes: Sequence[str], segmented: Any, plain: Any
    ) -> list[Any]:
        """One reply per index, in order: ``segmented(keys)`` for the segmented ones,
        ``plain(pipe, key)`` queued in one pipeline for the others."""
        out: list[Any] = [None] * len(indexes)
        seg_at = [i for i, key in enumerate(indexes) if self.keys.is_segmented(key)]
        plain_at = [i for i, key in enumerate(indexes) if not self.keys.is_segmented(key)]
        if seg_at:
            for i, reply in zip(seg_at, await segmented([indexes[i] for i in seg_at]),
                                strict=True):
                out[i] = reply
        if plain_at:
            async with self.redis.pipeline(transaction=False) as pipe:
                for i in plain_at:
                    plain(pipe, indexes[i])
                for i, reply in zip(plain_at, await pipe.execute(), strict=True):
                    out[i] = reply
        return out

    def _head(self, op: str, partition: int) -> list[str]:
        return script_head(self.keys.in_partition(partition), op)

    async def ranges(
        self, indexes: Sequence[str], upper: Bound, lower: Bound, limit: int,
        *, desc: bool = True,
    ) -> list[list[tuple[bytes, float]]]:
        """Per index up to ``limit`` (member, score) with lower <= score <= upper, newest first
        (oldest first unless ``desc``): what ZRANGE BYSCORE [REV] LIMIT 0 limit gives."""
        async def segmented(keys: Sequence[str]) -> list[Any]:
            replies = await self._per_partition(keys, "range", range_args(upper, lower, limit,
                                                                          desc))
            return [
                [(flat[i], float(flat[i + 1])) for i in range(0, len(flat), 2)]
                for flat in replies
            ]

        def plain(pipe: Any, key: str) -> None:
            low, high = (upper, lower) if desc else (lower, upper)
            pipe.zrange(key, low, high, byscore=True, desc=desc, offset=0, num=limit,
                        withscores=True)

        return await self._by_kind(indexes, segmented, plain)

    async def counts(self, indexes: Sequence[str], lower: Bound, upper: Bound) -> list[int]:
        """Per index the entries with lower <= score <= upper (ZCOUNT)."""
        async def segmented(keys: Sequence[str]) -> list[Any]:
            return await self._per_partition(keys, "count", [_bound(lower), _bound(upper)])

        def plain(pipe: Any, key: str) -> None:
            pipe.zcount(key, lower, upper)

        return [int(n) for n in await self._by_kind(indexes, segmented, plain)]

    async def sizes(self, indexes: Sequence[str]) -> list[int]:
        """Per index its number of entries (ZCARD): one hash read per partition."""
        return await self.counts(indexes, "-inf", "+inf")

    async def trim(self, indexes: Sequence[str], cutoff: float) -> int:
        """Drop the entries scored below ``cutoff``; how many went."""
        return sum(
            int(n) for n in await self._run_each_partition(indexes, "trim", [repr(cutoff)])
        )

    async def remove(self, indexes: Sequence[str], entries: Sequence[tuple[str, float]]) -> None:
        """Remove each (member, score) from every index (the score it is indexed under)."""
        if entries:
            await self._run_each_partition(indexes, "remove", _flat(entries))

    async def add(self, index: str, entries: Sequence[tuple[str | bytes, float]]) -> None:
        if entries:
            await self._run_each_partition([index], "add", _flat(entries))

    async def drop(self, indexes: Sequence[str]) -> int:
        """Delete the indexes with their segments; how many entries they held."""
        return sum(int(n) for n in await self._run_each_partition(indexes, "drop", []))

    async def page(
        self, index: str, after: str, size: int
    ) -> tuple[list[tuple[str, float]], str]:
        """Whole segments of a segmented index, oldest first, from the one after the segment
        starting at ``after`` ("" = the first) until about ``size`` entries: the entries as
        (member, score) and where the next page starts ("" when this was the last)."""
        reply = (await self._run_each_partition([index], "page", [after, size]))[0]
        flat = reply[1:]
        entries = [(text(flat[i]), float(flat[i + 1])) for i in range(0, len(flat), 2)]
        return entries, text(reply[0]) if entries else ""

    async def entries(
        self, index: str, size: int = 1000
    ) -> AsyncIterator[list[tuple[str, float]]]:
        """Every (member, score) of a segmented index, oldest first, a page at a time."""
        after = ""
        while True:
            entries, after = await self.page(index, after, size)
            if entries:
                yield entries
            if not after:
                return

    async def snapshot(self, index: str) -> dict[str, float]:
        """Every entry of an index (of either kind) as member -> score: for checks and tools,
        not for request paths (it reads the whole index)."""
        if not self.keys.is_segmented(index):
            return {text(m): s for m, s in await self.redis.zrange(index, 0, -1, withscores=True)}
        return {m: s async for chunk in self.entries(index) for m, s in chunk}



async def migrate_plain_indexes(redis: Any, keys: Keys) -> int:
    """Convert the indexes a store written before segmentation has (plain sorted sets of task
    members) to segmented ones, in place; returns the entries moved. Each is first renamed
    aside (``Keys.index_migration``), then moved over a chunk at a time: a start interrupted
    half-way resumes from what is left aside (adding an entry twice is a no-op). Run by the
    collector before it writes anything (service.py); older collectors must be stopped.

    Every start runs this, so it first looks at the state indexes only (every indexed task is in
    one, and they are set aside last and moved last): a store with none plain and none aside
    needs no walk of its keyspace."""
    indexes = Indexes(redis, keys)
    states = [key for k in keys.each_partition() for key in k.state_indexes]
    if not await _conversion_due(redis, keys, indexes, states):
        return 0
    last = set(states)
    found = [text(raw) async for raw in redis.scan_iter(match=keys.index_migration("*"),
                                                        count=1000, _type="zset")]
    aside = [key[len(keys.index_migration("")):] for key in found]
    for k in keys.each_partition():
        candidates = sorted(
            (key for raw in [r async for r in redis.scan_iter(match=k.index_pattern,
                                                              count=1000, _type="zset")]
             if k.is_segmented(key := text(raw))),
            key=last.__contains__,
        )
        plain = await indexes._per_partition(candidates, "plain", []) if candidates else []
        for key, is_plain in zip(candidates, plain, strict=True):
            if int(is_plain):
                await redis.rename(key, keys.index_migration(key))
                aside.append(key)
    moved = 0
    for index in sorted(aside, key=last.__contains__):
        old = keys.index_migration(index)
        # oldest first, so segments fill up as they do when tasks arrive in time order
        while chunk := await redis.zrange(old, 0, 999, withscores=True):
            await indexes.add(index, chunk)
            await redis.zremrangebyrank(old, 0, len(chunk) - 1)
            moved += len(chunk)
    return moved


async def _conversion_due(
    redis: Any, keys: Keys, indexes: Indexes, states: Sequence[str]
) -> bool:
    """Whether a state index is still a plain sorted set, or still set aside."""
    if any(int(plain) for plain in await indexes._per_partition(states, "plain", [])):
        return True
    async with redis.pipeline(transaction=False) as pipe:
        for key in states:
            pipe.exists(keys.index_migration(key))
        return any(await pipe.execute())


def _flat(entries: Sequence[tuple[str | bytes, float]]) -> list[Any]:
    out: list[Any] = []
    for member, score in entries:
        out += [member, repr(score)]
    return out
