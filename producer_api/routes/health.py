"""Liveness, readiness, the OpenAPI document, its docs page and the alert runbook. Public: no token
needed."""

from __future__ import annotations

import asyncio

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from event_collector.connection import STORE_UNAVAILABLE
from producer_api.http import endpoint, json_response
from producer_api.resources import (
    DOCS_PAGE,
    KEYS,
    OPENAPI,
    PUBLISHER,
    REDIS,
    REGISTRY,
    RUNBOOK_PAGE,
)
from producer_api.schemas import Health, Readiness

routes = web.RouteTableDef()


@routes.get("/healthz")
@endpoint("The process is up (no dependency checked)", None, response=Health, tag="meta")
async def healthz(request: web.Request) -> web.Response:
    return json_response(Health(status="ok"))


@routes.get("/readyz")
@endpoint("Redis and the broker both answer (503 otherwise)", None, response=Readiness,
          errors=(503,), tag="meta")
async def readyz(request: web.Request) -> web.Response:
    redis_ok, broker_ok = await asyncio.gather(_redis_ok(request), request.app[PUBLISHER].ping())
    ready = redis_ok and broker_ok
    body = Readiness(status="ready" if ready else "unavailable", redis=redis_ok, broker=broker_ok)
    return json_response(body, status=200 if ready else 503)


async def _redis_ok(request: web.Request) -> bool:
    try:
        # a keyed read, not PING: on a cluster it reaches the node serving the store's slot
        await request.app[REDIS].exists(request.app[KEYS].events)
        return True
    except STORE_UNAVAILABLE:
        return False


@routes.get("/openapi.json")
@endpoint("This API's OpenAPI 3.1 document", None, tag="meta")
async def openapi(request: web.Request) -> web.Response:
    return web.Response(body=request.app[OPENAPI], content_type="application/json")


@routes.get("/docs")
@endpoint("Human-readable API reference (rendered from /openapi.json)", None,
          content_type="text/html", tag="meta")
async def docs(request: web.Request) -> web.Response:
    return web.Response(body=request.app[DOCS_PAGE], content_type="text/html")


@routes.get("/runbook")
@endpoint("The alert runbook (docs/runbook.md): where the alerts' runbook_url points by default",
          None, content_type="text/html", tag="meta")
async def runbook(request: web.Request) -> web.Response:
    return web.Response(body=request.app[RUNBOOK_PAGE], content_type="text/html")


@routes.get("/metrics")
@endpoint("Prometheus metrics of this API process (request counts, latencies, enqueues)", None,
          content_type="text/plain", tag="meta")
async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[REGISTRY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
