"""Queries over projections written by the collector's real Lua (synthetic events)."""

from __future__ import annotations

import asyncio
import json
import time

import msgspec
import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from event_collector.keys import Keys
from event_collector.metrics import CollectorMetrics
from event_collector.stored import decode_stored
from tests.api.conftest import STORE_DB, ApiClient, apply_events
from tests.collector.conftest import gauge
from tests.events import task_event, worker_event
from tests.services import RedisServer

NOW = time.time()


def finished(task_id: str, ts: float, name: str = "demo.test_task", queue: str = "default",
             ok: bool = True, args: str = "[]", kwargs: str = "{}") -> list:
    final = (task_event("succeeded", task_id, ts + 0.5, runtime=0.4, result="'done'") if ok
             else task_event("failed", task_id, ts + 0.5, exception="ValueError('boom')",
                             traceback="Traceback ..."))
    return [
        task_event("sent", task_id, ts, hostname="api@host", name=name, queue=queue,
                   args=args, kwargs=kwargs),
        task_event("received", task_id, ts + 0.1, name=name, queue=queue),
        task_event("started", task_id, ts + 0.2),
        final,
    ]


@pytest.fixture
def seeded(api_redis: RedisServer, store) -> list[str]:
    """30 tasks, newest last: every third one failed, names alternate between two tasks."""
    events, ids = [], []
    for i in range(30):
        task_id = f"task-{i:02d}"
        name = "demo.test_task" if i % 2 == 0 else "finance.check_pending_bills"
        queue = "default" if i % 2 == 0 else "finance"
        events += finished(task_id, NOW - 300 + i, name=name, queue=queue, ok=i % 3 != 0,
                           args='["hi", 0]' if i % 2 == 0 else "[]")
        ids.append(task_id)
    apply_events(api_redis, events)
    return ids


def test_show_task_has_state_result_and_timeline_in_order(api: ApiClient, seeded) -> None:
    body = api.get("/api/v1/tasks/task-01").json()
    assert (body["state"], body["result"], body["worker"]) == ("SUCCESS", "'done'", "w1@box")
    assert [e["type"] for e in body["timeline"]] == [
        "task-sent", "task-received", "task-started", "task-succeeded",
    ]


def test_progress_is_shown_while_a_task_runs(api: ApiClient, api_redis, store) -> None:
    apply_events(api_redis, [
        task_event("received", "busy", NOW, name="demo.long_running_task"),
        task_event("started", "busy", NOW + 0.1),
        task_event("task-progress", "busy", NOW + 1, progress_current=3, progress_total=10),
    ])
    body = api.get("/api/v1/tasks/busy").json()
    assert body["state"] == "STARTED"
    assert body["progress"]["current"] == 3
    assert body["progress"]["total"] == 10


def test_list_pages_through_every_task_once_newest_first(api: ApiClient, seeded) -> None:
    seen, cursor = [], None
    while True:
        page = api.get("/api/v1/tasks", params={"limit": 7, "cursor": cursor}).json()
        seen += [t["id"] for t in page["items"]]
        cursor = page["next_cursor"]
        if not page["items"] or cursor is None:
            break
    assert seen == list(reversed(seeded))


def test_list_combines_state_and_name_filters(api: ApiClient, seeded) -> None:
    params = {"state": "FAILURE", "name": "finance.check_pending_bills", "limit": 100}
    items = api.get("/api/v1/tasks", params=params).json()["items"]
    expected = [f"task-{i:02d}" for i in range(29, -1, -1) if i % 2 == 1 and i % 3 == 0]
    assert [t["id"] for t in items] == expected


def test_list_filters_by_time_range(api: ApiClient, seeded) -> None:
    params = {"since": NOW - 300 + 10, "until": NOW - 300 + 12.5}
    items = api.get("/api/v1/tasks", params=params).json()["items"]
    assert [t["id"] for t in items] == ["task-12", "task-11", "task-10"]


def test_count_matches_the_listing(api: ApiClient, seeded) -> None:
    assert api.get("/api/v1/tasks/count").json() == {"count": 30, "exact": True}
    assert api.get("/api/v1/tasks/count", params={"state": "FAILURE"}).json()["count"] == 10
    both = {"state": "FAILURE", "queue": "finance"}
    assert api.get("/api/v1/tasks/count", params=both).json()["count"] == 5


def test_stats_totals_states_and_event_kinds(api: ApiClient, seeded) -> None:
    stats = api.get("/api/v1/stats").json()
    assert stats["tasks_stored"] == 30
    assert stats["by_state"]["SUCCESS"] == 20
    assert stats["by_state"]["FAILURE"] == 10
    assert stats["events_total"]["SENT"] == 30
    assert stats["by_name"]["demo.test_task"]["SUCCESS"] == 10


def test_history_buckets_count_events_per_minute(api: ApiClient, seeded) -> None:
    params = {"granularity": "minute", "since": NOW - 400, "until": NOW}
    buckets = api.get("/api/v1/history", params=params).json()["buckets"]
    assert sum(b["counts"].get("SENT", 0) for b in buckets) == 30
    named = api.get("/api/v1/history", params={**params, "name": "demo.test_task"}).json()
    assert sum(b["counts"].get("SENT", 0) for b in named["buckets"]) == 15


def test_history_refuses_too_many_buckets(api: ApiClient) -> None:
    r = api.get("/api/v1/history", params={"granularity": "minute", "since": 0})
    assert r.status_code == 422


def test_workers_alive_by_recent_heartbeat(api: ApiClient, api_redis, store) -> None:
    from event_collector.events import Event
    from event_collector.normalize import event_id

    def beat(host: str, ts: float) -> Event:
        return Event(id=event_id("worker-heartbeat", "", host, 1, 0, ts), type="worker-heartbeat",
                     timestamp=ts, hostname=host, pid=1, freq=2.0, active=0, processed=3)

    apply_events(api_redis, [beat("fresh@box", time.time()), beat("stale@box", NOW - 600)])
    workers = {w["hostname"]: w["alive"] for w in api.get("/api/v1/workers").json()}
    assert workers == {"fresh@box": True, "stale@box": False}


def test_get_workers_agrees_with_the_collector_s_celery_worker_up(
    api: ApiClient, api_redis: RedisServer, store
) -> None:
    now = time.time()
    apply_events(api_redis, [
        worker_event("heartbeat", "zero-freq@box", now - 3.0, freq=0.0),
        worker_event("heartbeat", "no-freq@box", now - 3.0, freq=None),
        worker_event("heartbeat", "stale@box", now - 60.0),
    ])
    listed = {w["hostname"]: w["alive"] for w in api.get("/api/v1/workers").json()}

    async def worker_up() -> dict[str, bool]:
        client = aioredis.Redis.from_url(api_redis.url(STORE_DB))
        registry = CollectorRegistry()
        metrics = CollectorMetrics(registry, keys=Keys(), node_hostnames=True, clock=lambda: now)
        try:
            await metrics.refresh(client)
        finally:
            await client.aclose()
        return {labels[0][1]: value == 1.0
                for labels, value in gauge(registry, "celery_worker_up").items()}

    assert listed == asyncio.run(worker_up())
    assert listed == {"zero-freq@box": True, "no-freq@box": True, "stale@box": False}


def test_queues_lists_every_catalog_queue(api: ApiClient, store) -> None:
    store.hset("tp:queues", mapping={"default": 4})
    store.hset("tp:queues:workers", mapping={"default": 2})
    queues = {q["name"]: q for q in api.get("/api/v1/queues").json()}
    assert set(queues) >= {"default", "finance", "reports", "email"}
    assert (queues["default"]["length"], queues["default"]["workers"]) == (4, 2)
    assert "length" not in queues["email"]


def test_retry_resends_a_failed_task_with_its_args_and_parent(
    api: ApiClient, api_redis: RedisServer, seeded
) -> None:
    r = api.post("/api/v1/tasks/task-00/retry", role="operator")
    assert r.status_code == 202
    retry = r.json()
    assert retry["parent_id"] == "task-00"
    assert retry["id"] != "task-00"
    raw = [json.loads(m) for m in api_redis.client(0).lrange("default\x06\x166", 0, -1)]
    [message] = [m for m in raw if m["headers"]["id"] == retry["id"]]
    assert message["headers"]["parent_id"] == "task-00"
    assert json.loads(message["headers"]["argsrepr"]) == ["hi", 0]


def test_retry_of_a_successful_task_is_409(api: ApiClient, seeded) -> None:
    r = api.post("/api/v1/tasks/task-01/retry", role="operator")
    assert r.status_code == 409


def test_revoke_is_accepted_and_audited(api: ApiClient, seeded, store) -> None:
    r = api.post("/api/v1/tasks/task-05/revoke", json={"terminate": True})
    assert r.status_code == 202
    assert r.json() == {"id": "task-05", "terminate": True, "revoked": True}
    audits = [msgspec.to_builtins(decode_stored(f[b"e"])) for _, f in store.xrange("tp:events")]
    assert any(a.get("action") == "revoke" and a.get("uuid") == "task-05" for a in audits)


def test_task_events_lists_the_timeline(api: ApiClient, seeded) -> None:
    body = api.get("/api/v1/tasks/task-03/events").json()
    assert [e["type"] for e in body["events"]][-1] == "task-failed"


def test_catalog_lists_every_task_of_the_worker(api: ApiClient) -> None:
    names = {t["name"] for t in api.get("/api/v1/catalog").json()["tasks"]}
    assert {"demo.test_task", "finance.check_pending_bills", "exports.export_data"} <= names


def test_metrics_count_requests_by_route_template(api: ApiClient, seeded) -> None:
    api.get("/api/v1/tasks/task-01")
    text = api.get("/metrics", role=None).text
    assert 'route="/api/v1/tasks/{task_id}"' in text
    assert "task-01" not in text
