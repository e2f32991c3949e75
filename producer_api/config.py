"""The API's settings: one typed object built from the environment, passed down."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import msgspec

from event_collector.config import settings_from_env

PACKAGED_CATALOG = Path(__file__).with_name("catalog.json")


class ApiSettings(msgspec.Struct, frozen=True, kw_only=True):
    broker_url: str = "redis://127.0.0.1:6379/0"
    # The monitoring store the collector writes (read here; the API appends audit events only).
    redis_url: str = "redis://127.0.0.1:6379/1"
    key_prefix: str = "tp:"
    # Chords count their header's results there; "" = the broker URL, as the worker does.
    result_backend: str = ""
    # Beat's timezone, so the schedules API computes the same next run as beat.
    timezone: str = "Asia/Shanghai"
    host: str = "0.0.0.0"
    port: int = 8080
    tokens_file: str = "tokens.json"
    max_body_bytes: int = 1024 * 1024
    catalog_file: str = str(PACKAGED_CATALOG)
    # How long an idempotency key keeps answering with the first task's id.
    idempotency_ttl_seconds: int = 86_400
    # Seconds between SSE heartbeat comments (keeps proxies from closing idle streams).
    sse_heartbeat_seconds: float = 15.0
    # Fail fast when Redis or the broker is gone: the API answers 503 instead of hanging.
    redis_timeout_seconds: float = 2.0
    broker_timeout_seconds: float = 2.0
    # Threads that publish to the broker (kombu is blocking; the event loop never is).
    publish_threads: int = 4
    # Web console: a session ends after this long unused; a one-time sign-in link lapses sooner.
    ui_session_ttl_seconds: int = 8 * 3600
    ui_login_link_ttl_seconds: int = 600
    # The collector's threshold (same variable): the console's overview counts such tasks stuck.
    stuck_after_seconds: float = 600.0


# Environment variable -> field. One table, so the README's config table can be checked against it.
ENV_VARS: dict[str, str] = {
    "TASKPULSE_BROKER_URL": "broker_url",
    "TASKPULSE_REDIS_URL": "redis_url",
    "TASKPULSE_KEY_PREFIX": "key_prefix",
    "TASKPULSE_RESULT_BACKEND": "result_backend",
    "TASKPULSE_TIMEZONE": "timezone",
    "TASKPULSE_API_HOST": "host",
    "TASKPULSE_API_PORT": "port",
    "TASKPULSE_API_TOKENS_FILE": "tokens_file",
    "TASKPULSE_API_MAX_BODY_BYTES": "max_body_bytes",
    "TASKPULSE_CATALOG_FILE": "catalog_file",
    "TASKPULSE_API_IDEMPOTENCY_TTL": "idempotency_ttl_seconds",
    "TASKPULSE_API_SSE_HEARTBEAT": "sse_heartbeat_seconds",
    "TASKPULSE_API_REDIS_TIMEOUT": "redis_timeout_seconds",
    "TASKPULSE_API_BROKER_TIMEOUT": "broker_timeout_seconds",
    "TASKPULSE_API_PUBLISH_THREADS": "publish_threads",
    "TASKPULSE_UI_SESSION_TTL": "ui_session_ttl_seconds",
    "TASKPULSE_UI_LOGIN_LINK_TTL": "ui_login_link_ttl_seconds",
    "TASKPULSE_STUCK_AFTER_SECONDS": "stuck_after_seconds",
}


def load_settings(environ: Mapping[str, str], **overrides: object) -> ApiSettings:
    """Build settings from ``environ`` (flags passed as ``overrides`` win). A bad value raises
    ``SettingsError`` naming its variable."""
    return settings_from_env(ApiSettings, environ, names=ENV_VARS, overrides=overrides)
