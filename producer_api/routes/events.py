"""``GET /events``: the event stream as Server-Sent Events, live, filterable, resumable.

Each SSE message's ``id`` is the Redis stream id, so a client that reconnects with
``Last-Event-ID`` (browsers do it by themselves) continues exactly after the last event it saw.
Streams are served from the process's one live feed (``event_feed.py``), never from a Redis
connection of their own; filtering is per stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from event_collector.connection import STORE_UNAVAILABLE
from event_collector.events import TASK_EVENT_KINDS, Event
from event_collector.read import EventReader
from producer_api.errors import Unprocessable
from producer_api.event_feed import BLOCK_MS, EventFeed, Subscription, TaskNames
from producer_api.http import endpoint, parse_query
from producer_api.resources import KEYS, READER, SETTINGS, open_redis
from producer_api.schemas import EventsQuery

routes = web.RouteTableDef()
FEED = web.AppKey("event_feed", EventFeed)
_STREAM_ID = re.compile(r"^\d+-\d+$")


async def ctx(app: web.Application) -> AsyncIterator[None]:
    """The feed's reader task, on a Redis connection of its own (its XREAD blocks)."""
    settings = app[SETTINGS]
    client = open_redis(settings, socket_timeout=settings.redis_timeout_seconds + BLOCK_MS / 1000)
    feed = EventFeed(
        EventReader(client, app[KEYS]), app[READER], TaskNames(app[KEYS]),
        backlog=settings.sse_backlog, wait_seconds=settings.redis_timeout_seconds + 1,
    )
    app[FEED] = feed
    reader = asyncio.create_task(feed.run(), name="event-feed")
    yield
    feed.close()
    reader.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await reader
    await client.aclose()


async def end_streams(app: web.Application) -> None:
    """On shutdown, before handlers are waited for: open streams end at once."""
    app[FEED].close()


def _matcher(query: EventsQuery) -> Callable[[Event], bool]:
    def matches(event: Event) -> bool:
        if query.task_id is not None and event.uuid != query.task_id:
            return False
        if query.state is not None and TASK_EVENT_KINDS.get(event.type) != query.state:
            return False
        return query.name is None or event.name == query.name  # the feed fills in names

    return matches


@routes.get("/events")
@endpoint("Live events (Server-Sent Events); resumable with Last-Event-ID", "viewer",
          query=EventsQuery, content_type="text/event-stream", errors=(422, 503), tag="events")
async def events(request: web.Request) -> web.StreamResponse:
    query = parse_query(request, EventsQuery)
    start = request.headers.get("Last-Event-ID") or query.last_event_id
    if start is not None and not _STREAM_ID.match(start):
        raise Unprocessable("Last-Event-ID must be a stream id like 1700000000000-0",
                            {"field": "Last-Event-ID", "in": "header"})
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream",
        "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",  # proxies must not buffer a live stream
    })
    async with request.app[FEED].subscribe(start) as subscription:  # Redis down: 503 here
        await response.prepare(request)
        await response.write(b"retry: 2000\n: connected\n\n")
        # Client gone, Redis gone, or too far behind: the stream ends and the client reconnects
        # with Last-Event-ID.
        with contextlib.suppress(ConnectionResetError, *STORE_UNAVAILABLE):
            await _pump(subscription, _matcher(query), response,
                        request.app[SETTINGS].sse_heartbeat_seconds)
    return response


async def _pump(subscription: Subscription, matches: Callable[[Event], bool],
                response: web.StreamResponse, heartbeat_seconds: float) -> None:
    last_write = time.monotonic()
    async with contextlib.aclosing(subscription.batches(heartbeat_seconds)) as batches:
        async for batch in batches:
            frames = b"".join(e.frame for e in batch if matches(e.event))
            if frames:
                await response.write(frames)
                last_write = time.monotonic()
            elif time.monotonic() - last_write >= heartbeat_seconds:
                await response.write(b": heartbeat\n\n")
                last_write = time.monotonic()
