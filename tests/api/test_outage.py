"""Redis (store and broker) going away: 503 with the error body, never a 500 — and recovery.

This module has its own redis-server and API process, so stopping Redis here disturbs nobody.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.api.conftest import ApiClient, make_tokens, start_api
from tests.services import RedisServer, wait_until


@pytest.fixture(scope="module")
def outage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RedisServer, ApiClient]]:
    workdir = tmp_path_factory.mktemp("outage")
    server = RedisServer(workdir)
    server.start()
    tokens = make_tokens(workdir / "tokens.json")
    proc, base = start_api(server, workdir, workdir / "tokens.json",
                           TASKPULSE_API_SSE_HEARTBEAT="0.3")
    yield server, ApiClient(base, tokens)
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
