"""Pure parsing behind the fleet routes: kombu's envelope, Celery's registered-task lines."""

from __future__ import annotations

import base64
import json

from producer_api.broker_queues import decode_message
from producer_api.fleet_schemas import LimitsInForce
from producer_api.routes.fleet import parse_registered


def envelope(body: object, headers: dict, priority: int = 6) -> dict:
    return {
        "body": base64.b64encode(json.dumps(body).encode()).decode(),
        "content-encoding": "utf-8", "content-type": "application/json", "headers": headers,
        "properties": {"priority": priority, "body_encoding": "base64", "delivery_tag": "x"},
    }


def test_a_protocol_2_message_reads_as_its_task() -> None:
    message = decode_message(envelope(
        [[1, "a"], {"k": True}, {"callbacks": None}],
        {"id": "t1", "task": "demo.test_task", "eta": "2026-01-01T00:00:00+00:00",
         "expires": None}, priority=3))
    assert (message.id, message.name, message.args, message.kwargs) == (
        "t1", "demo.test_task", [1, "a"], {"k": True})
    assert (message.priority, message.eta, message.expires) == (3, "2026-01-01T00:00:00+00:00",
                                                                None)


def test_a_protocol_1_message_reads_from_its_body() -> None:
    message = decode_message(envelope(
        {"task": "demo.test_task", "id": "t2", "args": [2], "kwargs": {}, "eta": None}, {}))
    assert (message.id, message.name, message.args, message.kwargs) == (
        "t2", "demo.test_task", [2], {})


def test_a_body_that_is_not_json_still_names_its_task() -> None:
    raw = {"body": "gAN9cQAu", "headers": {"id": "t3", "task": "x.y"},
           "properties": {"body_encoding": "base64"}}
    message = decode_message(raw)
    assert (message.id, message.name, message.args) == ("t3", "x.y", None)


def test_registered_lines_give_the_limits_in_force() -> None:
    lines = ["demo.other [rate_limit=1/s]",
             "demo.test_task [rate_limit=6/m soft_time_limit=100.0 time_limit=120.0]"]
    assert parse_registered(lines, "demo.test_task") == LimitsInForce("6/m", 100.0, 120.0)
    assert parse_registered(["demo.test_task"], "demo.test_task") == LimitsInForce()
    assert parse_registered(lines, "demo.missing") is None
    assert parse_registered({"error": "x"}, "demo.test_task") is None
