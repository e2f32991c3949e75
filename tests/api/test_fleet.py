"""Operating the fleet against real workers: pools, consumers, paused queues, limits, purge, peek.

One stack per module: a redis-server (broker db 0, store db 1), a collector, the API and two
Celery workers. ``w1`` does the work; ``w2`` beats rarely (``--heartbeat-interval 30``), so the
store keeps counting it alive for a minute after it is frozen with SIGSTOP: a worker that does
not answer.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from celery import Celery

from event_collector.events import AUDIT_EVENT
from event_collector.stored import decode_stored
from producer_api.cli import main
from tests.api.conftest import ApiClient, make_tokens, start_api
from tests.services import (
    RedisServer,
    ServiceProcess,
    celery_worker,
    free_port,
    running,
    taskpulse_env,
    wait_until,
)

pytestmark = pytest.mark.slow
FINAL = {"SUCCESS", "FAILURE", "REVOKED", "REJECTED"}


@dataclass
class Fleet:
    api: ApiClient
    celery: Celery
    w1: str
    w2: str
    w2_proc: ServiceProcess
    store: redis.Redis
    env: dict[str, str]
    workdir: Path

    def enqueue(self, queue: str = "default", **kwargs) -> str:
        r = self.api.post("/api/v1/tasks", role="operator",
                          json={"name": "demo.test_task", "queue": queue, "kwargs": kwargs})
        assert r.status_code == 202, r.text
        return r.json()["id"]

    def task(self, task_id: str) -> dict:
        r = self.api.get(f"/api/v1/tasks/{task_id}")
        return r.json() if r.status_code == 200 else {}

    def wait_final(self, *task_ids: str, timeout: float = 60) -> list[dict]:
        def final() -> list[dict] | None:
            records = [self.task(t) for t in task_ids]
            return records if all(r.get("state") in FINAL for r in records) else None

        return wait_until(final, timeout=timeout, interval=0.2, what=f"tasks {task_ids} final")

    def waiting(self, queue: str) -> int:
        r = self.api.get(f"/api/v1/queues/{queue}/messages", role="viewer")
        assert r.status_code == 200, r.text
        return r.json()["length"]

    def concurrency(self, hostname: str) -> int:
        stats = self.celery.control.inspect(destination=[hostname], timeout=2).stats() or {}
        # Celery's "max-concurrency" is the -c it started with; grow/shrink change the processes.
        return len(stats[hostname]["pool"]["processes"])


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    workdir = tmp_path_factory.mktemp("fleet")
    server = RedisServer(workdir)
    server.start()
    data = workdir / "data"
    data.mkdir()
    env = taskpulse_env(
        server, data, TASKPULSE_METRICS_HOST="127.0.0.1", TASKPULSE_METRICS_PORT=str(free_port()),
        TASKPULSE_BATCH_INTERVAL_MS="20", TASKPULSE_FLEET_APPLY_SECONDS="0.5",
    )
    procs: list[ServiceProcess] = []
    celery = Celery(broker=server.url(0), set_as_current=False)
    try:
        collector = ServiceProcess([sys.executable, "-m", "event_collector"], env,
                                   workdir / "collector.log")
        procs.append(collector)
        collector.wait_for_log("subscribed to", timeout=30)
        procs.append(celery_worker(env, workdir / "w1.log", concurrency=1, hostname="w1@fleet"))
        w2 = celery_worker(env, workdir / "w2.log", concurrency=1, hostname="w2@fleet",
                           queues="email", extra_args=("--heartbeat-interval", "30"))
        procs.append(w2)
        tokens = make_tokens(workdir / "tokens.json")
        api_proc, base = start_api(server, data, workdir / "tokens.json")
        procs.append(api_proc)
        api = ApiClient(base, tokens)

        def both_alive() -> bool:
            alive = {w["hostname"] for w in api.get("/api/v1/workers").json() if w["alive"]}
            return {"w1@fleet", "w2@fleet"} <= alive

        wait_until(both_alive, timeout=30, what="both workers alive in the store")
        yield Fleet(api, celery, "w1@fleet", "w2@fleet", w2, server.client(1), env, workdir)
    finally:
        for proc in reversed(procs):
            if proc.process.poll() is None:
                os.kill(proc.process.pid, signal.SIGCONT)
            proc.stop()
        celery.close()
        server.stop()


def audits(fleet: Fleet, action: str) -> list[dict]:
    """The audit events of ``action`` in the store's stream, oldest first."""
    found = []
    for _id, fields in fleet.store.xrange("tp:events"):
        event = decode_stored(fields[b"e"])
        if event.type == AUDIT_EVENT and event.action == action:
            found.append({"actor": event.actor, "name": event.name, "detail": event.detail})
    return found


def test_growing_a_pool_raises_the_concurrency_workers_report(fleet: Fleet) -> None:
    before = fleet.concurrency(fleet.w1)
    r = fleet.api.post(f"/api/v1/workers/{fleet.w1}/pool", json={"grow": 1})
    assert r.status_code == 200, r.text
    assert r.json() == {"workers": {fleet.w1: {"ok": "pool will grow"}}, "no_reply": []}
    assert wait_until(lambda: fleet.concurrency(fleet.w1) == before + 1, timeout=10,
                      what="the grown pool")
    r = fleet.api.post(f"/api/v1/workers/{fleet.w1}/pool", json={"shrink": 1})
    assert r.json()["workers"][fleet.w1] == {"ok": "pool will shrink"}
    wait_until(lambda: fleet.concurrency(fleet.w1) == before, timeout=10, what="shrunk pool")
    assert [a["actor"] for a in audits(fleet, "worker-pool")][-2:] == ["test-admin"] * 2


def test_a_pool_change_must_say_exactly_one_thing(fleet: Fleet) -> None:
    for body in ({}, {"grow": 1, "shrink": 1}, {"restart": False}, {"grow": 0},
                 {"autoscale": {"max": 1, "min": 2}}, {"grow": 1, "extra": 1}):
        r = fleet.api.post(f"/api/v1/workers/{fleet.w1}/pool", json=body)
        assert r.status_code == 422, (body, r.text)


def test_autoscale_on_a_worker_without_it_is_that_workers_error(fleet: Fleet) -> None:
    r = fleet.api.post(f"/api/v1/workers/{fleet.w1}/pool", json={"autoscale": {"max": 3}})
    assert r.status_code == 200
    assert "Autoscale not enabled" in r.json()["workers"][fleet.w1]["error"]


def test_an_unknown_queue_is_refused_with_the_known_ones(fleet: Fleet) -> None:
    r = fleet.api.post(f"/api/v1/workers/{fleet.w1}/consumers", json={"add": "fianance"})
    assert r.status_code == 422
    assert r.json()["error"]["details"]["allowed"] == ["default", "finance", "reports", "email"]
    assert r.json()["error"]["details"]["did_you_mean"] == ["finance"]
    assert fleet.api.post("/api/v1/queues/nope/pause", role="operator").status_code == 422


def test_a_paused_queue_waits_while_others_run_and_resume_drains_it(fleet: Fleet) -> None:
    r = fleet.api.post("/api/v1/queues/finance/pause", role="operator")
    assert r.status_code == 200, r.text
    assert r.json()["paused"] is True
    assert r.json()["workers"] == {fleet.w1: {"ok": "no longer consuming from finance"}}
    held = [fleet.enqueue("finance", message=f"held {i}") for i in range(3)]
    running = fleet.enqueue("default", message="runs")
    assert fleet.wait_final(running)[0]["state"] == "SUCCESS"
    # The default task ran after the finance ones were sent, on the same one-process worker:
    # had finance been consumed, they would have run too.
    assert [fleet.task(t).get("state") for t in held] == ["PENDING"] * 3
    assert fleet.waiting("finance") == 3
    r = fleet.api.post(f"/api/v1/workers/{fleet.w1}/consumers", json={"add": "finance"})
    assert r.status_code == 409
    assert "resume it" in r.json()["error"]["message"]
    listed = {q["name"]: q for q in fleet.api.get("/api/v1/queues", role="viewer").json()}
    assert listed["finance"]["paused"] is True
    assert "paused" not in listed["default"]  # false is left out, as every default is

    r = fleet.api.post("/api/v1/queues/finance/resume", role="operator")
    assert r.status_code == 200, r.text
    assert r.json()["workers"] == {fleet.w1: {"ok": "add consumer finance"}}
    assert {t["state"] for t in fleet.wait_final(*held)} == {"SUCCESS"}
    assert fleet.waiting("finance") == 0
    listed = {q["name"]: q for q in fleet.api.get("/api/v1/queues", role="viewer").json()}
    assert "paused" not in listed["finance"]
    assert [a["name"] for a in audits(fleet, "queue-pause")] == ["finance"]
    assert [a["name"] for a in audits(fleet, "queue-resume")] == ["finance"]


def test_peek_shows_waiting_messages_in_order_without_consuming_them(fleet: Fleet) -> None:
    fleet.api.post("/api/v1/queues/reports/pause", role="operator")
    try:
        low = fleet.api.post("/api/v1/tasks", role="operator", json={
            "name": "demo.test_task", "queue": "reports", "priority": "low",
            "kwargs": {"message": "low"}}).json()["id"]
        first, second = (fleet.enqueue("reports", message=m) for m in ("first", "second"))
        r = fleet.api.get("/api/v1/queues/reports/messages?limit=2", role="viewer")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["length"] == 3
        # The normal-priority ones first, oldest first; the low one after (not in the first 2).
        assert [m["id"] for m in body["messages"]] == [first, second]
        assert body["messages"][0]["name"] == "demo.test_task"
        assert body["messages"][0]["kwargs"] == {"message": "first"}
        again = fleet.api.get("/api/v1/queues/reports/messages", role="viewer").json()
        assert [m["id"] for m in again["messages"]] == [first, second, low]
        assert again["messages"][2]["priority"] == 9  # kombu's step for "low" (GET /catalog)
        assert again["messages"][2]["level"] == "low"
    finally:
        fleet.api.post("/api/v1/queues/reports/resume", role="operator")
    assert {t["state"] for t in fleet.wait_final(first, second, low)} == {"SUCCESS"}


def test_purge_with_a_stale_count_is_refused_and_loses_nothing(fleet: Fleet) -> None:
    fleet.api.post("/api/v1/queues/finance/pause", role="operator")
    try:
        sent = [fleet.enqueue("finance", message=f"purge {i}") for i in range(3)]
        r = fleet.api.post("/api/v1/queues/finance/purge", json={"expected": 2})
        assert r.status_code == 409
        assert r.json()["error"]["details"] == {"length": 3, "expected": 2}
        assert fleet.waiting("finance") == 3
        r = fleet.api.post("/api/v1/queues/finance/purge", json={"expected": 3})
        assert r.status_code == 200, r.text
        assert r.json() == {"queue": "finance", "purged": 3}
        assert fleet.waiting("finance") == 0
        assert audits(fleet, "queue-purge")[-1]["detail"] == '{"expected":3,"purged":3}'
    finally:
        fleet.api.post("/api/v1/queues/finance/resume", role="operator")
    assert [fleet.task(t).get("state") for t in sent] == ["PENDING"] * 3


def test_a_rate_limit_spaces_out_task_starts_and_shows_where_it_is_in_force(fleet: Fleet) -> None:
    r = fleet.api.request("PUT", "/api/v1/catalog/demo.test_task/limits", role="operator",
                          json={"rate_limit": "6/m"})
    assert r.status_code == 200, r.text
    assert r.json()["workers"][fleet.w1]["ok"] == "new rate limit set successfully"
    try:
        shown = fleet.api.get("/api/v1/catalog/demo.test_task/limits", role="viewer").json()
        assert shown["desired"] == {"rate_limit": "6/m"}
        assert shown["set_by"] == "test-operator"
        assert shown["workers"][fleet.w1]["rate_limit"] == "6/m"
        first, second = (fleet.enqueue("default", message=f"rate {i}") for i in range(2))
        records = fleet.wait_final(first, second)
        starts = sorted(rec["started"] for rec in records)
        # 6/m is one every 10 s: Celery's token bucket lets the first through at once.
        assert starts[1] - starts[0] >= 9
    finally:
        r = fleet.api.request("PUT", "/api/v1/catalog/demo.test_task/limits", role="operator",
                              json={})
        assert r.status_code == 200
    shown = fleet.api.get("/api/v1/catalog/demo.test_task/limits", role="viewer").json()
    assert shown["desired"] == {}
    assert "rate_limit" not in shown["workers"][fleet.w1]


def test_limits_are_checked_at_the_edge(fleet: Fleet) -> None:
    path = "/api/v1/catalog/demo.test_task/limits"
    for body in ({"rate_limit": "fast"}, {"soft_time_limit": 10}, {"rate_limit": "5/d"},
                 {"soft_time_limit": 20, "time_limit": 10}):
        r = fleet.api.request("PUT", path, role="operator", json=body)
        assert r.status_code == 422, (body, r.text)
    r = fleet.api.request("PUT", "/api/v1/catalog/demo.tset_task/limits", role="operator",
                          json={})
    assert r.status_code == 422
    assert "demo.test_task" in r.json()["error"]["details"]["did_you_mean"]


def test_a_worker_that_does_not_answer_is_listed_as_no_reply(fleet: Fleet) -> None:
    os.kill(fleet.w2_proc.process.pid, signal.SIGSTOP)
    try:
        r = fleet.api.post("/api/v1/workers/*/consumers", json={"add": "email"})
        assert r.status_code == 200, r.text
        assert r.json() == {"workers": {fleet.w1: {"ok": "add consumer email"}},
                            "no_reply": [fleet.w2]}
    finally:
        os.kill(fleet.w2_proc.process.pid, signal.SIGCONT)


def test_pool_restart_reloads_the_pool(fleet: Fleet) -> None:
    r = fleet.api.post(f"/api/v1/workers/{fleet.w1}/pool", json={"restart": True})
    assert r.status_code == 200, r.text
    assert r.json()["workers"][fleet.w1] == {"ok": "reload started"}


def test_a_pool_restart_on_a_worker_without_restarts_says_how_to_enable_them(
    fleet: Fleet,
) -> None:
    strict = "strict@fleet"
    env = {**fleet.env, "TASKPULSE_POOL_RESTARTS": "0"}
    with running(celery_worker(env, fleet.workdir / "strict.log", concurrency=1,
                               hostname=strict, queues="email")):
        r = fleet.api.post(f"/api/v1/workers/{strict}/pool", json={"restart": True})
    assert r.status_code == 200, r.text
    assert "worker_pool_restarts is off" in r.json()["workers"][strict]["error"]
    assert "TASKPULSE_POOL_RESTARTS" in r.json()["workers"][strict]["error"]


def test_a_worker_coming_online_later_gets_the_limits_and_paused_queues(fleet: Fleet) -> None:
    limits = "/api/v1/catalog/demo.test_task/limits"
    fleet.api.request("PUT", limits, role="operator", json={"rate_limit": "100/m"})
    fleet.api.post("/api/v1/queues/reports/pause", role="operator")
    late = "w3@fleet"
    try:
        with running(celery_worker(fleet.env, fleet.workdir / "w3.log", concurrency=1,
                                   hostname=late, queues="default,reports")):

            def consumed() -> set[str]:
                found = fleet.celery.control.inspect(destination=[late], timeout=1)
                return {q["name"] for q in (found.active_queues() or {}).get(late, [])}

            wait_until(lambda: consumed() == {"default"}, timeout=30,
                       what="the late worker to drop the paused queue")
            shown = fleet.api.get(limits, role="viewer").json()
            assert shown["workers"][late]["rate_limit"] == "100/m"
            r = fleet.api.post("/api/v1/queues/reports/resume", role="operator")
            assert r.json()["workers"][late] == {"ok": "add consumer reports"}
            wait_until(lambda: consumed() == {"default", "reports"}, timeout=10,
                       what="the late worker to consume reports again")
    finally:
        fleet.api.post("/api/v1/queues/reports/resume", role="operator")
        fleet.api.request("PUT", limits, role="operator", json={})


def cli(fleet: Fleet, capsys: pytest.CaptureFixture[str], *argv: str,
        role: str = "admin") -> tuple[int, str]:
    capsys.readouterr()
    code = main(["--api-url", fleet.api.base_url, "--token", fleet.api.tokens[role], *argv])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_cli_pauses_peeks_purges_with_the_count_it_showed_and_resumes(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    code, text = cli(fleet, capsys, "queues", "pause", "finance", role="operator")
    assert code == 0, text
    assert text.splitlines()[0].startswith("finance: paused")
    assert f"{fleet.w1}  ok" in text
    sent = [fleet.enqueue("finance", message=f"cli {i}") for i in range(2)]
    code, text = cli(fleet, capsys, "queues", role="viewer")
    assert [line.split()[3] for line in text.splitlines() if line.startswith("finance")] == [
        "true"]
    code, text = cli(fleet, capsys, "queues", "peek", "finance", role="viewer")
    assert code == 0
    assert text.splitlines()[0].startswith("finance: 2 waiting")
    assert all(task_id in text for task_id in sent)
    code, text = cli(fleet, capsys, "queues", "purge", "finance")  # no terminal to ask on
    assert code == 1
    assert "pass --yes" in text
    assert fleet.waiting("finance") == 2
    code, text = cli(fleet, capsys, "queues", "purge", "finance", "--yes")
    assert (code, text) == (0, "finance: 2 messages purged\n")
    assert audits(fleet, "queue-purge")[-1]["detail"] == '{"expected":2,"purged":2}'
    code, text = cli(fleet, capsys, "queues", "resume", "finance", role="operator")
    assert code == 0, text
    assert text.startswith("finance: resumed\n")


def test_cli_changes_a_pool_and_sets_and_clears_limits(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    code, text = cli(fleet, capsys, "workers", "pool", fleet.w1, "--grow", "1")
    assert (code, text.split()) == (0, ["WORKER", "RESULT", "MESSAGE", fleet.w1, "ok", "pool",
                                        "will", "grow"])
    code, text = cli(fleet, capsys, "workers", "pool", fleet.w1, "--shrink", "1")
    assert code == 0
    code, text = cli(fleet, capsys, "workers", "pool", fleet.w1, "--autoscale", "4,1")
    assert code == 1  # that worker has no autoscaler: its error is printed, the exit says so
    assert "Autoscale not enabled" in text

    code, text = cli(fleet, capsys, "catalog", "limits", "demo.test_task", "--rate-limit",
                     "50/m", "--time-limits", "100/120", role="operator")
    assert code == 0, text
    assert text.splitlines()[0] == (
        "demo.test_task: rate 50/m, time limits 100s soft / 120s hard")
    code, text = cli(fleet, capsys, "catalog", "limits", "demo.test_task", role="viewer")
    assert "set by test-operator" in text.splitlines()[0]
    assert [line.split() for line in text.splitlines() if line.startswith(fleet.w1)] == [
        [fleet.w1, "50/m", "100", "120"]]
    code, text = cli(fleet, capsys, "catalog", "limits", "demo.test_task", "--clear",
                     role="operator")
    assert code == 0, text
    assert text.splitlines()[0] == (
        "demo.test_task: no rate limit, time limits as the workers are configured")
    code, text = cli(fleet, capsys, "catalog", "demo.test_task", "--rate-limit", "5/m")
    assert code == 2
    assert "go with `taskpulse catalog limits NAME`" in text


def test_shutdown_stops_the_worker_and_says_who_was_told(fleet: Fleet) -> None:
    r = fleet.api.post(f"/api/v1/workers/{fleet.w2}/shutdown")
    assert r.status_code == 200, r.text
    assert r.json() == {"workers": {fleet.w2: {"ok": "shutdown requested"}}, "no_reply": []}
    wait_until(lambda: fleet.w2_proc.process.poll() is not None, timeout=30,
               what="w2 to exit")
    assert fleet.w2_proc.process.returncode == 0
    assert audits(fleet, "worker-shutdown")[-1]["name"] == fleet.w2
