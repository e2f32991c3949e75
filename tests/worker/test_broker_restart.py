"""A broker that crashes and comes back on the same port does not end the worker.

Its own redis-server (the session's must not be killed), SIGKILLed while a task is unacknowledged
(the case that ended kombu 5.7's worker with AttributeError 'hostname', see worker.broker), then
started again on the same port.
"""

from __future__ import annotations

from pathlib import Path

from tests.services import RedisServer, celery_worker, taskpulse_env, wait_until
from worker.application import create_app
from worker.config import load_settings


def test_worker_survives_a_broker_crash_mid_task_and_runs_tasks_sent_after_it(
    tmp_path: Path,
) -> None:
    (tmp_path / "broker").mkdir()
    broker = RedisServer(tmp_path / "broker")
    broker.start()
    env = taskpulse_env(broker, tmp_path / "data")
    worker = celery_worker(env, tmp_path / "worker.log", concurrency=2)
    try:
        app = create_app(load_settings(env))
        # acks_late: while it runs, its message is unacknowledged.
        app.send_task("demo.long_running_task", kwargs={"total": 12, "step_seconds": 0.25})
        worker.wait_for_log("demo.long_running_task[", timeout=15)
        # ... and the consumer is back in BRPOP for the next message (a free pool process):
        # the connection dies under that pending read.
        wait_until(lambda: any(client.get("cmd") == "brpop"
                               for client in broker.client().client_list()),
                   what="the worker waiting in BRPOP")
        broker.kill()
        worker.wait_for_log("Connection to broker lost", timeout=15)
        broker.start()

        def reconnected() -> bool:
            assert worker.process.poll() is None, worker.log()[-6000:]
            return worker.log().count("Connected to ") >= 2

        wait_until(reconnected, timeout=30, what="the worker reconnecting")
        after = app.send_task("demo.test_task", kwargs={"message": "after the restart"})
        assert after.get(timeout=30)["message"] == "after the restart"
        assert worker.process.poll() is None
        assert "Unrecoverable error" not in worker.log()
    finally:
        worker.stop()
        broker.stop()
