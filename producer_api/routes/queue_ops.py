"""Queue operations: pause and resume consumption, purge, and peek at waiting messages."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Final

import msgspec
from aiohttp import web

from event_collector.fleet import PausedQueue
from producer_api.control import ALL_WORKERS, WorkerReply, result_of
from producer_api.errors import Conflict
from producer_api.fleet_schemas import (
    PeekQuery,
    Purged,
    PurgeRequest,
    QueueControl,
    QueueMessages,
)
from producer_api.http import endpoint, json_response, parse_query, read_body
from producer_api.middleware import ACTOR
from producer_api.resources import BROKER_QUEUES, CATALOG, CONTROL, FLEET
from producer_api.routes.fleet import audit, expected_workers

routes = web.RouteTableDef()
TAG: Final = "fleet"
ORDER: Final[dict[str, str]] = {
    "redis": "exact: highest priority first, oldest first within a priority, as one consumer "
             "takes them (messages with an eta are held by workers, not here)",
    "amqp": "as RabbitMQ hands them out (highest priority first); peeked messages are "
            "requeued to their positions when the queue is quiet, closer to the head otherwise",
}


def _queue(request: web.Request) -> str:
    return request.app[CATALOG].known_queue(request.match_info["queue"], "queue")


@routes.post("/queues/{queue}/pause")
@endpoint("Pause a queue: every worker consuming it cancels its consumer; messages keep waiting "
          "in the broker until it is resumed", "operator", response=QueueControl,
          errors=(422, 503), tag=TAG)
async def pause_queue(request: web.Request) -> web.Response:
    queue = _queue(request)
    expected = await expected_workers(request, ALL_WORKERS)
    control = request.app[CONTROL]
    consuming = await control.ask("active_queues", {}, None, expected)
    serving = _consumers(consuming, queue)
    fleet = request.app[FLEET]
    before = (await fleet.paused()).get(queue)
    # Recorded first: a worker coming online meanwhile is paused by the collector too.
    await fleet.pause(queue, PausedQueue(
        workers=sorted({*serving, *(before.workers if before else ())}),
        paused_by=request[ACTOR].name, paused_at=time.time()))
    result = result_of({}, [h for h in expected if h not in consuming])
    if serving:
        cancelled = await control.command("cancel_consumer", {"queue": queue}, serving, serving)
        # A worker answers before its event loop runs the cancel: ask again, so "paused" is
        # what the workers say now (a message its last poll took is handed back, not run).
        still = _consumers(await control.ask("active_queues", {}, serving, serving), queue)
        replies = {host: WorkerReply(error=f"still consuming {queue} after the cancel")
                   if host in still else reply for host, reply in cancelled.workers.items()}
        result = result_of(replies, sorted({*cancelled.no_reply, *result.no_reply}))
    await audit(request, "queue-pause", queue, {"workers": serving, "no_reply": result.no_reply})
    return json_response(QueueControl(queue=queue, paused=True, workers=result.workers,
                                      no_reply=result.no_reply))


def _consumers(active_queues: dict[str, Any], queue: str) -> list[str]:
    """Workers whose ``active_queues`` reply lists ``queue``."""
    return sorted(host for host, queues in active_queues.items() if isinstance(queues, list)
                  and any(isinstance(q, dict) and q.get("name") == queue for q in queues))


@routes.post("/queues/{queue}/resume")
@endpoint("Resume a paused queue: the workers that consumed it consume it again (a queue that "
          "is not paused: nothing to do)", "operator", response=QueueControl,
          errors=(422, 503), tag=TAG)
async def resume_queue(request: web.Request) -> web.Response:
    queue = _queue(request)
    fleet = request.app[FLEET]
    paused = (await fleet.paused()).get(queue)
    if paused is None:
        return json_response(QueueControl(queue=queue, paused=False, workers={}, no_reply=[]))
    result = result_of({}, [])
    if paused.workers:
        result = await request.app[CONTROL].command(
            "add_consumer", {"queue": queue}, paused.workers, paused.workers)
    # Forgotten only once the workers were told: a broker outage leaves the queue paused.
    await fleet.resume(queue)
    await audit(request, "queue-resume", queue,
                {"workers": paused.workers, "no_reply": result.no_reply})
    return json_response(QueueControl(queue=queue, paused=False, workers=result.workers,
                                      no_reply=result.no_reply))


@routes.post("/queues/{queue}/purge")
@endpoint("Delete every waiting message of a queue (all priorities), unless more are waiting "
          "than `expected`, the count the caller saw: then 409 and nothing is deleted", "admin",
          body=PurgeRequest, response=Purged, errors=(400, 409, 413, 422, 503), tag=TAG)
async def purge_queue(request: web.Request) -> web.Response:
    queue = _queue(request)
    req = await read_body(request, PurgeRequest)
    outcome = await asyncio.to_thread(request.app[BROKER_QUEUES].purge, queue, req.expected)
    if outcome.length > req.expected:
        raise Conflict(
            f"queue {queue} holds {outcome.length} messages now, more than the {req.expected} "
            "expected; nothing was purged. Look again and purge with the new count",
            {"length": outcome.length, "expected": req.expected},
        )
    await audit(request, "queue-purge", queue,
                {"expected": req.expected, "purged": outcome.purged})
    return json_response(Purged(queue=queue, purged=outcome.purged))


@routes.get("/queues/{queue}/messages")
@endpoint("Peek at a queue's waiting messages without consuming them", "viewer",
          query=PeekQuery, response=QueueMessages, errors=(422, 503), tag=TAG)
async def peek_queue(request: web.Request) -> web.Response:
    queue = _queue(request)
    query = parse_query(request, PeekQuery)
    broker = request.app[BROKER_QUEUES]
    length, messages = await asyncio.to_thread(broker.peek, queue, query.limit)
    priorities = request.app[CATALOG].priorities
    levels = {number: level for level, number in
              (priorities.redis if broker.kind == "redis" else priorities.amqp).items()}
    messages = [msgspec.structs.replace(m, level=levels.get(m.priority)) for m in messages]
    return json_response(QueueMessages(queue=queue, length=length, messages=messages,
                                       order=ORDER[broker.kind]))
