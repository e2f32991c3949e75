"""The read side over projections written by the collector's real Lua on a real redis-server."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
import redis.asyncio as aioredis

from event_collector.events import Event
from event_collector.keys import Keys
from event_collector.normalize import event_id
from event_collector.read import EventReader, InvalidCursor, TaskQuery, decode_cursor, encode_cursor
from event_collector.store import EventStore
from tests.indexes import index_entries
from tests.services import RedisServer

T = TypeVar("T")
KEYS = Keys(prefix="tp:")


def ev(kind: str, task_id: str, ts: float, **fields: Any) -> Event:
    type_ = f"task-{kind}"
    return Event(id=event_id(type_, task_id, "w@h", 1, 0, ts), type=type_, timestamp=ts,
                 hostname="w@h", pid=1, uuid=task_id, **fields)


def run(server: RedisServer, events: list[Event],
        query: Callable[[EventReader], Awaitable[T]]) -> T:
    async def go() -> T:
        client = aioredis.Redis.from_url(server.url(1))
        try:
            await EventStore(client, KEYS).apply(events)
            return await query(EventReader(client, KEYS))
        finally:
            await client.aclose()

    return asyncio.run(go())


def all_pages(reader: EventReader, query: TaskQuery) -> Awaitable[list[str]]:
    async def go() -> list[str]:
        ids: list[str] = []
        cursor = None
        while True:
            page = await reader.list_tasks(TaskQuery(**{**query.filters(), "limit": query.limit,
                                                        "cursor": cursor}))
            ids += [t.id for t in page.items]
            if page.next_cursor is None or not page.items:
                return ids
            cursor = page.next_cursor

    return go()


def test_tasks_with_equal_first_seen_are_each_listed_once(clean_redis: RedisServer) -> None:
    events = [ev("sent", f"t{i:02d}", 1000.0, name="demo.test_task") for i in range(12)]
    ids = run(clean_redis, events, lambda r: all_pages(r, TaskQuery(limit=5)))
    assert sorted(ids) == [f"t{i:02d}" for i in range(12)]
    assert len(ids) == 12


def test_a_task_is_in_exactly_one_state_index_as_it_moves(clean_redis: RedisServer) -> None:
    # The premise of unfiltered listings, counts and tasks_stored (no idx:all, keys.py).
    async def where(reader: EventReader) -> list[str]:
        return [k for k in KEYS.state_indexes if "t" in await index_entries(reader.redis, KEYS, k)]

    steps = [
        [ev("progress", "t", 3.0, progress_current=1.0)],
        [ev("sent", "t", 1.0, name="a.b")],
        [ev("started", "t", 2.0)],
        [ev("succeeded", "t", 4.0, runtime=2.0)],
    ]
    seen = [run(clean_redis, step, where) for step in steps]
    assert seen == [[KEYS.index_stateless], [KEYS.index_state("PENDING")],
                    [KEYS.index_state("STARTED")], [KEYS.index_state("SUCCESS")]]


def test_unfiltered_listing_merges_the_states_newest_first_across_pages(
    clean_redis: RedisServer,
) -> None:
    # Scores interleave across states, and runs of ties straddle states and page boundaries.
    rng = random.Random(7)
    events: list[Event] = []
    for i in range(60):
        task_id, ts = f"t{i:02d}", 100.0 + rng.randrange(6)
        events.append(ev("sent", task_id, ts, name="a.b"))
        if (kind := rng.choice(["sent", "started", "succeeded", "failed"])) != "sent":
            events.append(ev(kind, task_id, ts + 50))
    expected = [e.uuid for e in sorted(
        (e for e in events if e.type == "task-sent"), key=lambda e: (e.timestamp, e.uuid),
        reverse=True)]  # fmt: skip
    for limit in (1, 2, 3, 4, 5, 7, 11, 100):
        ids = run(clean_redis, events if limit == 1 else [],
                  lambda r, n=limit: all_pages(r, TaskQuery(limit=n)))
        assert ids == expected, limit


def test_unfiltered_count_and_stats_add_up_the_states(clean_redis: RedisServer) -> None:
    events = [ev("sent", f"p{i}", 10.0 + i, name="a.b") for i in range(4)]
    events += [ev("succeeded", f"s{i}", 12.5 + i) for i in range(3)]
    events += [ev("progress", "x", 13.0, progress_current=1.0)]
    count = run(clean_redis, events, lambda r: r.count_tasks(TaskQuery(since=12.0, until=13.9)))
    assert (count.count, count.exact) == (5, True)  # p2 p3 s0 s1 x
    stats = run(clean_redis, [], lambda r: r.stats())
    assert stats.tasks_stored == 8
    assert (stats.by_state["PENDING"], stats.by_state["SUCCESS"]) == (4, 3)


def test_expired_task_left_in_an_index_is_skipped(clean_redis: RedisServer) -> None:
    events = [ev("sent", "keep", 1.0, name="a.b"), ev("sent", "gone", 2.0, name="a.b")]
    # The hash goes as its TTL would take it; the index entry stays until the sweep.
    run(clean_redis, events, lambda r: r.redis.delete(KEYS.task("gone")))
    page = run(clean_redis, [], lambda r: r.list_tasks(TaskQuery()))
    assert [t.id for t in page.items] == ["keep"]


def test_combined_filters_are_checked_on_the_smallest_index(clean_redis: RedisServer) -> None:
    events = [ev("sent", f"a{i}", 10.0 + i, name="x.one", queue="q1") for i in range(5)]
    events += [ev("sent", f"b{i}", 20.0 + i, name="x.two", queue="q1") for i in range(3)]
    page = run(clean_redis, events,
               lambda r: r.list_tasks(TaskQuery(name="x.two", queue="q1")))
    assert [t.id for t in page.items] == ["b2", "b1", "b0"]
    count = run(clean_redis, [], lambda r: r.count_tasks(TaskQuery(name="x.two", queue="q1")))
    assert (count.count, count.exact) == (3, True)


def test_task_detail_reads_record_timeline_and_children(clean_redis: RedisServer) -> None:
    events = [
        ev("sent", "parent", 1.0, name="a.b"),
        ev("succeeded", "parent", 2.0, result="'r'", runtime=1.0),
        ev("sent", "child", 1.5, name="a.c", parent_id="parent", root_id="parent"),
    ]
    record, timeline, children = run(clean_redis, events, lambda r: r.task_detail("parent"))
    assert (record.state, record.result, record.runtime) == ("SUCCESS", "'r'", 1.0)
    assert [e.type for e in timeline] == ["task-sent", "task-succeeded"]
    assert children == ["child"]


def test_stats_cost_does_not_depend_on_task_count(clean_redis: RedisServer) -> None:
    events = [ev("sent", f"s{i}", 100.0 + i, name="a.b") for i in range(50)]
    stats = run(clean_redis, events, lambda r: r.stats())
    assert stats.tasks_stored == 50
    assert stats.by_name == {"a.b": {"SENT": 50}}


def test_read_events_returns_entries_after_the_given_id(clean_redis: RedisServer) -> None:
    events = [ev("sent", "e1", 1.0, name="a.b"), ev("started", "e1", 2.0)]
    first = run(clean_redis, events, lambda r: r.read_events("0-0", count=10))
    rest = run(clean_redis, [], lambda r: r.read_events(first.events[0][0], count=10))
    assert [e.type for _, e in first.events] == ["task-sent", "task-started"]
    assert [e.type for _, e in rest.events] == ["task-started"]
    assert rest.last_id == first.last_id == first.events[1][0]


def test_read_range_stops_at_the_given_id(clean_redis: RedisServer) -> None:
    events = [ev("sent", "r1", 1.0, name="a.b"), ev("started", "r1", 2.0),
              ev("succeeded", "r1", 3.0)]
    ids = [i for i, _ in run(clean_redis, events, lambda r: r.read_events("0-0")).events]
    page = run(clean_redis, [], lambda r: r.read_range(ids[0], ids[1], count=10))
    assert [i for i, _ in page.events] == [ids[1]]
    assert (page.size, page.last_id) == (1, ids[1])


def test_an_unreadable_entry_is_skipped_but_read_past(clean_redis: RedisServer) -> None:
    first = run(clean_redis, [ev("sent", "u1", 1.0, name="a.b")],
                lambda r: r.read_events("0-0")).last_id
    garbage = clean_redis.client(1).xadd(KEYS.events, {"e": b"\xc1 not msgpack"}).decode()
    page = run(clean_redis, [], lambda r: r.read_events(first))
    assert (page.size, page.events, page.last_id) == (1, [], garbage)


def test_cursor_round_trips_and_garbage_is_rejected() -> None:
    assert decode_cursor(encode_cursor(12.5, "abc")) == (12.5, "abc")
    with pytest.raises(InvalidCursor):
        decode_cursor("not a cursor")
