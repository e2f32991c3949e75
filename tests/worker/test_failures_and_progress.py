"""Retries, permanent failures, time limits, email delivery and progress on a real worker."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from celery.exceptions import SoftTimeLimitExceeded

from tests.services import ServiceProcess, wait_until
from tests.worker.conftest import REFUSED_DOMAIN, Relay, RunTask
from worker.application import TaskpulseCelery
from worker.errors import InvalidArguments, PermanentError, TransientError


def attempts(db: sqlite3.Connection, task_id: str) -> int:
    row = db.execute("SELECT attempts FROM task_attempts WHERE task_id = ?", (task_id,)).fetchone()
    return row[0]


def test_transient_failures_are_retried_until_the_task_succeeds(
    run_task: RunTask, db: sqlite3.Connection
) -> None:
    result = run_task("demo.test_task", kwargs={"message": "flaky", "fail_times": 2})

    assert result.state == "SUCCESS"
    assert result.result == {"message": "flaky", "attempts": 3, "retries": 2}
    assert attempts(db, result.id) == 3


def test_a_task_failing_every_time_fails_after_three_retries(
    run_task: RunTask, db: sqlite3.Connection
) -> None:
    result = run_task("demo.test_task", kwargs={"fail_times": 50})

    assert result.state == "FAILURE"
    assert isinstance(result.result, TransientError)
    assert attempts(db, result.id) == 4  # the first run and three retries
    assert result._get_task_meta()["retries"] == 3


def test_a_permanent_error_fails_at_once_without_retry(
    run_task: RunTask, db: sqlite3.Connection
) -> None:
    result = run_task("demo.test_task", kwargs={"message": "boom", "fail": True})

    assert result.state == "FAILURE"
    assert isinstance(result.result, PermanentError)
    assert "boom" in str(result.result)
    assert attempts(db, result.id) == 1


def test_invalid_arguments_fail_at_once_with_a_clear_message(run_task: RunTask) -> None:
    result = run_task("exports.export_data", kwargs={"kind": "passwords"})

    assert result.state == "FAILURE"
    assert isinstance(result.result, InvalidArguments)
    assert "kind: Invalid enum value 'passwords'; one of audit_logs, bills," in str(result.result)
    assert result._get_task_meta()["retries"] == 0


def test_soft_time_limit_stops_a_long_task(run_task: RunTask) -> None:
    result = run_task(
        "demo.long_running_task",
        kwargs={"total": 100, "step_seconds": 0.05},
        soft_time_limit=0.5,
        time_limit=10,
    )

    assert result.state == "FAILURE"
    assert isinstance(result.result, SoftTimeLimitExceeded)


def test_email_is_delivered_to_the_smtp_relay_and_recorded(
    run_task: RunTask, db: sqlite3.Connection, smtp_relay: Relay
) -> None:
    inbox = smtp_relay.inbox
    kwargs = {"to": "ann@example.com", "subject": "Invoice ready", "body": "See attached."}

    result = run_task("notifications.send_notification_email", kwargs=kwargs)

    assert result.state == "SUCCESS", result.traceback
    received = [m for m in inbox.messages if b"Invoice ready" in m.content]
    assert len(received) == 1
    assert received[0].rcpt_tos == ["ann@example.com"]
    assert b"See attached." in received[0].content
    status = db.execute(
        "SELECT status FROM notifications WHERE id = ?", (result.result["notification_id"],)
    ).fetchone()[0]
    assert status == "sent"


def test_an_address_the_relay_refuses_fails_permanently(
    run_task: RunTask, smtp_relay: Relay
) -> None:
    kwargs = {"to": f"nobody@{REFUSED_DOMAIN}", "subject": "Hi", "body": "x"}

    result = run_task("notifications.send_notification_email", kwargs=kwargs)

    assert result.state == "FAILURE"
    assert isinstance(result.result, PermanentError)
    assert result._get_task_meta()["retries"] == 0


def test_a_malformed_address_fails_before_any_delivery(
    run_task: RunTask, smtp_relay: Relay
) -> None:
    inbox = smtp_relay.inbox
    before = len(inbox.messages)

    result = run_task(
        "notifications.send_notification_email",
        kwargs={"to": "not an address", "subject": "Hi", "body": "x"},
    )

    assert isinstance(result.result, InvalidArguments)
    assert len(inbox.messages) == before


@pytest.fixture
def relay_down(smtp_relay: Relay) -> Iterator[None]:
    smtp_relay.stop()
    yield
    smtp_relay.start()


def test_an_unreachable_relay_is_retried_three_times_then_fails(
    run_task: RunTask, relay_down: None
) -> None:
    result = run_task(
        "notifications.send_notification_email",
        kwargs={"to": "ann@example.com", "subject": "Later", "body": "x"},
    )

    assert result.state == "FAILURE"
    assert isinstance(result.result, TransientError)
    assert "unreachable" in str(result.result)
    assert result._get_task_meta()["retries"] == 3


class EventCapture:
    """Collects every Celery event from the broker's fanout in a background thread."""

    def __init__(self, app: TaskpulseCelery) -> None:
        self.app = app
        self.events: list[dict[str, Any]] = []
        self._receiver: Any = None
        self._thread = threading.Thread(target=self._consume, daemon=True)

    def __enter__(self) -> EventCapture:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._receiver is not None:
            self._receiver.should_stop = True  # checked between 0.2 s polls
        self._thread.join(timeout=5)

    def of(self, task_id: str, event_type: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("uuid") == task_id and e["type"] == event_type]

    def wait_until_listening(self, timeout: float = 30.0) -> None:
        """Send probe tasks until one is heard: the fanout keeps nothing for late subscribers,
        so a probe that finished before the subscription began is lost and must be re-sent."""
        deadline = time.monotonic() + timeout
        while True:
            probe = self.app.send_task("demo.test_task")
            try:
                wait_until(lambda p=probe: self.of(p.id, "task-succeeded"), timeout=3,
                           what="probe task's events")
                return
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise

    def _consume(self) -> None:
        with self.app.connection_for_read() as conn:
            self._receiver = self.app.events.Receiver(conn, handlers={"*": self.events.append})
            for _ in self._receiver.consume(limit=None, safety_interval=0.2, wakeup=False):
                pass


def test_long_running_task_reports_progress_by_state_and_by_event(
    app: TaskpulseCelery, celery_worker_process: ServiceProcess
) -> None:
    with EventCapture(app) as capture:
        capture.wait_until_listening()
        result = app.send_task("demo.long_running_task", kwargs={"total": 4, "step_seconds": 0.3})

        wait_until(lambda: result.state == "PROGRESS", timeout=10, what="PROGRESS state")
        assert result.info["total"] == 4
        assert 1 <= result.info["current"] <= 4
        result.get(timeout=10)
        wait_until(lambda: capture.of(result.id, "task-succeeded"), timeout=10, what="success")

    progress = [(e["current"], e["total"]) for e in capture.of(result.id, "task-progress")]
    assert progress == [(1, 4), (2, 4), (3, 4), (4, 4)]
