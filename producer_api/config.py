"""The API's settings: one typed object built from the environment, passed down."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import msgspec

from event_collector.broker import broker_kind, result_backend_url
from event_collector.config import Retention
from event_collector.connection import store_keys
from event_collector.environment import (
    DEFAULT_BROKER_URL,
    DEFAULT_REDIS_URL,
    DEFAULT_TIMEZONE,
    settings_from_env,
)
from event_collector.keys import Keys
from producer_api.schemas import MAX_DELAY_CEILING_SECONDS

PACKAGED_CATALOG = Path(__file__).with_name("catalog.json")


class ApiSettings(msgspec.Struct, frozen=True, kw_only=True):
    broker_url: str = DEFAULT_BROKER_URL
    # The monitoring store the collector writes (read here; the API appends audit events only).
    redis_url: str = DEFAULT_REDIS_URL
    # "" = the store's default (``tp:``, ``{tp}:`` on a cluster with one partition); read it
    # through ``keys``
    key_prefix: str = ""
    # The store's partitions (the collector's variable): reads merge them.
    partitions: Annotated[int, msgspec.Meta(ge=1)] = 1
    # Chords count their header's results there; "" = the broker URL, as the worker does.
    result_backend: str = ""
    # Beat's timezone, so the schedules API computes the same next run as beat.
    timezone: str = DEFAULT_TIMEZONE
    host: str = "0.0.0.0"
    port: int = 8080
    # SQLite; an old JSON tokens file here (or a tokens.json beside it) is imported once.
    tokens_file: str = "tokens.db"
    max_body_bytes: int = 1024 * 1024
    catalog_file: str = str(PACKAGED_CATALOG)
    # How long an idempotency key keeps answering with the first task's id.
    idempotency_ttl_seconds: int = 86_400
    # How far ahead a task may be scheduled or kept (countdown, eta, expires): a task due in
    # 9999 would sit in the broker and the store for ever.
    max_delay_seconds: Annotated[float, msgspec.Meta(gt=0, le=MAX_DELAY_CEILING_SECONDS)] = (
        365 * 86_400
    )
    # Cap on one task's encoded args + kwargs: every byte is stored in the broker message, the
    # task-sent event, the stream and the task record, and kept for days.
    max_args_bytes: Annotated[int, msgspec.Meta(ge=1024)] = 64 * 1024
    # Seconds between SSE heartbeat comments (keeps proxies from closing idle streams).
    sse_heartbeat_seconds: float = 15.0
    # Events a live stream may fall behind the feed before it is ended (its client resumes with
    # Last-Event-ID): a slow client never grows the API's memory nor holds up the others.
    sse_backlog: int = 10_000
    # Fail fast when Redis or the broker is gone: the API answers 503 instead of hanging.
    redis_timeout_seconds: float = 2.0
    broker_timeout_seconds: float = 2.0
    # How long a remote-control command (pool, consumers, limits, pause) waits for workers'
    # replies; a worker silent that long is reported in ``no_reply``.
    control_timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=60)] = 1.0
    # Threads that publish to the broker (kombu is blocking; the event loop never is).
    publish_threads: int = 4
    # Web console: a session ends after this long unused; a one-time sign-in link lapses sooner.
    ui_session_ttl_seconds: int = 8 * 3600
    ui_login_link_ttl_seconds: int = 600
    # The collector's threshold (same variable): the console's overview counts such tasks stuck.
    stuck_after_seconds: float = 600.0
    # A text search (GET /tasks?q=) reads at most this many task records per request, then
    # answers with a cursor (docs/operations.md, "Failures, search and bulk actions").
    search_scan_max: Annotated[int, msgspec.Meta(ge=100)] = 20_000
    # The collector's stream retention (same variable): audit appends trim as its appends do.
    retention_stream_max_length: int = Retention().stream_max_length

    def __post_init__(self) -> None:
        broker_kind(self.broker_url)  # an unsupported broker fails at start-up
        self.keys  # noqa: B018 - so does a bad store URL or key prefix

    @property
    def keys(self) -> Keys:
        return store_keys(self.redis_url, self.key_prefix, self.partitions)

    @property
    def backend_url(self) -> str:
        return result_backend_url(self.result_backend, self.broker_url)


# Environment variable -> field. One table, so the README's config table can be checked against it.
ENV_VARS: dict[str, str] = {
    "TASKPULSE_BROKER_URL": "broker_url",
    "TASKPULSE_REDIS_URL": "redis_url",
    "TASKPULSE_KEY_PREFIX": "key_prefix",
    "TASKPULSE_PARTITIONS": "partitions",
    "TASKPULSE_RESULT_BACKEND": "result_backend",
    "TASKPULSE_TIMEZONE": "timezone",
    "TASKPULSE_API_HOST": "host",
    "TASKPULSE_API_PORT": "port",
    "TASKPULSE_API_TOKENS_FILE": "tokens_file",
    "TASKPULSE_API_MAX_BODY_BYTES": "max_body_bytes",
    "TASKPULSE_CATALOG_FILE": "catalog_file",
    "TASKPULSE_API_IDEMPOTENCY_TTL": "idempotency_ttl_seconds",
    "TASKPULSE_API_MAX_DELAY_SECONDS": "max_delay_seconds",
    "TASKPULSE_API_MAX_ARGS_BYTES": "max_args_bytes",
    "TASKPULSE_API_SSE_HEARTBEAT": "sse_heartbeat_seconds",
    "TASKPULSE_API_SSE_BACKLOG": "sse_backlog",
    "TASKPULSE_API_REDIS_TIMEOUT": "redis_timeout_seconds",
    "TASKPULSE_API_BROKER_TIMEOUT": "broker_timeout_seconds",
    "TASKPULSE_API_PUBLISH_THREADS": "publish_threads",
    "TASKPULSE_API_CONTROL_TIMEOUT": "control_timeout_seconds",
    "TASKPULSE_UI_SESSION_TTL": "ui_session_ttl_seconds",
    "TASKPULSE_UI_LOGIN_LINK_TTL": "ui_login_link_ttl_seconds",
    "TASKPULSE_STUCK_AFTER_SECONDS": "stuck_after_seconds",
    "TASKPULSE_API_SEARCH_SCAN_MAX": "search_scan_max",
    "TASKPULSE_RETENTION_STREAM_MAX_LENGTH": "retention_stream_max_length",
}


def load_settings(environ: Mapping[str, str], **overrides: object) -> ApiSettings:
    """Build settings from ``environ`` (flags passed as ``overrides`` win). A bad value raises
    ``SettingsError`` naming its variable."""
    return settings_from_env(ApiSettings, environ, names=ENV_VARS, overrides=overrides)
