"""On RabbitMQ the API declares priority queues as the worker does and maps levels upwards.

A private queue name (from a test catalog) keeps this off the shared broker's real queues.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterator

import pytest
from kombu import Connection

from producer_api.config import PACKAGED_CATALOG
from tests.api.conftest import ApiClient, make_tokens
from tests.services import (
    RABBITMQ_URL,
    RedisServer,
    ServiceProcess,
    free_port,
    rabbitmq_running,
    taskpulse_env,
    wait_until,
)

pytestmark = [
    pytest.mark.rabbitmq,
    pytest.mark.skipif(not rabbitmq_running(), reason="no RabbitMQ on 127.0.0.1:5672"),
]


@pytest.fixture(scope="module")
def rabbit_api(api_redis: RedisServer, tmp_path_factory) -> Iterator[tuple[ApiClient, str]]:
    queue = f"taskpulse-api-test-{uuid.uuid4().hex[:8]}"
    workdir = tmp_path_factory.mktemp("rabbit")
    catalog = json.loads(PACKAGED_CATALOG.read_text())
    catalog["queues"] = [queue]
    catalog["tasks"] = [dict(t, queue=queue) for t in catalog["tasks"]
                        if t["name"] == "demo.test_task"]
    (workdir / "catalog.json").write_text(json.dumps(catalog))
    tokens = make_tokens(workdir / "tokens.json")
    port = free_port()
    env = taskpulse_env(
        api_redis, workdir, TASKPULSE_API_PORT=str(port), TASKPULSE_API_HOST="127.0.0.1",
        TASKPULSE_API_TOKENS_FILE=str(workdir / "tokens.json"),
        TASKPULSE_BROKER_URL=RABBITMQ_URL, TASKPULSE_CATALOG_FILE=str(workdir / "catalog.json"),
    )
    proc = ServiceProcess([sys.executable, "-m", "producer_api"], env, workdir / "api.log")
    base = f"http://127.0.0.1:{port}"
    api = ApiClient(base, tokens)
    wait_until(lambda: _answers(api), timeout=30, what="API on RabbitMQ")
    yield api, queue
    proc.stop()
    with Connection(RABBITMQ_URL) as conn:
        conn.default_channel.queue_delete(queue)


def _answers(api: ApiClient) -> bool:
    try:
        return api.get("/healthz", role=None).status_code == 200
    except OSError:
        return False


def test_levels_become_amqp_priorities_on_a_priority_queue(rabbit_api) -> None:
    api, queue = rabbit_api
    assert api.get("/readyz", role=None).json()["broker"] is True
    sent = {}
    for level in ("low", "critical"):
        r = api.post("/api/v1/tasks", json={"name": "demo.test_task", "priority": level})
        assert r.status_code == 202, r.text
        sent[r.json()["id"]] = level
    received = {}
    with Connection(RABBITMQ_URL) as conn:
        channel = conn.default_channel

        def drained() -> bool:
            # basic_get, not a consumer: nothing is re-declared with other arguments.
            message = channel.basic_get(queue, no_ack=True)
            if message is not None:
                received[message.headers["id"]] = message.properties["priority"]
            return len(received) == len(sent)

        wait_until(drained, timeout=10, what="both messages on the queue")
    assert {sent[i]: p for i, p in received.items()} == {"low": 1, "critical": 4}


def _send(api: ApiClient, message: str, priority: str = "normal") -> str:
    r = api.post("/api/v1/tasks", json={"name": "demo.test_task", "priority": priority,
                                        "kwargs": {"message": message}})
    assert r.status_code == 202, r.text
    return r.json()["id"]


def _peek(api: ApiClient, queue: str, limit: int = 20) -> dict:
    r = api.get(f"/api/v1/queues/{queue}/messages?limit={limit}", role="viewer")
    assert r.status_code == 200, r.text
    return r.json()


def test_peek_requeues_what_it_shows_and_purge_refuses_a_stale_count(rabbit_api) -> None:
    api, queue = rabbit_api
    first, second = _send(api, "first"), _send(api, "second")
    urgent = _send(api, "urgent", "critical")
    wait_until(lambda: _peek(api, queue, 1)["length"] == 3, timeout=10, what="3 waiting")
    shown = _peek(api, queue, 2)
    # RabbitMQ hands out the highest priority first, then the oldest.
    assert [m["id"] for m in shown["messages"]] == [urgent, first]
    assert shown["messages"][1]["kwargs"] == {"message": "first"}
    assert shown["messages"][0]["priority"] == 4
    # Nothing was consumed: all three are back, in the same order.
    again = wait_until(lambda: (p := _peek(api, queue))["length"] == 3 and p, timeout=10,
                       what="the peeked messages requeued")
    assert [m["id"] for m in again["messages"]] == [urgent, first, second]

    r = api.post(f"/api/v1/queues/{queue}/purge", json={"expected": 2})
    assert r.status_code == 409
    assert r.json()["error"]["details"] == {"length": 3, "expected": 2}
    assert _peek(api, queue, 1)["length"] == 3
    r = api.post(f"/api/v1/queues/{queue}/purge", json={"expected": 3})
    assert r.status_code == 200, r.text
    assert r.json() == {"queue": queue, "purged": 3}
    assert _peek(api, queue, 1)["length"] == 0
