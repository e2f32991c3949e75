"""The store's write side, rebuild, sweep and tuning on a real Redis Cluster (3 primaries + 3
replicas): multi-key Lua and transactions work because the prefix's hash tag puts every key in
one slot, and what scans (rebuild, sweep) walks every primary."""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator

import pytest

from event_collector.config import Retention
from event_collector.connection import AsyncStore, open_async, open_sync, store_keys
from event_collector.keys import Keys
from event_collector.read import EventReader
from event_collector.store import EventStore, raise_listpack_limits
from event_collector.sweep import RetentionSweeper
from tests.cluster import ClusterStore
from tests.collector.conftest import snapshot
from tests.events import sent_and_succeeded, task_event, worker_event
from tests.indexes import index_entries

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
_prefixes = itertools.count()


@pytest.fixture
def keys() -> Keys:
    """A prefix of its own per test (a hash tag, as a cluster needs), so tests share the
    cluster without cleaning it."""
    return Keys(f"{{t{next(_prefixes)}}}:")


@pytest.fixture
async def client(cluster: ClusterStore) -> AsyncIterator[AsyncStore]:
    redis = open_async(cluster.url)
    yield redis
    await redis.aclose()


async def test_batches_fold_into_projections_the_reader_sees(client: AsyncStore, keys: Keys):
    store = EventStore(client, keys)
    now = time.time()
    result = await store.apply([*sent_and_succeeded("a", now - 5),
                                *sent_and_succeeded("b", now - 4, queue="reports"),
                                worker_event("heartbeat", "w1@box", now)])
    assert len(result.applied) == 9
    again = await store.apply(sent_and_succeeded("a", now - 5))
    assert again.duplicates == 4

    reader = EventReader(client, keys)
    record = await reader.get_task("a")
    assert record is not None
    assert record.state == "SUCCESS"
    stats = await reader.stats(now=now)
    assert stats.by_state["SUCCESS"] == 2
    assert stats.events_total["SUCCESS"] == 2


async def test_rebuild_on_a_cluster_refolds_the_same_projections(
    cluster: ClusterStore, client: AsyncStore, keys: Keys
):
    store = EventStore(client, keys)
    now = time.time()
    for i in range(20):
        await store.apply(sent_and_succeeded(f"t{i}", now - 100 + i, name=f"n{i % 3}"))
    await store.apply([task_event("sent", "pending", now, name="n0", queue="default")])
    sync = open_sync(cluster.url)
    try:
        before = snapshot(sync, keys, cluster.url)
        seen, applied = await store.rebuild()
        after = snapshot(sync, keys, cluster.url)
    finally:
        sync.close()
    assert (seen, applied) == (81, 81)
    assert after == before
    assert keys.task("t0") in after


async def test_the_sweep_unindexes_expired_tasks_on_a_cluster(client: AsyncStore, keys: Keys):
    store = EventStore(client, keys, Retention(task_ttl_success_seconds=1))
    now = time.time()
    await store.apply(sent_and_succeeded("short-lived", now - 60))
    await client.delete(keys.task("short-lived"))  # as its TTL would
    sweeper = RetentionSweeper(client, keys, index_retention_seconds=86400,
                               stream_max_age_seconds=86400, queues=["default"])
    report = await sweeper.run_once()
    assert report.expired_tasks_unindexed == 1
    assert await index_entries(client, keys, keys.index_state("SUCCESS")) == {}


async def test_listpack_limits_are_raised_on_every_node(cluster: ClusterStore,
                                                        client: AsyncStore):
    await raise_listpack_limits(client, 300)
    for node in cluster.nodes:
        value = node.client().config_get("hash-max-listpack-value")["hash-max-listpack-value"]
        assert int(value) >= 300, node.port


def test_a_cluster_url_defaults_to_a_hash_tagged_prefix(cluster: ClusterStore) -> None:
    assert store_keys(cluster.url, "").prefix == "{tp}:"
