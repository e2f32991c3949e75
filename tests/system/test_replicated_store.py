"""The whole system (collector + API + beat + a real worker) on a replicated store: a Redis
Cluster and a Sentinel-watched primary. A known workload runs while the store's primary is
killed (SIGKILL); its replica takes over, and every task still ends in its true state with
exact counts; no process dies. The broker stays one plain Redis: only the monitoring store is
replicated here.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from event_collector.connection import store_keys
from tests.api.conftest import ApiClient, make_tokens
from tests.cluster import ClusterStore, SentinelStore
from tests.services import (
    RedisServer,
    ServiceProcess,
    celery_worker,
    collector_env,
    start_api,
    start_collector,
    taskpulse_env,
    wait_until,
)

FINAL = {"SUCCESS", "FAILURE"}
# name, kwargs, how many, the state each must end in. The long tasks keep progress events
# flowing while the primary is killed.
WORKLOAD = (
    ("demo.long_running_task", {"total": 4, "step_seconds": 0.25}, 16, "SUCCESS"),
    ("demo.test_task", {"sleep_seconds": 0.2}, 8, "SUCCESS"),
    ("demo.test_task", {"fail": True}, 8, "FAILURE"),
)

NAMES = sorted({name for name, *_ in WORKLOAD})


@dataclass
class System:
    api: ApiClient
    procs: list[ServiceProcess]
    statuses: Counter[int] = field(default_factory=Counter)

    def send_workload(self) -> dict[str, str]:
        """Enqueue WORKLOAD; returns task id -> the state it must end in."""
        requests_ = [{"name": name, "kwargs": kwargs} for name, kwargs, n, _ in WORKLOAD
                     for _ in range(n)]
        expected = [state for *_, n, state in WORKLOAD for _ in range(n)]
        r = self.api.post("/api/v1/tasks/batch", role="operator", json={"tasks": requests_})
        assert r.status_code == 202, r.text
        return {t["id"]: state for t, state in zip(r.json()["tasks"], expected, strict=True)}

    def get(self, path: str) -> requests.Response | None:
        """A read that counts its status; None when the API did not answer at all."""
        try:
            r = self.api.get(path, timeout=5)
        except requests.RequestException:
            return None
        self.statuses[r.status_code] += 1
        return r

    def finished(self) -> int:
        """Final tasks of the workload's names (beat's own tasks are not counted); -1 while
        the API cannot answer."""
        counts = [self.get(f"/api/v1/tasks/count?state={state}&name={name}")
                  for state in sorted(FINAL) for name in NAMES]
        if any(r is None or r.status_code != 200 for r in counts):
            return -1
        return sum(r.json()["count"] for r in counts if r is not None)

    def states(self, ids: list[str]) -> dict[str, str | None]:
        found = {}
        for task_id in ids:
            r = self.get(f"/api/v1/tasks/{task_id}")
            found[task_id] = r.json().get("state") if r is not None and r.status_code == 200 \
                else None
        return found


def _start(store_url: str, broker: RedisServer, workdir: Path) -> System:
    data = workdir / "data"
    data.mkdir()
    env = taskpulse_env(broker, data, TASKPULSE_REDIS_URL=store_url,
                        TASKPULSE_API_TOKENS_FILE=str(workdir / "tokens.json"))
    tokens = make_tokens(workdir / "tokens.json")
    procs = [start_collector(collector_env(env), workdir / "collector.log")]
    try:
        procs.append(celery_worker(env, workdir / "worker.log", concurrency=4))
        # beat keeps its schedule in the same store (redbeat through connection.py's client)
        beat = ServiceProcess([sys.executable, "-m", "celery", "-A", "worker", "beat", "-l",
                               "INFO"], env, workdir / "beat.log")
        procs.append(beat)
        beat.wait_for_log("beat: Acquired lock", timeout=30)
        api_proc, base = start_api(env, workdir / "api.log")
        procs.append(api_proc)
    except BaseException:
        for proc in reversed(procs):
            proc.stop()
        raise
    return System(ApiClient(base, tokens), procs)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "broker")
    (tmp_path / "broker").mkdir()
    server.start()
    yield server
    server.stop()


def _replayed_finals(system: System, ids: set[str]) -> set[str]:
    """Task ids whose final event ``GET /events`` replays from the start of the stream."""
    seen: set[str] = set()
    with system.api.get("/api/v1/events", stream=True, timeout=(5, 5),
                        headers={"Last-Event-ID": "0-0"}) as stream:
        assert stream.status_code == 200
        for line in stream.iter_lines(decode_unicode=True):
            if line.startswith("data: "):
                event = json.loads(line.removeprefix("data: "))
                if event["type"] in ("task-succeeded", "task-failed"):
                    seen.add(event.get("uuid"))
                if ids <= seen:
                    break
    return seen & ids


def _run_through_a_failover(system: System, kill_primary: Callable[[], None]) -> None:
    expected = system.send_workload()
    total = len(expected)
    # Kill once the run is under way and far from over: some finished, most not.
    wait_until(lambda: system.finished() >= 4, timeout=60, interval=0.1, what="first tasks done")
    assert system.finished() < total  # the kill lands mid-run
    kill_primary()
    wait_until(lambda: system.finished() == total, timeout=120, interval=0.2,
               what="every task final after the failover")

    states = system.states(list(expected))
    wrong = {i: (states[i], want) for i, want in expected.items() if states[i] != want}
    assert wrong == {}, f"{len(wrong)} of {total} tasks missing or wrong"
    # Counters are exact: every event counted once, however often its batch was retried.
    by_name = system.api.get("/api/v1/stats").json()["by_name"]
    kinds = ("SENT", "RECEIVED", "STARTED", "SUCCESS", "FAILURE")
    assert {name: {k: by_name[name].get(k, 0) for k in kinds} for name in NAMES} == {
        "demo.long_running_task": {"SENT": 16, "RECEIVED": 16, "STARTED": 16, "SUCCESS": 16,
                                   "FAILURE": 0},
        "demo.test_task": {"SENT": 16, "RECEIVED": 16, "STARTED": 16, "SUCCESS": 8,
                           "FAILURE": 8},
    }
    # The live feed replays the stream from the store that took over: every task's final event.
    assert _replayed_finals(system, set(expected)) == set(expected)
    # While the store was away the API answered 503, never a 500.
    assert set(system.statuses) <= {200, 503}, system.statuses
    for proc in system.procs:
        assert proc.process.poll() is None, f"{proc.argv[:3]} died:\n{proc.log()[-3000:]}"


@contextmanager
def _running(store: ClusterStore | SentinelStore, broker: RedisServer,
             tmp_path: Path) -> Iterator[System]:
    """The store started, and the whole system on it; both stopped after, system first."""
    try:
        store.start()
        system = _start(store.url, broker, tmp_path)
        try:
            yield system
        finally:
            for proc in reversed(system.procs):
                proc.stop()
    finally:
        store.stop()


@pytest.mark.slow
def test_a_cluster_run_survives_losing_the_stores_primary(
    tmp_path: Path, broker: RedisServer
) -> None:
    store = ClusterStore(tmp_path / "cluster")
    with _running(store, broker, tmp_path) as system:
        # Before the kill: the schedules API (redbeat's client on the cluster) answers.
        assert system.api.get("/api/v1/schedules").status_code == 200
        events_key = store_keys(store.url, "").events
        owner = store.owner_of(events_key)

        def kill_owner() -> None:
            owner.kill()
            new_owner = store.wait_until_serving(events_key)
            assert new_owner is not owner

        _run_through_a_failover(system, kill_owner)


@pytest.mark.slow
def test_a_sentinel_run_survives_a_failover_of_the_primary(
    tmp_path: Path, broker: RedisServer
) -> None:
    store = SentinelStore(tmp_path / "sentinel")
    with _running(store, broker, tmp_path) as system:
        def kill_primary() -> None:
            old = store.primary.port
            store.primary.kill()
            assert store.wait_failover(old) == store.replica.port

        _run_through_a_failover(system, kill_primary)


@pytest.mark.slow
def test_the_api_answers_503_while_the_whole_cluster_is_down_and_recovers_after_a_restart(
    tmp_path: Path, broker: RedisServer
) -> None:
    store = ClusterStore(tmp_path / "cluster")
    try:
        store.start()
        data = tmp_path / "data"
        data.mkdir()
        env = taskpulse_env(broker, data, TASKPULSE_REDIS_URL=store.url,
                            TASKPULSE_API_TOKENS_FILE=str(tmp_path / "tokens.json"))
        tokens = make_tokens(tmp_path / "tokens.json")
        proc, base = start_api(env, tmp_path / "api.log")
        try:
            api = ApiClient(base, tokens)
            assert api.get("/api/v1/tasks/count").status_code == 200
            for node in store.nodes:
                node.stop()
            try:
                down = api.get("/api/v1/tasks/count")
                assert down.status_code == 503
                assert down.json()["error"]["details"] == {"dependency": "redis"}
                assert api.get("/readyz").status_code == 503
            finally:
                for node in store.nodes:  # same ports and nodes.conf: the cluster forms again
                    node.start()
            wait_until(lambda: api.get("/api/v1/tasks/count").status_code == 200, timeout=60,
                       interval=0.5, what="the API answering again after the cluster restart")
            assert api.get("/readyz").status_code == 200
            assert "Traceback" not in proc.log()
        finally:
            proc.stop()
    finally:
        store.stop()
