"""Worker test fixtures: one real Celery worker for the package, a real SMTP relay, the same app.

The worker runs as a subprocess (``celery -A worker worker -E``) on the session's private
redis-server; the test process sends tasks with an app built from the very same environment and
checks their effects in the worker's SQLite store, files and the relay's inbox.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope, Session
from celery.result import AsyncResult

from tests.services import RedisServer, ServiceProcess, celery_worker, free_port, taskpulse_env
from worker.application import TaskpulseCelery, create_app
from worker.config import WorkerSettings, load_settings
from worker.domain.store import connect

REFUSED_DOMAIN = "refused.example"


@dataclass
class Inbox:
    """What the relay received; addresses at ``REFUSED_DOMAIN`` are refused with a 550."""

    messages: list[Envelope] = field(default_factory=list)

    async def handle_RCPT(
        self, server: object, session: Session, envelope: Envelope, address: str, options: list
    ) -> str:
        if address.endswith("@" + REFUSED_DOMAIN):
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: object, session: Session, envelope: Envelope) -> str:
        self.messages.append(envelope)
        return "250 Message accepted"


class Relay:
    """A real SMTP server (aiosmtpd) on a fixed port that a test can take down and bring back."""

    def __init__(self) -> None:
        self.inbox = Inbox()
        self.port = free_port()
        self._controller: Controller | None = None

    def start(self) -> None:
        # A stopped Controller cannot be restarted (its loop is closed): make a new one.
        self._controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


@pytest.fixture(scope="package")
def smtp_relay() -> Iterator[Relay]:
    relay = Relay()
    relay.start()
    yield relay
    relay.stop()


@pytest.fixture(scope="package")
def worker_env(
    redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
    smtp_relay: Relay,
) -> dict[str, str]:
    # Earlier test packages may have left queues or results behind; start from empty.
    redis_server.client().flushall()
    return taskpulse_env(
        redis_server,
        tmp_path_factory.mktemp("worker-data"),
        TASKPULSE_SMTP_HOST="127.0.0.1",
        TASKPULSE_SMTP_PORT=str(smtp_relay.port),
        TASKPULSE_SMTP_TIMEOUT="2",
        # Backoff of at most a second per retry keeps "3 retries then failure" to seconds.
        TASKPULSE_RETRY_BACKOFF="1",
        TASKPULSE_RETRY_BACKOFF_MAX="1",
    )


@pytest.fixture(scope="package")
def settings(worker_env: dict[str, str]) -> WorkerSettings:
    return load_settings(worker_env)


@pytest.fixture(scope="package")
def app(settings: WorkerSettings) -> TaskpulseCelery:
    return create_app(settings)


@pytest.fixture(scope="package")
def celery_worker_process(
    worker_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServiceProcess]:
    log = tmp_path_factory.mktemp("worker-log") / "worker.log"
    proc = celery_worker(worker_env, log, concurrency=2)
    yield proc
    proc.stop()


@pytest.fixture
def db(settings: WorkerSettings) -> Iterator[sqlite3.Connection]:
    """A connection to the worker's store, for arranging rows and checking effects."""
    conn = connect(settings.db_path)
    yield conn
    conn.close()


RunTask = Callable[..., AsyncResult]


@pytest.fixture
def run_task(app: TaskpulseCelery, celery_worker_process: ServiceProcess) -> RunTask:
    """Send a task by name (as the API does) to the real worker and wait until it is ready."""

    def run(name: str, timeout: float = 30.0, **options: Any) -> AsyncResult:
        result = app.send_task(name, **options)
        result.get(timeout=timeout, propagate=False)
        return result

    return run
