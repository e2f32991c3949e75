"""The collector's own ingest metrics: backlog gauges read at scrape time, drop and disconnect
counters that exist at 0 before anything happens (so ``increase()`` sees the first one)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from event_collector.consume import BufferSnapshot
from event_collector.keys import Keys
from event_collector.metrics import CollectorMetrics
from event_collector.spool import DROP_REASONS
from tests.collector.conftest import gauge


def test_every_drop_reason_and_the_brokers_disconnects_start_at_zero() -> None:
    registry = CollectorRegistry()
    metrics = CollectorMetrics(registry, keys=Keys())
    metrics.broker_disconnected("redis")
    assert gauge(registry, "taskpulse_events_dropped_total") == {
        (("reason", reason),): 0.0 for reason in DROP_REASONS
    }
    assert gauge(registry, "taskpulse_broker_disconnects_total") == {(("broker", "redis"),): 0.0}


def test_drops_and_disconnects_are_counted() -> None:
    registry = CollectorRegistry()
    metrics = CollectorMetrics(registry, keys=Keys())
    disconnected = metrics.broker_disconnected("redis")
    disconnected()
    metrics.observe_dropped("spool_full", 120)
    metrics.observe_dropped("spool_full", 3)
    assert gauge(registry, "taskpulse_events_dropped_total")[(("reason", "spool_full"),)] == 123
    assert gauge(registry, "taskpulse_broker_disconnects_total") == {(("broker", "redis"),): 1.0}


def test_the_backlog_is_read_from_the_buffer_at_scrape_time() -> None:
    registry = CollectorRegistry()
    metrics = CollectorMetrics(registry, keys=Keys())
    snapshot = BufferSnapshot(memory_events=7, memory_bytes=700, memory_limit_bytes=1000)
    metrics.watch_buffer(lambda: snapshot)
    assert gauge(registry, "taskpulse_buffer_events") == {
        (("where", "memory"),): 7.0, (("where", "spool"),): 0.0}
    snapshot = BufferSnapshot(memory_events=1, spool_events=40, spool_bytes=4096,
                              spool_limit_bytes=1 << 20)
    assert gauge(registry, "taskpulse_buffer_events") == {
        (("where", "memory"),): 1.0, (("where", "spool"),): 40.0}
    assert gauge(registry, "taskpulse_buffer_bytes")[(("where", "spool"),)] == 4096
    assert gauge(registry, "taskpulse_buffer_limit_bytes")[(("where", "spool"),)] == 1 << 20
