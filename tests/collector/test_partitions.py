"""Partitioned stores (TASKPULSE_PARTITIONS): the partition function, the key layout, and the
read side answering exactly as one partition does for the same events (a real redis-server)."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from typing import Any

import pytest
from redis.asyncio import Redis

from event_collector.config import Retention
from event_collector.connection import StoreUrlError, store_keys
from event_collector.events import Event
from event_collector.keys import Keys, partition_of
from event_collector.read import EventReader, TaskQuery
from event_collector.repartition import Repartitioner, RepartitionReport
from event_collector.segments import Indexes
from event_collector.store import EventStore
from event_collector.sweep import RetentionSweeper
from event_collector.task_ids import task_id_of
from event_collector.workflows import WorkflowReader
from tests.collector.conftest import STORE_DB, RedisServer, run
from tests.events import sent_and_succeeded, task_event, worker_event

# -- the partition function (pure) ------------------------------------------------------------


def test_partition_is_crc32_of_the_id_and_stable_across_releases() -> None:
    # Written down once: a change here would send readers to the wrong partition of a store
    # written by an older release. CRC-32("a") = 0xe8b7be43, 0x43 % 8 = 3.
    assert [partition_of(i, 8) for i in ("a", "task-1", "0f8fad5b-d9cb-469f-a165-70867728950e")
            ] == [3, 7, 0]
    assert partition_of("anything", 1) == 0


def test_partitions_spread_uuids_evenly() -> None:
    rng = random.Random(7)
    ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(16_000)]
    counts = Counter(partition_of(i, 8) for i in ids)
    assert set(counts) == set(range(8))
    assert all(1_800 < n < 2_200 for n in counts.values()), counts


def test_one_partition_on_one_redis_keeps_the_unpartitioned_names() -> None:
    keys = Keys.layout("tp:")
    assert (keys.events, keys.task("x"), keys.index_state("SUCCESS"), keys.workers,
            keys.counters("minute", 60)) == (
        "tp:events", "tp:task:x", "tp:idx:state:SUCCESS", "tp:workers", "tp:cnt:m:60")
    assert keys.streams == ["tp:events"]


def test_a_partition_shares_one_hash_tag_and_the_workers_another() -> None:
    keys = Keys.layout("tp:", partitions=8)
    p = partition_of("x", 8)
    mine = keys.of_task("x")
    assert mine.partition == p
    tag = f"{{p{p}}}"
    for key in (keys.task("x"), mine.events, mine.index_state("SUCCESS"),
                mine.index_children("x"), mine.counters_total, mine.counters("hour", 3600)):
        assert key.startswith(f"tp:{tag}:"), key
    # task() routes by id whatever partition the builder is of
    assert keys.in_partition((p + 1) % 8).task("x") == keys.task("x")
    for key in (keys.workers, keys.worker("w"), keys.worker_dedup("e"), keys.global_events):
        assert key.startswith("tp:{g}:"), key
    assert len(keys.streams) == 9
    # a cluster tags even one partition, so each script call stays in one slot
    assert Keys.layout("tp:", cluster=True).task("x") == "tp:{p0}:task:x"
    with pytest.raises(ValueError, match="at least 1"):
        Keys.layout("tp:", partitions=0)


# -- the same events, one partition vs eight ----------------------------------------------------

NAMES = ("demo.add", "finance.report", "email.send")
QUEUES = ("default", "finance")
HOSTS = ("w1@box", "w2@box")


def workload(seed: int = 3) -> list[Event]:
    """400 tasks in every state, with retries, workflows (root -> children -> grandchildren)
    spread over partitions, progress-only tasks and worker events; shuffled."""
    rng = random.Random(seed)
    events: list[Event] = []
    base = 1_700_000_000.0
    families: dict[str, list[str]] = {}  # root -> its tasks (the root first)
    for i in range(400):
        task_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        ts = base + i * 7.3 + rng.random()
        name, queue, host = rng.choice(NAMES), rng.choice(QUEUES), rng.choice(HOSTS)
        family: dict[str, Any] = {}
        if families and rng.random() < 0.4:
            root = rng.choice(sorted(families))
            family = {"root_id": root, "parent_id": rng.choice(families[root])}
            families[root].append(task_id)
        elif rng.random() < 0.2:
            families[task_id] = [task_id]
        events.append(task_event("sent", task_id, ts, hostname="api@gen", name=name,
                                 queue=queue, **family))
        fate = rng.choice(("SUCCESS", "FAILURE", "STARTED", "PENDING", "RETRY", "REVOKED"))
        if fate == "PENDING":
            continue
        if fate == "REVOKED":
            events.append(task_event("revoked", task_id, ts + 1, hostname=host))
            continue
        events.append(task_event("received", task_id, ts + 0.1, hostname=host, name=name,
                                 **family))
        events.append(task_event("started", task_id, ts + 0.2, hostname=host))
        if fate == "SUCCESS":
            events.append(task_event("succeeded", task_id, ts + 0.5, hostname=host,
                                     runtime=0.3, result="1"))
        elif fate == "FAILURE":
            events.append(task_event("failed", task_id, ts + 0.5, hostname=host,
                                     exception="ValueError('x')"))
        elif fate == "RETRY":
            events.append(task_event("retried", task_id, ts + 0.5, hostname=host,
                                     exception="Timeout()"))
    for i in range(5):  # progress before anything else: tasks with no state yet
        events.append(task_event("progress", f"progress-only-{i}", base + 3 + i,
                                 progress_current=1.0, progress_total=4.0))
    events += [worker_event("online", h, base) for h in HOSTS]
    events += [worker_event("heartbeat", h, base + 30, active=1) for h in HOSTS]
    rng.shuffle(events)
    return events


QUERIES = [
    TaskQuery(),
    TaskQuery(state="SUCCESS"),
    TaskQuery(name="finance.report"),
    TaskQuery(queue="default", limit=9),
    TaskQuery(worker="w2@box"),
    TaskQuery(name="demo.add", state="FAILURE", limit=4),
    TaskQuery(name="email.send", queue="finance", since=1_700_000_500.0,
              until=1_700_002_000.0, limit=3),
]


async def answers(
    redis: Redis, keys: Keys, events: list[Event], fold: bool = True
) -> dict[str, Any]:
    """Everything the read side answers about ``events`` folded (unless ``fold`` is false:
    they are there already) into a store of ``keys``."""
    store = EventStore(redis, keys)
    for start in range(0, len(events) if fold else 0, 97):  # batches spanning many partitions
        await store.apply(events[start : start + 97])
    reader, trees = EventReader(redis, keys), WorkflowReader(redis, keys)
    out: dict[str, Any] = {}
    for i, query in enumerate(QUERIES):
        pages, cursor = [], None
        while True:
            page = await reader.list_tasks(TaskQuery(**{
                **{f: getattr(query, f) for f in query.__struct_fields__}, "cursor": cursor}))
            pages.append([t.id for t in page.items])
            cursor = page.next_cursor
            if not page.items or cursor is None:
                break
        out[f"list{i}"] = pages
        out[f"count{i}"] = await reader.count_tasks(query)
    out["failures"] = await reader.failure_groups(limit=50, now=1_700_003_000.0)
    out["by_exception"] = await reader.list_tasks(TaskQuery(exception="ValueError", limit=500))
    out["search"] = await reader.count_tasks(TaskQuery(q="timeout"))
    out["stats"] = await reader.stats(now=1_700_000_040.0)
    for granularity in ("minute", "hour"):
        out[granularity] = await reader.history(granularity, 1_699_999_000.0, 1_700_004_000.0)
        out[granularity + "-named"] = await reader.history(
            granularity, 1_699_999_000.0, 1_700_004_000.0, name="demo.add")
    ids = sorted({e.uuid for e in events if e.uuid})
    out["tasks"] = [await reader.get_task(i) for i in ids]
    out["details"] = [await reader.task_detail(i) for i in ids]
    out["trees"] = [await trees.tree(i) for i in ids]
    out["children"] = [await reader.children(i) for i in ids]
    out["workflows"] = [await reader.workflow(i) for i in ids]
    return out


def test_eight_partitions_answer_every_query_as_one_does(clean_redis: RedisServer) -> None:
    events = workload()

    async def both() -> tuple[dict[str, Any], dict[str, Any]]:
        redis = Redis.from_url(clean_redis.url(STORE_DB))
        try:
            one = await answers(redis, Keys.layout("one:"), events)
            eight = await answers(redis, Keys.layout("eight:", partitions=8), events)
            return one, eight
        finally:
            await redis.aclose()

    one, eight = run(both())
    sync = clean_redis.client(STORE_DB)
    written = [k.decode() for k in sync.keys("eight:*")]
    tags = Counter(k.split(":")[1] for k in written if k.startswith("eight:{p"))
    assert set(tags) == {f"{{p{p}}}" for p in range(8)}  # the events did spread
    assert sum(len(p) for p in one["list0"]) == 405  # every task listed once
    assert any(one["children"])
    assert one["failures"].items
    assert one["by_exception"].items
    assert any(t is not None and t.total > 5 for t in one["trees"])
    for key in one:
        assert eight[key] == one[key], key


def test_rebuild_refolds_every_partition_stream(clean_redis: RedisServer) -> None:
    events = workload(seed=5)
    keys = Keys.layout("tp:", partitions=8)

    async def fold_then_rebuild() -> tuple[Any, Any, int]:
        redis = Redis.from_url(clean_redis.url(STORE_DB))
        try:
            store = EventStore(redis, keys)
            await store.apply(events)
            reader = EventReader(redis, keys)
            before = (await reader.stats(now=1_700_000_040.0),
                      await reader.list_tasks(TaskQuery(limit=500)))
            seen, _ = await store.rebuild()
            after = (await reader.stats(now=1_700_000_040.0),
                     await reader.list_tasks(TaskQuery(limit=500)))
            return before, after, seen
        finally:
            await redis.aclose()

    before, after, seen = run(fold_then_rebuild())
    assert after == before
    assert seen == len(events)  # every event is in exactly one stream


def test_repartition_moves_a_one_partition_store_exactly(clean_redis: RedisServer) -> None:
    """The same events folded into 8 partitions directly, and folded into one then moved with
    ``taskpulse-collector repartition``: every answer and every stream entry the same."""
    events = workload(seed=11)
    eight = Keys.layout("tp:", partitions=8)

    async def moved_and_direct() -> tuple[dict[str, Any], dict[str, Any], RepartitionReport]:
        redis = Redis.from_url(clean_redis.url(STORE_DB))
        try:
            # the queue poller's hash, as it is in each
            await redis.hset(Keys.layout("direct:", partitions=8).queues, mapping={"default": 3})
            direct = await answers(redis, Keys.layout("direct:", partitions=8), events)
            store = EventStore(redis, Keys.layout("tp:"))
            for start in range(0, len(events), 97):
                await store.apply(events[start : start + 97])
            await redis.hset(Keys.layout("tp:").queues, mapping={"default": 3})
            report = await Repartitioner(redis, eight).run()
            moved = await answers(redis, eight, events, fold=False)
            return direct, moved, report
        finally:
            await redis.aclose()

    direct, moved, report = run(moved_and_direct())
    sync = clean_redis.client(STORE_DB)
    left = [k.decode() for k in sync.keys("tp:*") if not k.startswith(b"tp:{")]
    assert left == []  # nothing of the old layout is left behind
    assert sync.hget(eight.queues, "default") == b"3"
    assert report.tasks == 405
    assert report.stream_entries == len(events)
    for key in direct:
        assert moved[key] == direct[key], key
    streams = {
        stream: sorted(f[b"e"] for _, f in sync.xrange(stream))
        for stream in eight.streams
    }
    direct_streams = {
        stream.replace("direct:", "tp:"): sorted(f[b"e"] for _, f in sync.xrange(stream))
        for stream in Keys.layout("direct:", partitions=8).streams
    }
    assert streams == direct_streams


def test_each_partitions_sweep_unindexes_its_expired_tasks_and_trims_its_stream(
    clean_redis: RedisServer,
) -> None:
    keys = Keys.layout("tp:", partitions=8)
    now = time.time()

    async def sweep_all() -> tuple[set[str], int]:
        redis = Redis.from_url(clean_redis.url(STORE_DB))
        try:
            store = EventStore(redis, keys, Retention(task_ttl_success_seconds=1))
            for i in range(40):
                await store.apply(sent_and_succeeded(f"gone-{i}", now - 60 + i))
                await store.apply([task_event("sent", f"kept-{i}", now - 30 + i,
                                              name="demo.test_task", queue="default")])
            await store.apply([worker_event("online", "w1@box", now)])  # the global stream
            for _ in range(50):  # the TTL is 1 s
                if not await redis.exists(keys.task("gone-39")):
                    break
                await asyncio.sleep(0.1)
            for partition_keys in keys.each_partition():
                # every entry is older than half a second by now: each stream is emptied
                await RetentionSweeper(
                    redis, partition_keys, index_retention_seconds=30 * 86400.0,
                    stream_max_age_seconds=0.5,
                ).run_once()
            listed = {
                task_id_of(m) for k in keys.each_partition()
                for index in (*k.state_indexes, k.index_name("demo.test_task"))
                for m in await Indexes(redis, keys).snapshot(index)
            }
            return listed, sum([await redis.xlen(s) for s in keys.streams])
        finally:
            await redis.aclose()

    listed, stream_entries = run(sweep_all())
    assert listed == {f"kept-{i}" for i in range(40)}
    assert stream_entries == 0  # every partition's stream and the global one were trimmed


def test_settings_pick_the_cluster_layout_by_url_prefix_and_partitions() -> None:
    one = store_keys("redis+cluster://a:7000", "")
    assert (one.prefix, one.tagged, one.task("x")) == ("{tp}:", False, "{tp}:task:x")
    eight = store_keys("redis+cluster://a:7000", "", partitions=8)
    assert eight.prefix == "tp:"
    assert eight.task("x") == f"tp:{{p{partition_of('x', 8)}}}:task:x"
    assert eight.beat_prefix == one.beat_prefix == "redbeat:{tp}:"  # beat keeps one slot
    assert store_keys("redis://h:6379/1", "", partitions=8).beat_prefix == "redbeat:tp:"
    with pytest.raises(StoreUrlError, match="has a hash tag"):
        store_keys("redis+cluster://a:7000", "{tp}:", partitions=8)


@pytest.mark.parametrize("partitions", [1, 8])
def test_failure_groups_of_an_empty_store_are_an_empty_page(
    clean_redis: RedisServer, partitions: int
) -> None:
    async def read() -> Any:
        redis = Redis.from_url(clean_redis.url(STORE_DB))
        try:
            return await EventReader(redis, Keys.layout("tp:", partitions)).failure_groups()
        finally:
            await redis.aclose()

    page = run(read())
    assert (page.items, page.next_cursor) == ([], None)
