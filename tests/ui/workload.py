"""Known workloads for the console tests, sent to the real stack and waited on."""

from __future__ import annotations

import uuid
from typing import Any

from celery import Celery

from tests.workflows.conftest import Stack


def send(stack: Stack, name: str = "demo.test_task", role: str = "operator",
         **kwargs: Any) -> str:
    r = stack.call("POST", "/tasks", role, json={"name": name, "kwargs": kwargs})
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def finished_workload(stack: Stack, ok: int = 3, failed: int = 2) -> dict[str, str]:
    """``ok`` tasks that succeed and ``failed`` that fail, all finished: id -> stored state."""
    tag = uuid.uuid4().hex[:8]
    ids = [send(stack, message=f"ok-{tag}-{i}") for i in range(ok)]
    ids += [send(stack, message=f"bad-{tag}-{i}", fail=True) for i in range(failed)]
    return {task_id: stack.wait_task(task_id)["state"] for task_id in ids}


def celery_app(stack: Stack) -> Celery:
    """A plain Celery producer on the stack's broker: tasks sent the way any Celery app sends."""
    app = Celery(broker=stack.env["TASKPULSE_BROKER_URL"], set_as_current=False)
    app.conf.task_send_sent_event = True
    return app
