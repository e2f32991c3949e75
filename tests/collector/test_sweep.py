"""RetentionSweeper on a real Redis, with projections written by the real EventStore."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.asyncio import Redis

from event_collector.config import Retention
from event_collector.keys import INDEX_SEGMENT_MAX, Keys
from event_collector.store import EventStore
from event_collector.sweep import RetentionSweeper
from tests.events import sent_and_succeeded, task_event
from tests.indexes import index_entries

pytestmark = pytest.mark.anyio

DAY = 86400.0


def sweeper(redis: Redis, keys: Keys, **overrides) -> RetentionSweeper:
    options = {"index_retention_seconds": 30 * DAY, "stream_max_age_seconds": 7 * DAY,
               "queues": ["default"], **overrides}
    return RetentionSweeper(redis, keys, **options)


async def members(redis: Redis, keys: Keys, key: str) -> set[str]:
    return set(await index_entries(redis, keys, key))


async def indexed(redis: Redis, keys: Keys) -> set[str]:
    """Every listed task: the union of the state indexes (each task is in exactly one)."""
    return {m for key in keys.state_indexes for m in await members(redis, keys, key)}


async def test_index_entries_older_than_the_horizon_are_trimmed_recent_ones_kept(
    store_redis: Redis, keys: Keys, event_store: EventStore
):
    now = time.time()
    await event_store.apply(sent_and_succeeded("old", now - 40 * DAY, queue="archive"))
    await event_store.apply(sent_and_succeeded("new", now - 3600, queue="archive"))

    report = await sweeper(store_redis, keys).run_once()

    for key in (keys.index_state("SUCCESS"), keys.index_name("demo.test_task"),
                keys.index_worker("w1@box"), keys.index_queue("archive")):
        assert await members(store_redis, keys, key) == {"new"}, key
    assert await indexed(store_redis, keys) == {"new"}
    assert report.index_entries_trimmed == 4


async def test_index_entries_of_tasks_whose_hash_expired_are_removed(
    store_redis: Redis, keys: Keys
):
    store = EventStore(store_redis, keys, Retention(task_ttl_success_seconds=1))
    now = time.time()
    await store.apply(sent_and_succeeded("short-lived", now - 60))
    await store.apply([task_event("sent", "waiting", now - 30, name="demo.test_task",
                                  queue="default")])
    for _ in range(50):  # the TTL is 1 s
        if not await store_redis.exists(keys.task("short-lived")):
            break
        await asyncio.sleep(0.1)

    report = await sweeper(store_redis, keys).run_once()

    assert report.expired_tasks_unindexed == 1
    assert await indexed(store_redis, keys) == {"waiting"}
    assert await members(store_redis, keys, keys.index_name("demo.test_task")) == {"waiting"}
    assert await members(store_redis, keys, keys.index_state("SUCCESS")) == set()
    assert await members(store_redis, keys, keys.index_worker("w1@box")) == set()


async def test_expired_task_walk_resumes_where_it_stopped_within_its_budget(
    store_redis: Redis, keys: Keys, event_store: EventStore
):
    # in time order the index fills whole segments of n: t0.., tn.., t2n..
    n = INDEX_SEGMENT_MAX
    now = time.time()
    await event_store.apply([task_event("sent", f"t{i}", now - 1000 + i, name="x.y")
                             for i in range(3 * n)])
    late = f"t{2 * n + n // 2}"
    await store_redis.delete(keys.task("t1"), keys.task(late))
    sweep = sweeper(store_redis, keys, expired_check_budget=n, page_size=n)

    first = await sweep.run_once()
    assert first.expired_tasks_unindexed == 1  # one segment checked: the late one waits
    assert late in await members(store_redis, keys, keys.index_state("PENDING"))
    later = [(await sweep.run_once()).expired_tasks_unindexed for _ in range(2)]

    assert later == [0, 1]  # the second segment, then the third
    assert len(await members(store_redis, keys, keys.index_state("PENDING"))) == 3 * n - 2


async def test_children_index_of_an_expired_parent_is_dropped(
    store_redis: Redis, keys: Keys, event_store: EventStore
):
    now = time.time()
    await event_store.apply([
        task_event("sent", "parent", now - 10, name="demo.test_task"),
        task_event("sent", "child", now - 9, name="demo.test_task", parent_id="parent",
                   root_id="parent"),
    ])
    assert await members(store_redis, keys, keys.index_children("parent")) == {"child"}
    await store_redis.delete(keys.task("parent"))

    await sweeper(store_redis, keys).run_once()

    assert not await store_redis.exists(keys.index_children("parent"), keys.index_root("parent"))
    assert await indexed(store_redis, keys) == {"child"}


async def test_stream_entries_older_than_max_age_are_trimmed_recent_ones_kept(
    store_redis: Redis, keys: Keys, event_store: EventStore
):
    eight_days_ago_ms = int((time.time() - 8 * DAY) * 1000)
    for i in range(5):
        await store_redis.xadd(keys.events, {"e": "{}"}, id=f"{eight_days_ago_ms}-{i}")
    await event_store.apply(sent_and_succeeded("recent", time.time()))

    report = await sweeper(store_redis, keys).run_once()

    assert report.stream_entries_trimmed == 5
    assert await store_redis.xlen(keys.events) == 4


async def test_stream_is_also_capped_by_length(store_redis: Redis, keys: Keys):
    async with store_redis.pipeline(transaction=False) as pipe:
        for _ in range(3000):
            pipe.xadd(keys.events, {"e": "{}"})
        await pipe.execute()

    await sweeper(store_redis, keys, stream_maxlen=1000).run_once()

    # MAXLEN ~ trims whole radix-tree nodes (100 entries by default): cheap, slightly over.
    assert 1000 <= await store_redis.xlen(keys.events) <= 1100


async def test_zero_retention_keeps_old_index_entries_and_stream(
    store_redis: Redis, keys: Keys, event_store: EventStore
):
    await event_store.apply(sent_and_succeeded("ancient", time.time() - 400 * DAY))

    await sweeper(store_redis, keys, index_retention_seconds=0,
                  stream_max_age_seconds=0).run_once()

    assert await indexed(store_redis, keys) == {"ancient"}
