"""`make run` is the newcomer's first command: it must bring the whole system up and show it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from scripts.run_local import DEMO_TASKS
from tests.services import REPO_ROOT, RedisServer, taskpulse_env


def test_make_run_brings_the_system_up_and_every_demo_task_finishes(
    clean_redis: RedisServer, tmp_path: Path
) -> None:
    env = taskpulse_env(clean_redis, tmp_path / "data")
    env["TASKPULSE_REDIS_URL"] = clean_redis.url(0)
    for variable in ("TASKPULSE_BROKER_URL", "TASKPULSE_RESULT_BACKEND"):
        env.pop(variable)

    finished = subprocess.run(
        [sys.executable, "scripts/run_local.py", "--exit-after-demo", "--run-dir", str(tmp_path)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=240,
    )

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
    # The web console's address and a one-click, one-time way in.
    assert re.search(r"console +http://127\.0\.0\.1:\d+/ui/", finished.stdout), finished.stdout
    assert re.search(r"http://127\.0\.0\.1:\d+/ui/login/\S+", finished.stdout), finished.stdout
