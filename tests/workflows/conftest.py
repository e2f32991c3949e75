"""One real stack for the workflow / schedule / record-lifecycle tests: a private redis-server
(db 0 broker + results, db 1 store), a Celery worker, the collector and the API as subprocesses,
with a token per role. Beats are started by the tests that need them.

Package-scoped so every test here shares one startup; tests use their own ids and names.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from producer_api.auth import TokenStore
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

ROLES = ("viewer", "operator", "admin")
FINAL = frozenset({"SUCCESS", "FAILURE", "REVOKED", "REJECTED"})


@dataclass
class Stack:
    redis: RedisServer
    env: dict[str, str]
    data_dir: Path
    workdir: Path
    base_url: str
    tokens: dict[str, str]

    def call(self, method: str, path: str, role: str = "admin", **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"}
        return requests.request(
            method, f"{self.base_url}/api/v1{path}", headers=headers, timeout=10, **kwargs
        )

    def store(self) -> redis.Redis:
        return self.redis.client(1)

    def wait_task(self, task_id: str, states: frozenset[str] = FINAL) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            r = self.call("GET", f"/tasks/{task_id}", "viewer")
            return r.json() if r.status_code == 200 and r.json().get("state") in states else None

        return wait_until(done, timeout=30, interval=0.2, what=f"task {task_id} in {set(states)}")

    def demo_runs(self, message: str) -> list[float]:
        """Start times of ``demo.test_task`` runs with ``message`` (the worker's own record)."""
        db = self.data_dir / "taskpulse.db"
        if not db.exists():
            return []
        with sqlite3.connect(db) as conn:
            try:
                rows = conn.execute(
                    "SELECT started_at FROM demo_runs WHERE message = ? ORDER BY started_at",
                    (message,),
                ).fetchall()
            except sqlite3.OperationalError:  # the worker has not created its schema yet
                return []
        return [r[0] for r in rows]

    def beat(self, label: str) -> ServiceProcess:
        """``celery -A worker beat``, as deployed: the app's default scheduler is the Redis one."""
        argv = [sys.executable, "-m", "celery", "-A", "worker", "beat", "-l", "INFO"]
        return ServiceProcess(argv, self.env, self.workdir / f"beat-{label}.log")


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("workflows")
    server = RedisServer(workdir)
    server.start()
    data_dir = workdir / "data"
    data_dir.mkdir()
    tokens_file = workdir / "tokens.json"
    store = TokenStore(tokens_file)
    tokens = {role: store.create(f"test-{role}", role)[1] for role in ROLES}
    env = taskpulse_env(
        server, data_dir,
        TASKPULSE_API_TOKENS_FILE=str(tokens_file),
        # Beats tick at least every second; a killed beat's lock lapses after 4 s.
        TASKPULSE_BEAT_MAX_INTERVAL="1", TASKPULSE_BEAT_LOCK_TIMEOUT="4",
    )  # fmt: skip
    procs: list[ServiceProcess] = []
    try:
        procs.append(start_collector(collector_env(env), workdir / "collector.log"))
        procs.append(celery_worker(env, workdir / "worker.log", concurrency=3))
        api, base = start_api(env, workdir / "api.log")
        procs.append(api)
        yield Stack(server, env, data_dir, workdir, base, tokens)
    finally:
        for proc in reversed(procs):
            proc.stop()
        server.stop()
