"""The hot path end to end in one process: a buffer fed as the reader feeds it, the real store
script on the session's redis-server."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from event_collector.consume import RawBuffer
from event_collector.keys import Keys
from event_collector.metrics import CollectorMetrics
from event_collector.pipeline import Pipeline
from event_collector.store import EventStore
from tests.collector.conftest import STORE_DB
from tests.services import RedisServer


class Source:
    """The reader's side of the pipeline: how many messages it was told are written."""

    def __init__(self) -> None:
        self.done_messages = 0

    def done(self, messages: int) -> None:
        self.done_messages += messages


def bodies(count: int) -> list[bytes]:
    return [json.dumps({"type": "task-started", "uuid": f"t-{i}", "hostname": "w1@h",
                        "timestamp": 1.7e9 + i}).encode() for i in range(count)]


async def run_pipeline(url: str, messages: list[bytes], seconds: float) -> tuple[Source, int]:
    redis = Redis.from_url(url)
    buffer = RawBuffer(asyncio.get_running_loop(), max_bytes=1 << 30, max_messages=10**6)
    source = Source()
    pipeline = Pipeline(EventStore(redis, Keys()), source, buffer,
                        CollectorMetrics(CollectorRegistry(), keys=Keys()), batch_size=50,
                        batch_interval=0.01)
    for start in range(0, len(messages), 7):
        buffer.put(messages[start:start + 7], threading.Event())
    running = asyncio.create_task(pipeline.run())
    try:
        await asyncio.wait_for(asyncio.shield(running), seconds)
    except TimeoutError:
        pipeline.stop()
        await asyncio.wait_for(running, 5)  # a stalled pipeline never finishes
    stream = await redis.xlen(Keys().events)
    await redis.aclose()
    return source, stream


def test_every_message_is_confirmed_once_written_without_waiting_for_a_later_batch(
    clean_redis: RedisServer,
) -> None:
    source, stream = asyncio.run(run_pipeline(clean_redis.url(STORE_DB), bodies(333), 1.0))
    assert stream == 333
    assert source.done_messages == 333


def test_a_store_error_that_is_no_outage_ends_the_run_instead_of_stalling(
    clean_redis: RedisServer,
) -> None:
    clean_redis.client(STORE_DB).set(Keys().events, "not a stream")  # every XADD fails
    with pytest.raises(Exception, match="WRONGTYPE"):
        asyncio.run(run_pipeline(clean_redis.url(STORE_DB), bodies(333), 5.0))
