"""On Redis a critical task sent after low ones runs before them (and unprioritised is normal)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.services import RedisServer, ServiceProcess, celery_worker, taskpulse_env, wait_until
from worker.application import TaskpulseCelery, create_app
from worker.config import WorkerSettings, load_settings
from worker.domain.store import open_store
from worker.routing import PRIORITIES

REDIS = PRIORITIES["redis"]


@pytest.fixture(scope="module")
def single_slot(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TaskpulseCelery, WorkerSettings]]:
    """A worker that runs one task at a time and reserves nothing ahead (prefetch 1, acks late).

    It has its own Redis database, so it never competes with the package's shared worker.
    """
    env = taskpulse_env(
        redis_server,
        tmp_path_factory.mktemp("priority-data"),
        TASKPULSE_BROKER_URL=redis_server.url(3),
        TASKPULSE_RESULT_BACKEND=redis_server.url(3),
        TASKPULSE_PREFETCH_MULTIPLIER="1",
    )
    redis_server.client(3).flushdb()
    settings = load_settings(env)
    log = tmp_path_factory.mktemp("priority-log") / "worker.log"
    proc: ServiceProcess = celery_worker(env, log, concurrency=1, hostname="prio@%h")
    yield create_app(settings), settings
    proc.stop()


def test_critical_task_sent_after_low_ones_runs_before_them(
    single_slot: tuple[TaskpulseCelery, WorkerSettings],
) -> None:
    app, settings = single_slot
    blocker = app.send_task(
        "demo.test_task", kwargs={"message": "blocker", "sleep_seconds": 1.5}, priority=REDIS["low"]
    )
    wait_until(lambda: blocker.state == "STARTED", timeout=15, what="blocker to start")
    lows = [
        app.send_task("demo.test_task", kwargs={"message": f"low-{n}"}, priority=REDIS["low"])
        for n in range(3)
    ]
    unprioritised = app.send_task("demo.test_task", kwargs={"message": "unprioritised"})
    high = app.send_task("demo.test_task", kwargs={"message": "high"}, priority=REDIS["high"])
    critical = app.send_task(
        "demo.test_task", kwargs={"message": "critical"}, priority=REDIS["critical"]
    )
    assert blocker.state == "STARTED", "everything must be queued while the worker is busy"

    for result in [blocker, *lows, unprioritised, high, critical]:
        result.get(timeout=20)

    with open_store(settings.db_path) as conn:
        order = [row[0] for row in conn.execute("SELECT message FROM demo_runs ORDER BY id")]
    # Unprioritised lands at "normal": behind high, ahead of low (not first, as a bare 0 would).
    assert order == ["blocker", "critical", "high", "unprioritised", "low-0", "low-1", "low-2"]
