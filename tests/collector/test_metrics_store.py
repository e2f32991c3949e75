"""Scrape-time gauges of CollectorMetrics, refreshed from a real Redis written by EventStore."""

from __future__ import annotations

import time

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from event_collector.keys import Keys
from event_collector.metrics import CollectorMetrics
from event_collector.store import EventStore
from tests.collector.conftest import gauge
from tests.events import sent_and_succeeded, task_event, worker_event

pytestmark = pytest.mark.anyio


class Clock:
    """A settable wall clock, so worker liveness is tested without sleeping for heartbeats."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry, keys: Keys, clock: Clock) -> CollectorMetrics:
    return CollectorMetrics(registry, keys=keys, worker_retention_seconds=3600, clock=clock)


async def test_worker_up_goes_to_zero_when_heartbeats_stop_and_stays_exported(
    metrics: CollectorMetrics, registry: CollectorRegistry, event_store: EventStore,
    store_redis: Redis, clock: Clock,
):
    await event_store.apply([worker_event("online", "w1@box", clock.now, freq=2.0),
                             worker_event("heartbeat", "w1@box", clock.now + 1, active=3)])
    clock.now += 2
    await metrics.refresh(store_redis)
    assert gauge(registry, "celery_worker_up") == {(("hostname", "box"),): 1.0}
    assert gauge(registry, "celery_worker_tasks_active") == {(("hostname", "box"),): 3.0}

    clock.now += 10  # no heartbeat for 5 x freq: dead by Celery's freq x 2 rule
    await metrics.refresh(store_redis)
    assert gauge(registry, "celery_worker_up") == {(("hostname", "box"),): 0.0}
    assert gauge(registry, "celery_worker_tasks_active") == {(("hostname", "box"),): 0.0}

    clock.now += 1800  # still within the retention window: the alert can keep firing
    await metrics.refresh(store_redis)
    assert gauge(registry, "celery_worker_up") == {(("hostname", "box"),): 0.0}


async def test_dead_worker_series_disappears_after_the_retention_window(
    metrics: CollectorMetrics, registry: CollectorRegistry, event_store: EventStore,
    store_redis: Redis, clock: Clock,
):
    await event_store.apply([worker_event("heartbeat", "w1@box", clock.now)])
    clock.now += 3601
    await metrics.refresh(store_redis)
    assert gauge(registry, "celery_worker_up") == {}


async def test_worker_offline_event_marks_it_down_at_once(
    metrics: CollectorMetrics, registry: CollectorRegistry, event_store: EventStore,
    store_redis: Redis, clock: Clock,
):
    await event_store.apply([worker_event("heartbeat", "w1@box", clock.now),
                             worker_event("offline", "w1@box", clock.now + 0.5)])
    clock.now += 1
    await metrics.refresh(store_redis)
    assert gauge(registry, "celery_worker_up") == {(("hostname", "box"),): 0.0}


async def test_stream_length_and_queue_gauges_come_from_the_store(
    metrics: CollectorMetrics, registry: CollectorRegistry, event_store: EventStore,
    store_redis: Redis, keys: Keys,
):
    await event_store.apply(sent_and_succeeded("t1", time.time()))
    await store_redis.hset(keys.queues, mapping={"default": 7, "email": 0})
    await store_redis.hset(keys.queue_workers, mapping={"default": 2})
    await metrics.refresh(store_redis)

    assert gauge(registry, "taskpulse_stream_length") == {(): 4.0}
    assert gauge(registry, "celery_queue_length") == {
        (("queue_name", "default"),): 7.0, (("queue_name", "email"),): 0.0}
    assert gauge(registry, "celery_active_worker_count") == {(("queue_name", "default"),): 2.0}


async def test_a_scrape_reads_the_snapshot_not_redis(
    metrics: CollectorMetrics, registry: CollectorRegistry, store_redis: Redis, keys: Keys,
):
    await store_redis.hset(keys.queues, mapping={"default": 7})
    await metrics.refresh(store_redis)
    await store_redis.hset(keys.queues, mapping={"default": 9})
    assert gauge(registry, "celery_queue_length") == {(("queue_name", "default"),): 7.0}


async def test_stuck_tasks_reported_by_the_reconciler_are_exported(
    metrics: CollectorMetrics, registry: CollectorRegistry, store_redis: Redis,
):
    metrics.observe_stuck({("demo.long_running_task", "default"): 2})
    await metrics.refresh(store_redis)  # a refresh keeps the reconciler's figures
    assert gauge(registry, "taskpulse_tasks_stuck") == {
        (("name", "demo.long_running_task"), ("queue_name", "default")): 2.0}


def task_samples(registry: CollectorRegistry, name: str) -> dict[frozenset, float]:
    text = generate_latest(registry).decode()
    return {
        frozenset(s.labels.items()): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


async def test_standby_labels_events_of_a_task_whose_sent_event_it_never_saw(
    metrics: CollectorMetrics, registry: CollectorRegistry, event_store: EventStore,
):
    sent, received, started, _ = sent_and_succeeded("t1", 100.0, name="demo.x", queue="q1")
    await event_store.apply([sent, received])  # applied by the other collector
    failed = task_event("failed", "t1", 102.7, exception="KeyError('k')")
    result = await event_store.apply([started, failed])
    metrics.observe_applied(result.applied, result.facts)
    labels = frozenset({("name", "demo.x"), ("hostname", "box"), ("queue_name", "q1")})
    assert task_samples(registry, "celery_task_started_total")[labels] == 1.0
    assert task_samples(registry, "celery_task_failed_total")[
        labels | {("exception", "KeyError")}] == 1.0
    wait = task_samples(registry, "celery_task_queue_wait_time_sum")[labels]
    assert wait == pytest.approx(0.2)


async def test_failed_runtime_is_measured_from_the_stored_started_timestamp(
    metrics: CollectorMetrics, registry: CollectorRegistry, event_store: EventStore,
):
    sent, received, started, _ = sent_and_succeeded("t1", 100.0, name="demo.x", queue="q1")
    await event_store.apply([sent, received, started])
    result = await event_store.apply([task_event("failed", "t1", 102.7, exception="E('x')")])
    metrics.observe_applied(result.applied, result.facts)
    labels = frozenset({("name", "demo.x"), ("hostname", "box"), ("queue_name", "q1")})
    runtime = task_samples(registry, "taskpulse_task_failed_runtime_seconds_sum")[labels]
    assert runtime == pytest.approx(2.5)


async def test_a_final_kind_counts_once_per_task_when_a_synthetic_and_a_real_event_both_arrive(
    metrics: CollectorMetrics, registry: CollectorRegistry, event_store: EventStore,
    store_redis: Redis, keys: Keys,
):
    events = sent_and_succeeded("t1", 100.0, name="demo.x", queue="q1")
    synthetic = task_event("succeeded", "t1", 100.4, hostname="reconciler", result="'ok'")
    for batch in (events[:3], [synthetic], events[3:]):
        result = await event_store.apply(batch)
        metrics.observe_applied(result.applied, result.facts)
    assert await store_redis.hget(keys.counters_total, "demo.x|SUCCESS") == b"1"
    assert sum(task_samples(registry, "celery_task_succeeded_total").values()) == 1.0
