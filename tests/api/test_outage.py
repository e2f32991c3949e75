"""Redis (store and broker) going away: 503 with the error body, never a 500 — and recovery.

This module has its own redis-server and API process, so stopping Redis here disturbs nobody.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.api.conftest import ApiClient, make_tokens, start_api
from tests.services import RedisServer, ServiceProcess, wait_until


@dataclass
class Outage:
    server: RedisServer  # the store and the broker
    api: ApiClient
    proc: ServiceProcess

    def __iter__(self) -> Iterator[Any]:
        return iter((self.server, self.api))


@pytest.fixture(scope="module")
def outage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outage]:
    workdir = tmp_path_factory.mktemp("outage")
    server = RedisServer(workdir)
    server.start()
    tokens = make_tokens(workdir / "tokens.json")
    proc, base = start_api(server, workdir, workdir / "tokens.json",
                           TASKPULSE_API_SSE_HEARTBEAT="0.3")
    yield Outage(server, ApiClient(base, tokens), proc)
    proc.stop()
    server.stop()


def test_sse_sends_heartbeats_while_idle(outage) -> None:
    _, api = outage
    with api.get("/api/v1/events", stream=True, timeout=(5, 5)) as r:
        lines = r.iter_lines(decode_unicode=True)
        assert any(next(lines) == ": heartbeat" for _ in range(10))


def test_dependency_down_is_503_and_the_api_recovers(outage) -> None:
    server, api = outage
    enqueue = {"name": "demo.test_task"}
    assert api.post("/api/v1/tasks", json=enqueue).status_code == 202
    server.stop()
    try:
        for method, path, body in [
            ("GET", "/api/v1/tasks", None),
            ("GET", "/api/v1/stats", None),
            ("POST", "/api/v1/tasks", enqueue),
            ("POST", "/api/v1/tasks", {**enqueue, "idempotency_key": "k"}),
        ]:
            r = api.request(method, path, json=body)
            assert r.status_code == 503, (method, path, r.text)
            assert r.json()["error"]["code"] == "unavailable"
        ready = api.get("/readyz", role=None)
        assert ready.status_code == 503
        assert ready.json() == {"status": "unavailable", "redis": False, "broker": False}
        assert api.get("/healthz", role=None).status_code == 200
    finally:
        server.start()
    wait_until(lambda: api.get("/readyz", role=None).status_code == 200, timeout=15,
               what="readyz after Redis came back")
    assert api.get("/api/v1/tasks").status_code == 200
    assert api.post("/api/v1/tasks", json=enqueue).status_code == 202


def test_an_enqueue_right_after_a_broker_restart_succeeds(outage) -> None:
    server, api = outage
    enqueue = {"name": "demo.test_task"}
    assert api.post("/api/v1/tasks", json=enqueue).status_code == 202  # pools a connection
    server.stop()
    server.start()
    r = api.post("/api/v1/tasks", json=enqueue)
    assert r.status_code == 202, r.text


def test_a_503_names_the_dependency_but_not_its_address(outage) -> None:
    server, api = outage
    server.stop()
    try:
        store_down = api.get("/api/v1/stats")
        broker_down = api.post("/api/v1/tasks", json={"name": "demo.test_task"})
    finally:
        server.start()
    assert store_down.status_code == broker_down.status_code == 503
    assert store_down.json()["error"]["details"] == {"dependency": "redis"}
    assert broker_down.json()["error"]["details"] == {"dependency": "broker"}
    for r in (store_down, broker_down):
        assert "127.0.0.1" not in r.text, r.text
        assert str(server.port) not in r.text, r.text
    # The address is for the operator: in the log, with the route.
    log = outage.proc.log()
    assert f"WARNING producer_api: redis unavailable on GET /api/v1/stats: Error 111 connecting " \
           f"to 127.0.0.1:{server.port}" in log
    assert "WARNING producer_api: broker unavailable on POST /api/v1/tasks" in log


def test_streams_end_when_redis_goes_and_serve_again_once_it_is_back(outage) -> None:
    server, api = outage
    log_before = len(outage.proc.log())
    with api.get("/api/v1/events", stream=True, timeout=(5, 5)) as live:
        lines = live.iter_lines(decode_unicode=True)
        assert next(lines).startswith("retry:")
        server.stop()
        try:
            # Heartbeats come every 0.3 s here, so this returns only if the server ends the stream.
            list(lines)
            refused = api.get("/api/v1/events", timeout=5)
        finally:
            server.start()
    assert refused.status_code == 503
    assert refused.json()["error"]["details"] == {"dependency": "redis"}

    def streams_again() -> bool:
        with api.get("/api/v1/events", stream=True, timeout=(5, 5)) as r:
            return r.status_code == 200
    wait_until(streams_again, timeout=15, what="a stream after Redis came back")
    log = outage.proc.log()[log_before:]
    assert log.count("event feed lost redis") == 1  # once per outage, however many retries
    assert "event feed reconnected to redis" in log
    assert "Traceback" not in log


def test_fleet_routes_answer_503_while_the_broker_is_down(outage) -> None:
    server, api = outage
    # Connections the control pool holds from before the outage must not stay broken after it.
    for _ in range(2):
        assert api.post("/api/v1/workers/*/pool", json={"grow": 1}).status_code == 200
    server.stop()
    try:
        for method, path, body in [
            ("POST", "/api/v1/workers/w1@box/pool", {"grow": 1}),  # the broker only
            ("POST", "/api/v1/workers/w1@box/shutdown", None),
            ("POST", "/api/v1/queues/default/purge", {"expected": 0}),
            ("GET", "/api/v1/queues/default/messages", None),
            ("POST", "/api/v1/queues/default/pause", None),
            ("GET", "/api/v1/catalog/demo.test_task/limits", None),
        ]:
            r = api.request(method, path, json=body)
            assert r.status_code == 503, (method, path, r.text)
            assert r.json()["error"]["code"] == "unavailable"
    finally:
        server.start()
    wait_until(lambda: api.get("/readyz", role=None).status_code == 200, timeout=15,
               what="readyz after Redis came back")
    for _ in range(3):  # every pooled connection, not just one
        r = api.post("/api/v1/workers/w1@box/pool", json={"grow": 1})
        assert r.json() == {"workers": {}, "no_reply": ["w1@box"]}
