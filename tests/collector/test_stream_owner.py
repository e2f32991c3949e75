"""One owner of the stream and of key shapes: every writer appends through ``stream.py`` with the
same trim, and the Lua scripts write only keys ``keys.py`` names (a real redis-server)."""

from __future__ import annotations

import redis
from redis.asyncio import Redis

from event_collector.config import Retention
from event_collector.keys import Keys
from event_collector.lifecycle import Annotation, TaskLifecycle
from event_collector.store import EventStore
from event_collector.stored import decode_stored
from event_collector.stream import EventStream
from producer_api.audit import append_audit, audit_event
from tests.collector.conftest import STORE_DB, RedisServer, run
from tests.events import sent_and_succeeded, task_event, worker_event

# XADD MAXLEN ~ trims whole stream nodes (stream-node-max-entries, 100 by default): an
# approximately trimmed stream holds at most the cap plus one node.
_CAP = 50
_NODE = 100


def _bounded(client: redis.Redis, keys: Keys) -> bool:
    return client.xlen(keys.events) <= _CAP + _NODE


def test_audit_appends_trim_as_the_collector_does(clean_redis: RedisServer) -> None:
    keys = Keys()
    stream = EventStream(keys, max_length=_CAP)

    async def write() -> None:
        client = Redis.from_url(clean_redis.url(STORE_DB))
        for i in range(10):
            await append_audit(client, stream, [audit_event("ci", "revoke", f"t{i}-{j}")
                                                for j in range(100)])
        await client.aclose()

    run(write())
    sync = clean_redis.client(STORE_DB)
    assert _bounded(sync, keys)
    newest = decode_stored(sync.xrevrange(keys.events, count=1)[0][1][b"e"])
    assert (newest.type, newest.uuid) == ("taskpulse-audit", "t9-99")


def test_publisher_pipeline_appends_trim_too(clean_redis: RedisServer) -> None:
    """The publisher writes from a thread with a sync client: the same ``queue_appends``."""
    keys = Keys()
    stream = EventStream(keys, max_length=_CAP)
    sync = clean_redis.client(STORE_DB)
    for i in range(10):
        with sync.pipeline(transaction=False) as pipe:
            stream.queue_appends(pipe, [audit_event("ci", "enqueue", f"t{i}-{j}")
                                        for j in range(100)])
            pipe.execute()
    assert _bounded(sync, keys)


def test_collector_and_operator_appends_trim(clean_redis: RedisServer) -> None:
    keys = Keys()

    async def write() -> None:
        client = Redis.from_url(clean_redis.url(STORE_DB))
        store = EventStore(client, keys, Retention(stream_max_length=_CAP))
        for i in range(10):
            events = [e for j in range(50) for e in sent_and_succeeded(f"t{i}-{j}", 1000.0 + i)]
            await store.apply(events)
        life = TaskLifecycle(client, keys, store.stream)
        for j in range(200):
            await life.annotate("t0-0", Annotation(note=f"n{j}"),
                                audit_event("ci", "annotate", "t0-0"))
        await client.aclose()

    run(write())
    sync = clean_redis.client(STORE_DB)
    assert _bounded(sync, keys)
    newest = decode_stored(sync.xrevrange(keys.events, count=1)[0][1][b"e"])
    assert newest.action == "annotate"


def test_scripts_write_only_keys_of_their_prefix(clean_redis: RedisServer) -> None:
    """store.lua and lifecycle.lua are handed every key name: another prefix moves all of it."""
    keys = Keys(prefix="elsewhere:")

    async def write() -> None:
        client = Redis.from_url(clean_redis.url(STORE_DB))
        store = EventStore(client, keys)
        events = [
            *sent_and_succeeded("a", 1000.0), worker_event("online", "w1@box", 1000.5),
            task_event("sent", "child", 1001.0, name="demo.test_task", queue="default",
                       parent_id="a", root_id="a"),
        ]
        await store.apply(events)
        life = TaskLifecycle(client, keys, store.stream)
        await life.annotate("a", Annotation(note="x"), audit_event("ci", "annotate", "a"))
        await life.forget("a", audit_event("ci", "forget", "a"))
        await client.aclose()

    run(write())
    written = {k.decode() for k in clean_redis.client(STORE_DB).keys("*")}
    assert written  # the scripts did write
    assert all(k.startswith("elsewhere:") for k in written), written
    assert {keys.events, keys.workers, keys.worker("w1@box"), keys.task("child"),
            keys.index_children("a"), keys.index_root("a"), keys.counters_total} <= written
