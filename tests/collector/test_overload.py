"""A collector whose store cannot keep up keeps reading the Redis fanout, spills to its disk spool
and loses nothing — or, past the disk budget, counts exactly what it drops.

Real parts: a broker redis-server and a store redis-server of the test's own (the store is frozen
with SIGSTOP while the broker keeps serving), a ``python -m event_collector`` subprocess, and
task events sent by Celery's own dispatcher (``task.multi`` batches as a prefork worker flushes
them, ``bench/dispatch.py``). The broker's pub/sub output buffer limit is lowered to 1 MB, so a
reader that stopped reading would be disconnected within a fraction of the backlog.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.dispatch import send
from event_collector.keys import COUNTER_FIELD_SEPARATOR, Keys
from tests.collector.conftest import collector_env, http_get, metric_sum, start_collector
from tests.services import RedisServer, ServiceProcess, free_port, taskpulse_env, wait_until

KEYS = Keys()
TASKS = 3000
EVENTS = TASKS * 4


@dataclass
class Overload:
    broker: RedisServer
    store: RedisServer
    env: dict[str, str]
    spool_dir: Path
    log_dir: Path

    def collector(self, name: str = "collector") -> ServiceProcess:
        return start_collector(self.env, self.log_dir / f"{name}.log")

    def freeze_store(self) -> None:
        assert self.store.process is not None
        os.kill(self.store.process.pid, signal.SIGSTOP)

    def thaw_store(self) -> None:
        assert self.store.process is not None
        os.kill(self.store.process.pid, signal.SIGCONT)

    def publish(self, tasks: int = TASKS, rate: float = 4000) -> None:
        """A steady publish: ``tasks`` lifecycles at ``rate`` events/s."""
        send(self.broker.url(0), tasks, rate, 4, "w1")

    def metric(self, name: str, **labels: str) -> float:
        return metric_sum(http_get(self.env, "/metrics")[1], name, **labels)

    def task_events_stored(self) -> int:
        counts = self.store.client().hgetall(KEYS.counters_total)
        return sum(int(v) for v in counts.values())

    def succeeded(self) -> int:
        counts = self.store.client().hgetall(KEYS.counters_total)
        suffix = f"{COUNTER_FIELD_SEPARATOR}SUCCESS".encode()
        return sum(int(v) for k, v in counts.items() if k.endswith(suffix))

    def segments(self) -> list[Path]:
        return list(self.spool_dir.glob("*/*.seg"))

    def subscriber_age(self) -> int:
        """Seconds the broker has had the collector's PSUBSCRIBE connection."""
        [client] = [c for c in self.broker.client().client_list() if c.get("psub") == "1"]
        return int(client["age"])


@pytest.fixture
def overload(tmp_path: Path) -> Iterator[Overload]:
    servers = []
    for name in ("broker", "store"):
        (tmp_path / name).mkdir()
        server = RedisServer(tmp_path / name)
        server.start()
        servers.append(server)
    broker, store = servers
    broker.client().config_set("client-output-buffer-limit", "pubsub 1mb 0 0")
    env = taskpulse_env(broker, tmp_path / "data")
    env = collector_env(
        env, TASKPULSE_REDIS_URL=store.url(0),
        # a memory budget of ~150 messages: the rest of the backlog must go to disk
        TASKPULSE_BUFFER_MAX_BYTES="100000", TASKPULSE_BUFFER_MAX_MESSAGES="1000",
        TASKPULSE_BATCH_SIZE="50",
    )
    try:
        yield Overload(broker, store, env, Path(env["TASKPULSE_SPOOL_DIR"]), tmp_path)
    finally:
        store.process and os.kill(store.process.pid, signal.SIGCONT)
        for server in servers:
            server.stop()


def test_a_frozen_store_makes_the_collector_spill_and_every_task_arrives_once_it_returns(
    overload: Overload,
) -> None:
    collector = overload.collector()
    started = time.monotonic()
    try:
        overload.freeze_store()
        overload.publish()
        wait_until(lambda: overload.metric("taskpulse_buffer_events", where="spool") > 0,
                   timeout=10, what="a backlog in the spool")
        assert overload.metric("taskpulse_buffer_bytes", where="spool") > 0
        assert overload.segments()
        overload.thaw_store()

        wait_until(lambda: overload.succeeded() == TASKS, timeout=60, what="every task stored")
        assert overload.task_events_stored() == EVENTS
        assert overload.store.client().xlen(KEYS.events) == EVENTS
        assert overload.metric("taskpulse_broker_disconnects_total") == 0
        assert overload.metric("taskpulse_events_dropped_total") == 0
        assert "output buffer limits" not in (overload.broker.workdir / "redis.log").read_text()
        assert overload.subscriber_age() >= int(time.monotonic() - started) - 1, (
            "the broker connection is still the one made at start")
        wait_until(lambda: not overload.segments(), timeout=10, what="written segments deleted")
        assert overload.metric("taskpulse_buffer_events", where="spool") == 0
    finally:
        collector.stop()


def test_a_killed_collector_replays_its_spool_on_the_next_start_and_loses_nothing(
    overload: Overload,
) -> None:
    first = overload.collector("first")
    try:
        overload.freeze_store()
        overload.publish()
        wait_until(lambda: overload.metric("taskpulse_buffer_events", where="spool") > 0,
                   timeout=10, what="a backlog in the spool")
        time.sleep(0.5)  # the reader has read everything published
        in_memory = EVENTS - overload.metric("taskpulse_buffer_events", where="spool")
        # Let the store take a little at a time until everything that waited in memory is
        # written and part of the spool too (memory goes first; at most two batches of
        # TASKPULSE_BATCH_SIZE are in flight), then kill: what was read from the spool but
        # not confirmed written, and the rest of the spool, must come back.
        for _ in range(1000):
            overload.thaw_store()
            time.sleep(0.01)
            overload.freeze_store()
            if overload.metric("taskpulse_events_total") >= in_memory + 3 * 50:
                break
        left = overload.metric("taskpulse_buffer_events", where="spool")
        first.stop(signal.SIGKILL)
        overload.thaw_store()
    finally:
        first.stop(signal.SIGKILL)
    assert left > 0, "the kill came after the spool had drained: nothing was replayed"
    assert overload.succeeded() < TASKS

    second = overload.collector("second")
    try:
        wait_until(lambda: overload.succeeded() == TASKS, timeout=60, what="every task stored")
        assert overload.task_events_stored() == EVENTS
        assert overload.store.client().xlen(KEYS.events) == EVENTS  # a replay adds no duplicate
        assert "replaying" in second.log()
        assert overload.metric("taskpulse_events_dropped_total") == 0
        wait_until(lambda: not overload.segments(), timeout=10, what="replayed segments deleted")
    finally:
        second.stop()


def test_past_the_disk_budget_events_are_dropped_with_an_exact_count(
    overload: Overload,
) -> None:
    overload.env["TASKPULSE_SPOOL_MAX_BYTES"] = "40000"
    collector = overload.collector()
    try:
        overload.freeze_store()
        overload.publish()
        wait_until(lambda: overload.metric("taskpulse_events_dropped_total", reason="spool_full")
                   > 0, timeout=10, what="drops once the spool is full")
        overload.thaw_store()

        def accounted() -> bool:
            dropped = overload.metric("taskpulse_events_dropped_total", reason="spool_full")
            # the stream holds every applied event (the counters wait for a task's name, which
            # a dropped task-sent may have carried)
            return overload.store.client().xlen(KEYS.events) + dropped == EVENTS

        wait_until(accounted, timeout=60, what="stored + dropped == published")
        assert overload.metric("taskpulse_events_dropped_total") == overload.metric(
            "taskpulse_events_dropped_total", reason="spool_full")
        assert overload.metric("taskpulse_broker_disconnects_total") == 0
        wait_until(lambda: "events (spool_full; spool" in collector.log(), timeout=15,
                   what="the drops logged with their count")
    finally:
        collector.stop()


def test_a_second_collector_with_the_same_id_refuses_the_spool_in_use(
    overload: Overload,
) -> None:
    overload.env["TASKPULSE_COLLECTOR_ID"] = "c1"
    first = overload.collector("first")
    try:
        second = start_collector(
            {**overload.env, "TASKPULSE_METRICS_PORT": str(free_port())},
            overload.log_dir / "second.log", ready="")
        assert second.process.wait(timeout=30) == 2
        assert "spool" in second.log()
        assert "in use by another collector" in second.log()
        assert first.process.poll() is None
    finally:
        first.stop()
