"""The application factory: settings in, a ready ``web.Application`` out."""

from __future__ import annotations

import logging
from importlib import resources

import msgspec
from aiohttp import web
from prometheus_client import CollectorRegistry

from event_collector.stream import EventStream
from producer_api.auth import TokenStore
from producer_api.catalog import load_catalog
from producer_api.config import ApiSettings
from producer_api.metrics import ApiMetrics
from producer_api.middleware import auth_middleware, error_middleware, metrics_middleware
from producer_api.openapi import build_openapi
from producer_api.resources import (
    CATALOG,
    DOCS_PAGE,
    KEYS,
    METRICS,
    OPENAPI,
    REGISTRY,
    RUNBOOK_PAGE,
    SETTINGS,
    STREAM,
    TOKENS,
    fleet_ctx,
    publisher_ctx,
    redis_ctx,
)
from producer_api.routes import API_PREFIX, API_TABLES, EXTRA_CTX, ON_SHUTDOWN, ROOT_TABLES

log = logging.getLogger("producer_api")


def create_app(settings: ApiSettings, registry: CollectorRegistry | None = None) -> web.Application:
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[metrics_middleware, error_middleware, auth_middleware],
    )
    app[SETTINGS] = settings
    app[KEYS] = settings.keys
    app[STREAM] = EventStream(app[KEYS], settings.retention_stream_max_length)
    app[CATALOG] = load_catalog(settings.catalog_file)
    app[TOKENS] = TokenStore(settings.tokens_file)
    app[REGISTRY] = registry if registry is not None else CollectorRegistry()
    app[METRICS] = ApiMetrics(app[REGISTRY])
    for table in API_TABLES:
        for route in table:
            app.router.add_route(route.method, API_PREFIX + route.path, route.handler)
    for table in ROOT_TABLES:
        app.router.add_routes(table)
    app[OPENAPI] = msgspec.json.encode(build_openapi(app))
    static = resources.files("producer_api").joinpath("static")
    app[DOCS_PAGE] = static.joinpath("docs.html").read_bytes()
    app[RUNBOOK_PAGE] = static.joinpath("runbook.html").read_bytes()
    app.cleanup_ctx.extend([redis_ctx, publisher_ctx, fleet_ctx, *EXTRA_CTX])
    app.on_shutdown.extend(ON_SHUTDOWN)
    if not app[TOKENS].list():
        log.warning(
            "no API tokens in %s: every authenticated route answers 401. Create one with "
            "`taskpulse tokens create --role admin --name <you>`", settings.tokens_file,
        )
    return app
