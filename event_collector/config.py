"""The collector's settings: one typed Struct built from ``TASKPULSE_*`` environment variables
by ``environment.settings_from_env``, as every taskpulse process builds its own."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import msgspec

from event_collector.broker import broker_kind, result_backend_url
from event_collector.connection import store_keys
from event_collector.environment import DEFAULT_BROKER_URL, DEFAULT_REDIS_URL, settings_from_env
from event_collector.keys import Keys

DAY: Final = 86400


class Retention(msgspec.Struct, frozen=True):
    """How long the store keeps things; 0 means "no limit" for that item."""

    stream_max_length: int = 2_000_000
    stream_max_age_seconds: int = 7 * DAY
    task_ttl_success_seconds: int = 3 * DAY
    task_ttl_failure_seconds: int = 14 * DAY
    task_ttl_other_seconds: int = 7 * DAY
    # A task nobody finished (lost worker, no final event) still goes away eventually.
    task_ttl_unfinished_seconds: int = 14 * DAY
    counters_minute_ttl_seconds: int = 2 * DAY
    counters_hour_ttl_seconds: int = 90 * DAY
    counters_day_ttl_seconds: int = 0
    timeline_max: int = 200
    worker_dedup_ttl_seconds: int = 3600


_DEFAULT_RETENTION: Final = Retention()


class CollectorSettings(msgspec.Struct, frozen=True):
    """Everything ``taskpulse-collector`` needs; see the README's configuration table."""

    broker_url: str = DEFAULT_BROKER_URL
    redis_url: str = DEFAULT_REDIS_URL
    result_backend: str = ""
    # "" = the store's default (``tp:``, ``{tp}:`` on a cluster); read it through ``keys``
    key_prefix: str = ""
    metrics_host: str = "0.0.0.0"
    metrics_port: int = 9808
    # Batching: a batch is written when it has this many events or is this old, whichever first.
    batch_size: int = 500
    batch_interval_ms: int = 50
    # Raw messages waiting in memory between the socket reader and the writer: at most this many
    # bytes and this many messages, whichever comes first. Past that, a Redis reader spills to
    # the spool and a RabbitMQ reader waits (the durable queue holds the backlog).
    buffer_max_bytes: int = 64 << 20
    buffer_max_messages: int = 200_000
    # Redis broker only: the disk spool past the memory budget (one slot directory per
    # collector under spool_dir). Past spool_max_bytes events are dropped, counted; 0 = no
    # spool (drop past the memory budget).
    spool_dir: str = ".run/spool"
    spool_max_bytes: int = 1 << 30
    # RabbitMQ: the durable queue the collector consumes (survives collector restarts).
    event_queue: str = "taskpulse.events"
    # Bounds the durable queue while no collector consumes (RabbitMQ drops the oldest past it).
    event_queue_max_length: int = 2_000_000
    # Queues whose length the collector polls from the broker (comma-separated).
    queues: str = "default,finance,reports,email"
    collector_id: str = ""
    # Raise the store's zset/hash listpack value limit to this many bytes at start (0 = leave
    # the server alone): a task hash's timeline field (``_tl``) is ~180 bytes for a plain
    # four-event task, and past the default 64 the hash becomes a hashtable (1,045 instead of
    # 472 bytes a task, docs/operations.md).
    redis_listpack_value: int = 256
    # Metric labels: celery-exporter labels workers by the host part of the node name
    # (w1@box -> box); true labels each node (w1@box). A gone worker is exported with
    # celery_worker_up 0 for this long, so "worker down" alerts can fire. A generic sent
    # hostname labels task-sent counters "generic" (producers with random pod names).
    metrics_node_hostnames: bool = False
    metrics_worker_retention_seconds: float = 3600.0
    metrics_generic_sent_hostname: bool = False
    log_level: str = "INFO"
    stats_interval_seconds: float = 10.0
    reconnect_max_seconds: float = 10.0
    queue_poll_seconds: float = 5.0
    # How often workers that came online are given the limits and paused queues operators set
    # (event_collector/fleet_apply.py).
    fleet_apply_seconds: float = 5.0
    sweep_interval_seconds: float = 60.0
    reconcile_interval_seconds: float = 60.0
    stuck_after_seconds: float = 600.0
    retention_stream_max_length: int = _DEFAULT_RETENTION.stream_max_length
    retention_stream_max_age_seconds: int = _DEFAULT_RETENTION.stream_max_age_seconds
    retention_task_ttl_success_seconds: int = _DEFAULT_RETENTION.task_ttl_success_seconds
    retention_task_ttl_failure_seconds: int = _DEFAULT_RETENTION.task_ttl_failure_seconds
    retention_task_ttl_other_seconds: int = _DEFAULT_RETENTION.task_ttl_other_seconds
    retention_task_ttl_unfinished_seconds: int = _DEFAULT_RETENTION.task_ttl_unfinished_seconds
    retention_counters_minute_ttl_seconds: int = _DEFAULT_RETENTION.counters_minute_ttl_seconds
    retention_counters_hour_ttl_seconds: int = _DEFAULT_RETENTION.counters_hour_ttl_seconds
    retention_counters_day_ttl_seconds: int = _DEFAULT_RETENTION.counters_day_ttl_seconds
    retention_timeline_max: int = _DEFAULT_RETENTION.timeline_max

    def __post_init__(self) -> None:
        broker_kind(self.broker_url)  # an unsupported broker fails at start-up
        self.keys  # noqa: B018 - so does a bad store URL or key prefix

    @property
    def keys(self) -> Keys:
        return store_keys(self.redis_url, self.key_prefix)

    @property
    def retention(self) -> Retention:
        """The ``retention_*`` settings as the store's ``Retention``."""
        values = {
            field.name: getattr(self, f"retention_{field.name}")
            for field in msgspec.structs.fields(Retention)
            if hasattr(self, f"retention_{field.name}")
        }
        return Retention(**values)

    @property
    def queue_names(self) -> tuple[str, ...]:
        return tuple(q.strip() for q in self.queues.split(",") if q.strip())

    @property
    def backend_url(self) -> str:
        return result_backend_url(self.result_backend, self.broker_url)

    @property
    def is_rabbitmq(self) -> bool:
        return broker_kind(self.broker_url) == "amqp"


def load_settings(environ: Mapping[str, str] | None = None) -> CollectorSettings:
    return settings_from_env(CollectorSettings, environ)
