"""The stream entry format (``stored.py``): lossless, and small where it can be."""

from __future__ import annotations

import msgspec
import pytest

from event_collector.events import Event
from event_collector.normalize import event_id, normalize
from event_collector.stored import STORED_TYPES, decode_stored, encode_stored

TASK_ID = "c7f1e848-2636-4044-8a4a-47d306764217"


def event(type_: str, task_id: str = TASK_ID, **fields: object) -> Event:
    return Event(id=event_id(type_, task_id, "w1@host", 42, 7, 1795566958.0235612), type=type_,
                 timestamp=1795566958.0235612, hostname="w1@host", pid=42, clock=7,
                 uuid=task_id, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("stored", [
    event("task-sent", name="demo.x", args="(1,)", kwargs="{}", queue="default",
          routing_key="default", priority=3, parent_id="p-1", root_id="r-1"),
    event("task-received", name="demo.x", args="(1,)", kwargs="{}", retries=2),
    event("task-started"),
    event("task-succeeded", result="2", runtime=0.25),
    event("task-failed", exception="ValueError('x')", traceback="Traceback ..."),
    event("task-revoked", terminated=True, signum="15", expired=True),
    event("task-rejected", requeue=True),
    event("task-progress", progress_current=3.0, progress_total=10.0),
    normalize({"type": "worker-heartbeat", "hostname": "w1@h", "timestamp": 5.0, "freq": 2.0,
               "active": 1, "processed": 9, "loadavg": [0.5, 0.1, 0.0], "sw_ver": "5.7"}),
], ids=lambda e: e.type)
def test_every_kind_of_event_reads_back_identical(stored: Event) -> None:
    assert decode_stored(encode_stored(stored)) == stored


def test_an_entry_stores_no_default_after_its_last_field() -> None:
    started = encode_stored(event("task-started"))
    assert msgspec.msgpack.decode(started) == [
        STORED_TYPES.index("task-started"), 1795566958.0235612, "w1@host", 42, 7,
        bytes.fromhex(TASK_ID.replace("-", "")),
    ]



def test_a_sent_entry_stops_at_its_last_set_field_and_names_its_queue_once() -> None:
    sent = event("task-sent", name="demo.x", args="(1,)", kwargs="{}", queue="default",
                 routing_key="default")
    values = msgspec.msgpack.decode(encode_stored(sent))
    # ... name args kwargs queue exchange routing_key: None = "the queue"; nothing after it
    assert values[-6:] == ["demo.x", "(1,)", "{}", "default", "", None]
    assert decode_stored(encode_stored(sent)).routing_key == "default"


def test_a_routing_key_other_than_the_queue_is_kept() -> None:
    sent = event("task-sent", queue="default", routing_key="custom.key")
    assert decode_stored(encode_stored(sent)).routing_key == "custom.key"
    assert decode_stored(encode_stored(event("task-sent", queue="q"))).routing_key == ""

@pytest.mark.parametrize("task_id", [
    "t-1", TASK_ID.upper(), TASK_ID.replace("-", " "), "x" * 36, TASK_ID[:-1] + " ",
])
def test_a_task_id_that_is_not_a_canonical_uuid_is_kept_as_text(task_id: str) -> None:
    stored = event("task-started", task_id=task_id)
    assert decode_stored(encode_stored(stored)).uuid == task_id


def test_a_canonical_uuid_costs_16_bytes() -> None:
    as_text = len(encode_stored(event("task-started", task_id="t" * 36)))
    assert len(encode_stored(event("task-started"))) == as_text - 20


def test_an_audit_event_is_stored_as_json() -> None:
    audit = Event(id="a1", type="taskpulse-audit", timestamp=1.0, actor="admin", action="enqueue")
    raw = encode_stored(audit)
    assert raw.startswith(b"{")
    assert decode_stored(raw) == audit


def test_an_unknown_type_code_is_a_decode_error() -> None:
    with pytest.raises(msgspec.DecodeError):
        decode_stored(msgspec.msgpack.encode([len(STORED_TYPES), 1.0, "h", 1, 1, "t"]))
