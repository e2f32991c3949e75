"""The task timeline kept in the task hash: order, cap, and dedup past the cap (real Redis)."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from event_collector.config import Retention
from event_collector.keys import Keys
from event_collector.read import EventReader
from event_collector.store import EventStore
from tests.collector_parts.events import task_event

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


async def test_timeline_keeps_the_newest_entries_up_to_its_cap(store_redis: Redis, keys: Keys):
    store = EventStore(store_redis, keys, Retention(timeline_max=4))
    events = retried_task("t1", 3)  # 7 events
    await store.apply(events)
    timeline = await EventReader(store_redis, keys).timeline("t1")
    assert [e.timestamp for e in timeline] == [e.timestamp for e in events[-4:]]


async def test_an_event_trimmed_off_the_timeline_is_still_a_duplicate(
    store_redis: Redis, keys: Keys,
):
    store = EventStore(store_redis, keys, Retention(timeline_max=4))
    events = retried_task("t1", 3)
    await store.apply(events)
    again = await store.apply(events[:3])
    assert (len(again.applied), again.duplicates) == (0, 3)
    assert await store_redis.hget(keys.counters_total, "demo.x|RECEIVED") == b"3"
