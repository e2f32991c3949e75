"""A real worker runs tasks with known outcomes; the collector's projections, counters, stats,
history and /metrics must equal that ground truth exactly — also after a restart and a rebuild.

One worker and one collector serve the whole module (they take seconds to start); the tests
run in file order and each checks the ground truth accumulated so far.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from event_collector.keys import Keys
from event_collector.read import EventReader
from event_collector.task_ids import index_member
from tests.collector.conftest import (
    STORE_DB,
    collector_env,
    http_get,
    metric_sum,
    snapshot,
    start_collector,
)
from tests.indexes import index_entries_sync
from tests.services import RedisServer, ServiceProcess, celery_worker, taskpulse_env, wait_until

pytestmark = pytest.mark.slow

KEYS = Keys()
NAME = "demo.test_task"
# Celery's events for each outcome (retries publish a new message, hence a second task-sent).
EXPECTED_KINDS = {
    "SUCCESS": Counter(SENT=1, RECEIVED=1, STARTED=1, SUCCESS=1),
    "FAILURE": Counter(SENT=1, RECEIVED=1, STARTED=1, FAILURE=1),
    "RETRY_SUCCESS": Counter(SENT=2, RECEIVED=2, STARTED=2, RETRY=1, SUCCESS=1),
    "REVOKED": Counter(SENT=1, REVOKED=1),
}
FINAL_STATE = {"SUCCESS": "SUCCESS", "FAILURE": "FAILURE", "RETRY_SUCCESS": "SUCCESS",
               "REVOKED": "REVOKED"}
METRIC_FOR_KIND = {
    "SENT": "celery_task_sent_total", "RECEIVED": "celery_task_received_total",
    "STARTED": "celery_task_started_total", "SUCCESS": "celery_task_succeeded_total",
    "FAILURE": "celery_task_failed_total", "RETRY": "celery_task_retried_total",
    "REVOKED": "celery_task_revoked_total",
}


class World:
    """The module's services and the ground truth of every task sent so far."""

    def __init__(self, server: RedisServer, env: dict[str, str], logs: Path) -> None:
        self.server = server
        self.env = env
        self.logs = logs
        self.outcomes: dict[str, str] = {}
        self.collector: ServiceProcess | None = None
        self.restarts = 0
        from worker import create_app, load_settings

        self.app = create_app(load_settings(env))

    def start_collector(self) -> None:
        self.restarts += 1
        log = self.logs / f"collector-{self.restarts}.log"
        self.collector = start_collector(self.env, log)

    def send(self, successes: int, failures: int, retried: int, revoked: int) -> None:
        for _ in range(successes):
            self._send("SUCCESS", {"message": "ok"})
        for _ in range(failures):
            self._send("FAILURE", {"fail": True})
        for _ in range(retried):
            self._send("RETRY_SUCCESS", {"fail_times": 1})
        for _ in range(revoked):
            task_id = str(uuid.uuid4())
            self.app.control.revoke(task_id)  # the worker discards it on arrival
            time.sleep(0.2)
            self._send("REVOKED", {}, task_id)
        wait_until(self._all_final, timeout=60, what="every task in its final state")

    def _send(self, outcome: str, kwargs: dict[str, Any], task_id: str | None = None) -> None:
        result = self.app.send_task(NAME, kwargs=kwargs, task_id=task_id or str(uuid.uuid4()))
        self.outcomes[result.id] = outcome

    def _all_final(self) -> bool:
        client = self.server.client(STORE_DB)
        pipe = client.pipeline(transaction=False)
        for task_id in self.outcomes:
            pipe.hget(KEYS.task(task_id), "state")
        states = pipe.execute()
        return all(
            s is not None and s.decode() == FINAL_STATE[o]
            for s, o in zip(states, self.outcomes.values(), strict=True)
        )

    def expected_counts(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for outcome in self.outcomes.values():
            total.update(EXPECTED_KINDS[outcome])
        return total


@pytest.fixture(scope="module")
def world(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    redis_server.client().flushall()
    logs = tmp_path_factory.mktemp("ground-truth")
    data = logs / "data"
    data.mkdir()
    env = collector_env(taskpulse_env(redis_server, data, TASKPULSE_RETRY_BACKOFF="1"))
    w = World(redis_server, env, logs)
    w.start_collector()
    worker = celery_worker(env, logs / "worker.log")
    try:
        w.send(successes=4, failures=2, retried=2, revoked=1)
        yield w
    finally:
        worker.stop()
        if w.collector is not None:
            w.collector.stop()


def read_stats() -> Any:
    async def go(url: str) -> Any:
        client = aioredis.Redis.from_url(url)
        try:
            reader = EventReader(client, KEYS)
            return await reader.stats(), await reader.history("day", time.time() - 86400 * 2,
                                                                time.time() + 60)
        finally:
            await client.aclose()

    return go


def stats_and_history(world: World) -> Any:
    return asyncio.run(read_stats()(world.server.url(STORE_DB)))


def assert_ground_truth(world: World) -> None:
    client: redis.Redis = world.server.client(STORE_DB)
    for task_id, outcome in world.outcomes.items():
        task = client.hgetall(KEYS.task(task_id))
        assert task[b"state"].decode() == FINAL_STATE[outcome], (task_id, outcome, task)
        assert task[b"name"] == NAME.encode()
        state_index = KEYS.index_state(FINAL_STATE[outcome])
        assert index_member(task_id) in index_entries_sync(world.server.url(STORE_DB), KEYS,
                                                           state_index)
        kinds = timeline_kinds(world.server.url(STORE_DB), task_id)
        assert kinds == EXPECTED_KINDS[outcome], (task_id, outcome)
    expected = world.expected_counts()
    totals = {k.decode(): int(v) for k, v in client.hgetall(KEYS.counters_total).items()}
    assert totals == {f"{NAME}|{kind}": n for kind, n in expected.items()}
    stats, history = stats_and_history(world)
    assert {k: v for k, v in stats.by_name[NAME].items() if v} == dict(expected)
    by_state = Counter(FINAL_STATE[o] for o in world.outcomes.values())
    assert {s: n for s, n in stats.by_state.items() if n} == dict(by_state)
    history_total: Counter[str] = Counter()
    for bucket in history.buckets:
        history_total.update(bucket.counts)
    assert {k: v for k, v in history_total.items() if v} == dict(expected)


def timeline_kinds(url: str, task_id: str) -> Counter[str]:
    """The task's timeline as the API reads it, by event kind."""
    from event_collector.events import TASK_EVENT_KINDS

    async def read() -> list[Any]:
        client = aioredis.Redis.from_url(url)
        try:
            return await EventReader(client, KEYS).timeline(task_id)
        finally:
            await client.aclose()

    return Counter(TASK_EVENT_KINDS[entry.type] for entry in asyncio.run(read()))


def metrics_counts(env: dict[str, str]) -> Counter[str]:
    status, text = http_get(env, "/metrics")
    assert status == 200
    return Counter({kind: metric_sum(text, name, name=NAME) for kind, name in
                    METRIC_FOR_KIND.items()})


def test_projections_counters_stats_and_history_equal_ground_truth(world: World) -> None:
    assert_ground_truth(world)


def test_metrics_counters_equal_ground_truth(world: World) -> None:
    expected = world.expected_counts()
    wait_until(lambda: metrics_counts(world.env) == expected, timeout=10,
               what=f"/metrics counters == {dict(expected)}")


def test_after_a_collector_restart_new_tasks_still_match_ground_truth(world: World) -> None:
    assert world.collector is not None
    assert world.collector.stop() == 0
    assert "collector stopped" in world.collector.log()
    before = world.expected_counts()
    world.start_collector()
    world.send(successes=2, failures=1, retried=1, revoked=1)
    assert_ground_truth(world)
    # A new process counts from zero: only what it applied itself.
    expected = world.expected_counts() - before
    wait_until(lambda: metrics_counts(world.env) == expected, timeout=10,
               what=f"/metrics counters of the new process == {dict(expected)}")


def test_rebuild_reproduces_the_projections(world: World) -> None:
    assert world.collector is not None
    world.collector.stop()
    client = world.server.client(STORE_DB)
    before = _without_workers(snapshot(client, KEYS, world.server.url(STORE_DB)))
    rebuild = start_collector(world.env, world.logs / "rebuild.log", "rebuild", ready="")
    assert rebuild.process.wait(timeout=60) == 0, rebuild.log()
    assert "rebuild done" in rebuild.log()
    assert _without_workers(snapshot(client, KEYS, world.server.url(STORE_DB))) == before
    assert_ground_truth(world)


def _without_workers(snap: dict[str, Any]) -> dict[str, Any]:
    """Worker records also hold heartbeats that arrive while we look; tasks do not move."""
    return {k: v for k, v in snap.items()
            if not k.startswith((KEYS.prefix + "worker", KEYS.prefix + "collector:",
                                 KEYS.prefix + "queues"))}
