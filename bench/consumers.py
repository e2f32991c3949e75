"""The two event consumers under test, behind one small interface.

``count()`` is the number of *task* events folded into the consumer's state, so published - count
is the loss: for taskpulse the exact counters its Lua writes together with the projections
(``cnt:total``), for Flower its own ``flower_events_total`` (incremented after ``State.event``).
"""

from __future__ import annotations

import os
import sys
import urllib.error
from pathlib import Path
from typing import Protocol

from bench import harness
from event_collector import timeline
from event_collector.events import TASK_EVENT_KINDS
from event_collector.keys import COUNTER_FIELD_SEPARATOR, DEFAULT_KEY_PREFIX, TIMELINE_FIELD, Keys
from tests.services import RedisServer, ServiceProcess, free_port, wait_until

# What a reader can see of a task right now: (state, sent timestamp, succeeded timestamp).
Probe = tuple[str | None, float | None, float | None]
TASK_KINDS = frozenset(TASK_EVENT_KINDS.values())


class Consumer(Protocol):
    name: str
    poll_interval: float

    def count(self) -> int: ...
    def succeeded(self) -> int: ...
    def rss(self) -> float: ...
    def cpu(self) -> float: ...
    def cpu_parts(self) -> dict[str, float]: ...
    def store_bytes(self) -> int | None: ...
    def probe(self, task_ids: list[str]) -> list[Probe]: ...
    def stop(self) -> None: ...


def wait_subscribed(broker: RedisServer, timeout: float = 60.0) -> None:
    """Both consumers PSUBSCRIBE to the celeryev fanout; events before that are lost by design."""
    client = broker.client()
    wait_until(lambda: client.execute_command("PUBSUB", "NUMPAT") >= 1, timeout=timeout,
               what="a PSUBSCRIBE on the broker")


class FlowerConsumer:
    name = "flower"
    poll_interval = 0.1  # every poll is an HTTP scrape served by Flower's own event loop

    def __init__(self, broker: RedisServer, log_dir: Path, max_tasks: int) -> None:
        self.flower = harness.Flower(broker.url(0), log_dir / "flower.log", max_tasks)
        harness.ensure_ready(self.flower.proc, lambda: wait_subscribed(broker))

    def count(self) -> int:
        return self.flower.task_events()

    def succeeded(self) -> int:
        """Tasks whose task-succeeded event reached the consumer's state."""
        return self.flower.task_events("task-succeeded")

    def rss(self) -> float:
        return harness.rss_mb(self.flower.pid)

    def cpu(self) -> float:
        return harness.cpu_seconds(self.flower.pid)

    def cpu_parts(self) -> dict[str, float]:
        return {"flower": self.cpu()}

    def store_bytes(self) -> int | None:
        return None  # everything lives in the process heap, which rss() measures

    def probe(self, task_ids: list[str]) -> list[Probe]:
        """One ``/api/task/info/<id>`` per task: Flower has no batch lookup."""
        found: list[Probe] = []
        for task_id in task_ids:
            try:
                info = self.flower.task_info(task_id)
            except urllib.error.HTTPError as exc:
                if exc.code != 404:
                    raise
                found.append((None, None, None))
                continue
            found.append((info.get("state"), info.get("sent"), info.get("succeeded")))
        return found

    def stop(self) -> None:
        self.flower.stop()


class TaskpulseConsumer:
    name = "taskpulse"
    poll_interval = 0.02

    def __init__(
        self, broker: RedisServer, store: RedisServer, log_dir: Path,
        prefix: str = DEFAULT_KEY_PREFIX, **extra_env: str,
    ) -> None:
        self.keys = Keys(prefix)
        self.store = store.client(0)
        self.store_pid = store.process.pid if store.process else 0
        env = {
            **os.environ,
            "TASKPULSE_BROKER_URL": broker.url(0),
            "TASKPULSE_REDIS_URL": store.url(0),
            "TASKPULSE_KEY_PREFIX": prefix,
            "TASKPULSE_METRICS_HOST": "127.0.0.1",
            "TASKPULSE_METRICS_PORT": str(free_port()),
            "TASKPULSE_SPOOL_DIR": str(log_dir / "spool"),
            "PYTHONUNBUFFERED": "1",
            **extra_env,
        }
        self.metrics_url = f"http://127.0.0.1:{env['TASKPULSE_METRICS_PORT']}/metrics"
        self.proc = ServiceProcess(
            [sys.executable, "-m", "event_collector"], env, log_dir / "collector.log"
        )
        harness.ensure_ready(self.proc, lambda: wait_subscribed(broker))
        self.baseline_bytes = harness.used_memory(self.store)

    def count(self) -> int:
        values = self.store.hgetall(self.keys.counters_total)
        return sum(int(v) for k, v in values.items()
                   if k.decode().rpartition(COUNTER_FIELD_SEPARATOR)[2] in TASK_KINDS)

    def succeeded(self) -> int:
        values = self.store.hgetall(self.keys.counters_total)
        return sum(int(v) for k, v in values.items()
                   if k.decode().rpartition(COUNTER_FIELD_SEPARATOR)[2] == "SUCCESS")

    def rss(self) -> float:
        return harness.rss_mb(self.proc.process.pid)

    def cpu(self) -> float:
        """The collector's CPU plus its store's: the Lua projections run inside redis-server."""
        return sum(self.cpu_parts().values())

    def cpu_parts(self) -> dict[str, float]:
        return {"collector": harness.cpu_seconds(self.proc.process.pid),
                "store_redis": harness.cpu_seconds(self.store_pid)}

    def store_bytes(self) -> int | None:
        return harness.used_memory(self.store) - self.baseline_bytes

    def probe(self, task_ids: list[str]) -> list[Probe]:
        """The task hashes, read the way the API reads them, in one pipelined round trip."""
        pipe = self.store.pipeline(transaction=False)
        for task_id in task_ids:
            pipe.hmget(self.keys.task(task_id), ("state", TIMELINE_FIELD))
        found: list[Probe] = []
        for state, events in pipe.execute():
            times = timeline.timestamps(events.decode()) if events else {}
            found.append((state and state.decode(), times.get("sent"), times.get("succeeded")))
        return found

    def stop(self) -> None:
        self.proc.stop()
        self.store.close()


def collector_ready() -> bool:
    """True once ``python -m event_collector`` exists in this tree (it is built concurrently)."""
    return (harness.REPO_ROOT / "event_collector" / "__main__.py").exists()
