"""A broker that accepts connections but never answers must not stall the event loop."""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from tests.api.conftest import ApiClient, make_tokens
from tests.services import RedisServer, ServiceProcess, free_port, taskpulse_env, wait_until


@pytest.fixture(scope="module")
def stalled_broker_api(api_redis: RedisServer, tmp_path_factory) -> Iterator[ApiClient]:
    # A listening socket nobody accepts on: connects succeed (kernel backlog), replies never come.
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(64)
    workdir = tmp_path_factory.mktemp("stalled")
    tokens = make_tokens(workdir / "tokens.json")
    port = free_port()
    env = taskpulse_env(
        api_redis, workdir, TASKPULSE_API_PORT=str(port), TASKPULSE_API_HOST="127.0.0.1",
        TASKPULSE_API_TOKENS_FILE=str(workdir / "tokens.json"),
        TASKPULSE_BROKER_URL=f"redis://127.0.0.1:{hole.getsockname()[1]}/0",
        TASKPULSE_API_BROKER_TIMEOUT="3",
    )
    proc = ServiceProcess([sys.executable, "-m", "producer_api"], env, workdir / "api.log")
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return requests.get(base + "/healthz", timeout=1).status_code == 200
        except requests.ConnectionError:
            return False

    wait_until(up, timeout=30, what="API with a stalled broker")
    yield ApiClient(base, tokens)
    proc.stop()
    hole.close()


def test_reads_stay_fast_while_an_enqueue_waits_on_the_broker(stalled_broker_api, store) -> None:
    api = stalled_broker_api
    outcome: dict[str, object] = {}

    def enqueue() -> None:
        started = time.monotonic()
        r = api.post("/api/v1/tasks", json={"name": "demo.test_task"}, timeout=30)
        outcome.update(status=r.status_code, seconds=time.monotonic() - started)

    sender = threading.Thread(target=enqueue)
    sender.start()
    time.sleep(0.3)  # the publish is now blocked inside the broker connection
    try:
        for path in ("/healthz", "/api/v1/stats", "/api/v1/tasks"):
            started = time.monotonic()
            assert api.get(path).status_code == 200
            assert time.monotonic() - started < 0.5, path
    finally:
        sender.join(timeout=30)
    assert outcome["status"] == 503
    assert outcome["seconds"] > 1  # it really was stuck on the broker, off the loop
