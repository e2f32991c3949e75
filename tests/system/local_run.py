"""`make run` as a test drives it: started through make, watched through what it prints."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from tests.services import REPO_ROOT, free_port, processes_in_group, wait_until

STARTED = re.compile(r"\[taskpulse\] (?:re)?started (\S+)\s+pid (\d+)")


def run_env(**extra: str) -> dict[str, str]:
    """No TASKPULSE_* from the caller's environment, explicit free ports (a developer's own
    `make run` on the defaults is left alone) and fast collector flushing."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKPULSE_")}
    env.update({
        "TASKPULSE_API_PORT": str(free_port()),
        "TASKPULSE_METRICS_PORT": str(free_port()),
        "TASKPULSE_SMTP_PORT": str(free_port()),
        **extra,
    })
    return env


def make_run_argv(run_dir: Path, *args: str) -> list[str]:
    """``make run`` for this interpreter's venv, without reinstalling it (``-o`` the stamp)."""
    arguments = " ".join(["--run-dir", str(run_dir), *args])
    return ["make", "-s", "-o", ".venv/.installed", "run",
            f"BIN={Path(sys.executable).absolute().parent}", f"ARGS={arguments}"]


class LocalRun:
    """``make run`` in its own session (as in a terminal of its own); output in a file."""

    def __init__(self, run_dir: Path, env: dict[str, str]) -> None:
        self.run_dir = run_dir
        self.env = env
        self.out_path = run_dir.parent / f"{run_dir.name}.out"
        with self.out_path.open("wb") as out:
            self.make = subprocess.Popen(
                make_run_argv(run_dir), cwd=REPO_ROOT, env=env, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
            )

    def output(self) -> str:
        return self.out_path.read_text(errors="replace")

    def wait_for(self, needle: str, timeout: float = 90) -> None:
        def seen() -> bool:
            if self.make.poll() is not None:
                raise RuntimeError(f"make run exited early:\n{self.output()[-4000:]}")
            return needle in self.output()

        wait_until(seen, timeout=timeout, interval=0.2, what=f"{needle!r} from make run")

    def wait_until_running(self) -> None:
        self.wait_for("[taskpulse] running;")

    def started(self) -> dict[str, int]:
        """The latest pid of every child, by label (a restarted one replaces its first)."""
        return {label: int(pid) for label, pid in STARTED.findall(self.output())}

    def printed(self, pattern: str) -> str:
        found = re.search(pattern, self.output())
        assert found is not None, f"{pattern!r} not in:\n{self.output()[-4000:]}"
        return found.group(1)

    @property
    def api_url(self) -> str:
        return self.printed(r"export TASKPULSE_API_URL=(\S+)")

    @property
    def token(self) -> str:
        return self.printed(r"TASKPULSE_TOKEN=(\S+)")

    def script_pid(self) -> int:
        """run_local.py's pid: make's child (``exec`` in the recipe)."""
        children = Path(f"/proc/{self.make.pid}/task/{self.make.pid}/children").read_text()
        return int(children.split()[0])

    def leftovers(self, pids: dict[str, int]) -> dict[str, list[int]]:
        """Processes still alive in the process group of each child (a worker's pool too)."""
        return {label: alive for label, pid in pids.items() if (alive := processes_in_group(pid))}

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        """Teardown: stop the run if a test left it running."""
        if self.make.poll() is None:
            os.kill(self.make.pid, sig)
            try:
                self.make.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.make.pid, signal.SIGKILL)
                self.make.wait()
