"""What the app holds while it runs, under typed keys, opened and closed in ``cleanup_ctx``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CollectorRegistry

from event_collector.broker import broker_kind
from event_collector.connection import AsyncStore, ClientOptions, open_async, open_sync
from event_collector.fleet import FleetState
from event_collector.keys import Keys
from event_collector.read import EventReader
from event_collector.stream import EventStream
from producer_api.auth import TokenStore
from producer_api.broker_queues import BrokerQueues
from producer_api.catalog import Catalog
from producer_api.config import ApiSettings
from producer_api.control import WorkerControl
from producer_api.enqueue import Enqueuer, Limits
from producer_api.metrics import ApiMetrics
from producer_api.publisher import Publisher, producer_app

log = logging.getLogger("producer_api")

SETTINGS = web.AppKey("settings", ApiSettings)
CATALOG = web.AppKey("catalog", Catalog)
KEYS = web.AppKey("keys", Keys)
STREAM = web.AppKey("stream", EventStream)
TOKENS = web.AppKey("tokens", TokenStore)
METRICS = web.AppKey("metrics", ApiMetrics)
REGISTRY = web.AppKey("registry", CollectorRegistry)
REDIS = web.AppKey("redis", AsyncStore)
READER = web.AppKey("reader", EventReader)
PUBLISHER = web.AppKey("publisher", Publisher)
ENQUEUER = web.AppKey("enqueuer", Enqueuer)
CONTROL = web.AppKey("control", WorkerControl)
BROKER_QUEUES = web.AppKey("broker_queues", BrokerQueues)
FLEET = web.AppKey("fleet", FleetState)
OPENAPI = web.AppKey("openapi", bytes)  # the encoded document, built once at startup
DOCS_PAGE = web.AppKey("docs_page", bytes)
RUNBOOK_PAGE = web.AppKey("runbook_page", bytes)  # docs/runbook.md, rendered (scripts/)


def store_options(settings: ApiSettings, socket_timeout: float | None = None) -> ClientOptions:
    # Short timeouts and one quick retry: a dead Redis turns into a 503 within seconds, and the
    # pool reconnects by itself once Redis is back (a cluster's or sentinel's client also finds
    # the new primary after a failover). A client that blocks (XREAD BLOCK) passes a socket
    # timeout longer than its block.
    return ClientOptions(
        socket_timeout=socket_timeout or settings.redis_timeout_seconds,
        connect_timeout=settings.redis_timeout_seconds,
        retries=1, backoff_cap=0.2, health_check_interval=30,
    )


def open_redis(settings: ApiSettings, socket_timeout: float | None = None) -> AsyncStore:
    return open_async(settings.redis_url, store_options(settings, socket_timeout))


async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    client = open_redis(settings)
    app[REDIS] = client
    app[READER] = EventReader(client, app[KEYS])
    yield
    await client.aclose()


async def publisher_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    celery_app = producer_app(
        settings.broker_url, app[CATALOG], settings.broker_timeout_seconds,
        settings.publish_threads,
    )
    # Audit events of enqueues are written from the publishing thread, so they need a
    # synchronous client of their own.
    audit_redis = open_sync(settings.redis_url, store_options(settings))
    publisher = Publisher(celery_app, settings.publish_threads, settings.broker_timeout_seconds,
                          audit_redis, app[STREAM])
    app[PUBLISHER] = publisher
    app[ENQUEUER] = Enqueuer(
        app[REDIS], app[KEYS], app[CATALOG], publisher, broker_kind(settings.broker_url),
        settings.idempotency_ttl_seconds,
        Limits(settings.max_delay_seconds, settings.max_args_bytes),
    )
    yield
    publisher.close()


async def fleet_ctx(app: web.Application) -> AsyncIterator[None]:
    """Worker remote control and queue peek/purge, over the publisher's Celery app (its broker
    connection pool), and the fleet settings an operator made (``event_collector.fleet``)."""
    settings = app[SETTINGS]
    celery_app = app[PUBLISHER].app
    control = WorkerControl(celery_app, settings.control_timeout_seconds)
    app[CONTROL] = control
    app[BROKER_QUEUES] = BrokerQueues(celery_app, broker_kind(settings.broker_url))
    app[FLEET] = FleetState(app[REDIS], app[KEYS])
    yield
    control.close()
