"""Order and duplication never change a projection: the real Lua on the real redis-server."""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any

import redis
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from event_collector.events import TASK_EVENT_KINDS, Event
from event_collector.keys import TIMELINE_FIELD, Keys
from event_collector.normalize import normalize
from event_collector.store import EventStore
from event_collector.task_ids import index_member
from tests.collector.conftest import STORE_DB, run, snapshot
from tests.indexes import index_entries_sync

KEYS = Keys()
# A canonical UUID, as Celery makes them: stored and indexed in compact form (task_ids.py).
TASK_ID = "5d3e0c1a-8f4b-4c2e-9a7d-1b2c3d4e5f60"
# The fixtures hold one redis-server; each example empties the db itself.
FIXTURES_OK = [HealthCheck.function_scoped_fixture]
OUTCOMES = ("success", "failure", "revoked", "running", "retrying", "rejected")
FINAL_STATE = {
    "success": "SUCCESS", "failure": "FAILURE", "revoked": "REVOKED", "running": "STARTED",
    "retrying": "RETRY", "rejected": "REJECTED",
}


@st.composite
def task_lifecycle(draw: st.DrawFn) -> list[Event]:
    """One task's events as a real worker emits them: sent/received/started per attempt,
    task-retried between attempts, progress while running, then the outcome."""
    outcome = draw(st.sampled_from(OUTCOMES))
    retries = draw(st.integers(0, 2))
    progress = draw(st.integers(0, 3))
    sent_skew = draw(st.sampled_from((0.0, 5.0)))  # producer clock ahead of the worker's
    ts = 1_700_000_000.0 + draw(st.integers(0, 10**6))
    clock = 0
    raw: list[dict[str, Any]] = []

    worker = "w1@h"

    def emit(type_: str, host: str = "", **fields: Any) -> None:
        nonlocal ts, clock
        ts += draw(st.sampled_from((0.001, 0.25, 1.5, 61.0)))
        clock += 1
        stamp = ts + sent_skew if type_ == "task-sent" else ts
        raw.append({"type": type_, "uuid": TASK_ID, "hostname": host or worker, "pid": 7,
                    "clock": clock, "timestamp": stamp, **fields})

    desc = {"name": "demo.test_task", "args": "(1,)", "kwargs": "{}"}
    for attempt in range(retries + 1):
        worker = f"w{attempt % 2 + 1}@h"  # a retry may run on another worker
        emit("task-sent", host="api@h", queue="default", retries=attempt, **desc)
        emit("task-received", retries=attempt, **desc)
        if outcome == "revoked" and attempt == retries:
            emit("task-revoked", terminated=True, signum="15")
            break
        if outcome == "rejected" and attempt == retries:
            emit("task-rejected", requeue=False)
            break
        emit("task-started")
        for step in range(progress):
            emit("task-progress", current=step + 1, total=progress)
        if attempt < retries or outcome == "retrying":
            emit("task-retried", exception="TransientError('again')", traceback="Trace")
            if outcome == "retrying" and attempt == retries:
                break
    if outcome == "success":
        emit("task-succeeded", result="{'ok': 1}", runtime=0.5)
    elif outcome == "failure":
        emit("task-failed", exception="PermanentError('no')", traceback="Trace")
    events = [normalize(r) for r in raw]
    assert FINAL_STATE[outcome]  # every outcome has a known final state
    return events


@st.composite
def redelivery(draw: st.DrawFn, events: list[Event]) -> list[list[Event]]:
    """A permutation of ``events`` with some duplicated, split into batches."""
    order = draw(st.permutations(events))
    extra = draw(st.lists(st.sampled_from(events), max_size=len(events)))
    mixed = draw(st.permutations([*order, *extra]))
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(mixed) - 1)), max_size=4)))
    bounds = [0, *cuts, len(mixed)]
    return [mixed[a:b] for a, b in itertools.pairwise(bounds) if a < b]


def apply_batches(url: str, batches: list[list[Event]]) -> None:
    async def go() -> None:
        client = aioredis.Redis.from_url(url)
        store = EventStore(client, KEYS)
        for batch in batches:
            await store.apply(batch)
        await client.aclose()

    run(go())


@settings(max_examples=60, deadline=None, suppress_health_check=FIXTURES_OK)
@given(data=st.data())
def test_any_order_and_duplication_gives_the_identical_projection(
    store_client: redis.Redis, redis_server: Any, data: st.DataObject
) -> None:
    events = data.draw(task_lifecycle())
    url = redis_server.url(STORE_DB)
    store_client.flushdb()
    apply_batches(url, [events])
    expected = snapshot(store_client, KEYS, url)

    store_client.flushdb()
    apply_batches(url, data.draw(redelivery(events)))
    assert snapshot(store_client, KEYS, url) == expected


@settings(max_examples=30, deadline=None, suppress_health_check=FIXTURES_OK)
@given(data=st.data())
def test_projection_matches_the_lifecycle_in_any_order(
    store_client: redis.Redis, redis_server: Any, data: st.DataObject
) -> None:
    events = data.draw(task_lifecycle())
    store_client.flushdb()
    apply_batches(redis_server.url(STORE_DB), data.draw(redelivery(events)))

    task = {k.decode(): v.decode() for k, v in store_client.hgetall(KEYS.task(TASK_ID)).items()}
    last_state_event = max(
        (e for e in events if e.type != "task-progress" and e.type != "task-sent"),
        key=lambda e: (e.type in ("task-succeeded", "task-failed", "task-revoked"), e.timestamp),
    )
    expected_state = TASK_EVENT_KINDS[last_state_event.type]
    assert task["state"] == expected_state
    state_index = index_entries_sync(redis_server.url(STORE_DB), KEYS,
                                     KEYS.index_state(expected_state))
    assert index_member(TASK_ID) in state_index
    assert task["retries"] == str(max(e.retries for e in events))
    kinds = Counter(TASK_EVENT_KINDS[e.type] for e in events if e.type in TASK_EVENT_KINDS)
    totals = store_client.hgetall(KEYS.counters_total)
    assert {k.decode(): int(v) for k, v in totals.items()} == {
        f"demo.test_task|{kind}": n for kind, n in kinds.items()
    }
    assert store_client.xlen(KEYS.events) == len(events)
    assert store_client.hget(KEYS.task(TASK_ID), TIMELINE_FIELD).count(b"\n") == len(events)
