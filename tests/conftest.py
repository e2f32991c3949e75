"""Session-wide real services. Area-specific fixtures live in each test folder's conftest."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import RedisServer, taskpulse_env


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def clean_redis(redis_server: RedisServer) -> RedisServer:
    """The session's redis-server, emptied before the test (broker, results and store)."""
    redis_server.client().flushall()
    return redis_server


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def service_env(clean_redis: RedisServer, data_dir: Path) -> dict[str, str]:
    """Environment for worker / collector / API subprocesses pointed at the test's Redis."""
    return taskpulse_env(clean_redis, data_dir)
