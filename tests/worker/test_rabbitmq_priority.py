"""On RabbitMQ the catalog's ``amqp`` priorities really reorder delivery (x-max-priority queue).

Uses a throw-away queue declared exactly like the worker's, so the shared broker's real
``default``/``finance``/… queues are never touched.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from kombu import Connection, Queue

from event_collector.broker import declare_queue
from tests.services import RABBITMQ_URL, rabbitmq_running
from worker.routing import AMQP_MAX_PRIORITY, PRIORITIES

pytestmark = pytest.mark.rabbitmq


@pytest.fixture
def priority_queue() -> Iterator[tuple[Connection, Queue]]:
    if not rabbitmq_running():
        pytest.skip("no RabbitMQ on 127.0.0.1:5672")
    # Publisher confirms: publish() returns once the broker has queued the message.
    with Connection(
        RABBITMQ_URL, connect_timeout=3, transport_options={"confirm_publish": True}
    ) as conn:
        name = f"taskpulse-test-{uuid.uuid4().hex[:8]}"
        queue = declare_queue(name, "amqp", AMQP_MAX_PRIORITY)(conn.channel())
        queue.declare()
        yield conn, queue
        queue.delete()
        queue.exchange.delete()


def test_critical_message_published_last_is_delivered_first(
    priority_queue: tuple[Connection, Queue],
) -> None:
    conn, queue = priority_queue
    amqp = PRIORITIES["amqp"]
    producer = conn.Producer()
    for label in ["low-0", "low-1", "normal", "critical", "high"]:
        level = label.partition("-")[0]
        producer.publish(
            {"label": label},
            exchange=queue.exchange,
            routing_key=queue.routing_key,
            priority=amqp[level],
            declare=[queue],
        )

    order = []
    while (message := queue.get(no_ack=True)) is not None:
        order.append(message.payload["label"])

    assert order == ["critical", "high", "normal", "low-0", "low-1"]
