"""`make run` as a foreground service: one run per run directory, any stop signal stops every
child in order and leaves nothing behind, the collector's last batch is kept, explicit ports are
honoured, and the worker is restarted when it dies.

Whole runs through ``make`` with real processes; a run costs seconds on two cores, so the tests
that do not stop the run share one.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from event_collector.keys import Keys
from event_collector.stored import decode_stored
from tests.services import (
    REPO_ROOT,
    RedisServer,
    port_accepts,
    processes_in_group,
    wait_until,
)
from tests.system.local_run import LocalRun, make_run_argv, run_env

STOP_SECONDS = 10


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRun]:
    run = LocalRun(tmp_path_factory.mktemp("running") / "run", run_env())
    try:
        run.wait_until_running()
        yield run
    finally:
        run.stop()


def auth(run: LocalRun) -> dict[str, str]:
    return {"Authorization": f"Bearer {run.token}"}


def tokens(run: LocalRun) -> list[dict[str, object]]:
    listed = requests.get(f"{run.api_url}/api/v1/tokens", headers=auth(run), timeout=10)
    assert listed.status_code == 200, listed.text
    return listed.json()["tokens"]


def ports_of(run: LocalRun) -> list[int]:
    redis_port = int(run.printed(r"local Redis on redis://127\.0\.0\.1:(\d+)/"))
    return [redis_port] + [int(run.env[name]) for name in
                           ("TASKPULSE_API_PORT", "TASKPULSE_METRICS_PORT", "TASKPULSE_SMTP_PORT")]


def assert_stopped_in_order_leaving_nothing(run: LocalRun, children: dict[str, int],
                                            script: int, ports: list[int]) -> None:
    assert not processes_in_group(run.make.pid), "make or run_local.py still running"
    assert not Path(f"/proc/{script}").exists()
    assert run.leftovers(children) == {}
    assert [port for port in ports if port_accepts(port)] == []
    out = run.output()
    # Redis outlives the collector (its last batch), the worker and beat; it goes last.
    assert out.index("stopped collector") < out.index("stopping worker, beat")
    assert out.index("stopped worker") < out.index("stopping redis") < out.index("stopped redis")


# -- one run per run directory -----------------------------------------------------------------


def test_a_second_run_with_the_same_run_dir_is_refused_naming_the_holder(
    running: LocalRun,
) -> None:
    tokens_before = tokens(running)

    twin = subprocess.run(make_run_argv(running.run_dir), cwd=REPO_ROOT, env=run_env(),
                          capture_output=True, text=True, timeout=60)

    assert twin.returncode != 0
    assert f"pid {running.script_pid()}" in twin.stderr, twin.stderr
    # Refused before it started a Redis, seeded data or created a token.
    assert "started" not in twin.stdout, twin.stdout
    assert tokens(running) == tokens_before


# -- the worker is supervised ------------------------------------------------------------------


def send(run: LocalRun, task: dict[str, object]) -> str:
    sent = requests.post(f"{run.api_url}/api/v1/tasks", json=task, headers=auth(run), timeout=10)
    assert sent.status_code == 202, sent.text
    return f"{run.api_url}/api/v1/tasks/{sent.json()['id']}"


def state(run: LocalRun, task_url: str) -> str | None:
    return requests.get(task_url, headers=auth(run), timeout=10).json().get("state")


def test_the_worker_is_restarted_when_it_dies_and_runs_tasks_again(running: LocalRun) -> None:
    first = running.started()["worker"]

    os.kill(first, signal.SIGKILL)
    running.wait_for(f"worker (pid {first}) exited with code -9")
    wait_until(lambda: running.started()["worker"] != first, timeout=30,
               what="the worker started again")

    # Celery gives its pool processes a parent-death signal: none outlives the worker.
    assert processes_in_group(first) == [], "the dead worker's pool processes were left"
    after = send(running, {"name": "demo.test_task", "kwargs": {"message": "after restart"}})
    wait_until(lambda: state(running, after) == "SUCCESS", timeout=60,
               what="the task run by the new worker")


# -- explicit ports ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "flag"),
    [("TASKPULSE_API_PORT", None), ("TASKPULSE_METRICS_PORT", None),
     ("TASKPULSE_SMTP_PORT", None), ("TASKPULSE_API_PORT", "--api-port")],
)
def test_a_busy_explicit_port_is_an_error_naming_the_port_and_the_variable(
    tmp_path: Path, variable: str, flag: str | None
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = run_env()
        args = [] if flag is None else [flag, str(port)]
        if flag is None:
            env[variable] = str(port)

        refused = subprocess.run(
            [sys.executable, "scripts/run_local.py", "--run-dir", str(tmp_path / "run"), *args],
            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60,
        )

    assert refused.returncode != 0
    assert f"port {port}" in refused.stderr, refused.stderr
    assert variable in refused.stderr, refused.stderr
    assert flag is None or flag in refused.stderr
    assert "started" not in refused.stdout, refused.stdout


# -- stopping ----------------------------------------------------------------------------------


def test_sigterm_to_make_stops_every_child_in_order_within_10_s(tmp_path: Path) -> None:
    run = LocalRun(tmp_path / "run", run_env())
    try:
        run.wait_until_running()
        children, script, ports = run.started(), run.script_pid(), ports_of(run)

        os.kill(run.make.pid, signal.SIGTERM)
        run.make.wait(timeout=STOP_SECONDS)

        assert_stopped_in_order_leaving_nothing(run, children, script, ports)
    finally:
        run.stop()


def test_sighup_from_a_closed_terminal_stops_every_child_in_order_within_10_s(
    tmp_path: Path,
) -> None:
    run = LocalRun(tmp_path / "run", run_env())
    try:
        run.wait_until_running()
        children, script, ports = run.started(), run.script_pid(), ports_of(run)

        # A hang-up reaches the terminal's foreground process group: make and the script.
        os.killpg(run.make.pid, signal.SIGHUP)
        run.make.wait(timeout=STOP_SECONDS)

        assert_stopped_in_order_leaving_nothing(run, children, script, ports)
    finally:
        run.stop()


def test_events_that_reached_the_collector_just_before_ctrl_c_are_in_the_stream(
    tmp_path: Path,
) -> None:
    run = LocalRun(tmp_path / "run", run_env())
    try:
        run.wait_until_running()
        batch = {"tasks": [{"name": "demo.test_task", "kwargs": {"message": str(n)}}
                           for n in range(200)]}
        accepted = requests.post(f"{run.api_url}/api/v1/tasks/batch", json=batch,
                                 headers=auth(run), timeout=10)
        assert accepted.status_code == 202, accepted.text
        # Accepted means its task-sent event was published to the collector's channel.
        sent_ids = {task["id"] for task in accepted.json()["tasks"]}

        os.killpg(run.make.pid, signal.SIGINT)
        run.make.wait(timeout=STOP_SECONDS)
    finally:
        run.stop()

    # The run's own Redis, brought back from its append-only file.
    store = RedisServer(run.run_dir / "redis", appendonly=True)
    store.start()
    try:
        stored = [decode_stored(fields[b"e"])
                  for _, fields in store.client().xrange(Keys().events)]
    finally:
        store.stop()
    stored_sent = {event.uuid for event in stored if event.type == "task-sent"}
    missing = sent_ids - stored_sent
    assert not missing, f"{len(missing)} of {len(sent_ids)} task-sent events lost"
    assert re.search(r"collector stopped: \d+ events applied",
                     (run.run_dir / "logs" / "collector.log").read_text())

