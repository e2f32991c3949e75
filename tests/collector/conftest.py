"""Fixtures for the collector's tests: sync and async clients on the session's real redis-server,
a store snapshot to compare projections, and metric helpers."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from event_collector.keys import Keys
from event_collector.store import EventStore
from tests.cluster import ClusterStore
from tests.indexes import index_entries_sync

# Re-exported: the collector tests import them from here.
from tests.services import RedisServer, collector_env, start_collector  # noqa: F401

STORE_DB = 1  # as in tests.services.taskpulse_env: broker and results on 0, store on 1


def snapshot(client: redis.Redis, keys: Keys, url: str) -> dict[str, Any]:
    """Every projection key of the prefix with its content, comparable with ``==`` (``url``:
    the store ``client`` talks to, for the segmented indexes).

    The stream is compared as a sorted list of its payloads (entry ids are arrival times);
    worker dedup markers carry no state; a segmented index as its entries, not its segments.
    """
    out: dict[str, Any] = {}
    for raw_key in client.scan_iter(match=keys.all_pattern, count=1000):
        key = raw_key.decode()
        kind = client.type(key).decode()
        if key.startswith(keys.index_segment_prefix):
            continue  # segments, cards, summaries: where a split fell depends on batching
        if keys.is_segmented(key):
            out[key] = sorted(index_entries_sync(url, keys, key).items())
        elif kind == "hash":
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


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterStore]:
    """A 3+3 Redis Cluster per test module that asks for one (tests/cluster.py)."""
    store = ClusterStore(tmp_path_factory.mktemp("cluster"))
    try:
        store.start()
        yield store
    finally:
        store.stop()


@pytest.fixture
def store_client(clean_redis: RedisServer) -> Iterator[redis.Redis]:
    client = clean_redis.client(STORE_DB)
    yield client
    client.close()


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


def run(coro: Any) -> Any:
    """Run one coroutine to completion (tests stay plain functions; no async plugin needed)."""
    return asyncio.run(coro)




def http_get(env: dict[str, str], path: str) -> tuple[int, str]:
    url = f"http://127.0.0.1:{env['TASKPULSE_METRICS_PORT']}{path}"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def gauge(registry: CollectorRegistry, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples of ``name`` as a scrape of ``registry`` shows them, by sorted label pairs."""
    text = generate_latest(registry).decode()
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


def metric_sum(metrics_text: str, metric: str, **labels: str) -> float:
    """Sum of the samples of ``metric`` whose labels include ``labels``."""
    total = 0.0
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == metric and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total
