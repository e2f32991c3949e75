"""``GET /events``: live, in order, filtered, and resumable with Last-Event-ID."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import requests

from tests.api.conftest import ApiClient, apply_events
from tests.events import task_event

NOW = time.time()


class Sse:
    """A live SSE connection read message by message (comments are skipped)."""

    def __init__(self, api: ApiClient, params: dict | None = None,
                 last_event_id: str | None = None) -> None:
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        self.response = api.get("/api/v1/events", params=params or {}, headers=headers,
                                stream=True, timeout=(5, 5))
        assert self.response.status_code == 200
        assert self.response.headers["Content-Type"].startswith("text/event-stream")
        self.lines = self.response.iter_lines(decode_unicode=True)
        assert next(self.lines).startswith("retry:")
        assert next(self.lines) == ": connected"  # the server has fixed its starting point
        next(self.lines)

    def messages(self) -> Iterator[dict]:
        fields: dict = {}
        for line in self.lines:
            if line.startswith(":"):
                continue
            if not line:
                if fields:
                    yield fields
                fields = {}
                continue
            key, _, value = line.partition(": ")
            fields[key] = json.loads(value) if key == "data" else value

    def take(self, n: int) -> list[dict]:
        out = []
        for message in self.messages():
            out.append(message)
            if len(out) == n:
                break
        return out

    def close(self) -> None:
        self.response.close()


def lifecycle(task_id: str, ts: float, name: str = "demo.test_task") -> list:
    return [
        task_event("sent", task_id, ts, hostname="api@h", name=name),
        task_event("received", task_id, ts + 0.1, name=name),
        task_event("started", task_id, ts + 0.2),
        task_event("succeeded", task_id, ts + 0.3, runtime=0.1, result="1"),
    ]


def test_a_tasks_events_arrive_live_and_in_order(api: ApiClient, api_redis, store) -> None:
    sse = Sse(api, {"task_id": "live-1"})
    try:
        apply_events(api_redis, lifecycle("other", NOW) + lifecycle("live-1", NOW))
        got = sse.take(4)
    finally:
        sse.close()
    assert [m["event"] for m in got] == [
        "task-sent", "task-received", "task-started", "task-succeeded",
    ]
    assert all(m["data"]["uuid"] == "live-1" for m in got)
    assert [m["id"] for m in got] == sorted(m["id"] for m in got)


def test_reconnecting_with_last_event_id_resumes_after_it(api: ApiClient, api_redis, store) -> None:
    sse = Sse(api, {"task_id": "resume-1"})
    try:
        apply_events(api_redis, lifecycle("resume-1", NOW))
        first_two = sse.take(2)
    finally:
        sse.close()
    again = Sse(api, {"task_id": "resume-1"}, last_event_id=first_two[1]["id"])
    try:
        rest = again.take(2)
    finally:
        again.close()
    assert [m["event"] for m in rest] == ["task-started", "task-succeeded"]
    assert rest[0]["id"] > first_two[1]["id"]


def test_state_filter_passes_only_that_kind(api: ApiClient, api_redis, store) -> None:
    sse = Sse(api, {"state": "SUCCESS"})
    try:
        apply_events(api_redis, lifecycle("s-1", NOW) + lifecycle("s-2", NOW + 1))
        got = sse.take(2)
    finally:
        sse.close()
    assert [(m["event"], m["data"]["uuid"]) for m in got] == [
        ("task-succeeded", "s-1"), ("task-succeeded", "s-2"),
    ]


def test_name_filter_includes_events_that_carry_no_name(api: ApiClient, api_redis, store) -> None:
    sse = Sse(api, {"name": "finance.check_pending_bills"})
    try:
        apply_events(api_redis, lifecycle("n-1", NOW))
        apply_events(api_redis, lifecycle("n-2", NOW, name="finance.check_pending_bills"))
        got = sse.take(4)
    finally:
        sse.close()
    assert {m["data"]["uuid"] for m in got} == {"n-2"}
    assert "task-started" in [m["event"] for m in got]


def test_malformed_last_event_id_is_422(api: ApiClient) -> None:
    r = api.get("/api/v1/events", headers={"Last-Event-ID": "yesterday"}, timeout=5)
    assert r.status_code == 422


def test_without_a_token_the_stream_is_refused(api: ApiClient) -> None:
    with requests.get(api.base_url + "/api/v1/events", stream=True, timeout=5) as r:
        assert r.status_code == 401


def test_task_events_without_a_name_carry_the_name_from_the_task_record(
    api: ApiClient, api_redis, store
) -> None:
    sent, received, started, succeeded = lifecycle("named-1", NOW)
    apply_events(api_redis, [sent, received])  # the record knows the name before the stream
    sse = Sse(api, {"task_id": "named-1"})
    try:
        apply_events(api_redis, [started, succeeded])  # these two carry no name
        got = sse.take(2)
    finally:
        sse.close()
    assert [(m["event"], m["data"]["name"]) for m in got] == [
        ("task-started", "demo.test_task"), ("task-succeeded", "demo.test_task"),
    ]
