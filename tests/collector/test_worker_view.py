"""One view of a worker: the read side (GET /workers) and the metrics (celery_worker_up) read
the same worker hash through ``event_collector.workers`` and agree on whether it is alive."""

from __future__ import annotations

import time

import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from event_collector.keys import Keys
from event_collector.metrics import CollectorMetrics
from event_collector.read import EventReader
from event_collector.store import EventStore
from event_collector.workers import is_alive
from tests.collector.conftest import gauge
from tests.events import worker_event

NOW = time.time()


def test_a_missing_or_zero_freq_means_celery_s_default_two_second_heartbeat() -> None:
    for freq in (None, 0.0, -1.0):
        assert is_alive(NOW - 3.9, freq, online=True, now=NOW)
        assert not is_alive(NOW - 4.1, freq, online=True, now=NOW)


def test_a_worker_is_alive_within_twice_its_own_freq() -> None:
    assert is_alive(NOW - 19.0, 10.0, online=True, now=NOW)
    assert not is_alive(NOW - 21.0, 10.0, online=True, now=NOW)


def test_an_offline_worker_or_one_that_never_beat_is_not_alive() -> None:
    assert not is_alive(NOW, 2.0, online=False, now=NOW)
    assert not is_alive(None, 2.0, online=True, now=NOW)


async def _both_views(
    store_redis: Redis, keys: Keys, now: float
) -> tuple[dict[str, bool], dict[str, bool]]:
    registry = CollectorRegistry()
    metrics = CollectorMetrics(registry, keys=keys, node_hostnames=True, clock=lambda: now)
    await metrics.refresh(store_redis)
    up = {dict(labels)["hostname"]: value == 1.0
          for labels, value in gauge(registry, "celery_worker_up").items()}
    listed = {w.hostname: w.alive for w in await EventReader(store_redis, keys).workers(now)}
    return listed, up


@pytest.mark.anyio
@pytest.mark.parametrize("freq", [0.0, None, 2.0], ids=["freq-0", "no-freq", "freq-2"])
async def test_the_read_side_and_the_metrics_agree_on_liveness_whatever_the_freq(
    freq: float | None, event_store: EventStore, store_redis: Redis, keys: Keys
) -> None:
    await event_store.apply([
        worker_event("heartbeat", "recent@box", NOW - 3.0, freq=freq),
        worker_event("heartbeat", "stale@box", NOW - 5.0, freq=freq),
    ])

    listed, up = await _both_views(store_redis, keys, NOW)

    assert listed == up == {"recent@box": True, "stale@box": False}
