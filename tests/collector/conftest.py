"""Fixtures for the collector's own tests: a store on the session redis-server, event builders."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from event_collector.keys import Keys
from tests.services import RedisServer

STORE_DB = 1


def snapshot(client: redis.Redis, keys: Keys) -> dict[str, Any]:
    """Every projection key of the prefix with its content, comparable with ``==``.

    The stream is compared as a sorted list of its payloads (entry ids are arrival times);
    worker dedup markers carry no state.
    """
    out: dict[str, Any] = {}
    for raw_key in client.scan_iter(match=keys.all_pattern, count=1000):
        key = raw_key.decode()
        kind = client.type(key).decode()
        if kind == "hash":
            out[key] = client.hgetall(key)
        elif kind == "zset":
            out[key] = client.zrange(key, 0, -1, withscores=True)
        elif kind == "stream":
            out[key] = sorted(fields[b"e"] for _, fields in client.xrange(key))
        elif kind == "string" and key.startswith(keys.prefix + "wdd:"):
            continue
        else:
            out[key] = kind
    return out


@pytest.fixture
def store_client(clean_redis: RedisServer) -> Iterator[redis.Redis]:
    client = clean_redis.client(STORE_DB)
    yield client
    client.close()


def run(coro: Any) -> Any:
    """Run one coroutine to completion (tests stay plain functions; no async plugin needed)."""
    return asyncio.run(coro)
