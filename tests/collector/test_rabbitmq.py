"""On RabbitMQ the collector reads a durable, acked queue: nothing is lost while it is down."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from event_collector.keys import Keys
from tests.collector.conftest import STORE_DB, collector_env, start_collector
from tests.collector.test_collector_faults import Publisher
from tests.services import RABBITMQ_URL, RedisServer, rabbitmq_running, wait_until

KEYS = Keys()


pytestmark = [
    pytest.mark.rabbitmq,
    pytest.mark.skipif(not rabbitmq_running(), reason="no RabbitMQ on 127.0.0.1:5672"),
]


def test_events_published_while_the_collector_is_down_are_applied_when_it_returns(
    clean_redis: RedisServer, service_env: dict[str, str], tmp_path: Path
) -> None:
    queue = f"taskpulse.events.test-{uuid.uuid4().hex[:8]}"
    name = f"demo.rabbit_{uuid.uuid4().hex[:8]}"  # other users of the broker send other names
    env = collector_env(service_env, TASKPULSE_BROKER_URL=RABBITMQ_URL,
                        TASKPULSE_EVENT_QUEUE=queue)
    ready = "consuming durable queue"
    publisher = Publisher(RABBITMQ_URL)
    store = clean_redis.client(STORE_DB)

    def succeeded() -> int:
        return int(store.hget(KEYS.counters_total, f"{name}|SUCCESS") or 0)

    first = start_collector(env, tmp_path / "c1.log", ready=ready)
    try:
        publisher.lifecycle(5, name=name)
        wait_until(lambda: succeeded() == 5, timeout=15, what="5 tasks while running")
    finally:
        assert first.stop() == 0
    publisher.lifecycle(7, name=name)  # nobody consuming: the durable queue keeps them

    second = start_collector(env, tmp_path / "c2.log", ready=ready)
    try:
        wait_until(lambda: succeeded() == 12, timeout=15, what="the 7 sent while down")
        assert store.xlen(KEYS.events) >= 48
    finally:
        second.stop()
    with publisher.app.connection_for_write() as conn:
        left = conn.default_channel.queue_declare(queue, passive=True).message_count
        conn.default_channel.queue_delete(queue)
    assert left == 0  # every applied message was acknowledged
