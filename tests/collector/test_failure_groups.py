"""Failure groups and the exception / fingerprint / text filters, on the real Lua."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis

from event_collector.events import Event
from event_collector.failures import failure_of
from event_collector.keys import Keys
from event_collector.normalize import event_id
from event_collector.read import EventReader, TaskQuery
from event_collector.store import EventStore
from event_collector.sweep import RetentionSweeper
from tests.services import RedisServer

T = TypeVar("T")
KEYS = Keys(prefix="tp:")
NOW = 1_750_000_000.0


def ev(kind: str, task_id: str, ts: float, host: str = "w@h", **fields: Any) -> Event:
    type_ = f"task-{kind}"
    return Event(id=event_id(type_, task_id, host, 1, 0, ts), type=type_, timestamp=ts,
                 hostname=host, pid=1, uuid=task_id, **fields)


def failed(task_id: str, ts: float, exception: str, name: str = "demo.fail") -> list[Event]:
    return [ev("received", task_id, ts, name=name, kwargs=f"{{'ref': '{task_id}-ref'}}"),
            ev("failed", task_id, ts + 1, exception=exception)]


def run(server: RedisServer, batches: list[list[Event]],
        query: Callable[[EventReader], Awaitable[T]]) -> T:
    async def go() -> T:
        client = aioredis.Redis.from_url(server.url(1))
        try:
            store = EventStore(client, KEYS)
            for batch in batches:
                await store.apply(batch)
            return await query(EventReader(client, KEYS))
        finally:
            await client.aclose()

    return asyncio.run(go())


def test_two_exceptions_form_two_groups_with_exact_counts(clean_redis: RedisServer) -> None:
    events = [e for i in range(5) for e in failed(f"k{i}", NOW + i, f"KeyError('bill {i}')")]
    events += [e for i in range(3) for e in failed(f"v{i}", NOW + i, "ValueError('bad amount')")]
    page = run(clean_redis, [events], lambda r: r.failure_groups(now=NOW + 10))
    counts = {g.exception: g.count for g in page.items}
    assert counts == {"KeyError": 5, "ValueError": 3}
    key_errors = next(g for g in page.items if g.exception == "KeyError")
    assert key_errors.names == ["demo.fail"]
    assert key_errors.first_seen == NOW + 1
    assert key_errors.last_seen == NOW + 5
    assert key_errors.example_id == "k4"
    assert sum(key_errors.hourly) == 5
    assert len(key_errors.hourly) == 24


def test_a_duplicate_and_a_reconciled_failure_count_once(clean_redis: RedisServer) -> None:
    first = failed("t1", NOW, "KeyError('bill 1')")
    synthetic = ev("failed", "t1", NOW + 5, host="reconciler", exception="KeyError('bill 1')")
    page = run(clean_redis, [first, first, [synthetic]], lambda r: r.failure_groups(now=NOW))
    assert [g.count for g in page.items] == [1]


def test_failures_in_separate_batches_add_up(clean_redis: RedisServer) -> None:
    batches = [failed(f"t{i}", NOW + i, f"KeyError('bill {i}')") for i in range(4)]
    page = run(clean_redis, batches, lambda r: r.failure_groups(now=NOW))
    assert [g.count for g in page.items] == [4]
    assert page.items[0].first_seen == NOW + 1
    assert page.items[0].last_seen == NOW + 4


def test_a_group_learns_the_name_of_a_failure_that_arrived_before_it(
    clean_redis: RedisServer,
) -> None:
    received, failure = failed("t1", NOW, "KeyError('bill 1')")
    page = run(clean_redis, [[failure], [received]], lambda r: r.failure_groups(now=NOW))
    assert [(g.count, g.names) for g in page.items] == [(1, ["demo.fail"])]


def test_groups_page_by_last_seen(clean_redis: RedisServer) -> None:
    events = [e for i in range(5) for e in failed(f"t{i}", NOW + i, f"E{i}Error('x')")]

    async def pages(reader: EventReader) -> list[list[str]]:
        out, cursor = [], None
        while True:
            page = await reader.failure_groups(limit=2, cursor=cursor, now=NOW)
            out.append([g.exception for g in page.items])
            if page.next_cursor is None:
                return out
            cursor = page.next_cursor

    assert run(clean_redis, [events], pages) == [
        ["E4Error", "E3Error"], ["E2Error", "E1Error"], ["E0Error"],
    ]


def test_exception_and_fingerprint_filters_list_and_count_the_group(
    clean_redis: RedisServer,
) -> None:
    events = [e for i in range(4) for e in failed(f"k{i}", NOW + i, f"KeyError('bill {i}')")]
    events += failed("k9", NOW + 9, "KeyError('other')", name="demo.other")
    events += failed("v0", NOW, "ValueError('bad')")
    fp = failure_of("KeyError('bill 1')").fingerprint

    async def query(reader: EventReader) -> tuple[Any, ...]:
        return (
            [t.id for t in (await reader.list_tasks(TaskQuery(exception="KeyError"))).items],
            [t.id for t in (await reader.list_tasks(TaskQuery(fingerprint=fp))).items],
            (await reader.count_tasks(TaskQuery(exception="KeyError"))).count,
            (await reader.count_tasks(TaskQuery(exception="KeyError", name="demo.fail"))).count,
            (await reader.list_tasks(TaskQuery(exception="NoSuchError"))).items,
            (await reader.get_task("k1")).fingerprint,  # type: ignore[union-attr]
        )

    by_exc, by_fp, n_exc, n_exc_name, none, stored_fp = run(clean_redis, [events], query)
    assert by_exc == ["k9", "k3", "k2", "k1", "k0"]
    assert by_fp == ["k3", "k2", "k1", "k0"]
    assert (n_exc, n_exc_name) == (5, 4)
    assert none == []
    assert stored_fp == fp


def test_search_finds_a_task_by_text_in_its_kwargs(clean_redis: RedisServer) -> None:
    events = [e for i in range(30) for e in failed(f"t{i}", NOW + i, "KeyError('x')")]

    async def query(reader: EventReader) -> tuple[Any, ...]:
        hit = await reader.list_tasks(TaskQuery(q="T17-REF"))
        bounded = await reader.list_tasks(TaskQuery(q="t0-ref", scan_max=10))
        return [t.id for t in hit.items], bounded

    ids, bounded = run(clean_redis, [events], query)
    assert ids == ["t17"]
    assert bounded.items == []
    assert bounded.exact is False
    assert bounded.next_cursor


def test_sweep_forgets_groups_last_seen_before_the_horizon(clean_redis: RedisServer) -> None:
    old = failed("old", NOW - 100 * 86400, "KeyError('old 1')")
    new = failed("new", NOW, "ValueError('new 1')")

    async def sweep_then_list(reader: EventReader) -> tuple[Any, ...]:
        sweeper = RetentionSweeper(
            reader.redis, KEYS, index_retention_seconds=30 * 86400, stream_max_age_seconds=0,
            clock=lambda: NOW,
        )
        report = await sweeper.run_once()
        page = await reader.failure_groups(now=NOW)
        old_fp = failure_of("KeyError('old 1')").fingerprint
        left = await reader.redis.exists(
            KEYS.failure_group(old_fp), KEYS.index_fingerprint(old_fp),
        )
        members = await reader.redis.smembers(KEYS.failure_exception("KeyError"))
        return report.failure_groups_trimmed, [g.exception for g in page.items], left, members

    assert run(clean_redis, [old + new], sweep_then_list) == (1, ["ValueError"], 0, set())


def test_an_hour_slot_from_yesterday_counts_zero_and_is_reused(clean_redis: RedisServer) -> None:
    hour = 3600 * (int(NOW) // 3600)
    yesterday = failed("y1", hour - 86400 + 5, "KeyError('bill 1')")
    today = [e for i in range(2) for e in failed(f"t{i}", hour + 5 + i, f"KeyError('bill {i}')")]
    page = run(clean_redis, [yesterday, today], lambda r: r.failure_groups(now=hour + 60))
    [g] = page.items
    assert g.count == 3
    assert g.hourly[-1] == 2
    assert sum(g.hourly) == 2


def test_groups_are_the_same_whatever_the_arrival_order_and_duplication(
    clean_redis: RedisServer,
) -> None:
    events = [e for i in range(6) for e in failed(
        f"t{i}", NOW + i // 2, f"KeyError('bill {i}')", name=f"demo.n{i % 3}")]  # ties in time
    orders = {
        "a:": [events],
        "b:": [list(reversed(events))[:5], list(reversed(events)), events[3:]],
    }

    async def apply_all() -> dict[str, dict[str, Any]]:
        client = aioredis.Redis.from_url(clean_redis.url(1))
        try:
            for prefix, batches in orders.items():
                store = EventStore(client, Keys(prefix=prefix))
                for batch in batches:
                    await store.apply(batch)
            found: dict[str, dict[str, Any]] = {}
            for prefix in orders:
                found[prefix] = {}
                async for key in client.scan_iter(match=f"{prefix}fail:*"):
                    name = key.decode().removeprefix(prefix)
                    kind = (await client.type(key)).decode()
                    found[prefix][name] = (
                        await client.hgetall(key) if kind == "hash"
                        else await client.zrange(key, 0, -1, withscores=True) if kind == "zset"
                        else await client.smembers(key)
                    )
                fp = failure_of("KeyError('bill 1')").fingerprint
                found[prefix]["idx"] = await client.zrange(
                    f"{prefix}idx:fp:{fp}", 0, -1, withscores=True)
            return found
        finally:
            await client.aclose()

    found = asyncio.run(apply_all())
    assert found["a:"] == found["b:"]
    [group] = [v for k, v in found["a:"].items() if k.startswith("fail:g:")]
    assert group[b"count"] == b"6"
    assert group[b"names"] == b"demo.n0\ndemo.n1\ndemo.n2"
