"""`make run` is the newcomer's first command: it must bring the whole system up and show it.

One run (``--exit-after-demo``) is watched by every test here: started with a lock file left
behind by a dead run, with the default API port taken, as a newcomer's machine may well be, and
with the JSON tokens file an older run left (its own ``make-run`` admin token and one other).
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from producer_api.auth import TokenStore, hash_token
from scripts.run_local import DEMO_TASKS
from tests.services import REPO_ROOT, RedisServer, free_port, taskpulse_env

DEFAULT_API_PORT = 8080
# Tokens in the JSON file of a run from before the store was SQLite.
EARLIER_RUN_TOKEN, CI_TOKEN = "tp_earlier-make-run", "tp_kept-for-ci"
EARLIER_TOKENS = {"tokens": [
    {"id": "0ld0ld00", "name": "make-run", "role": "admin", "sha256": hash_token(EARLIER_RUN_TOKEN),
     "created": 1767225600.0},
    {"id": "c1c1c1c1", "name": "ci", "role": "operator", "sha256": hash_token(CI_TOKEN),
     "created": 1767225600.0},
]}  # fmt: skip


@dataclass(frozen=True)
class DemoRun:
    finished: subprocess.CompletedProcess[str]
    dead_pid: int
    run_dir: Path

    @property
    def out(self) -> str:
        return self.finished.stdout


@contextlib.contextmanager
def port_taken(port: int) -> Iterator[None]:
    """``port`` busy for the duration (already busy is as good)."""
    with socket.socket() as sock:
        # Past connections in TIME_WAIT must not stop us: they do not make the port busy.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        with contextlib.suppress(OSError):
            sock.bind(("127.0.0.1", port))
            sock.listen()
        yield


@pytest.fixture(scope="module")
def demo_run(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    redis_server.client().flushall()
    run_dir = tmp_path_factory.mktemp("demo-run")
    env = taskpulse_env(redis_server, run_dir / "data")
    env["TASKPULSE_REDIS_URL"] = redis_server.url(0)
    for variable in ("TASKPULSE_BROKER_URL", "TASKPULSE_RESULT_BACKEND", "TASKPULSE_API_PORT"):
        env.pop(variable, None)
    env.update(TASKPULSE_METRICS_PORT=str(free_port()), TASKPULSE_SMTP_PORT=str(free_port()))
    dead = subprocess.Popen(["true"])
    dead.wait()
    (run_dir / "run.lock").write_text(f"{dead.pid}\n")
    (run_dir / "tokens.json").write_text(json.dumps(EARLIER_TOKENS))

    with port_taken(DEFAULT_API_PORT):
        finished = subprocess.run(
            [sys.executable, "scripts/run_local.py", "--exit-after-demo", "--run-dir",
             str(run_dir)],
            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=240,
        )
    return DemoRun(finished, dead.pid, run_dir)


def test_make_run_brings_the_system_up_and_every_demo_task_finishes(demo_run: DemoRun) -> None:
    finished = demo_run.finished
    assert finished.returncode == 0, finished.stdout[-4000:] + finished.stderr[-4000:]
    assert "using Redis from TASKPULSE_REDIS_URL" in finished.stdout
    demo_lines = [line for line in finished.stdout.splitlines() if line.startswith("    demo.")]
    assert any(" SUCCESS " in line for line in demo_lines), finished.stdout
    assert any(" FAILURE " in line for line in demo_lines), finished.stdout
    assert "UNKNOWN" not in finished.stdout
    # Beat runs too and may add its every-minute task: the 7 demo tasks are the floor.
    stored = re.search(r"stored: (\d+) tasks", finished.stdout)
    assert stored is not None, finished.stdout
    assert int(stored.group(1)) >= len(DEMO_TASKS)


def test_a_lock_left_by_a_dead_run_does_not_block_the_next(demo_run: DemoRun) -> None:
    assert demo_run.finished.returncode == 0, demo_run.finished.stderr[-4000:]
    assert f"pid {demo_run.dead_pid}" not in demo_run.finished.stderr


def test_a_busy_default_port_moves_and_the_printed_url_is_the_one_used(
    demo_run: DemoRun,
) -> None:
    moved = re.search(rf"default API port {DEFAULT_API_PORT} is busy; using (\d+)", demo_run.out)
    assert moved is not None, demo_run.out
    url = f"http://127.0.0.1:{moved.group(1)}"
    assert f"export TASKPULSE_API_URL={url} " in demo_run.out
    assert f"API          {url}/api/v1" in demo_run.out
    # The demo itself went through that URL, and finished.
    assert demo_run.finished.returncode == 0


def test_make_run_prints_the_lines_that_put_the_cli_on_the_path(demo_run: DemoRun) -> None:
    exports = [line.strip() for line in demo_run.out.splitlines()
               if line.strip().startswith("export ")]
    assert len(exports) == 2, demo_run.out
    token = re.search(r"admin token  (\S+)", demo_run.out)
    assert token is not None

    shell = subprocess.run(
        ["bash", "-ec", "\n".join([*exports, "command -v taskpulse",
                                    'echo "$TASKPULSE_API_URL $TASKPULSE_TOKEN"',
                                    "taskpulse --help > /dev/null"])],
        env={"PATH": "/usr/bin:/bin", "HOME": str(Path.home())},
        capture_output=True, text=True, timeout=60,
    )

    assert shell.returncode == 0, shell.stderr
    on_path, variables = shell.stdout.splitlines()
    assert Path(on_path) == Path(sys.executable).absolute().parent / "taskpulse"
    assert variables.split() == [f"http://127.0.0.1:{_api_port(demo_run.out)}", token.group(1)]


def _api_port(out: str) -> str:
    found = re.search(r"API          http://127\.0\.0\.1:(\d+)/api/v1", out)
    assert found is not None, out
    return found.group(1)


def test_make_run_prints_the_web_console_and_a_one_time_way_in(demo_run: DemoRun) -> None:
    port = _api_port(demo_run.out)
    assert re.search(rf"console +http://127\.0\.0\.1:{port}/ui/", demo_run.out), demo_run.out
    assert re.search(rf"http://127\.0\.0\.1:{port}/ui/login/\S+", demo_run.out), demo_run.out


def test_the_tokens_json_of_an_earlier_run_is_imported_into_tokens_db(demo_run: DemoRun) -> None:
    assert demo_run.finished.returncode == 0, demo_run.finished.stderr[-4000:]
    store = TokenStore(demo_run.run_dir / "tokens.db")
    kept = store.authenticate(CI_TOKEN)
    assert kept is not None
    assert (kept.name, kept.role) == ("ci", "operator")


def test_the_make_run_token_of_an_earlier_run_is_revoked_and_the_output_says_so(
    demo_run: DemoRun,
) -> None:
    store = TokenStore(demo_run.run_dir / "tokens.db")
    assert store.authenticate(EARLIER_RUN_TOKEN) is None
    assert re.search(r"revoked 1 admin token\(s\) named make-run of earlier runs \(0ld0ld00\): "
                     r"the token a previous `make run` printed no longer works", demo_run.out)
    token = re.search(r"admin token  (\S+)", demo_run.out)
    assert token is not None
    # The one make-run token left is the one this run printed.
    assert [e.name for e in store.list()] == ["ci", "make-run"]
    assert store.authenticate(token.group(1)) is not None


def test_the_collector_spools_in_the_run_dir(demo_run: DemoRun) -> None:
    # The collector opens its spool slot when it starts, spilling or not.
    slots = [p for p in (demo_run.run_dir / "spool").iterdir() if p.is_dir()]
    assert len(slots) == 1, slots
    assert (slots[0] / "lock").exists()
