"""The API over an 8-partition store (TASKPULSE_PARTITIONS=8): lookups, listings, stats, operator
actions with their audit events, and the live feed over every partition's stream."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Sequence

import pytest
import redis.asyncio as aioredis

from event_collector.events import Event
from event_collector.keys import Keys
from event_collector.store import EventStore
from event_collector.stored import decode_stored
from event_collector.task_ids import index_member
from tests.api.conftest import STORE_DB, ApiClient, make_tokens, start_api
from tests.api.test_sse import Sse, lifecycle
from tests.indexes import index_entries_sync
from tests.services import RedisServer

KEYS = Keys.layout("tp:", partitions=8)
NOW = time.time()
IDS = [f"part-{i}" for i in range(40)]


@pytest.fixture(scope="module")
def api8(api_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiClient]:
    workdir = tmp_path_factory.mktemp("api8")
    tokens_file = workdir / "tokens.json"
    tokens = make_tokens(tokens_file)
    proc, base = start_api(api_redis, workdir, tokens_file, TASKPULSE_PARTITIONS="8")
    yield ApiClient(base, tokens)
    proc.stop()


def apply8(server: RedisServer, events: Sequence[Event]) -> None:
    async def run() -> None:
        client = aioredis.Redis.from_url(server.url(STORE_DB))
        try:
            await EventStore(client, KEYS).apply(list(events))
        finally:
            await client.aclose()

    asyncio.run(run())


@pytest.fixture
def seeded(api_redis: RedisServer, store) -> list[str]:
    apply8(api_redis, [e for i, task_id in enumerate(IDS)
                       for e in lifecycle(task_id, NOW + i)])
    return IDS


def test_ids_spread_over_the_partitions() -> None:
    assert len({KEYS.partition_of(i) for i in IDS}) == 8


def test_lookups_listings_counts_and_stats_cover_every_partition(
    api8: ApiClient, seeded: list[str]
) -> None:
    for task_id in seeded[:10]:
        r = api8.get(f"/api/v1/tasks/{task_id}")
        assert r.status_code == 200, r.text
        assert r.json()["state"] == "SUCCESS"
    listed, cursor = [], None
    while True:
        page = api8.get("/api/v1/tasks", params={"state": "SUCCESS", "limit": 7,
                                                  **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text
        listed += [t["id"] for t in page.json()["items"]]
        cursor = page.json().get("next_cursor")
        if not page.json()["items"] or not cursor:
            break
    assert listed == list(reversed(seeded))  # newest first, across partitions, each once
    assert api8.get("/api/v1/tasks/count", params={"name": "demo.test_task"}).json()[
        "count"] == 40
    stats = api8.get("/api/v1/stats").json()
    assert stats["tasks_stored"] == 40
    assert stats["events_total"]["SUCCESS"] == 40


def test_operator_actions_write_to_the_tasks_partition(
    api8: ApiClient, api_redis: RedisServer, seeded: list[str], store
) -> None:
    task_id = seeded[3]
    mine = KEYS.of_task(task_id)
    r = api8.request("PATCH", f"/api/v1/tasks/{task_id}", json={"note": "checked"})
    assert r.status_code == 200, r.text
    assert api8.request("DELETE", f"/api/v1/tasks/{seeded[4]}").status_code == 200
    assert api8.get(f"/api/v1/tasks/{seeded[4]}").status_code == 404
    assert store.hget(KEYS.task(task_id), "note") == b"checked"
    audits = [decode_stored(f[b"e"]) for _, f in store.xrange(mine.events)]
    assert ("annotate", task_id) in [(e.action, e.uuid) for e in audits]
    forgotten = KEYS.of_task(seeded[4])
    assert not store.exists(KEYS.task(seeded[4]))
    url = api_redis.url(STORE_DB)
    assert all(index_member(seeded[4]) not in index_entries_sync(url, KEYS, key)
               for key in forgotten.state_indexes)


def test_the_live_feed_follows_every_partitions_stream_and_resumes(
    api8: ApiClient, api_redis: RedisServer, store
) -> None:
    sse = Sse(api8, {"state": "SUCCESS"})
    try:
        apply8(api_redis, [e for i, task_id in enumerate(IDS[:16])
                           for e in lifecycle(task_id, NOW + i)])
        got = sse.take(16)
    finally:
        sse.close()
    assert sorted(m["data"]["uuid"] for m in got) == sorted(IDS[:16])
    ids = [m["id"] for m in got]  # in id order within a batch, not across (keys.py: streams)
    # Resuming: ids of different partitions' streams are not in write order, so the feed goes
    # on from the start of the last seen id's millisecond: some events again, none lost.
    resumed = Sse(api8, {"state": "SUCCESS"}, last_event_id=ids[7])
    missing, again = {m["data"]["uuid"] for m in got[8:]}, 0
    try:
        for message in resumed.messages():
            missing.discard(message["data"]["uuid"])
            again += 1
            if not missing:
                break
    finally:
        resumed.close()
    assert not missing
    assert again <= 16
