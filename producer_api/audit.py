"""Control actions (enqueue, revoke, retry, token changes) appended to the event stream.

They go to ``P events`` in the collector's own format (field ``e`` = an encoded ``Event`` of type
``taskpulse-audit``), so whoever reads the stream sees who did what, in order with the task events.
``event_collector.stream`` encodes and appends them, trimmed as the collector's appends are.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Sequence

import redis.asyncio as aioredis

from event_collector.events import AUDIT_EVENT, Event
from event_collector.stream import EventStream

log = logging.getLogger("producer_api.audit")


def audit_event(
    actor: str, action: str, task_id: str = "", name: str = "", detail: str = ""
) -> Event:
    now_ns = time.time_ns()
    # Unique without a urandom call per event (it shows in enqueue profiles): one action on one
    # task at one nanosecond happens once.
    return Event(
        id=f"audit-{action}-{task_id}-{now_ns}",
        type=AUDIT_EVENT,
        timestamp=now_ns / 1e9,
        hostname=f"producer-api@{socket.gethostname()}",
        pid=os.getpid(),
        uuid=task_id,
        name=name,
        actor=actor,
        action=action,
        detail=detail,
    )


async def append_audit(
    redis: aioredis.Redis, stream: EventStream, events: Sequence[Event]
) -> None:
    """Record rare control actions (revoke, tokens, schedules), and log them too.

    Enqueues and retries are recorded in bulk by the publisher instead, unlogged.
    """
    for event in events:
        log.info("%s by %s: %s %s %s", event.action, event.actor, event.name, event.uuid,
                 event.detail[:200])
    async with redis.pipeline(transaction=False) as pipe:
        stream.queue_appends(pipe, events)
        await pipe.execute()
