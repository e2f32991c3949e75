"""``taskpulse tasks watch`` outlives its connection: while the API is gone or answers 503 it
retries (saying so on stderr), and when a stream ends it resumes after the last event it printed.

This module has its own redis-server (append-only, so a restart keeps the stream) and an API on a
fixed port that it stops and starts again, with a watcher subprocess following it all along.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest

from tests.api.conftest import apply_events, make_tokens
from tests.events import task_event
from tests.services import (
    RedisServer,
    ServiceProcess,
    free_port,
    start_api,
    taskpulse_env,
    wait_until,
)


@dataclass
class Lines:
    """A pipe read line by line on a thread of its own, so a test can wait for a line."""

    pipe: IO[str]
    seen: list[str] = field(default_factory=list)
    _new: queue.Queue[str] = field(default_factory=queue.Queue)

    def __post_init__(self) -> None:
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.pipe:
            self._new.put(line)

    def wait_for(self, needle: str, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._new.get(timeout=0.1)
            except queue.Empty:
                continue
            self.seen.append(line)
            if needle in line:
                return line
        raise AssertionError(f"{needle!r} not printed within {timeout}s; got {self.seen}")


@dataclass
class Site:
    redis: RedisServer
    env: dict[str, str]
    workdir: Path
    port: int
    viewer: str
    api: ServiceProcess | None = None

    def start_api(self) -> None:
        self.api, _ = start_api(self.env, self.workdir / "api.log", port=self.port)

    def stop_api(self) -> None:
        assert self.api is not None
        self.api.stop()
        self.api = None

    def watch(self) -> tuple[subprocess.Popen[str], Lines, Lines]:
        watcher = subprocess.Popen(
            [sys.executable, "-m", "producer_api.cli", "tasks", "watch", "--json"],
            env={**os.environ, "TASKPULSE_API_URL": f"http://127.0.0.1:{self.port}",
                 "TASKPULSE_TOKEN": self.viewer, "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=self.workdir,
        )  # fmt: skip
        assert watcher.stdout is not None
        assert watcher.stderr is not None
        return watcher, Lines(watcher.stdout), Lines(watcher.stderr)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    redis = RedisServer(tmp_path, appendonly=True)
    redis.start()
    tokens = make_tokens(tmp_path / "tokens.db")
    env = taskpulse_env(redis, tmp_path, TASKPULSE_API_TOKENS_FILE=str(tmp_path / "tokens.db"))
    here = Site(redis, env, tmp_path, free_port(), tokens["viewer"])
    here.start_api()
    try:
        yield here
    finally:
        if here.api is not None:
            here.api.stop()
        redis.stop()


@pytest.fixture
def watching(site: Site) -> Iterator[tuple[Site, Lines, Lines]]:
    """A watcher that has printed a first event (the stream starts at "now": keep sending until
    it is connected and prints)."""
    watcher, out, err = site.watch()
    try:
        def printed() -> bool:
            apply_events(site.redis, [task_event("started", "first", time.time())])
            try:
                out.wait_for('"first"', timeout=0.3)
            except AssertionError:
                return False
            return True

        wait_until(printed, timeout=20, what="the watcher's first event")
        yield site, out, err
        assert watcher.poll() is None, "the watcher stopped"
    finally:
        watcher.terminate()
        watcher.wait(timeout=10)


def test_watch_waits_for_a_stopped_api_and_resumes_after_the_last_event_it_printed(
    watching: tuple[Site, Lines, Lines],
) -> None:
    site, out, err = watching
    site.stop_api()  # ends the stream; then nothing listens on the port
    err.wait_for("cannot reach the taskpulse API")
    assert "retrying in" in err.seen[-1]
    # Sent while no API runs: only a watch that resumes after its last id can show them.
    apply_events(site.redis, [task_event("started", "while-gone-1", time.time()),
                              task_event("started", "while-gone-2", time.time() + 0.001)])
    site.start_api()

    out.wait_for('"while-gone-2"')
    events = [json.loads(line) for line in out.seen]
    after_first = [e["uuid"] for e in events if e["uuid"] != "first"]
    assert after_first == ["while-gone-1", "while-gone-2"]
    ids = [e["stream_id"] for e in events]
    assert len(set(ids)) == len(ids), "an event was printed twice"


def test_watch_retries_while_the_api_answers_503_and_carries_on(
    watching: tuple[Site, Lines, Lines],
) -> None:
    site, out, err = watching
    site.redis.stop()  # the server ends the stream, then answers 503 until Redis is back
    try:
        err.wait_for("HTTP 503")
        assert "retrying in" in err.seen[-1]
    finally:
        site.redis.start()
    apply_events(site.redis, [task_event("started", "after-503", time.time())])
    out.wait_for('"after-503"')
