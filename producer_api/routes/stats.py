"""Aggregates: stats, history, workers, queues. All read counters and small sets only."""

from __future__ import annotations

import time

import msgspec
from aiohttp import web

from event_collector.keys import BUCKET_SECONDS
from event_collector.records import MAX_HISTORY_BUCKETS, History, QueueInfo, Stats, WorkerInfo
from producer_api.errors import Unprocessable
from producer_api.http import endpoint, json_response, parse_query
from producer_api.resources import CATALOG, FLEET, READER
from producer_api.schemas import HistoryQuery

routes = web.RouteTableDef()
DEFAULT_HISTORY_BUCKETS = 60


@routes.get("/stats")
@endpoint("Totals by state, event kind and task name; workers; queue lengths", "viewer",
          response=Stats, errors=(503,), tag="monitoring")
async def stats(request: web.Request) -> web.Response:
    return json_response(await request.app[READER].stats())


@routes.get("/history")
@endpoint("Event counts per minute/hour/day bucket (default: the last 60 buckets)", "viewer",
          query=HistoryQuery, response=History, errors=(422, 503), tag="monitoring")
async def history(request: web.Request) -> web.Response:
    query = parse_query(request, HistoryQuery)
    size = BUCKET_SECONDS[query.granularity]
    until = query.until if query.until is not None else time.time()
    since = query.since if query.since is not None else until - size * (DEFAULT_HISTORY_BUCKETS - 1)
    if since > until:
        raise Unprocessable("since is after until", {"field": "since", "in": "query"})
    if (until - since) / size >= MAX_HISTORY_BUCKETS:
        raise Unprocessable(
            f"at most {MAX_HISTORY_BUCKETS} {query.granularity} buckets per request",
            {"field": "since", "in": "query"},
        )
    return json_response(await request.app[READER].history(query.granularity, since, until,
                                                           query.name))


@routes.get("/workers")
@endpoint("Workers as last seen, alive or not", "viewer", response=list[WorkerInfo],
          errors=(503,), tag="monitoring")
async def workers(request: web.Request) -> web.Response:
    return json_response(await request.app[READER].workers())


@routes.get("/queues")
@endpoint("Known queues with their waiting messages, and whether an operator paused them",
          "viewer", response=list[QueueInfo], errors=(503,), tag="monitoring")
async def queues(request: web.Request) -> web.Response:
    polled = {q.name: q for q in await request.app[READER].queues()}
    paused = await request.app[FLEET].paused()
    known = request.app[CATALOG].queues
    names = [*known, *sorted((set(polled) | set(paused)) - set(known))]
    return json_response([
        msgspec.structs.replace(polled.get(name, QueueInfo(name=name)), paused=name in paused)
        for name in names
    ])
