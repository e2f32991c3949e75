"""Segmented indexes (segments.lua, index.lua) on a real redis-server: whatever the order of adds,
removals and re-scores, an index answers like one sorted set would, and its segments stay small
enough for Redis' compact encoding."""

from __future__ import annotations

import random
import time

import pytest
from redis.asyncio import Redis

from event_collector.keys import INDEX_SEGMENT_MAX, Keys
from event_collector.read import EventReader, TaskQuery
from event_collector.segments import Indexes, migrate_plain_indexes
from event_collector.store import EventStore
from tests.events import sent_and_succeeded

pytestmark = pytest.mark.anyio

INDEX = "tp:idx:name:demo"


def model_range(model: dict[str, float], low: float, high: float) -> list[tuple[str, float]]:
    """What ZRANGE low high BYSCORE WITHSCORES gives on one sorted set (ascending)."""
    return sorted(((m, s) for m, s in model.items() if low <= s <= high),
                  key=lambda e: (e[1], e[0]))


async def segments_of(redis: Redis, keys: Keys) -> list[bytes]:
    return [key async for key in redis.scan_iter(match=keys.index_segment_prefix + "*:*",
                                                  _type="zset")]


async def churn(indexes: Indexes, rng: random.Random, n: int) -> dict[str, float]:
    """Adds (some in time order, some late), removals and re-scores; returns the model."""
    model: dict[str, float] = {}
    for i in range(n):
        member = f"m{i:05d}"
        score = 1000.0 + i * 0.5 if rng.random() < 0.7 else 1000.0 + rng.uniform(0, n * 0.5)
        score = round(score, 3) if rng.random() < 0.9 else 1000.0  # runs of equal scores
        await indexes.add(INDEX, [(member, score)])
        model[member] = score
        if rng.random() < 0.2:
            gone = rng.choice(sorted(model))
            await indexes.remove([INDEX], [(gone, model.pop(gone))])
        if rng.random() < 0.1:
            moved = rng.choice(sorted(model))
            await indexes.remove([INDEX], [(moved, model[moved])])
            model[moved] = round(model[moved] - rng.uniform(0, 50), 3)
            await indexes.add(INDEX, [(moved, model[moved])])
    return model


async def test_an_index_holds_exactly_what_one_sorted_set_would(store_redis: Redis, keys: Keys):
    indexes = Indexes(store_redis, keys)
    model = await churn(indexes, random.Random(7), 1500)

    assert await indexes.snapshot(INDEX) == model
    assert await indexes.sizes([INDEX]) == [len(model)]


async def test_ranges_and_counts_match_one_sorted_set_for_any_window(
    store_redis: Redis, keys: Keys
):
    indexes = Indexes(store_redis, keys)
    rng = random.Random(11)
    model = await churn(indexes, rng, 1200)
    for _ in range(40):
        low, high = sorted(rng.uniform(990, 1700) for _ in range(2))
        limit = rng.choice([1, 7, 50, 500, 5000])
        expected = model_range(model, low, high)
        (desc,) = await indexes.ranges([INDEX], high, low, limit)
        (asc,) = await indexes.ranges([INDEX], high, low, limit, desc=False)
        assert [(m.decode(), s) for m, s in desc] == expected[::-1][:limit]
        assert [(m.decode(), s) for m, s in asc] == expected[:limit]
        assert await indexes.counts([INDEX], low, high) == [len(expected)]
        assert await indexes.counts([INDEX], f"({low!r}", "+inf") == [
            sum(1 for s in model.values() if s > low)
        ]


async def test_every_segment_stays_a_listpack(store_redis: Redis, keys: Keys):
    await churn(Indexes(store_redis, keys), random.Random(3), 2000)

    for key in await segments_of(store_redis, keys):
        scores = {s for _, s in await store_redis.zrange(key, 0, -1, withscores=True)}
        if len(scores) == 1:
            continue  # a run of one score cannot be split: it may outgrow a segment
        assert await store_redis.zcard(key) <= INDEX_SEGMENT_MAX
        assert await store_redis.object("encoding", key) == b"listpack"


async def test_entries_added_in_time_order_fill_whole_segments(store_redis: Redis, keys: Keys):
    indexes = Indexes(store_redis, keys)
    for start in range(0, 1000, 100):
        await indexes.add(INDEX, [(f"m{i}", 1000.0 + i) for i in range(start, start + 100)])

    assert len(await segments_of(store_redis, keys)) == -(-1000 // INDEX_SEGMENT_MAX)


async def test_trimming_drops_exactly_the_entries_below_the_cutoff(
    store_redis: Redis, keys: Keys
):
    indexes = Indexes(store_redis, keys)
    model = await churn(indexes, random.Random(5), 1000)

    removed = await indexes.trim([INDEX], 1200.0)

    assert removed == sum(1 for s in model.values() if s < 1200.0)
    assert await indexes.snapshot(INDEX) == {m: s for m, s in model.items() if s >= 1200.0}
    assert await indexes.sizes([INDEX]) == [len(model) - removed]


async def test_removing_every_entry_leaves_no_key_behind(store_redis: Redis, keys: Keys):
    indexes = Indexes(store_redis, keys)
    model = await churn(indexes, random.Random(9), 600)

    await indexes.remove([INDEX], list(model.items()))

    assert await store_redis.keys("*") == []


async def as_written_before_segments(redis: Redis, keys: Keys) -> dict[str, dict[str, float]]:
    """Turn every segmented index into the plain sorted set an older release wrote; returns
    what each held."""
    indexes = Indexes(redis, keys)
    held: dict[str, dict[str, float]] = {}
    async for raw in redis.scan_iter(match=keys.index_pattern, _type="zset"):
        if keys.is_segmented(index := raw.decode()):
            held[index] = await indexes.snapshot(index)
    for index, entries in held.items():
        await indexes.drop([index])
        await redis.zadd(index, entries)
    return held


async def test_indexes_an_older_release_wrote_are_converted_in_place(
    store_redis: Redis, keys: Keys, event_store: EventStore
):
    now = time.time()
    for i in range(300):
        await event_store.apply(sent_and_succeeded(f"t{i}", now - 1000 + i, queue="q"))
    held = await as_written_before_segments(store_redis, keys)

    moved = await migrate_plain_indexes(store_redis, keys)

    assert moved == sum(len(entries) for entries in held.values()) == 4 * 300
    indexes = Indexes(store_redis, keys)
    assert {index: await indexes.snapshot(index) for index in held} == held
    page = await EventReader(store_redis, keys).list_tasks(TaskQuery(queue="q", limit=5))
    assert [t.id for t in page.items] == [f"t{i}" for i in range(299, 294, -1)]
    assert await migrate_plain_indexes(store_redis, keys) == 0  # nothing left to convert


async def test_a_conversion_interrupted_after_setting_an_index_aside_resumes(
    store_redis: Redis, keys: Keys, event_store: EventStore
):
    await event_store.apply(sent_and_succeeded("t1", time.time(), queue="q"))
    held = await as_written_before_segments(store_redis, keys)
    index = keys.index_queue("q")
    await store_redis.rename(index, keys.index_migration(index))  # then the collector died

    await migrate_plain_indexes(store_redis, keys)

    assert await Indexes(store_redis, keys).snapshot(index) == held[index]
    assert not await store_redis.exists(keys.index_migration(index))


async def test_emptying_the_newest_segment_and_adding_again_keeps_one_place_per_score(
    store_redis: Redis, keys: Keys
):
    indexes = Indexes(store_redis, keys)
    n = INDEX_SEGMENT_MAX
    model = {f"m{i}": 1000.0 + i for i in range(3 * n)}
    await indexes.add(INDEX, list(model.items()))
    newest = [(m, s) for m, s in model.items() if s >= 1000.0 + 2 * n]
    await indexes.remove([INDEX], newest)  # the newest segment empties and goes
    for m, _ in newest:
        del model[m]
    later = {f"late{i}": 1000.0 + 2 * n - 0.5 + i for i in range(10)}  # around the old edge
    await indexes.add(INDEX, list(later.items()))
    model |= later

    assert await indexes.snapshot(INDEX) == model
    (desc,) = await indexes.ranges([INDEX], "+inf", "-inf", 15)
    assert [m.decode() for m, _ in desc] == sorted(model, key=model.__getitem__)[::-1][:15]
    assert await indexes.sizes([INDEX]) == [len(model)]


async def test_an_index_trimmed_to_nothing_starts_again(store_redis: Redis, keys: Keys):
    indexes = Indexes(store_redis, keys)
    await indexes.add(INDEX, [(f"m{i}", 1000.0 + i) for i in range(200)])
    assert await indexes.trim([INDEX], 5000.0) == 200

    await indexes.add(INDEX, [("again", 6000.0)])

    assert await indexes.snapshot(INDEX) == {"again": 6000.0}
    assert await indexes.sizes([INDEX]) == [1]
