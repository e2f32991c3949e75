"""The collector under bad input and failures: malformed events, Redis going away, a standby.

Good events are published with Celery's own ``EventDispatcher`` (real kombu wire format);
malformed ones are PUBLISHed raw on the same channels.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery

from event_collector.keys import Keys
from tests.collector.conftest import (
    STORE_DB,
    collector_env,
    http_get,
    metric_sum,
    start_collector,
)
from tests.services import RedisServer, ServiceProcess, wait_until

KEYS = Keys()


class Publisher:
    """Sends Celery task events for made-up tasks through a real kombu connection."""

    def __init__(self, broker_url: str) -> None:
        self.app = Celery(broker=broker_url, set_as_current=False)

    def lifecycle(self, count: int, name: str = "demo.test_task") -> list[str]:
        """``count`` tasks, each sent/received/started/succeeded."""
        ids = [str(uuid.uuid4()) for _ in range(count)]
        with self.app.connection_for_write() as conn:
            dispatcher = self.app.events.Dispatcher(conn, hostname="w1@test", enabled=True)
            for task_id in ids:
                dispatcher.send("task-sent", uuid=task_id, name=name, args="()", kwargs="{}",
                                queue="default")
                dispatcher.send("task-received", uuid=task_id, name=name, args="()",
                                kwargs="{}")
                dispatcher.send("task-started", uuid=task_id)
                dispatcher.send("task-succeeded", uuid=task_id, result="1", runtime=0.01)
        return ids


def kombu_envelope(body: bytes, routing_key: str) -> bytes:
    return json.dumps({
        "body": base64.b64encode(body).decode(), "content-encoding": "utf-8",
        "content-type": "application/json", "headers": {},
        "properties": {"delivery_mode": 1, "priority": 0, "body_encoding": "base64",
                       "delivery_info": {"exchange": "celeryev", "routing_key": routing_key},
                       "delivery_tag": str(uuid.uuid4())},
    }).encode()


def succeeded_count(server: RedisServer) -> int:
    value = server.client(STORE_DB).hget(KEYS.counters_total, "demo.test_task|SUCCESS")
    return int(value or 0)


@pytest.fixture
def collector(service_env: dict[str, str], tmp_path: Path) -> Iterator[ServiceProcess]:
    env = collector_env(service_env)
    proc = start_collector(env, tmp_path / "collector.log")
    proc.env = env  # type: ignore[attr-defined]
    yield proc
    proc.stop()


def test_malformed_events_are_counted_and_skipped_while_good_ones_flow(
    clean_redis: RedisServer, collector: ServiceProcess
) -> None:
    broker = clean_redis.client(0)
    now = time.time()
    bad = [
        b"not json at all",
        b'{"body": "!!!not base64!!!", "properties": {"body_encoding": "base64"}}',
        kombu_envelope(b"{not json", "task.started"),
        kombu_envelope(b'{"type": "task-exploded", "timestamp": 1.0}', "task.exploded"),
        kombu_envelope(json.dumps({"type": "task-started", "timestamp": now}).encode(),
                       "task.started"),
        kombu_envelope(json.dumps({"type": "task-started", "uuid": "x",
                                   "timestamp": "yesterday"}).encode(), "task.started"),
        kombu_envelope(b"[1, 2]", "task.multi"),
    ]
    publisher = Publisher(clean_redis.url(0))
    publisher.lifecycle(3)
    for message in bad:
        broker.publish("/0.celeryev/task.started", message)
    publisher.lifecycle(3)

    wait_until(lambda: succeeded_count(clean_redis) == 6, timeout=10, what="6 good tasks")
    env = collector.env  # type: ignore[attr-defined]
    wait_until(
        lambda: metric_sum(http_get(env, "/metrics")[1], "taskpulse_events_invalid_total")
        == len(bad) + 1,  # the task.multi list holds two bad events
        timeout=5, what="every malformed event counted",
    )
    text = http_get(env, "/metrics")[1]
    for reason in ("bad_envelope", "bad_json", "unknown_type", "missing_uuid", "bad_timestamp",
                   "not_an_object"):
        assert metric_sum(text, "taskpulse_events_invalid_total", reason=reason) >= 1, reason
    assert collector.process.poll() is None
    assert "invalid event skipped: unknown_type" in collector.log()


def test_collector_recovers_from_a_redis_restart_and_reports_it(
    clean_redis: RedisServer, collector: ServiceProcess
) -> None:
    env = collector.env  # type: ignore[attr-defined]
    publisher = Publisher(clean_redis.url(0))
    publisher.lifecycle(2)
    wait_until(lambda: succeeded_count(clean_redis) == 2, timeout=10, what="first tasks")
    assert http_get(env, "/health")[0] == 200

    clean_redis.stop()
    wait_until(lambda: http_get(env, "/health")[0] == 503, timeout=10,
               what="/health to report the lost connection")
    assert '"connected":false' in http_get(env, "/health")[1].replace(" ", "")
    clean_redis.start()
    wait_until(lambda: http_get(env, "/health")[0] == 200, timeout=20, what="/health ok again")

    publisher.lifecycle(3)  # the restarted Redis is empty: only these count now
    wait_until(lambda: succeeded_count(clean_redis) == 3, timeout=10, what="tasks after restart")
    log = collector.log()
    assert "reconnecting in" in log
    assert "broker reconnected; subscribed to" in log


def test_two_collectors_apply_each_event_once_and_their_metrics_sum_exactly(
    clean_redis: RedisServer, service_env: dict[str, str], tmp_path: Path
) -> None:
    envs = [collector_env(service_env), collector_env(service_env)]
    procs = [start_collector(env, tmp_path / f"c{i}.log") for i, env in enumerate(envs)]
    try:
        Publisher(clean_redis.url(0)).lifecycle(200)
        wait_until(lambda: succeeded_count(clean_redis) == 200, timeout=20, what="200 tasks")

        def totals() -> tuple[float, float]:
            texts = [http_get(env, "/metrics")[1] for env in envs]
            applied = sum(metric_sum(t, "celery_task_succeeded_total") for t in texts)
            duplicates = sum(metric_sum(t, "taskpulse_events_duplicate_total") for t in texts)
            return applied, duplicates

        wait_until(lambda: totals() == (200, 800), timeout=10,
                   what="succeeded summed over both == 200, every event once a duplicate")
        counters = clean_redis.client(STORE_DB).hgetall(KEYS.counters_total)
        assert {k.decode(): int(v) for k, v in counters.items()} == {
            f"demo.test_task|{kind}": 200 for kind in ("SENT", "RECEIVED", "STARTED", "SUCCESS")
        }
        assert clean_redis.client(STORE_DB).xlen(KEYS.events) == 800
    finally:
        for proc in procs:
            proc.stop()
