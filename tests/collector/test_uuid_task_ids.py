"""Celery's own task ids (UUIDs) are indexed in compact form (task_ids.py); every reader and
writer of the indexes still sees and takes the task id itself (real Redis)."""

from __future__ import annotations

import time
import uuid

import pytest
from redis.asyncio import Redis

from event_collector.config import Retention
from event_collector.keys import Keys
from event_collector.lifecycle import ForgetOutcome, TaskLifecycle
from event_collector.read import EventReader, TaskQuery
from event_collector.store import EventStore
from event_collector.sweep import RetentionSweeper
from event_collector.workflows import WorkflowReader
from tests.events import sent_and_succeeded, task_event
from tests.indexes import index_entries

pytestmark = pytest.mark.anyio


def task_ids(n: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(n)]


async def indexed_members(redis: Redis, keys: Keys) -> list[bytes]:
    return [m for key in keys.state_indexes for m in await index_entries(redis, keys, key)]


async def test_a_listing_pages_through_uuid_tasks_with_its_cursor(
    event_store: EventStore, store_redis: Redis, keys: Keys,
):
    ids = task_ids(7)
    now = time.time()
    for i, task_id in enumerate(ids):
        await event_store.apply(sent_and_succeeded(task_id, now + (i // 2)))  # ties on purpose
    reader, seen, cursor = EventReader(store_redis, keys), [], None
    while True:
        page = await reader.list_tasks(TaskQuery(name="demo.test_task", limit=3, cursor=cursor))
        seen += [item.id for item in page.items]
        if not (cursor := page.next_cursor):
            break
    assert sorted(seen) == sorted(ids)
    assert len(seen) == len(ids)


async def test_children_and_workflow_trees_give_uuid_task_ids(
    event_store: EventStore, store_redis: Redis, keys: Keys,
):
    root, child = task_ids(2)
    now = time.time()
    await event_store.apply([
        task_event("sent", root, now, name="demo.x"),
        task_event("sent", child, now + 1, name="demo.x", parent_id=root, root_id=root),
    ])
    assert await EventReader(store_redis, keys).children(root) == [child]
    tree = await WorkflowReader(store_redis, keys).tree(child)
    assert tree is not None
    assert (tree.root.id, [c.id for c in tree.root.children]) == (root, [child])


async def test_forgetting_a_uuid_task_removes_its_index_entries(
    event_store: EventStore, store_redis: Redis, keys: Keys,
):
    (task_id,) = task_ids(1)
    await event_store.apply(sent_and_succeeded(task_id, time.time()))
    result = await TaskLifecycle(store_redis, keys).forget(task_id, audit=None)
    assert result.outcome is ForgetOutcome.FORGOTTEN
    assert await indexed_members(store_redis, keys) == []
    assert await index_entries(store_redis, keys, keys.index_name("demo.test_task")) == {}


async def test_the_sweep_unindexes_an_expired_uuid_task(store_redis: Redis, keys: Keys):
    (task_id,) = task_ids(1)
    store = EventStore(store_redis, keys, Retention(task_ttl_success_seconds=1))
    await store.apply(sent_and_succeeded(task_id, time.time()))
    await store_redis.delete(keys.task(task_id))  # as its TTL would
    sweeper = RetentionSweeper(store_redis, keys, index_retention_seconds=86400.0,
                               stream_max_age_seconds=86400.0, queues=["default"])
    report = await sweeper.run_once()
    assert report.expired_tasks_unindexed == 1
    assert await indexed_members(store_redis, keys) == []
