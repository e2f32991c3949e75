"""Store-level pieces on a real redis-server: ``lifecycle.lua`` against projections written by
the collector's own Lua, and the schedule store on an empty Redis."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis

from event_collector.events import AUDIT_EVENT, READY_STATES, STATE_PRECEDENCE, Event
from event_collector.keys import Keys
from event_collector.lifecycle import Annotation, ForgetOutcome, TaskLifecycle
from event_collector.normalize import event_id
from event_collector.store import EventStore
from event_collector.workflows import WORKFLOW_TTL_SECONDS, WorkflowReader, record_chord_bodies
from producer_api.catalog import load_catalog
from producer_api.config import PACKAGED_CATALOG
from producer_api.errors import NotFound
from producer_api.schedule_store import ScheduleStore, schedule_app
from tests.indexes import index_entries
from tests.services import RedisServer

KEYS = Keys()


def ev(kind: str, task_id: str, ts: float, **fields: Any) -> Event:
    type_ = f"task-{kind}"
    return Event(id=event_id(type_, task_id, "w1@h", 1, 0, ts), type=type_, timestamp=ts,
                 hostname="w1@h", pid=1, uuid=task_id, **fields)  # fmt: skip


def finished(task_id: str, ts: float, parent: str = "", root: str = "") -> list[Event]:
    ident = {"parent_id": parent, "root_id": root or task_id}
    return [
        ev("sent", task_id, ts, name="demo.test_task", queue="default", **ident),
        ev("received", task_id, ts + 0.1, name="demo.test_task", **ident),
        ev("started", task_id, ts + 0.2),
        ev("succeeded", task_id, ts + 0.3, runtime=0.1),
    ]


def audit(task_id: str, action: str) -> Event:
    return Event(id=f"audit-{action}-{task_id}", type=AUDIT_EVENT, timestamp=1.0, uuid=task_id,
                 actor="test", action=action)  # fmt: skip


async def _forget_child_of_a_chain(url: str) -> dict[str, Any]:
    client = aioredis.Redis.from_url(url)
    try:
        store, life = EventStore(client, KEYS), TaskLifecycle(client, KEYS)
        await store.apply([*finished("a", 100.0), *finished("b", 101.0, "a", "a"),
                           *finished("c", 102.0, "b", "a")])  # fmt: skip
        result = await life.forget("b", audit("b", "forget"))
        members = [m.decode() for m in await client.zrange(KEYS.index_root("a"), 0, -1)]
        tree = await WorkflowReader(client, KEYS).tree("a")
        return {
            "result": result,
            "members": members,
            "children_of_a": await client.zrange(KEYS.index_children("a"), 0, -1),
            "leftover": await client.exists(KEYS.task("b")),
            "indexed": [k.decode() for k in await client.keys("tp:idx:*")
                        if await client.zscore(k, "b") is not None],
            "tree_children": [n.id for n in tree.root.children] if tree else None,
            "last_event": (await client.xrevrange(KEYS.events, count=1))[0][1][b"e"],
        }  # fmt: skip
    finally:
        await client.aclose()


def test_forget_removes_a_task_from_every_index_and_keeps_the_rest_of_its_workflow(
    clean_redis: RedisServer,
) -> None:
    out = asyncio.run(_forget_child_of_a_chain(clean_redis.url(1)))
    assert out["result"].outcome is ForgetOutcome.FORGOTTEN
    assert out["leftover"] == 0
    assert out["indexed"] == []
    assert out["members"] == ["c"]
    assert out["children_of_a"] == []
    # "c" lost its parent: the tree still shows it, under the root.
    assert out["tree_children"] == ["c"]
    assert b'"action":"forget"' in out["last_event"]


async def _rebuild_after_forget(url: str) -> tuple[int, int, list[bytes]]:
    client = aioredis.Redis.from_url(url)
    try:
        store = EventStore(client, KEYS)
        await store.apply([*finished("gone", 100.0), *finished("kept", 101.0)])
        await TaskLifecycle(client, KEYS).forget("gone", audit("gone", "forget"))
        await store.rebuild()
        return (
            await client.exists(KEYS.task("gone")),
            await client.exists(KEYS.task("kept")),
            [m for key in KEYS.state_indexes for m in await index_entries(client, KEYS, key)],
        )
    finally:
        await client.aclose()


def test_rebuild_keeps_a_forgotten_task_forgotten(clean_redis: RedisServer) -> None:
    gone, kept, indexed = asyncio.run(_rebuild_after_forget(clean_redis.url(1)))
    assert gone == 0
    assert kept == 1
    assert indexed == ["kept"]


async def _chord_tree_after_rebuild(url: str) -> tuple[list[tuple[str, str | None]], int]:
    client = aioredis.Redis.from_url(url)
    try:
        store = EventStore(client, KEYS)
        await record_chord_bodies(client, KEYS, "r", {"cb": "h1"})
        await store.apply([*finished("h1", 100.0, root="r"), *finished("h2", 100.0, root="r"),
                           *finished("cb", 101.0, parent="h2", root="r")])  # fmt: skip
        await store.rebuild()
        tree = await WorkflowReader(client, KEYS).tree("r")
        assert tree is not None
        return [(n.id, n.role) for n in tree.root.children], await client.ttl(KEYS.workflow("r"))
    finally:
        await client.aclose()


def test_recorded_chord_bodies_shape_the_tree_and_survive_a_rebuild(
    clean_redis: RedisServer,
) -> None:
    children, ttl = asyncio.run(_chord_tree_after_rebuild(clean_redis.url(1)))
    assert children == [("h1", None), ("h2", None), ("cb", "chord_body")]
    assert 0 < ttl <= WORKFLOW_TTL_SECONDS


async def _forget_unfinished(url: str) -> tuple[Any, int]:
    client = aioredis.Redis.from_url(url)
    try:
        await EventStore(client, KEYS).apply(finished("r", 100.0)[:3])  # STARTED, not done
        result = await TaskLifecycle(client, KEYS).forget("r", audit("r", "forget"))
        return result, await client.exists(KEYS.task("r"))
    finally:
        await client.aclose()


def test_an_unfinished_task_is_not_forgotten(clean_redis: RedisServer) -> None:
    result, exists = asyncio.run(_forget_unfinished(clean_redis.url(1)))
    assert result.outcome is ForgetOutcome.UNFINISHED
    assert result.state == "STARTED"
    assert exists == 1


async def _forget_in_every_state(url: str) -> dict[str, ForgetOutcome]:
    client = aioredis.Redis.from_url(url)
    try:
        life = TaskLifecycle(client, KEYS)
        for state in STATE_PRECEDENCE:
            await client.hset(KEYS.task(f"t-{state}"), mapping={"state": state})
        return {s: (await life.forget(f"t-{s}", None)).outcome for s in STATE_PRECEDENCE}
    finally:
        await client.aclose()


def test_exactly_the_ready_states_count_as_finished_for_forget(clean_redis: RedisServer) -> None:
    outcomes = asyncio.run(_forget_in_every_state(clean_redis.url(1)))
    forgotten = {s for s, outcome in outcomes.items() if outcome is ForgetOutcome.FORGOTTEN}
    assert forgotten == READY_STATES
    assert set(outcomes.values()) == {ForgetOutcome.FORGOTTEN, ForgetOutcome.UNFINISHED}


async def _annotate(url: str) -> tuple[bool, dict[bytes, bytes], bool]:
    client = aioredis.Redis.from_url(url)
    try:
        await EventStore(client, KEYS).apply(finished("n", 100.0))
        life = TaskLifecycle(client, KEYS)
        ok = await life.annotate("n", Annotation(note="hi", labels={"k": "v"}), audit("n", "a"))
        missing = await life.annotate("nope", Annotation(note="x"), audit("nope", "a"))
        return ok, await client.hgetall(KEYS.task("n")), missing
    finally:
        await client.aclose()


def test_annotate_writes_note_and_labels_without_touching_state(clean_redis: RedisServer) -> None:
    ok, record, missing = asyncio.run(_annotate(clean_redis.url(1)))
    assert ok
    assert record[b"note"] == b"hi"
    assert record[b"labels"] == b'{"k":"v"}'
    assert record[b"state"] == b"SUCCESS"
    assert missing is False


def test_a_fresh_schedule_store_reads_before_anything_was_written(
    clean_redis: RedisServer,
) -> None:
    app = schedule_app(clean_redis.url(1), Keys(), "Asia/Shanghai", 2.0)
    store = ScheduleStore(app, load_catalog(PACKAGED_CATALOG))
    try:
        assert asyncio.run(store.list()) == []
        with pytest.raises(NotFound):
            asyncio.run(store.get("nothing-yet"))
    finally:
        store.close()
