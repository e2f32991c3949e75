"""The task timeline kept in the task hash: order, cap, and dedup past the cap (real Redis)."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from event_collector.config import Retention
from event_collector.keys import Keys
from event_collector.read import EventReader
from event_collector.store import EventStore
from tests.events import task_event

pytestmark = pytest.mark.anyio


def retried_task(task_id: str, attempts: int) -> list:
    events = [task_event("sent", task_id, 100.0, hostname="gen1@api", name="demo.x")]
    for i in range(attempts):
        ts = 101.0 + i
        events += [task_event("received", task_id, ts, name="demo.x", retries=i),
                   task_event("retried", task_id, ts + 0.5, exception="E('x')")]
    return events


async def test_timeline_reads_oldest_first_whatever_the_arrival_order(
    event_store: EventStore, store_redis: Redis, keys: Keys,
):
    events = retried_task("t1", 2)
    await event_store.apply(list(reversed(events)))
    timeline = await EventReader(store_redis, keys).timeline("t1")
    assert [e.timestamp for e in timeline] == sorted(e.timestamp for e in events)
    assert timeline[0].type == "task-sent"
    assert timeline[0].hostname == "gen1@api"
    assert timeline[2].fields == {"exception": "E('x')"}


async def test_timeline_keeps_the_newest_entries_and_the_newest_of_each_kind_up_to_its_cap(
    store_redis: Redis, keys: Keys,
):
    store = EventStore(store_redis, keys, Retention(timeline_max=4))
    events = retried_task("t1", 3)  # sent, then 3 x (received, retried)
    await store.apply(events)
    timeline = await EventReader(store_redis, keys).timeline("t1")
    assert [e.timestamp for e in timeline] == [100.0, 102.5, 103.0, 103.5]


async def test_a_trimmed_timeline_still_gives_the_record_its_timestamps(
    store_redis: Redis, keys: Keys,
):
    store = EventStore(store_redis, keys, Retention(timeline_max=4))
    await store.apply(retried_task("t1", 3)[1:])  # no task-sent: the first event gets trimmed
    record = await EventReader(store_redis, keys).get_task("t1")
    assert record is not None
    assert (record.first_seen, record.received, record.retried) == (101.0, 103.0, 103.5)
    assert record.updated == 103.5


async def test_an_event_trimmed_off_the_timeline_is_still_a_duplicate(
    store_redis: Redis, keys: Keys,
):
    store = EventStore(store_redis, keys, Retention(timeline_max=4))
    events = retried_task("t1", 3)
    await store.apply(events)
    again = await store.apply(events[:3])
    assert (len(again.applied), again.duplicates) == (0, 3)
    assert await store_redis.hget(keys.counters_total, "demo.x|RECEIVED") == b"3"


async def test_each_entry_reads_back_its_own_hostname(
    event_store: EventStore, store_redis: Redis, keys: Keys,
):
    await event_store.apply([
        task_event("sent", "t1", 100.0, hostname="gen1@api", name="demo.x"),
        task_event("received", "t1", 101.0, hostname="w1@h", name="demo.x"),
        task_event("started", "t1", 102.0, hostname="w1@h"),
        task_event("succeeded", "t1", 103.0, hostname="w2@h"),
    ])
    timeline = await EventReader(store_redis, keys).timeline("t1")
    assert [e.hostname for e in timeline] == ["gen1@api", "w1@h", "w1@h", "w2@h"]


async def test_the_task_hash_keeps_its_timestamps_only_in_the_timeline(
    event_store: EventStore, store_redis: Redis, keys: Keys,
):
    await event_store.apply([
        task_event("sent", "t1", 100.0, name="demo.x"),
        task_event("started", "t1", 102.0),
        task_event("succeeded", "t1", 103.0),
    ])
    fields = {f.decode() for f in await store_redis.hkeys(keys.task("t1"))}
    assert fields.isdisjoint({"sent", "started", "succeeded", "first_seen", "updated"})
    record = await EventReader(store_redis, keys).get_task("t1")
    assert record is not None
    assert (record.sent, record.started, record.succeeded) == (100.0, 102.0, 103.0)
    assert (record.first_seen, record.updated) == (100.0, 103.0)
