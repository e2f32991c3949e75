"""QueuePoller against real brokers: the test's redis-server, and RabbitMQ when it runs."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from celery import Celery
from kombu import Connection, Consumer, Exchange, Queue
from redis.asyncio import Redis

from event_collector.broker import priority_lists
from event_collector.keys import Keys
from event_collector.queues import QueuePoller
from tests.services import (
    RABBITMQ_URL,
    RedisServer,
    celery_worker,
    free_port,
    rabbitmq_running,
    running,
)

pytestmark = pytest.mark.anyio



@pytest.fixture
def producer_app(clean_redis: RedisServer) -> Iterator[Celery]:
    app = Celery(broker=clean_redis.url(0), set_as_current=False)
    yield app
    app.close()


async def test_redis_queue_length_sums_every_priority_list(
    producer_app: Celery, clean_redis: RedisServer, store_redis: Redis, keys: Keys
):
    for priority in (0, 0, 5, 5, 5, 9):
        producer_app.send_task("reports.generate_daily_report", queue="reports",
                               priority=priority)
    broker = clean_redis.client(0)
    per_list = [broker.llen(key) for key in priority_lists("reports")]
    assert per_list == [2, 3, 0, 1]  # kombu really split them: the sum below is not trivial

    poller = QueuePoller(store_redis, keys, clean_redis.url(0), ["default", "reports"],
                         inspect_workers=False)
    try:
        report = await poller.run_once()
    finally:
        await poller.aclose()

    assert report.lengths == {"default": 0, "reports": 6}
    assert await store_redis.hgetall(keys.queues) == {b"default": b"0", b"reports": b"6"}
    assert float(await store_redis.get(keys.queues_updated)) > 0


async def test_a_poll_replaces_the_previous_one(
    producer_app: Celery, clean_redis: RedisServer, store_redis: Redis, keys: Keys
):
    await store_redis.hset(keys.queues, mapping={"retired": 5})
    poller = QueuePoller(store_redis, keys, clean_redis.url(0), ["email"], inspect_workers=False)
    try:
        await poller.run_once()
    finally:
        await poller.aclose()
    assert await store_redis.hgetall(keys.queues) == {b"email": b"0"}


async def test_without_workers_every_queue_has_zero_workers(
    clean_redis: RedisServer, store_redis: Redis, keys: Keys
):
    poller = QueuePoller(store_redis, keys, clean_redis.url(0), ["default", "email"],
                         inspect_timeout=0.2)
    try:
        report = await poller.run_once()
    finally:
        await poller.aclose()
    assert report.workers == {"default": 0, "email": 0}
    assert await store_redis.hgetall(keys.queue_workers) == {b"default": b"0", b"email": b"0"}


def test_unsupported_broker_is_refused_at_construction(keys: Keys):
    with pytest.raises(ValueError, match="sqs"):
        QueuePoller(Redis(), keys, "sqs://", ["default"])


@pytest.mark.rabbitmq
@pytest.mark.skipif(not rabbitmq_running(), reason="no RabbitMQ on 127.0.0.1:5672")
async def test_rabbitmq_reports_messages_and_consumers(store_redis: Redis, keys: Keys):
    name = f"taskpulse-test-{uuid.uuid4().hex[:8]}"
    queue = Queue(name, Exchange(name, type="direct"), routing_key=name, auto_delete=False)
    with Connection(RABBITMQ_URL) as conn:
        queue(conn.default_channel).declare()
        producer = conn.Producer()
        for _ in range(3):
            producer.publish({"n": 1}, exchange=queue.exchange, routing_key=name)
        # A consumer that never acks: it counts, at most its one prefetched message leaves ready.
        listener = conn.channel()
        consumer = Consumer(listener, [queue], auto_declare=False,
                            callbacks=[lambda body, message: None])
        consumer.qos(prefetch_count=1)
        consumer.consume()
        poller = QueuePoller(store_redis, keys, RABBITMQ_URL, [name, f"{name}-missing"],
                             inspect_workers=False)
        try:
            report = await poller.run_once()
        finally:
            await poller.aclose()
            consumer.cancel()
            listener.close()
            queue(conn.default_channel).delete()

    assert report.consumers == {name: 1, f"{name}-missing": 0}
    assert report.lengths[name] in (2, 3)  # one message may be prefetched by the consumer
    assert await store_redis.hget(keys.queue_consumers, name) == b"1"


@pytest.mark.slow
async def test_workers_and_processes_per_queue_come_from_the_running_workers(
    service_env: dict[str, str], tmp_path, clean_redis: RedisServer, store_redis: Redis,
    keys: Keys,
):
    worker = celery_worker(service_env, tmp_path / "worker.log", queues="default,email",
                           concurrency=2)
    with running(worker):
        poller = QueuePoller(store_redis, keys, clean_redis.url(0),
                             ["default", "finance", "email"], inspect_timeout=1.0)
        try:
            report = await poller.run_once()
        finally:
            await poller.aclose()

    assert report.workers == {"default": 1, "finance": 0, "email": 1}
    assert report.processes == {"default": 2, "finance": 0, "email": 2}
    assert await store_redis.hget(keys.queue_processes, "email") == b"2"


async def test_workers_are_inspected_less_often_than_lengths_are_polled(
    clean_redis: RedisServer, store_redis: Redis, keys: Keys
):
    poller = QueuePoller(store_redis, keys, clean_redis.url(0), ["default"],
                         inspect_timeout=0.1, inspect_interval_seconds=3600)
    try:
        first, second = await poller.run_once(), await poller.run_once()
    finally:
        await poller.aclose()
    assert (first.workers, second.workers) == ({"default": 0}, None)
    assert await store_redis.hget(keys.queue_workers, "default") == b"0"  # kept from the first


async def test_unreachable_rabbitmq_raises_an_os_error(store_redis: Redis, keys: Keys):
    """The collector's job loop retries on OSError; any other exception would end the poller."""
    url = f"amqp://guest:guest@127.0.0.1:{free_port()}//"
    poller = QueuePoller(store_redis, keys, url, ["default"], inspect_workers=False)
    with pytest.raises(OSError):  # noqa: PT011 - the type is the contract here
        await poller.run_once()
    await poller.aclose()
