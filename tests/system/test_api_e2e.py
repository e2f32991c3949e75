"""End to end: HTTP enqueue -> real Celery worker -> real collector -> the API shows the outcome.

One stack per module (redis-server, worker, collector, API); each test sends its own tasks.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.api.conftest import ApiClient, make_tokens, start_api
from tests.services import (
    RedisServer,
    ServiceProcess,
    celery_worker,
    free_port,
    taskpulse_env,
    wait_until,
)

FINAL = {"SUCCESS", "FAILURE", "REVOKED", "REJECTED"}


@dataclass
class Stack:
    api: ApiClient
    env: dict[str, str]

    def wait_final(self, task_id: str, timeout: float = 30) -> dict:
        def final() -> dict | None:
            r = self.api.get(f"/api/v1/tasks/{task_id}")
            body = r.json() if r.status_code == 200 else {}
            return body if body.get("state") in FINAL else None

        return wait_until(final, timeout=timeout, interval=0.1, what=f"task {task_id} final")

    def enqueue(self, name: str, **body) -> str:
        r = self.api.post("/api/v1/tasks", role="operator", json={"name": name, **body})
        assert r.status_code == 202, r.text
        return r.json()["id"]


@pytest.fixture(scope="module")
def stack(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    redis_server.client().flushall()
    workdir = tmp_path_factory.mktemp("e2e-api")
    data = workdir / "data"
    data.mkdir()
    env = taskpulse_env(
        redis_server, data, TASKPULSE_METRICS_HOST="127.0.0.1",
        TASKPULSE_METRICS_PORT=str(free_port()), TASKPULSE_BATCH_INTERVAL_MS="20",
    )
    collector = ServiceProcess([sys.executable, "-m", "event_collector"], env,
                               workdir / "collector.log")
    procs = [collector]
    try:
        collector.wait_for_log("subscribed to", timeout=30)
        procs.append(celery_worker(env, workdir / "worker.log"))
        tokens = make_tokens(workdir / "tokens.json")
        api_proc, base = start_api(redis_server, data, workdir / "tokens.json")
        procs.append(api_proc)
        yield Stack(ApiClient(base, tokens), {**env, "TASKPULSE_API_URL": base,
                                              "TASKPULSE_TOKEN": tokens["operator"]})
    finally:
        for proc in reversed(procs):
            proc.stop()


@pytest.mark.slow
def test_enqueued_task_runs_and_shows_success_with_result_and_timeline(stack: Stack) -> None:
    task_id = stack.enqueue("demo.test_task", kwargs={"message": "end to end"})
    record = stack.wait_final(task_id)
    assert record["state"] == "SUCCESS"
    assert "end to end" in record["result"]
    assert record["name"] == "demo.test_task"
    assert record["worker"].startswith("w1@")
    kinds = [e["type"] for e in record["timeline"]]
    # Celery stamps task-sent after publishing the message, so on one fast machine the worker's
    # task-received can carry an earlier timestamp: only the set and the end are fixed.
    assert sorted(kinds) == ["task-received", "task-sent", "task-started", "task-succeeded"]
    assert kinds[-1] == "task-succeeded"
    assert kinds.index("task-received") < kinds.index("task-started")


@pytest.mark.slow
def test_task_runs_from_the_queue_it_was_sent_to(stack: Stack) -> None:
    task_id = stack.enqueue("demo.test_task", queue="reports", priority="critical")
    record = stack.wait_final(task_id)
    assert (record["state"], record["queue"]) == ("SUCCESS", "reports")


@pytest.mark.slow
def test_long_task_reports_progress_to_the_api(stack: Stack) -> None:
    task_id = stack.enqueue("demo.long_running_task", kwargs={"total": 3, "step_seconds": 0.1})
    record = stack.wait_final(task_id)
    assert record["state"] == "SUCCESS"
    assert (record["progress"]["current"], record["progress"]["total"]) == (3, 3)


@pytest.mark.slow
def test_retry_of_a_failed_task_runs_again_as_its_child(stack: Stack) -> None:
    failed_id = stack.enqueue("demo.test_task", kwargs={"fail": True})
    assert stack.wait_final(failed_id)["state"] == "FAILURE"
    r = stack.api.post(f"/api/v1/tasks/{failed_id}/retry", role="operator")
    assert r.status_code == 202
    retry = stack.wait_final(r.json()["id"])
    assert retry["parent_id"] == failed_id
    assert retry["kwargs"] == json.dumps({"fail": True}, separators=(",", ":"))
    assert stack.api.get(f"/api/v1/tasks/{failed_id}").json()["children"] == [retry["id"]]


@pytest.mark.slow
def test_cli_send_wait_prints_the_finished_task(stack: Stack, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "producer_api.cli", "tasks", "send", "demo.test_task",
         "--kwargs", '{"message": "from the cli"}', "--wait", "--timeout", "30", "--json"],
        env=stack.env, capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["state"] == "SUCCESS"
    assert "from the cli" in record["result"]
