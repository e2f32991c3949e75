"""Fixtures for the collector's parts: async clients on the test's real redis-server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from event_collector.keys import Keys
from event_collector.store import EventStore
from tests.services import RedisServer

STORE_DB = 1  # as in tests.services.taskpulse_env: broker and results on 0, store on 1


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def keys() -> Keys:
    return Keys()


@pytest.fixture
async def store_redis(clean_redis: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(clean_redis.url(STORE_DB))
    yield client
    await client.aclose()


@pytest.fixture
async def event_store(store_redis: Redis, keys: Keys) -> EventStore:
    return EventStore(store_redis, keys)
