"""The store's listpack tuning: raised where lower, never lowered, off when asked."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import redis.asyncio as aioredis

from event_collector.store import LISTPACK_VALUE_OPTIONS, raise_listpack_limits
from tests.services import RedisServer


@pytest.fixture
def listpack_limits_at_64(redis_server: RedisServer) -> Iterator[RedisServer]:
    client = redis_server.client()
    saved = {option: client.config_get(option)[option] for option in LISTPACK_VALUE_OPTIONS}
    for option in LISTPACK_VALUE_OPTIONS:
        client.config_set(option, 64)
    yield redis_server
    for option, value in saved.items():  # the session's server is shared: put it back
        client.config_set(option, value)


def raise_to(server: RedisServer, wanted: int) -> list[tuple[str, int]]:
    async def run() -> list[tuple[str, int]]:
        client = aioredis.Redis.from_url(server.url())
        try:
            return await raise_listpack_limits(client, wanted)
        finally:
            await client.aclose()

    return asyncio.run(run())


def test_lower_limits_are_raised_and_reported(listpack_limits_at_64: RedisServer) -> None:
    changed = raise_to(listpack_limits_at_64, 256)

    assert changed == [(option, 64) for option in LISTPACK_VALUE_OPTIONS]
    client = listpack_limits_at_64.client()
    assert all(client.config_get(o)[o] == "256" for o in LISTPACK_VALUE_OPTIONS)


def test_limits_already_high_enough_are_left_alone(listpack_limits_at_64: RedisServer) -> None:
    assert raise_to(listpack_limits_at_64, 32) == []
    client = listpack_limits_at_64.client()
    assert all(client.config_get(o)[o] == "64" for o in LISTPACK_VALUE_OPTIONS)


def test_zero_leaves_the_server_alone(listpack_limits_at_64: RedisServer) -> None:
    assert raise_to(listpack_limits_at_64, 0) == []
    client = listpack_limits_at_64.client()
    assert all(client.config_get(o)[o] == "64" for o in LISTPACK_VALUE_OPTIONS)
