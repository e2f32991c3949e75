"""The collector process: broker reader -> pipeline -> store, plus /metrics, /health and the
periodic jobs (metric snapshot, queue lengths, retention sweep, heartbeat, a stats log line).

Everything is created in ``Collector.__init__`` from one ``CollectorSettings`` and torn down in
``run``'s ``finally``; nothing here runs at import.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Final

import msgspec
import redis.asyncio as aioredis
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from event_collector.broker import broker_kind, redis_py_opens
from event_collector.config import CollectorSettings
from event_collector.connection import STORE_ERRORS, ClientOptions, open_async, parse_store_url
from event_collector.consume import AmqpQueueReader, RawBuffer, RedisFanoutReader
from event_collector.events import Event
from event_collector.fleet_apply import FleetApplier
from event_collector.leases import PartitionLeases
from event_collector.metrics import CollectorMetrics
from event_collector.pipeline import Pipeline
from event_collector.queues import QueuePoller
from event_collector.reconcile import Reconciler
from event_collector.segments import migrate_plain_indexes
from event_collector.spool import Spool, open_spool
from event_collector.store import ApplyResult, EventStore, raise_listpack_limits
from event_collector.sweep import RetentionSweeper

log = logging.getLogger("taskpulse.collector")

HEARTBEAT_SECONDS: Final = 5.0
METRICS_REFRESH_SECONDS: Final = 5.0


class Collector:
    """One running collector. ``await run(stop)`` until ``stop`` is set, then flush and exit.

    Create it inside the running event loop (the reader thread hands messages to that loop).
    """

    def __init__(self, settings: CollectorSettings) -> None:
        self.settings = settings
        self.id = settings.collector_id or f"{socket.gethostname()}-{os.getpid()}"
        self.keys = settings.keys
        self.store_address = parse_store_url(settings.redis_url)
        # A few quick retries absorb a reconnect or a redirection; a failover outlasts them and
        # reaches the pipeline, which retries the batch until the store answers again.
        self.redis = open_async(self.store_address, ClientOptions(
            socket_timeout=10, connect_timeout=5, retries=3, backoff_cap=0.5,
        ))
        self.registry = CollectorRegistry()
        self.metrics = CollectorMetrics(
            self.registry, keys=self.keys,
            worker_retention_seconds=settings.metrics_worker_retention_seconds,
            node_hostnames=settings.metrics_node_hostnames,
            generic_sent_hostname=settings.metrics_generic_sent_hostname,
        )
        self.store = EventStore(self.redis, self.keys, settings.retention)
        kind = broker_kind(settings.broker_url)
        disconnected = self.metrics.broker_disconnected(kind)
        self.reader: AmqpQueueReader | RedisFanoutReader = (
            AmqpQueueReader(
                settings.broker_url, settings.event_queue, settings.event_queue_max_length,
                reconnect_max=settings.reconnect_max_seconds, disconnected=disconnected,
            )
            if kind == "amqp"
            else RedisFanoutReader(settings.broker_url, settings.reconnect_max_seconds,
                                   disconnected=disconnected)
        )
        self.started = time.time()
        # RabbitMQ keeps the backlog in its durable queue (the reader waits); Redis PUB/SUB does
        # not, so there the reader never waits and spills to the spool (opened by ``run``).
        self.spool: Spool | None = None
        self.buffer = RawBuffer(
            asyncio.get_running_loop(), max_bytes=settings.buffer_max_bytes,
            max_messages=settings.buffer_max_messages, block=kind == "amqp",
            dropped=self.metrics.observe_dropped,
        )
        self.metrics.watch_buffer(self.buffer.snapshot)
        # Every collector reads the whole fanout of a Redis broker: in a partitioned store each
        # applies the partitions it leases (RabbitMQ hands each event to one collector instead).
        self.leases = (
            PartitionLeases(
                self.redis, self.keys, self.id, ttl_seconds=settings.partition_lease_seconds,
                replay_seconds=settings.partition_replay_seconds,
            )
            if self.keys.partitions > 1 and kind != "amqp" else None
        )
        if self.leases is not None:
            leases = self.leases
            self.metrics.watch_partitions(self.keys.partitions,
                                          lambda: (len(leases.held), leases.waiting))
        self.pipeline = Pipeline(
            self.store, self.reader, self.buffer, self.metrics,
            batch_size=settings.batch_size, batch_interval=settings.batch_interval_ms / 1000,
            reconnect_max=settings.reconnect_max_seconds, gate=self.leases,
        )
        self._last_summary: tuple[float, dict[str, int]] | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        s = self.settings
        try:
            self._open_spool()
        except BaseException:
            await self.close()
            raise
        runner = await self._start_http()
        log.info("collector %s starting: broker %s, store %s (prefix %r), metrics on %s:%d",
                 self.id, _safe_url(s.broker_url), self.store_address.safe_url, self.keys.prefix,
                 s.metrics_host, s.metrics_port)
        await self._tune_store()
        self.reader.start(self.buffer)
        await self._migrate_store(stop)  # the buffer and spool hold what arrives meanwhile
        pipeline = asyncio.create_task(self.pipeline.run(), name="pipeline")
        jobs = [asyncio.create_task(job, name=name) for name, job in self._jobs()]
        try:
            done, _ = await asyncio.wait(
                [pipeline, asyncio.create_task(stop.wait())], return_when="FIRST_COMPLETED"
            )
            if pipeline in done:
                pipeline.result()  # a crash of the hot path must not go unnoticed
            # Stop reading first, or a busy channel would never let the buffer drain.
            log.info("stopping: no more reading; writing what was already read")
            await asyncio.to_thread(self.reader.stop)
            if spooled := self.buffer.keep_spool():
                log.info("%d events stay in the spool %s: the next start writes them",
                         spooled, self.spool.directory if self.spool else "")
            self.pipeline.stop()
            await pipeline
            if self.leases is not None:
                with contextlib.suppress(*STORE_ERRORS, OSError):
                    await self.leases.release_all()
        finally:
            for job in jobs:
                job.cancel()
            await asyncio.gather(*jobs, return_exceptions=True)
            await asyncio.to_thread(self.reader.close)
            if self.spool is not None:
                self.spool.close()
            await runner.cleanup()
            await self.close()
            log.info("collector stopped: %d events applied, %d duplicates, %d invalid",
                     self.pipeline.stats.applied, self.pipeline.stats.duplicates,
                     self.pipeline.stats.invalid)

    def _open_spool(self) -> None:
        """This collector's slot of the spool, with what an earlier run left in it (Redis
        brokers only; ``TASKPULSE_SPOOL_MAX_BYTES=0`` means none)."""
        s = self.settings
        if s.is_rabbitmq or s.spool_max_bytes <= 0:
            return
        self.spool = open_spool(
            Path(s.spool_dir), s.collector_id,
            {"store": self.store_address.safe_url, "key_prefix": self.keys.prefix},
            s.spool_max_bytes, self.metrics.observe_dropped,
        )
        self.buffer.use_spool(self.spool)
        waiting = self.spool.events
        log.info("spool %s (up to %s bytes)%s", self.spool.directory, f"{s.spool_max_bytes:,}",
                 f": replaying {waiting:,} events an earlier run left" if waiting else "")

    async def _tune_store(self) -> None:
        """Keep small hashes/zsets in their compact encoding (see ``redis_listpack_value``)."""
        wanted = self.settings.redis_listpack_value
        try:
            for option, previous in await raise_listpack_limits(self.redis, wanted):
                log.info("store: raised %s %d -> %d so task records stay compact"
                         " (TASKPULSE_REDIS_LISTPACK_VALUE=0 leaves it alone)",
                         option, previous, wanted)
        except (*STORE_ERRORS, OSError) as exc:
            log.warning("store: could not tune %s (%s); memory per task will be higher",
                        "listpack limits", exc)

    async def _migrate_store(self, stop: asyncio.Event) -> None:
        """Convert a store written before indexes were segmented, before writing to it; an
        unreachable store is retried (nothing is written before this is done)."""
        delay = 0.5
        while not stop.is_set():
            try:
                moved = await migrate_plain_indexes(self.redis, self.keys)
            except (*STORE_ERRORS, OSError) as exc:
                log.warning("store: cannot check the index layout yet (%s); retrying in %.0f s",
                            exc, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                delay = min(delay * 2, 10.0)
                continue
            if moved:
                log.info("store: %d index entries converted to segmented indexes", moved)
            return

    async def close(self) -> None:
        await self.redis.aclose()

    # -- periodic jobs -----------------------------------------------------------------------

    def _jobs(self) -> list[tuple[str, Awaitable[None]]]:
        s = self.settings
        poller = QueuePoller(self.redis, self.keys, s.broker_url, s.queue_names)
        sweepers = [
            RetentionSweeper(
                self.redis, keys,
                index_retention_seconds=max(
                    s.retention_task_ttl_success_seconds, s.retention_task_ttl_failure_seconds,
                    s.retention_task_ttl_other_seconds, s.retention_task_ttl_unfinished_seconds,
                ),
                stream_max_age_seconds=s.retention_stream_max_age_seconds,
                stream_maxlen=s.retention_stream_max_length,
                queues=s.queue_names,
            )
            for keys in self.keys.each_partition()
        ]

        async def sweep() -> None:
            for partition, sweeper in enumerate(sweepers):
                if self._mine(partition):
                    await sweeper.run_once()

        applier = FleetApplier(self.redis, self.keys, s.broker_url)
        jobs = [
            ("heartbeat", self._every(HEARTBEAT_SECONDS, self._heartbeat)),
            ("metrics-refresh", self._every(
                METRICS_REFRESH_SECONDS, lambda: self.metrics.refresh(self.redis))),
            ("stats-log", self._every(s.stats_interval_seconds, self._log_stats)),
            ("queue-poller", self._every(s.queue_poll_seconds, poller.run_once, poller.aclose)),
            ("retention-sweep", self._every(s.sweep_interval_seconds, sweep)),
            ("fleet-apply", self._every(s.fleet_apply_seconds, applier.run_once, applier.aclose)),
        ]
        if self.leases is not None:
            jobs.append(("partition-leases", self._every(self.leases.interval, self._lease_round)))
        if redis_py_opens(s.backend_url):
            backend = aioredis.Redis.from_url(s.backend_url, socket_connect_timeout=5)
            reconcilers = [
                Reconciler(
                    self.redis, backend, keys, self._apply_reconciled,
                    stuck_after_seconds=s.stuck_after_seconds,
                )
                for keys in self.keys.each_partition()
            ]

            async def reconcile() -> None:
                # Every partition, whatever this collector leases: the stuck gauge is then the
                # same on every collector (dashboards take its max), and two reconcilers
                # complete a task once (store.lua counts a final kind once).
                still: Counter[tuple[str, str]] = Counter()
                for reconciler in reconcilers:
                    still.update((await reconciler.run_once()).still_stuck)
                self.metrics.observe_stuck(still)

            jobs.append(("reconcile", self._every(
                s.reconcile_interval_seconds, reconcile, backend.aclose)))
        else:
            log.info("the result backend (TASKPULSE_RESULT_BACKEND) is not a Redis the collector"
                     " can read: tasks whose final event was lost stay unreconciled")
        return jobs

    def _mine(self, partition: int) -> bool:
        """Whether this collector sweeps ``partition``: one it leases, or every partition when
        it takes no leases."""
        return self.leases is None or partition in self.leases.held

    async def _lease_round(self) -> None:
        replay = await self.leases.run_round()  # type: ignore[union-attr]
        size = self.settings.batch_size  # a window can hold many batches: one script call each
        for start in range(0, len(replay), size):
            await self.pipeline.write_now(replay[start : start + size])

    async def _apply_reconciled(self, events: Sequence[Event]) -> ApplyResult:
        """Reconciled outcomes count like events this collector applied first."""
        result = await self.store.apply(events)
        self.metrics.observe_applied(result.applied, result.facts)
        self.metrics.observe_duplicates(result.duplicates)
        return result

    async def _every(
        self, seconds: float, job: Callable[[], Awaitable[Any]],
        cleanup: Callable[[], Awaitable[Any]] | None = None,
    ) -> None:
        """Run ``job`` every ``seconds``; a failure is logged and retried next time."""
        failing = False
        try:
            while True:
                try:
                    await job()
                    if failing:
                        log.info("%s recovered", getattr(job, "__qualname__", job))
                    failing = False
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # a periodic job must never stop for good
                    if not failing:
                        log.warning("%s failed: %s: %s", getattr(job, "__qualname__", job),
                                    type(exc).__name__, exc,
                                    exc_info=not isinstance(exc, (*STORE_ERRORS, OSError)))
                    failing = True
                await asyncio.sleep(seconds)
        finally:
            if cleanup is not None:
                with contextlib.suppress(Exception):
                    await cleanup()

    async def _heartbeat(self) -> None:
        stats = self.pipeline.stats
        key = self.keys.collector(self.id)
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.hset(key, mapping={
                    "id": self.id, "started": self.started, "heartbeat": time.time(),
                    "applied": stats.applied, "duplicates": stats.duplicates,
                    "invalid": stats.invalid, "buffered": len(self.buffer),
                    "broker_connected": int(self.reader.status.connected),
                })
                pipe.expire(key, int(HEARTBEAT_SECONDS * 3))
                await pipe.execute()
        except (*STORE_ERRORS, OSError) as exc:
            if stats.store_connected:
                log.warning("store unreachable (%s: %s)", type(exc).__name__, exc)
            stats.store_connected = False
            stats.store_error = f"{type(exc).__name__}: {exc}"
            return
        if not stats.store_connected:
            log.info("store reachable again")
        stats.store_connected = True

    async def _log_stats(self) -> None:
        self.buffer.log_drops()
        before = self._last_summary
        now = time.monotonic()
        summary = self.pipeline.take_summary()
        self._last_summary = (now, summary)
        if before is None:
            return
        elapsed = max(1e-6, now - before[0])
        delta = {k: summary[k] - before[1][k] for k in summary}
        if any(delta.values()):
            waiting = self.buffer.snapshot()
            log.info(
                "%d events applied (%.0f/s) in %d batches, %d duplicates, %d invalid;"
                " waiting %d events in memory, %d in the spool; lag %.3fs",
                delta["applied"], delta["applied"] / elapsed, delta["batches"],
                delta["duplicates"], delta["invalid"], waiting.memory_events,
                waiting.spool_events, self.pipeline.stats.last_lag,
            )

    # -- HTTP --------------------------------------------------------------------------------

    def health(self) -> tuple[bool, dict[str, Any]]:
        stats = self.pipeline.stats
        broker = msgspec.to_builtins(self.reader.status)
        ok = self.reader.status.connected and stats.store_connected
        return ok, {
            "status": "ok" if ok else "degraded",
            "collector": self.id,
            "broker": broker,
            "store": {"connected": stats.store_connected, "last_error": stats.store_error},
            "buffered": len(self.buffer),
            "buffer": msgspec.to_builtins(self.buffer.snapshot()),
            "applied": stats.applied,
            "duplicates": stats.duplicates,
            "invalid": stats.invalid,
            "partitions": self._partitions_health(),
            "last_write": stats.last_write or None,
            "lag_seconds": stats.last_lag,
        }

    def _partitions_health(self) -> dict[str, Any]:
        if self.leases is None:
            return {"total": self.keys.partitions, "held": "all"}
        return {"total": self.keys.partitions, "held": sorted(self.leases.held),
                "replay_window": self.leases.waiting}

    async def _start_http(self) -> web.AppRunner:
        async def metrics(_: web.Request) -> web.Response:
            body = generate_latest(self.registry)
            return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

        async def health(_: web.Request) -> web.Response:
            ok, body = self.health()
            return web.json_response(body, status=200 if ok else 503)

        app = web.Application()
        app.router.add_get("/metrics", metrics)
        app.router.add_get("/health", health)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.settings.metrics_host, self.settings.metrics_port)
        await site.start()
        return runner


def _safe_url(url: str) -> str:
    """A URL for logs: the password replaced."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else f"{scheme}://{user}@{host}"
