"""Celery wire events -> ``Event``: what is kept, what is rejected and why."""

from __future__ import annotations

import base64

import orjson
import pytest

from event_collector.consume import unwrap_kombu_redis
from event_collector.normalize import InvalidEvent, event_id, normalize

RECEIVED = {
    "hostname": "w1@host", "utcoffset": -8, "pid": 42, "clock": 7, "uuid": "t-1",
    "name": "demo.test_task", "args": "(1,)", "kwargs": "{}", "root_id": "t-1",
    "parent_id": None, "retries": 2, "eta": None, "expires": None,
    "timestamp": 1795566958.0235612, "type": "task-received",
}


def test_task_event_keeps_fields_and_raw_timestamp() -> None:
    event = normalize(RECEIVED)
    assert (event.type, event.uuid, event.name, event.args, event.retries) == (
        "task-received", "t-1", "demo.test_task", "(1,)", 2)
    assert event.timestamp == 1795566958.0235612  # utcoffset is not applied
    assert event.parent_id == ""


def test_same_event_twice_gets_the_same_id_and_another_event_another() -> None:
    assert normalize(RECEIVED).id == normalize(dict(RECEIVED)).id
    assert normalize(RECEIVED).id != normalize({**RECEIVED, "clock": 8}).id
    assert len(event_id("task-sent", "u", "h", 1, 1, 1.0)) == 12


def test_worker_heartbeat_is_normalized() -> None:
    event = normalize({"type": "worker-heartbeat", "hostname": "w1@h", "timestamp": 5.0,
                       "freq": 2.0, "active": 1, "processed": 9, "loadavg": [0.5, 0.1, 0.0]})
    assert (event.freq, event.active, event.processed, event.loadavg) == (
        2.0, 1, 9, (0.5, 0.1, 0.0))


def test_progress_reads_current_and_total() -> None:
    event = normalize({"type": "task-progress", "uuid": "t", "timestamp": 5.0,
                       "current": 3, "total": 10})
    assert (event.progress_current, event.progress_total) == (3.0, 10.0)


def test_non_string_result_is_rendered_as_json() -> None:
    event = normalize({**RECEIVED, "type": "task-succeeded", "result": {"rows": 2}})
    assert event.result == '{"rows":2}'


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ({**RECEIVED, "type": "task-exploded"}, "unknown_type"),
        ({k: v for k, v in RECEIVED.items() if k != "type"}, "missing_type"),
        ({k: v for k, v in RECEIVED.items() if k != "uuid"}, "missing_uuid"),
        ({**RECEIVED, "timestamp": "soon"}, "bad_timestamp"),
        ({**RECEIVED, "timestamp": None}, "bad_timestamp"),
        ({**RECEIVED, "retries": "many"}, "bad_field"),
        ({"type": "worker-heartbeat", "timestamp": 1.0}, "missing_hostname"),
        ({"type": "taskpulse-audit", "timestamp": 1.0}, "audit_on_broker"),
        ([1, 2], "not_an_object"),
    ],
)
def test_invalid_events_are_rejected_with_a_reason(raw: object, reason: str) -> None:
    with pytest.raises(InvalidEvent) as excinfo:
        normalize(raw)  # type: ignore[arg-type]
    assert excinfo.value.reason == reason


def test_kombu_redis_envelope_is_unwrapped() -> None:
    body = orjson.dumps([RECEIVED, RECEIVED])
    envelope = orjson.dumps({"body": base64.b64encode(body).decode(),
                             "properties": {"body_encoding": "base64"}})
    assert orjson.loads(unwrap_kombu_redis(envelope)) == [RECEIVED, RECEIVED]


def test_root_id_equal_to_the_task_itself_is_dropped_and_a_real_root_kept() -> None:
    assert normalize(RECEIVED).root_id == ""
    assert normalize({**RECEIVED, "root_id": "t-0"}).root_id == "t-0"
