"""A real producer API process per test module, on its own redis-server, with one token per role.

The module's API talks to a private Redis (db 0 broker, db 1 store) so tests may stop it or
flush the store without disturbing other areas' fixtures; ``store`` empties db 1 per test.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
import requests

from event_collector.events import Event
from event_collector.keys import Keys
from event_collector.store import EventStore
from producer_api.auth import TokenStore
from tests.services import RedisServer, ServiceProcess, taskpulse_env
from tests.services import start_api as start_api_process

ROLES = ("viewer", "operator", "admin")
STORE_DB = 1


@dataclass
class ApiClient:
    base_url: str
    tokens: dict[str, str]

    def request(self, method: str, path: str, role: str | None = "admin",
                token: str | None = None, **kwargs: Any) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}))
        secret = token if token is not None else self.tokens.get(role or "")
        if secret:
            headers["Authorization"] = f"Bearer {secret}"
        kwargs.setdefault("timeout", 10)
        url = path if path.startswith("http") else self.base_url + path
        return requests.request(method, url, headers=headers, **kwargs)

    def get(self, path: str, role: str | None = "admin", **kwargs: Any) -> requests.Response:
        return self.request("GET", path, role, **kwargs)

    def post(self, path: str, role: str | None = "admin", **kwargs: Any) -> requests.Response:
        return self.request("POST", path, role, **kwargs)


def start_api(redis_server: RedisServer, workdir: Path, tokens_file: Path,
              **extra_env: str) -> tuple[ServiceProcess, str]:
    env = taskpulse_env(
        redis_server, workdir, TASKPULSE_API_TOKENS_FILE=str(tokens_file), **extra_env
    )
    return start_api_process(env, workdir / "api.log")


def make_tokens(path: Path) -> dict[str, str]:
    store = TokenStore(path)
    return {role: store.create(f"test-{role}", role)[1] for role in ROLES}


@pytest.fixture(scope="module")
def api_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("api-redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def api(api_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiClient]:
    workdir = tmp_path_factory.mktemp("api")
    tokens_file = workdir / "tokens.json"
    tokens = make_tokens(tokens_file)
    proc, base = start_api(api_redis, workdir, tokens_file)
    yield ApiClient(base, tokens)
    proc.stop()


@pytest.fixture
def store(api_redis: RedisServer) -> Iterator[redis.Redis]:
    """The monitoring store (db 1), emptied; the broker (db 0) keeps its bindings."""
    client = api_redis.client(STORE_DB)
    client.flushdb()
    yield client
    client.close()



def apply_events(redis_server: RedisServer, events: Sequence[Event], prefix: str = "tp:") -> None:
    """Write events through the collector's real Lua, as the collector would."""

    async def run() -> None:
        client = aioredis.Redis.from_url(redis_server.url(STORE_DB))
        try:
            await EventStore(client, Keys(prefix=prefix)).apply(list(events))
        finally:
            await client.aclose()

    asyncio.run(run())
