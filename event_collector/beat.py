"""Where beat's schedule lives, as beat (``worker.dynamic_schedule``) and the schedules API
(``producer_api.schedule_store``) must both see it: celery-redbeat's settings and its client.

Here rather than in ``worker`` because the API may not import worker code; the key prefix itself
is ``keys.Keys.beat_prefix``.

Redbeat's own URL handling knows ``redis://``, ``redis-sentinel://`` with the sentinels in
``redbeat_redis_options`` and ``redis-cluster://`` (whose startup nodes it hands to redis-py in
a form redis-py 8 no longer takes), not taskpulse's ``redis+cluster://`` / ``redis+sentinel://``.
So redbeat is given the client ``connection.open_sync`` builds for the store URL, whatever its
form: redbeat uses a client already set on the app (``app.redbeat_redis``) instead of building
one. On a cluster every redbeat key is in one slot: the prefix's hash tag is in
``redbeat:<prefix>`` too.
"""

from __future__ import annotations

from typing import Final

from celery import Celery
from redbeat.schedulers import REDBEAT_REDIS_KEY, RetryingConnection

from event_collector.connection import ClientOptions, StoreAddress, open_sync, parse_store_url
from event_collector.keys import Keys

# Beat (no timeout given) rides out a failover or a store restart this long before a call
# fails: redbeat retries connection errors itself, instead of beat's tick crashing the process.
BEAT_RETRY_SECONDS: Final = 120


def configure_redbeat(
    app: Celery, redis_url: str, keys: Keys, timeout: float | None = None
) -> None:
    """Point redbeat at the store. ``timeout`` (seconds) bounds every Redis call and connect
    and turns off redbeat's retrying (the API's threads must not hang on a lost Redis: it
    answers 503); None (beat) keeps redis-py's defaults and retries for BEAT_RETRY_SECONDS."""
    app.conf.update(
        # only for redbeat's start-up banner: the client below is what it uses
        redbeat_redis_url=_banner_url(parse_store_url(redis_url)),
        redbeat_key_prefix=keys.beat_prefix,
        redbeat_redis_options={},
    )
    client = open_sync(redis_url, ClientOptions(
        socket_timeout=timeout, connect_timeout=timeout, decode_responses=True,
    ))
    setattr(app, REDBEAT_REDIS_KEY,
            client if timeout else RetryingConnection(BEAT_RETRY_SECONDS, client))


def _banner_url(address: StoreAddress) -> str:
    """A URL kombu's sanitizer can parse (one host) for beat's banner: the first node of a
    cluster or the first sentinel stands for the rest."""
    if address.mode == "single":
        return address.safe_url
    scheme, first = address.url.split("://", 1)[0], address.nodes[0]
    more = f"/{address.service_name}" if address.mode == "sentinel" else ""
    return f"{scheme}://{first.host}:{first.port}{more}"
