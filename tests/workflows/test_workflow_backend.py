"""The workflow publisher's result backend: Celery's Redis backend, publishing only (pure code:
building the backend opens no connection)."""

from __future__ import annotations

from producer_api.catalog import load_catalog
from producer_api.config import PACKAGED_CATALOG
from producer_api.workflow_canvas import PublishOnlyRedisBackend, workflow_app

CATALOG = load_catalog(PACKAGED_CATALOG)
BROKER = "redis://127.0.0.1:1/0"


def test_a_redis_result_backend_is_the_publish_only_one() -> None:
    backend = workflow_app(BROKER, "redis://127.0.0.1:1/0", CATALOG, 1.0, 1).backend
    assert isinstance(backend, PublishOnlyRedisBackend)
    assert (backend.connparams["host"], backend.connparams["port"]) == ("127.0.0.1", 1)


def test_a_redis_socket_result_backend_keeps_its_socket_path() -> None:
    backend = workflow_app(BROKER, "redis+socket:///run/redis.sock", CATALOG, 1.0, 1).backend
    assert isinstance(backend, PublishOnlyRedisBackend)
    assert backend.connparams["path"] == "/run/redis.sock"
