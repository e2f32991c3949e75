"""Where beat's schedule lives, as beat (``worker.dynamic_schedule``) and the schedules API
(``producer_api.schedule_store``) must both see it: celery-redbeat's Celery settings.

Here rather than in ``worker`` because the API may not import worker code; the key prefix itself
is ``keys.Keys.beat_prefix``.
"""

from __future__ import annotations

from typing import Any

from event_collector.keys import Keys


def redbeat_config(redis_url: str, key_prefix: str, timeout: float | None = None) -> dict[str, Any]:
    """The Celery settings through which redbeat finds its entries. ``timeout`` (seconds) bounds
    every Redis call and connect (the API's threads must not hang on a lost Redis); None keeps
    redis-py's defaults (beat)."""
    # Not the broker's transport options: redbeat would pass priority settings to redis-py.
    options = {"socket_timeout": timeout, "socket_connect_timeout": timeout} if timeout else {}
    return {
        "redbeat_redis_url": redis_url,
        "redbeat_key_prefix": Keys(prefix=key_prefix).beat_prefix,
        "redbeat_redis_options": options,
    }
