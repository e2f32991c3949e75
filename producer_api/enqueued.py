"""What the API knows of a task it has just enqueued, until the collector has its record.

The collector is the only writer of task records: it folds the task-sent event (published with
the message) into ``P task:<id>`` within milliseconds while it runs, but a client that enqueues
and at once asks ``GET /tasks/{id}`` can be quicker, and a collector that is down or behind
leaves the record missing for longer. A 404 for a task the API just accepted is a lie, so the
API writes a small marker of its own (``P enq:<id>``: name, queue, time, parents), in the same
pipeline as its audit events and only once the broker has the message, with a short TTL. The
task routes read it **only** as a fallback when the projection has no record, and show the task
as ``PENDING`` from it; the marker is never folded into the projections and never outlives
``MARKER_TTL_SECONDS``, so the collector's record, once there, is the only answer.
"""

from __future__ import annotations

from typing import Final

import msgspec
import redis.asyncio as aioredis

from event_collector.keys import Keys
from event_collector.records import TaskRecord
from event_collector.workflows import WorkflowNode, WorkflowTree, build_tree

MARKER_TTL_SECONDS: Final = 3600
PENDING: Final = "PENDING"


class Enqueued(msgspec.Struct, frozen=True, omit_defaults=True):
    name: str
    queue: str
    sent: float
    parent_id: str | None = None
    root_id: str | None = None


_DECODER = msgspec.json.Decoder(Enqueued)
_ENCODER = msgspec.json.Encoder()


def encode_marker(marker: Enqueued) -> bytes:
    return _ENCODER.encode(marker)


async def enqueued_record(redis: aioredis.Redis, keys: Keys, task_id: str) -> TaskRecord | None:
    """The just-enqueued task as a PENDING record, or None if the API sent no such task lately."""
    raw = await redis.get(keys.enqueued(task_id))
    if raw is None:
        return None
    marker = _DECODER.decode(raw)
    return TaskRecord(
        id=task_id, name=marker.name, state=PENDING, queue=marker.queue, sent=marker.sent,
        first_seen=marker.sent, updated=marker.sent, parent_id=marker.parent_id,
        root_id=marker.root_id,
    )


def pending_tree(record: TaskRecord) -> WorkflowTree:
    """A one-node tree for a task only the marker knows (its workflow is not recorded yet)."""
    node = WorkflowNode(
        id=record.id, name=record.name, state=record.state, queue=record.queue,
        parent_id=record.parent_id, first_seen=record.first_seen, updated=record.updated,
    )
    return build_tree(record.id, [node])
