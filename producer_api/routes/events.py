"""``GET /events``: the event stream as Server-Sent Events, live, filterable, resumable.

Each SSE message's ``id`` is the Redis stream id, so a client that reconnects with
``Last-Event-ID`` (browsers do it by themselves) continues exactly after the last event it saw.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections import OrderedDict

import redis.exceptions
from aiohttp import web

from event_collector.events import EVENT_ENCODER, TASK_EVENT_KINDS, Event
from event_collector.read import EventReader
from producer_api.errors import Unprocessable
from producer_api.http import endpoint, parse_query
from producer_api.resources import KEYS, READER, REDIS, SETTINGS
from producer_api.schemas import EventsQuery

routes = web.RouteTableDef()
_STREAM_ID = re.compile(r"^\d+-\d+$")
_NAME_CACHE_MAX = 10_000
_BATCH = 200


class _Filter:
    """Matches events against the query; task names are looked up for events that lack one."""

    def __init__(self, request: web.Request, query: EventsQuery) -> None:
        self.query = query
        self.redis = request.app[REDIS]
        self.keys = request.app[KEYS]
        self.names: OrderedDict[str, str] = OrderedDict()

    async def __call__(self, event: Event) -> bool:
        q = self.query
        if q.task_id is not None and event.uuid != q.task_id:
            return False
        if q.state is not None and TASK_EVENT_KINDS.get(event.type) != q.state:
            return False
        return q.name is None or await self._name(event) == q.name

    async def _name(self, event: Event) -> str:
        if event.name or not event.uuid:
            return event.name
        name = self.names.get(event.uuid)
        if name is None:
            raw = await self.redis.hget(self.keys.task(event.uuid), "name")
            name = raw.decode() if raw else ""
            self.names[event.uuid] = name
            if len(self.names) > _NAME_CACHE_MAX:
                self.names.popitem(last=False)
        return name


@routes.get("/events")
@endpoint("Live events (Server-Sent Events); resumable with Last-Event-ID", "viewer",
          query=EventsQuery, content_type="text/event-stream", errors=(422, 503), tag="events")
async def events(request: web.Request) -> web.StreamResponse:
    query = parse_query(request, EventsQuery)
    reader = request.app[READER]
    start = request.headers.get("Last-Event-ID") or query.last_event_id
    if start is not None and not _STREAM_ID.match(start):
        raise Unprocessable("Last-Event-ID must be a stream id like 1700000000000-0",
                            {"field": "Last-Event-ID", "in": "header"})
    last_id = start or await reader.last_event_id()
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream",
        "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",  # proxies must not buffer a live stream
    })
    await response.prepare(request)
    await response.write(b"retry: 2000\n: connected\n\n")
    # Client gone, or Redis gone: either way the stream ends and the client reconnects with
    # Last-Event-ID.
    with contextlib.suppress(
        ConnectionResetError, redis.exceptions.ConnectionError, redis.exceptions.TimeoutError
    ):
        await _pump(request, reader, _Filter(request, query), response, last_id)
    return response


async def _pump(
    request: web.Request, reader: EventReader, matches: _Filter, response: web.StreamResponse,
    last_id: str,
) -> None:
    settings = request.app[SETTINGS]
    # XREAD blocks on a pooled connection, so it must return before that socket's timeout.
    block_ms = max(100, int(settings.redis_timeout_seconds * 500))
    last_write = time.monotonic()
    while not _client_gone(request):
        batch = await reader.read_events(last_id, count=_BATCH, block_ms=block_ms)
        for entry_id, event in batch:
            last_id = entry_id
            if await matches(event):
                await response.write(_sse(entry_id, event))
                last_write = time.monotonic()
        if not batch and time.monotonic() - last_write >= settings.sse_heartbeat_seconds:
            await response.write(b": heartbeat\n\n")
            last_write = time.monotonic()


def _client_gone(request: web.Request) -> bool:
    """Checked after every read, so a closed stream frees its Redis connection within a block."""
    transport = request.transport
    return transport is None or transport.is_closing()


def _sse(entry_id: str, event: Event) -> bytes:
    return b"id: %s\nevent: %s\ndata: %s\n\n" % (
        entry_id.encode(), event.type.encode(), EVENT_ENCODER.encode(event),
    )
