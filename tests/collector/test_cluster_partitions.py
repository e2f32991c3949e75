"""A partitioned store on a real Redis Cluster (3 primaries + 3 replicas): every script call in
one slot, the partitions spread over the primaries, reads answering as one Redis does, a
one-partition store moved there with ``repartition`` + ``redis-cli --cluster import``, two
collector processes losing nothing when one is SIGKILLed, and the live read over every
partition's stream."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from event_collector.connection import open_async, open_sync
from event_collector.keys import Keys
from event_collector.read import EventReader
from event_collector.repartition import Repartitioner
from event_collector.store import EventStore
from tests.cluster import ClusterStore
from tests.collector.conftest import STORE_DB, RedisServer, run
from tests.collector.test_partition_leases import kill_one_mid_run, start_two
from tests.collector.test_partitions import answers, workload
from tests.events import sent_and_succeeded

pytestmark = pytest.mark.slow


async def _on_cluster(url: str, keys: Keys, events: list, fold: bool = True) -> dict[str, Any]:
    client = open_async(url)
    try:
        return await answers(client, keys, events, fold=fold)
    finally:
        await client.aclose()


async def _on_one_redis(url: str, keys: Keys, events: list) -> dict[str, Any]:
    client = Redis.from_url(url)
    try:
        return await answers(client, keys, events)
    finally:
        await client.aclose()


@pytest.mark.parametrize("partitions", [1, 8])
def test_partitions_on_a_cluster_answer_as_one_redis_does(
    cluster: ClusterStore, clean_redis: RedisServer, partitions: int
) -> None:
    """Every script call (batches mixing partitions and worker events) stays in one slot, so
    none is refused; every query answers as on one Redis with one partition."""
    events = workload(seed=21)
    keys = Keys.layout(f"c{partitions}:", partitions=partitions, cluster=True)
    on_cluster = run(_on_cluster(cluster.url, keys, events))
    on_one = run(_on_one_redis(clean_redis.url(STORE_DB), Keys.layout("tp:"), events))
    for key in on_one:
        assert on_cluster[key] == on_one[key], key
    owners = {cluster.owner_of(k.events).port for k in keys.each_partition()}
    if partitions > 1:
        assert len(owners) >= 2  # the partitions spread over the primaries


def test_a_one_partition_store_moves_to_the_cluster(
    cluster: ClusterStore, tmp_path: Path
) -> None:
    events = workload(seed=23)
    (tmp_path / "single").mkdir()
    single = RedisServer(tmp_path / "single")
    single.start()
    try:
        async def fold_and_repartition() -> dict[str, Any]:
            client = Redis.from_url(single.url(0))
            try:
                before = await answers(client, Keys.layout("mv:"), events)
                await Repartitioner(client, Keys.layout("mv:", partitions=8)).run()
                return before
            finally:
                await client.aclose()

        before = run(fold_and_repartition())
        node = cluster.alive()[0]
        subprocess.run(
            [shutil.which("redis-cli") or "redis-cli", "--cluster", "import",
             f"127.0.0.1:{node.port}", "--cluster-from", f"127.0.0.1:{single.port}",
             "--cluster-copy"],
            check=True, capture_output=True, timeout=120,
        )
    finally:
        single.stop()
    after = run(_on_cluster(cluster.url, Keys.layout("mv:", partitions=8, cluster=True), events,
                            fold=False))
    for key in before:
        assert after[key] == before[key], key


def test_two_collectors_on_a_cluster_lose_nothing_when_one_is_killed(
    cluster: ClusterStore, clean_redis: RedisServer, service_env: dict[str, str], tmp_path: Path
) -> None:
    """The SIGKILL scenario of test_partition_leases, the store being the cluster."""
    envs, procs = start_two(service_env, tmp_path, TASKPULSE_REDIS_URL=cluster.url,
                            TASKPULSE_KEY_PREFIX="tp:")
    client = open_sync(cluster.url)
    try:
        kill_one_mid_run(clean_redis.url(0), client, envs, procs)
    finally:
        for proc in procs:
            proc.stop()
        client.close()


def test_the_live_read_follows_every_partition_stream_on_a_cluster(cluster: ClusterStore) -> None:
    """One XREAD may name one slot's streams only: on a cluster each stream is read on its own."""
    keys = Keys.layout("live:", partitions=8, cluster=True)
    events = [e for i in range(16) for e in sent_and_succeeded(f"live-{i}", 1_700_000_000.0 + i)]

    async def follow() -> list[str]:
        client = open_async(cluster.url)
        try:
            reader = EventReader(client, keys)
            heads = await reader.stream_heads()
            await EventStore(client, keys).apply(events)
            seen: list[str] = []
            for _ in range(10):
                page, heads = await reader.read_live(heads, count=500, block_ms=100)
                seen += [event.id for _, event in page.events]
            return seen
        finally:
            await client.aclose()

    seen = run(follow())
    assert sorted(seen) == sorted(e.id for e in events)  # each once
