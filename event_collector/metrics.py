"""Every metric the collector exports, defined in one place against a registry passed in.

Names and labels follow danihodovic/celery-exporter so its dashboards and alerts work unchanged:
``celery_task_<kind>_total{name,hostname,queue_name}`` (``failed`` adds ``exception``, the
exception class name), ``celery_task_runtime`` (same default buckets), ``celery_queue_length``,
``celery_active_consumer_count``, ``celery_active_worker_count`` and ``celery_active_process_count``
(all ``{queue_name}``), ``celery_worker_up`` and ``celery_worker_tasks_active`` (``{hostname}``).
As in celery-exporter, ``hostname`` is the host part of the Celery node name (``w1@host`` ->
``host``) unless ``node_hostnames`` is set. Our extras are ``taskpulse_*``.

Three kinds of values:
- event-driven counters and histograms, updated by ``observe_*`` from the collector's loop, counting
  only events this collector applied first (so ``sum()`` across a hot standby pair is exact);
- store-derived gauges (queues, workers, stream length, stuck tasks), served by ``StoreGauges``
  from a snapshot that ``refresh()`` rebuilds from Redis. ``collect()`` runs in the HTTP thread and
  only reads that snapshot: a scrape never waits on Redis;
- the collector's own health: the backlog between reader and writer (``BufferGauges``, read from
  the buffer at scrape time), events dropped and broker disconnects (counters the reader thread
  increments). These are per collector: never summed into the task counts above.

Unlike celery-exporter, a worker that stopped heartbeating keeps ``celery_worker_up = 0`` for
``worker_retention_seconds`` instead of vanishing, so "worker down" alerts can fire.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Final

import msgspec
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from redis.asyncio import Redis

from event_collector.broker import BrokerKind
from event_collector.consume import BufferSnapshot
from event_collector.events import Event
from event_collector.keys import Keys
from event_collector.records import WorkerInfo
from event_collector.replies import hash_text, integer, text
from event_collector.spool import DROP_REASONS
from event_collector.store import TaskFacts
from event_collector.workers import worker_info

# celery-exporter's default (``--buckets``) is prometheus_client's default.
RUNTIME_BUCKETS: Final = Histogram.DEFAULT_BUCKETS
# Waiting in a queue spans milliseconds to hours; the runtime buckets stop at 10 s.
QUEUE_WAIT_BUCKETS: Final = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
    3600.0, float("inf"),
)
TASK_LABELS: Final = ("name", "hostname", "queue_name")
UNKNOWN: Final = "unknown"
EXEMPLAR_INTERVAL: Final = 1.0
_EXCEPTION_CLASS = re.compile(r"^([\w.]+)\(")
# Counter per task event type; names as celery-exporter's (``_total`` is added on exposition).
_COUNTED_TYPES: Final = (
    "sent", "received", "started", "succeeded", "failed", "rejected", "revoked", "retried",
)


def exception_class(exception: str) -> str:
    """``ValueError('boom')`` -> ``ValueError`` (celery-exporter's rule; bounded cardinality)."""
    match = _EXCEPTION_CLASS.match(exception)
    return match.group(1).rsplit(".", 1)[-1] if match else "UnknownException"


def host_label(hostname: str, node_hostnames: bool = False) -> str:
    """celery-exporter labels ``w1@host`` as ``host``: one series per machine, not per node."""
    if node_hostnames or "@" not in hostname:
        return hostname or UNKNOWN
    return hostname.split("@", 1)[1] or UNKNOWN


def _batch_facts(known: dict[str, list[Any]], event: Event) -> TaskFacts:
    """Facts learned from the other events of the same call, for callers without a store
    reply (tools, tests): name/queue from task-sent/received, sent/started timestamps."""
    info = known.setdefault(event.uuid, ["", "", None, None])
    info[0] = event.name or info[0]
    info[1] = event.queue or event.routing_key or info[1]
    seconds = None
    if event.type == "task-sent":
        info[2] = event.timestamp
    elif event.type == "task-started":
        info[3] = event.timestamp
        seconds = None if info[2] is None else event.timestamp - info[2]
    elif event.type == "task-failed" and info[3] is not None:
        seconds = event.timestamp - info[3]
    return TaskFacts(info[0], info[1], seconds)


class StoreSnapshot(msgspec.Struct, frozen=True):
    """What the store-derived gauges show. Replaced whole, never mutated (the HTTP thread reads)."""

    queue_lengths: Mapping[str, int] = {}
    queue_consumers: Mapping[str, int] = {}
    queue_workers: Mapping[str, int] = {}
    queue_processes: Mapping[str, int] = {}
    workers: tuple[WorkerInfo, ...] = ()
    stream_length: int | None = None
    stuck: Mapping[tuple[str, str], int] = {}


def _int_map(raw: Mapping[bytes, bytes]) -> dict[str, int]:
    return {text(k): integer(v) or 0 for k, v in raw.items()}


class StoreGauges:
    """Custom collector: gauges computed from the last snapshot of the monitoring store."""

    def __init__(self, node_hostnames: bool = False) -> None:
        self.snapshot = StoreSnapshot()
        self._node_hostnames = node_hostnames

    def describe(self) -> Iterator[Metric]:
        return self._families(StoreSnapshot())

    def collect(self) -> Iterator[Metric]:
        return self._families(self.snapshot)

    def _families(self, snap: StoreSnapshot) -> Iterator[Metric]:
        yield _by_queue("celery_queue_length", "The number of message in broker queue.",
                        snap.queue_lengths)
        yield _by_queue("celery_active_consumer_count",
                        "The number of active consumer in broker queue.", snap.queue_consumers)
        yield _by_queue("celery_active_worker_count",
                        "The number of active workers in broker queue.", snap.queue_workers)
        yield _by_queue("celery_active_process_count",
                        "The number of active processes in broker queue.", snap.queue_processes)
        yield from self._worker_families(snap.workers)
        stream = GaugeMetricFamily("taskpulse_stream_length", "Entries in the event stream.")
        if snap.stream_length is not None:
            stream.add_metric([], snap.stream_length)
        yield stream
        stuck = GaugeMetricFamily(
            "taskpulse_tasks_stuck",
            "Tasks in a non-final state past stuck_after that the result backend could not"
            " complete.",
            labels=["name", "queue_name"],
        )
        for (name, queue), count in sorted(snap.stuck.items()):
            stuck.add_metric([name, queue], count)
        yield stuck

    def _worker_families(self, workers: Sequence[WorkerInfo]) -> Iterator[Metric]:
        up: dict[str, int] = {}
        active: dict[str, int] = {}
        for worker in workers:
            label = host_label(worker.hostname, self._node_hostnames)
            # Several nodes on one host share a label (celery-exporter compatible): up if any is.
            up[label] = max(up.get(label, 0), int(worker.alive))
            active[label] = active.get(label, 0) + ((worker.active or 0) if worker.alive else 0)
        up_family = GaugeMetricFamily(
            "celery_worker_up", "Indicates if a worker has recently sent a heartbeat.",
            labels=["hostname"],
        )
        active_family = GaugeMetricFamily(
            "celery_worker_tasks_active",
            "The number of tasks the worker is currently processing", labels=["hostname"],
        )
        for label in sorted(up):
            up_family.add_metric([label], up[label])
            active_family.add_metric([label], active[label])
        yield up_family
        yield active_family


class BufferGauges:
    """Custom collector: the raw-message backlog in memory and in the spool, at scrape time."""

    def __init__(self, snapshot: Callable[[], BufferSnapshot]) -> None:
        self._snapshot = snapshot

    def describe(self) -> Iterator[Metric]:
        return self._families(BufferSnapshot())

    def collect(self) -> Iterator[Metric]:
        return self._families(self._snapshot())

    def _families(self, snap: BufferSnapshot) -> Iterator[Metric]:
        events = GaugeMetricFamily(
            "taskpulse_buffer_events",
            "Events read from the broker and waiting to be written, in memory or in the spool.",
            labels=["where"],
        )
        events.add_metric(["memory"], snap.memory_events)
        events.add_metric(["spool"], snap.spool_events)
        yield events
        size = GaugeMetricFamily(
            "taskpulse_buffer_bytes",
            "Bytes those events take: memory (bodies, compressed past a backlog) and spool"
            " (segment files on disk, including read ones not yet written to the store).",
            labels=["where"],
        )
        size.add_metric(["memory"], snap.memory_bytes)
        size.add_metric(["spool"], snap.spool_bytes)
        yield size
        limit = GaugeMetricFamily(
            "taskpulse_buffer_limit_bytes",
            "The budget of each: past memory's the backlog spills to the spool (Redis) or the"
            " reader waits (RabbitMQ); past the spool's, events are dropped. 0: no spool.",
            labels=["where"],
        )
        limit.add_metric(["memory"], snap.memory_limit_bytes)
        limit.add_metric(["spool"], snap.spool_limit_bytes)
        yield limit


class PartitionGauges:
    """Custom collector: the store's partitions, those this collector leases and its replay
    window (leases.py), read at scrape time."""

    def __init__(self, partitions: int, snapshot: Callable[[], tuple[int, int]]) -> None:
        self._partitions = partitions
        self._snapshot = snapshot

    def describe(self) -> Iterator[Metric]:
        return self._families(0, 0)

    def collect(self) -> Iterator[Metric]:
        return self._families(*self._snapshot())

    def _families(self, held: int, waiting: int) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "taskpulse_partitions",
            "The store's partitions (TASKPULSE_PARTITIONS): every one needs a collector holding"
            " it.", value=self._partitions,
        )
        yield GaugeMetricFamily(
            "taskpulse_partitions_held",
            "Store partitions whose events this collector applies (summed over the collectors:"
            " TASKPULSE_PARTITIONS once every partition has a holder).", value=held,
        )
        yield GaugeMetricFamily(
            "taskpulse_partition_replay_events",
            "Events of partitions this collector does not hold, kept to replay if it takes one"
            " over.", value=waiting,
        )


def _by_queue(name: str, documentation: str, values: Mapping[str, int]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=["queue_name"])
    for queue, value in sorted(values.items()):
        family.add_metric([queue], value)
    return family


class CollectorMetrics:
    """The collector's metrics. Create one per process (or per test) against ``registry``."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        keys: Keys,
        worker_retention_seconds: float = 3600.0,
        node_hostnames: bool = False,
        generic_sent_hostname: bool = False,
        runtime_buckets: Sequence[float] = RUNTIME_BUCKETS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = keys
        self._worker_retention = worker_retention_seconds
        self._node_hostnames = node_hostnames
        self._generic_sent_hostname = generic_sent_hostname
        self._clock = clock
        # Label sets whose counters exist already (bounded by the metrics' own cardinality).
        self._touched: set[tuple[str, str, str]] = set()
        self._children: dict[tuple[str, tuple[str, str, str]], Any] = {}
        # (histogram, labels) -> [child, monotonic time the next exemplar may be attached]
        self._histograms: dict[tuple[Histogram, tuple[str, str, str]], list[Any]] = {}
        self._host_labels: dict[str, str] = {}
        self.store_gauges = StoreGauges(node_hostnames)
        registry.register(self.store_gauges)
        self._counters = {
            f"task-{kind}": Counter(
                f"celery_task_{kind}", f"Celery task-{kind} events.",
                [*TASK_LABELS, "exception"] if kind == "failed" else TASK_LABELS,
                registry=registry,
            )
            for kind in _COUNTED_TYPES
        }
        self.runtime = Histogram(
            "celery_task_runtime", "Histogram of task runtime measurements.", TASK_LABELS,
            buckets=runtime_buckets, registry=registry,
        )
        self.queue_wait = Histogram(
            "celery_task_queue_wait_time",
            "Seconds from task-sent to task-started (time spent waiting for a worker).",
            TASK_LABELS, buckets=QUEUE_WAIT_BUCKETS, registry=registry,
        )
        self.failed_runtime = Histogram(
            "taskpulse_task_failed_runtime_seconds", "Runtime of tasks that failed.",
            TASK_LABELS, buckets=runtime_buckets, registry=registry,
        )
        self.events = Counter(
            "taskpulse_events", "Events applied first by this collector, by type.", ["type"],
            registry=registry,
        )
        self.invalid = Counter(
            "taskpulse_events_invalid", "Events rejected by normalization, by reason.",
            ["reason"], registry=registry,
        )
        self.duplicates = Counter(
            "taskpulse_events_duplicate",
            "Events already applied (by this or another collector) and so ignored.",
            registry=registry,
        )
        self.lag = Gauge(
            "taskpulse_collector_lag_seconds",
            "Now minus the timestamp of the newest event in the last applied batch.",
            registry=registry,
        )
        self.dropped = Counter(
            "taskpulse_events_dropped",
            "Events read from the broker that will never reach the store, by reason.",
            ["reason"], registry=registry,
        )
        for reason in DROP_REASONS:  # at 0 from the start, so increase() sees the first drop
            self.dropped.labels(reason)
        self.broker_disconnects = Counter(
            "taskpulse_broker_disconnects",
            "Broker connections lost after subscribing (on Redis PUB/SUB, events published until"
            " the reader resubscribes are lost).",
            ["broker"], registry=registry,
        )
        self._registry = registry

    def observe_applied(
        self, events: Sequence[Event], facts: Sequence[TaskFacts | None] | None = None
    ) -> None:
        """Count events this collector applied first (never duplicates). ``facts`` (parallel to
        ``events``, from ``ApplyResult``) is what the store knew of each task: its labels even
        when this collector never saw the task-sent event, so nothing per task is kept here."""
        per_type: dict[str, int] = {}
        # counter children -> increments: a batch's events share a few label sets, so each
        # child's lock is taken once per batch, not once per event
        increments: dict[Any, int] = {}
        known: dict[str, list[Any]] = {}
        for i, event in enumerate(events):
            per_type[event.type] = per_type.get(event.type, 0) + 1
            if event.type in self._counters and event.uuid:
                fact = facts[i] if facts is not None else None
                if fact is None:
                    fact = _batch_facts(known, event)
                if fact.counted:
                    self._observe_task_event(event, fact, increments)
        for child, count in increments.items():
            child.inc(count)
        for type_, count in per_type.items():
            self.events.labels(type_).inc(count)

    def _observe_task_event(
        self, event: Event, fact: TaskFacts, increments: dict[Any, int]
    ) -> None:
        labels = (fact.name or UNKNOWN, self._host(event), fact.queue or UNKNOWN)
        if event.type == "task-failed":
            if labels not in self._touched:
                self._touch(labels)
            # Exemplars (OpenMetrics) link a failure to one task id; labels never carry ids.
            self._counters["task-failed"].labels(
                *labels, exception_class(event.exception)
            ).inc(exemplar={"task_id": event.uuid})
        else:
            # The hot path: label children are cached, prometheus_client's labels() is slow.
            child = self._children.get((event.type, labels))
            if child is None:
                child = self._counter_child(event.type, labels)
            increments[child] = increments.get(child, 0) + 1
        self._observe_durations(event, fact, labels)

    def _counter_child(self, type_: str, labels: tuple[str, str, str]) -> Any:
        if type_ != "task-sent" and labels not in self._touched:
            self._touch(labels)
        child = self._children[(type_, labels)] = self._counters[type_].labels(*labels)
        return child

    def _host(self, event: Event) -> str:
        if event.type == "task-sent" and self._generic_sent_hostname:
            # Producers (web pods) often have random hostnames: celery-exporter's option.
            return "generic"
        label = self._host_labels.get(event.hostname)
        if label is None:  # as many as the hostname label's series: bounded the same way
            label = self._host_labels[event.hostname] = host_label(
                event.hostname, self._node_hostnames
            )
        return label

    def _observe(
        self, histogram: Histogram, labels: tuple[str, str, str], value: float, task_id: str
    ) -> None:
        """Observe on a cached child; attach a task-id exemplar at most every
        EXEMPLAR_INTERVAL seconds per series (building and validating one costs more than the
        observation, and a scrape shows only the latest per bucket anyway)."""
        entry = self._histograms.get((histogram, labels))
        if entry is None:
            entry = self._histograms[(histogram, labels)] = [histogram.labels(*labels), 0.0]
        now = time.monotonic()
        if now >= entry[1]:
            entry[1] = now + EXEMPLAR_INTERVAL
            entry[0].observe(value, exemplar={"task_id": task_id})
        else:
            entry[0].observe(value)

    def _touch(self, labels: tuple[str, str, str]) -> None:
        """Create every worker-side counter at 0, as celery-exporter does, so that
        ``rate(celery_task_failed_total)`` is 0 rather than absent before the first failure."""
        self._touched.add(labels)
        for type_, counter in self._counters.items():
            if type_ == "task-failed":
                counter.labels(*labels, "")
            elif type_ != "task-sent":
                counter.labels(*labels)

    def _observe_durations(
        self, event: Event, fact: TaskFacts, labels: tuple[str, str, str]
    ) -> None:
        if event.type == "task-succeeded" and event.runtime is not None:
            self._observe(self.runtime, labels, event.runtime, event.uuid)
        elif event.type == "task-failed":
            # Celery's task-failed carries no runtime: the store gives started -> failed.
            runtime = event.runtime if event.runtime is not None else fact.seconds
            if runtime is not None:
                self._observe(self.failed_runtime, labels, max(0.0, runtime), event.uuid)
        elif event.type == "task-started" and fact.seconds is not None:
            # Clocks of producer and worker differ a little; a negative wait is skew, not data.
            wait = max(0.0, fact.seconds)
            self._observe(self.queue_wait, labels, wait, event.uuid)

    def observe_invalid(self, reason: str) -> None:
        self.invalid.labels(reason).inc()

    def observe_duplicates(self, count: int) -> None:
        if count:
            self.duplicates.inc(count)

    def observe_lag(self, seconds: float) -> None:
        self.lag.set(seconds)

    def observe_dropped(self, reason: str, events: int) -> None:
        """Events dropped (``spool.DropCounter``); called from the reader thread too."""
        if events:
            self.dropped.labels(reason).inc(events)

    def broker_disconnected(self, broker: BrokerKind) -> Callable[[], None]:
        """The callback a reader calls when it loses its broker connection (counter at 0 now)."""
        return self.broker_disconnects.labels(broker).inc

    def watch_buffer(self, snapshot: Callable[[], BufferSnapshot]) -> None:
        """Export what waits between reader and writer, read at scrape time."""
        self._registry.register(BufferGauges(snapshot))

    def watch_partitions(self, partitions: int, snapshot: Callable[[], tuple[int, int]]) -> None:
        """Export the store's partitions and (partitions held, replay window size), read at
        scrape time."""
        self._registry.register(PartitionGauges(partitions, snapshot))

    def observe_stuck(self, counts: Mapping[tuple[str, str], int]) -> None:
        """Tasks still stuck after reconciliation, by (name, queue) — from ``Reconciler``."""
        self.store_gauges.snapshot = msgspec.structs.replace(
            self.store_gauges.snapshot, stuck=dict(counts)
        )

    async def refresh(self, redis: Redis) -> None:
        """Rebuild the store snapshot (two round trips); call periodically from the event loop."""
        now = self._clock()
        k = self._keys
        async with redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(k.queues)
            pipe.hgetall(k.queue_consumers)
            pipe.hgetall(k.queue_workers)
            pipe.hgetall(k.queue_processes)
            pipe.zrangebyscore(k.workers, now - self._worker_retention, "+inf")
            for stream in k.streams:
                pipe.xlen(stream)
            lengths, consumers, workers_per_q, processes, hosts, *stream_lengths = (
                await pipe.execute()
            )
        workers = await self._read_workers(redis, [text(h) for h in hosts], now)
        self.store_gauges.snapshot = StoreSnapshot(
            queue_lengths=_int_map(lengths),
            queue_consumers=_int_map(consumers),
            queue_workers=_int_map(workers_per_q),
            queue_processes=_int_map(processes),
            workers=workers,
            stream_length=sum(int(n) for n in stream_lengths),
            stuck=self.store_gauges.snapshot.stuck,
        )

    async def _read_workers(
        self, redis: Redis, hostnames: Sequence[str], now: float
    ) -> tuple[WorkerInfo, ...]:
        if not hostnames:
            return ()
        async with redis.pipeline(transaction=False) as pipe:
            for hostname in hostnames:
                pipe.hgetall(self._keys.worker(hostname))
            hashes = await pipe.execute()
        pairs = zip(hostnames, hashes, strict=True)
        return tuple(worker_info(hostname, hash_text(raw), now) for hostname, raw in pairs)
