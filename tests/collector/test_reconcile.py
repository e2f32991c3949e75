"""Reconciler against a real Celery result backend entry and the real EventStore."""

from __future__ import annotations

import time
import traceback
from collections.abc import AsyncIterator, Iterator, Sequence

import pytest
from celery import Celery
from redis.asyncio import Redis

from event_collector.events import Event
from event_collector.keys import Keys, counter_field
from event_collector.reconcile import Reconciler
from event_collector.store import EventStore
from tests.events import task_event
from tests.indexes import index_entries
from tests.services import RedisServer

pytestmark = pytest.mark.anyio

NAME = "reports.generate_daily_report"
LATER = 120.0  # the reconciler runs this long after the backend wrote the result


@pytest.fixture
def backend_app(clean_redis: RedisServer) -> Iterator[Celery]:
    app = Celery(broker=clean_redis.url(0), backend=clean_redis.url(0), set_as_current=False)
    yield app
    app.close()


@pytest.fixture
async def backend_redis(clean_redis: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(clean_redis.url(0))
    yield client
    await client.aclose()


def reconciler(store: EventStore, backend: Redis, **options) -> Reconciler:
    options = {"stuck_after_seconds": 600, "clock": lambda: time.time() + LATER, **options}
    return Reconciler(store.redis, backend, store.keys, store.apply, **options)


async def started_long_ago(store: EventStore, task_id: str, age: float = 1200) -> float:
    sent = time.time() - age
    await store.apply([
        task_event("sent", task_id, sent, hostname="gen1@api", name=NAME, queue="reports"),
        task_event("received", task_id, sent + 1, name=NAME),
        task_event("started", task_id, sent + 2),
    ])
    return sent + 2


async def test_stuck_task_is_completed_from_its_backend_result(
    event_store: EventStore, backend_redis: Redis, backend_app: Celery, store_redis: Redis,
    keys: Keys,
):
    started = await started_long_ago(event_store, "t-ok")
    backend_app.backend.store_result("t-ok", {"rows": 12}, "SUCCESS")

    report = await reconciler(event_store, backend_redis).run_once()

    raw = await store_redis.hgetall(keys.task("t-ok"))
    task = {k.decode(): v.decode() for k, v in raw.items()}
    assert task["state"] == "SUCCESS"
    assert task["worker"] == "w1@box"  # the worker that ran it, not a made-up host
    assert task["result"] == "{'rows': 12}"
    assert float(task["runtime"]) == pytest.approx(time.time() - started, abs=5)
    assert [e.type for e in report.completed] == ["task-succeeded"]
    assert "t-ok" in await index_entries(store_redis, keys, keys.index_state("SUCCESS"))
    assert "t-ok" not in await index_entries(store_redis, keys, keys.index_state("STARTED"))


async def test_failed_task_gets_exception_and_traceback_from_the_backend(
    event_store: EventStore, backend_redis: Redis, backend_app: Celery, store_redis: Redis,
    keys: Keys,
):
    await started_long_ago(event_store, "t-fail")
    try:
        raise ValueError("bad input")
    except ValueError as exc:
        backend_app.backend.store_result("t-fail", exc, "FAILURE",
                                         traceback=traceback.format_exc())

    await reconciler(event_store, backend_redis).run_once()

    exception, tb, state = await store_redis.hmget(
        keys.task("t-fail"), ["exception", "traceback", "state"])
    assert (state, exception) == (b"FAILURE", b"ValueError('bad input')")
    assert b"Traceback (most recent call last)" in tb


async def test_two_reconcilers_complete_a_task_once(
    event_store: EventStore, backend_redis: Redis, backend_app: Celery, store_redis: Redis,
    keys: Keys,
):
    await started_long_ago(event_store, "t-once")
    backend_app.backend.store_result("t-once", 1, "SUCCESS")
    # Active and standby collectors both see the task stuck before either completes it.
    built: list[list[Event]] = [[], []]
    for produced in built:
        await Reconciler(store_redis, backend_redis, keys, _collect_into(produced),
                         clock=lambda: time.time() + LATER).run_once()

    first = await event_store.apply(built[0])
    second = await EventStore(store_redis, keys).apply(built[1])

    assert (len(first.applied), second.duplicates) == (1, 1)
    assert await store_redis.hget(keys.counters_total, counter_field(NAME, "SUCCESS")) == b"1"


def _collect_into(produced: list[Event]):
    async def apply(events: Sequence[Event]) -> None:
        produced.extend(events)

    return apply


async def test_task_without_a_final_result_stays_stuck_and_is_counted(
    event_store: EventStore, backend_redis: Redis, backend_app: Celery,
):
    await started_long_ago(event_store, "t-lost")
    await started_long_ago(event_store, "t-running")
    backend_app.backend.store_result("t-running", {"current": 3}, "PROGRESS")

    report = await reconciler(event_store, backend_redis).run_once()

    assert report.completed == ()
    assert report.still_stuck == {(NAME, "reports"): 2}
    assert report.total_stuck == 2


async def test_recently_started_tasks_are_not_stuck(
    event_store: EventStore, backend_redis: Redis, backend_app: Celery,
):
    await started_long_ago(event_store, "t-young", age=60)
    backend_app.backend.store_result("t-young", 1, "SUCCESS")

    report = await reconciler(event_store, backend_redis).run_once()

    assert (report.checked, report.completed, report.total_stuck) == (0, (), 0)


async def test_a_result_written_moments_ago_is_left_for_the_real_event(
    event_store: EventStore, backend_redis: Redis, backend_app: Celery,
):
    await started_long_ago(event_store, "t-just-done")
    backend_app.backend.store_result("t-just-done", 1, "SUCCESS")

    report = await reconciler(event_store, backend_redis, clock=time.time).run_once()

    assert report.completed == ()
    assert report.still_stuck == {(NAME, "reports"): 1}
