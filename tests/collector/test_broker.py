"""One broker table (``event_collector.broker``): kombu's own aliases, the same kind in every
role, and an unsupported broker refused at start-up by every role."""

from __future__ import annotations

import pytest
from celery.app.backends import BACKEND_ALIASES
from kombu.transport import TRANSPORT_ALIASES

from event_collector.broker import (
    BROKER_KINDS,
    REDIS_BACKEND_SCHEMES,
    broker_kind,
    redis_backend_url,
    redis_py_opens,
)
from event_collector.config import load_settings as collector_settings
from event_collector.environment import SettingsError
from producer_api.catalog import load_catalog
from producer_api.config import PACKAGED_CATALOG
from producer_api.config import load_settings as api_settings
from producer_api.publisher import producer_app
from worker.config import load_settings as worker_settings

_TRANSPORT_KIND = {
    "kombu.transport.redis": "redis",
    "kombu.transport.pyamqp": "amqp",
    "kombu.transport.librabbitmq": "amqp",
}


def _kombu_kind(alias: str) -> str | None:
    module = TRANSPORT_ALIASES[alias].partition(":")[0]
    return _TRANSPORT_KIND.get(module)


def test_the_scheme_table_is_kombu_s_redis_and_amqp_aliases() -> None:
    kombu = {alias: kind for alias in TRANSPORT_ALIASES if (kind := _kombu_kind(alias))}
    assert kombu == BROKER_KINDS


def test_the_redis_backend_schemes_are_celery_s_aliases_of_its_redis_backend() -> None:
    redis_backend = "celery.backends.redis:RedisBackend"
    assert {s for s, cls in BACKEND_ALIASES.items() if cls == redis_backend} == set(
        REDIS_BACKEND_SCHEMES)


@pytest.mark.parametrize(
    ("setting", "url"),
    [
        ("redis://h:6379/0", "redis://h:6379/0"),
        ("rediss://h:6380/0", "rediss://h:6380/0"),
        ("redis+socket:///run/redis.sock", "socket:///run/redis.sock"),
        ("sentinel://h:26379", None),
        ("db+sqlite:///results.db", None),
    ],
)
def test_the_url_celery_gives_its_redis_backend(setting: str, url: str | None) -> None:
    assert redis_backend_url(setting) == url


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("redis://127.0.0.1:6379/0", "redis"),
        ("rediss://127.0.0.1:6380/0", "redis"),
        ("sentinel://127.0.0.1:26379;sentinel://127.0.0.1:26380", "redis"),
        ("redis+socket:///run/redis.sock", "redis"),
        ("amqp://guest:guest@127.0.0.1:5672//", "amqp"),
        ("amqps://127.0.0.1:5671//", "amqp"),
        ("pyamqp://127.0.0.1//", "amqp"),
        ("librabbitmq://127.0.0.1//", "amqp"),
    ],
)
def test_every_role_takes_a_broker_url_for_the_same_kind(url: str, kind: str) -> None:
    env = {"TASKPULSE_BROKER_URL": url}
    app = producer_app(url, load_catalog(PACKAGED_CATALOG), timeout=1.0, pool_size=1)
    try:
        api_declares_priority_queues = app.conf.task_queues[0].queue_arguments is not None
    finally:
        app.close()

    assert broker_kind(url) == kind
    assert worker_settings(env).broker_kind == kind
    assert collector_settings(env).is_rabbitmq == (kind == "amqp")
    assert api_settings(env).broker_url == url
    assert api_declares_priority_queues == (kind == "amqp")


@pytest.mark.parametrize("load", [worker_settings, collector_settings, api_settings])
@pytest.mark.parametrize("url", ["sqs://", "memory://", "localhost:6379"])
def test_an_unsupported_broker_is_refused_at_start_up_naming_the_variable(load, url) -> None:
    with pytest.raises(SettingsError, match="TASKPULSE_BROKER_URL"):
        load({"TASKPULSE_BROKER_URL": url})


def test_only_urls_redis_py_opens_itself_are_read_directly() -> None:
    assert redis_py_opens("redis://h/0")
    assert redis_py_opens("rediss://h/0")
    assert redis_py_opens("unix:///run/redis.sock")
    assert not redis_py_opens("sentinel://h:26379")
    assert not redis_py_opens("redis+socket:///run/redis.sock")
    assert not redis_py_opens("amqp://h//")
