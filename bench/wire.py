"""Celery task events in the exact wire format a worker puts on a Redis broker.

Captured from a real ``celery worker -E -P prefork`` (celery/kombu 5.7) with
``redis-cli PSUBSCRIBE '*'`` (see ``bench/wire_sample.txt``):

- channel ``/<db>.celeryev/<routing key>``: kombu's fanout prefix ``/{db}.``, exchange ``celeryev``,
  routing key = event type with ``-`` → ``.`` (``task.sent``), or ``task.multi`` for the batches
  a prefork worker flushes (its dispatcher buffers the ``task`` group, up to 24 events);
- payload: kombu's JSON envelope, body = base64 of the JSON event (a list for ``task.multi``).

The producer emits ``task-sent`` alone (hostname ``gen<pid>@host``); the worker emits
received/started/succeeded in ``task.multi`` batches.
"""

from __future__ import annotations

import json
import uuid
from base64 import b64encode
from collections.abc import Iterator
from dataclasses import dataclass

# Byte-for-byte the envelope kombu's Redis transport writes (json.dumps default separators).
_ENVELOPE = (
    '{{"body": "{body}", "content-encoding": "utf-8", "content-type": "application/json", '
    '"headers": {{"hostname": "{hostname}"}}, "properties": {{"delivery_mode": 1, '
    '"delivery_info": {{"exchange": "celeryev", "routing_key": "{routing_key}"}}, '
    '"priority": 0, "body_encoding": "base64", "delivery_tag": "{tag}"}}}}'
)
TASK_EVENTS_PER_TASK = 4  # sent, received, started, succeeded


def channel(db: int, routing_key: str) -> bytes:
    return f"/{db}.celeryev/{routing_key}".encode()


def envelope(body: object, hostname: str, routing_key: str) -> bytes:
    encoded = b64encode(json.dumps(body).encode()).decode()
    return _ENVELOPE.format(
        body=encoded, hostname=hostname, routing_key=routing_key, tag=uuid.uuid4()
    ).encode()


@dataclass
class Clock:
    """Lamport clock and wall time of one emitting process, as Celery stamps its events."""

    hostname: str
    pid: int
    timestamp: float
    step: float
    clock: int = 0

    def stamp(self, event_type: str, fields: dict) -> dict:
        self.clock += 1
        self.timestamp += self.step
        # Same key order as celery.events.Event, so the JSON is byte-comparable with a capture.
        return {
            "hostname": self.hostname,
            "utcoffset": 0.0,
            "pid": self.pid,
            "clock": self.clock,
            **fields,
            "timestamp": self.timestamp,
            "type": event_type,
        }


@dataclass(frozen=True)
class TaskSpec:
    task_id: str
    name: str
    queue: str
    seq: int


def task_sent(spec: TaskSpec, producer: Clock) -> dict:
    return producer.stamp("task-sent", {
        "uuid": spec.task_id, "root_id": spec.task_id, "parent_id": None, "name": spec.name,
        "args": f"({spec.seq},)", "kwargs": "{}", "retries": 0, "eta": None, "expires": None,
        "queue": spec.queue, "exchange": "", "routing_key": spec.queue,
    })


def task_received(spec: TaskSpec, worker: Clock) -> dict:
    return worker.stamp("task-received", {
        "uuid": spec.task_id, "name": spec.name, "args": f"({spec.seq},)", "kwargs": "{}",
        "root_id": spec.task_id, "parent_id": None, "retries": 0, "eta": None, "expires": None,
    })


def task_started(spec: TaskSpec, worker: Clock) -> dict:
    return worker.stamp("task-started", {"uuid": spec.task_id})


def task_succeeded(spec: TaskSpec, worker: Clock) -> dict:
    return worker.stamp("task-succeeded", {
        "uuid": spec.task_id, "result": str(spec.seq * 2), "runtime": 0.0004,
    })


def lifecycle_messages(
    specs: list[TaskSpec], producer: Clock, worker: Clock, db: int, multi_size: int
) -> Iterator[tuple[bytes, bytes, int]]:
    """(channel, payload, events in it) for every task: sent alone, the rest in task.multi.

    Tasks go in groups of ``multi_size``: their sent events, then one ``task.multi`` per phase,
    the way a prefork worker flushes its buffer once per loop iteration.
    """
    sent_channel, multi_channel = channel(db, "task.sent"), channel(db, "task.multi")
    for start in range(0, len(specs), multi_size):
        group = specs[start:start + multi_size]
        for spec in group:
            yield sent_channel, envelope(task_sent(spec, producer), producer.hostname,
                                         "task.sent"), 1
        for phase in (task_received, task_started, task_succeeded):
            batch = [phase(spec, worker) for spec in group]
            yield multi_channel, envelope(batch, worker.hostname, "task.multi"), len(batch)
