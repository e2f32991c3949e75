"""Enqueue through the real API into a real Redis broker (no worker: the messages stay queued)."""

from __future__ import annotations

import json

import msgspec
import pytest
import redis

from event_collector.stored import decode_stored
from tests.api.conftest import ApiClient
from tests.services import RedisServer

SEP = "\x06\x16"


def broker_messages(api_redis: RedisServer, queue: str) -> list[dict]:
    """Messages waiting in every priority list of ``queue`` (kombu's Redis layout)."""
    client = api_redis.client(0)
    out = []
    for key in client.scan_iter(match=f"{queue}*"):
        name = key.decode()
        if name == queue or name.startswith(queue + SEP):
            out += [dict(json.loads(m), list=name) for m in client.lrange(key, 0, -1)]
    return out


def message_for(api_redis: RedisServer, queue: str, task_id: str) -> dict:
    found = [m for m in broker_messages(api_redis, queue) if m["headers"]["id"] == task_id]
    assert len(found) == 1, f"{len(found)} messages for {task_id} in {queue}"
    return found[0]


def test_enqueue_answers_202_with_the_task_id_and_its_url(api: ApiClient, api_redis) -> None:
    r = api.post("/api/v1/tasks", json={"name": "demo.test_task", "kwargs": {"message": "x"}})
    assert r.status_code == 202
    body = r.json()
    assert body["url"] == f"/api/v1/tasks/{body['id']}"
    assert r.headers["Location"] == body["url"]
    message = message_for(api_redis, "default", body["id"])
    assert message["headers"]["task"] == "demo.test_task"


def test_same_idempotency_key_returns_the_same_task_not_a_second_one(
    api: ApiClient, api_redis: RedisServer, store: redis.Redis
) -> None:
    payload = {"name": "finance.check_pending_bills", "idempotency_key": "bills-2026-11-25"}
    first = api.post("/api/v1/tasks", json=payload).json()
    second = api.post("/api/v1/tasks", json=payload).json()
    assert second["id"] == first["id"]
    assert second["duplicate"] is True
    assert "duplicate" not in first
    ids = [m["headers"]["id"] for m in broker_messages(api_redis, "finance")]
    assert ids.count(first["id"]) == 1


def test_idempotency_key_header_works_like_the_body_field(api: ApiClient, store) -> None:
    headers = {"Idempotency-Key": "header-key-1"}
    first = api.post("/api/v1/tasks", json={"name": "demo.test_task"}, headers=headers).json()
    second = api.post("/api/v1/tasks", json={"name": "demo.test_task"}, headers=headers).json()
    assert first["id"] == second["id"]


@pytest.mark.parametrize(
    ("priority", "broker_list"),
    [("critical", "finance"), ("high", f"finance{SEP}3"), (None, f"finance{SEP}6"),
     ("low", f"finance{SEP}9"), (4, "finance")],
)
def test_priority_level_lands_in_its_redis_priority_list(
    api: ApiClient, api_redis: RedisServer, priority: str | int | None, broker_list: str
) -> None:
    body = {"name": "finance.check_pending_bills"}
    if priority is not None:
        body["priority"] = priority
    task_id = api.post("/api/v1/tasks", json=body).json()["id"]
    assert message_for(api_redis, "finance", task_id)["list"] == broker_list


def test_explicit_queue_overrides_the_catalog_route(api: ApiClient, api_redis) -> None:
    body = {"name": "demo.test_task", "queue": "reports"}
    accepted = api.post("/api/v1/tasks", json=body).json()
    assert accepted["queue"] == "reports"
    message_for(api_redis, "reports", accepted["id"])


def test_batch_enqueues_every_task_in_order(api: ApiClient, api_redis) -> None:
    tasks = [{"name": "demo.test_task", "kwargs": {"message": f"m{i}"}} for i in range(5)]
    r = api.post("/api/v1/tasks/batch", json={"tasks": tasks})
    assert r.status_code == 202
    ids = [t["id"] for t in r.json()["tasks"]]
    assert len(set(ids)) == 5
    for task_id in ids:
        message_for(api_redis, "default", task_id)


def test_batch_with_one_bad_task_sends_nothing(api: ApiClient, api_redis) -> None:
    before = len(broker_messages(api_redis, "default"))
    tasks = [{"name": "demo.test_task"}, {"name": "no.such_task"}]
    r = api.post("/api/v1/tasks/batch", json={"tasks": tasks})
    assert r.status_code == 422
    assert r.json()["error"]["details"]["field"] == "tasks[1].name"
    assert len(broker_messages(api_redis, "default")) == before


def test_enqueue_is_recorded_as_an_audit_event_with_the_actor(api: ApiClient, store) -> None:
    r = api.post("/api/v1/tasks", role="operator", json={"name": "demo.test_task"})
    task_id = r.json()["id"]
    audits = [msgspec.to_builtins(decode_stored(f[b"e"])) for _, f in store.xrange("tp:events")]
    [audit] = [a for a in audits if a.get("uuid") == task_id]
    assert audit["type"] == "taskpulse-audit"
    assert (audit["actor"], audit["action"]) == ("test-operator", "enqueue")


def test_countdown_sets_an_eta_on_the_message(api: ApiClient, api_redis) -> None:
    body = {"name": "demo.test_task", "countdown": 60}
    task_id = api.post("/api/v1/tasks", json=body).json()["id"]
    assert message_for(api_redis, "default", task_id)["headers"]["eta"]


def test_args_are_recorded_as_json_so_a_retry_can_resend_them(api: ApiClient, api_redis) -> None:
    body = {"name": "demo.test_task", "args": ["hi", 0.1]}
    task_id = api.post("/api/v1/tasks", json=body).json()["id"]
    headers = message_for(api_redis, "default", task_id)["headers"]
    assert json.loads(headers["argsrepr"]) == ["hi", 0.1]
