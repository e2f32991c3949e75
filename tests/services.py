"""Real services for tests: a private ``redis-server`` and Celery worker / beat subprocesses.

Nothing here is mocked. Each server listens on a free loopback port with its own temp dir, so the
suite runs isolated from whatever else is on the machine.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import redis

REPO_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate, timeout: float = 20.0, interval: float = 0.05, what: str = "condition"):
    """Poll ``predicate`` until truthy; fail with ``what`` in the message on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def port_accepts(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something listens on ``host:port``."""
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


def processes_in_group(pgid: int) -> list[int]:
    """Running processes whose process group is ``pgid`` (Linux /proc). Zombies do not count:
    they are dead, waiting for a parent (possibly init) to collect their exit status."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _ppid, group = stat.read_text().rpartition(")")[2].split()[:3]
        except OSError:  # gone while we looked
            continue
        if int(group) == pgid and state != "Z":
            found.append(int(stat.parent.name))
    return found


class RedisServer:
    """A ``redis-server`` process on a free port, persisting nothing outside its temp dir
    (``appendonly``: keep an append-only file there, to read a server's data after it stopped)."""

    def __init__(self, workdir: Path, appendonly: bool = False, *, port: int | None = None,
                 extra_args: Sequence[str] = ()) -> None:
        self.workdir = workdir
        self.appendonly = appendonly
        self.port = port or free_port()
        # e.g. cluster or replication settings (tests/cluster.py)
        self.extra_args = tuple(extra_args)
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis.from_url(self.url(db))

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.process = subprocess.Popen(
            [
                binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self.workdir),
                "--save", "",
                "--appendonly", "yes" if self.appendonly else "no",
                "--logfile", str(self.workdir / "redis.log"),
                *self.extra_args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self._answers_ping, timeout=10, what=f"redis-server on port {self.port}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def kill(self) -> None:
        """Die as in a crash (SIGKILL): no shutdown, clients see their connections reset."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def restart(self, downtime: float = 0.0) -> None:
        self.stop()
        time.sleep(downtime)
        self.start()

    def _answers_ping(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.ConnectionError:
            return False


class ServiceProcess:
    """A subprocess whose output goes to a log file the test can read and wait on."""

    def __init__(self, argv: list[str], env: Mapping[str, str], log_path: Path) -> None:
        self.argv = argv
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            argv,
            cwd=REPO_ROOT,
            env=dict(env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, needle: str, timeout: float = 30.0) -> None:
        def seen() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.argv[:3]} exited early:\n{self.log()[-4000:]}")
            return needle in self.log()

        wait_until(seen, timeout=timeout, what=f"{needle!r} in {self.log_path.name}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self._log.close()
        return self.process.returncode


def taskpulse_env(redis_server: RedisServer, data_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for any taskpulse process under test: broker, result backend and store."""
    env = {
        **os.environ,
        "TASKPULSE_BROKER_URL": redis_server.url(0),
        "TASKPULSE_RESULT_BACKEND": redis_server.url(0),
        "TASKPULSE_REDIS_URL": redis_server.url(1),
        "TASKPULSE_DATA_DIR": str(data_dir),
        # the collector's disk spool: per test, never the checkout's .run/spool
        "TASKPULSE_SPOOL_DIR": str(data_dir / "spool"),
        "PYTHONUNBUFFERED": "1",
    }
    env.update(extra)
    return env


def celery_worker(
    env: Mapping[str, str],
    log_path: Path,
    queues: str = "default,finance,reports,email",
    concurrency: int = 2,
    pool: str = "prefork",
    hostname: str = "w1@%h",
    extra_args: Sequence[str] = (),
) -> ServiceProcess:
    """Start ``celery -A worker worker -E`` and wait until it is ready to consume."""
    argv = [
        sys.executable, "-m", "celery", "-A", "worker", "worker", "-E",
        "-Q", queues, "-c", str(concurrency), "-P", pool, "-n", hostname,
        "--without-mingle", "--without-gossip", "-l", "INFO", *extra_args,
    ]
    proc = ServiceProcess(argv, env, log_path)
    proc.wait_for_log(" ready.", timeout=60)
    return proc


@contextlib.contextmanager
def running(proc: ServiceProcess) -> Iterator[ServiceProcess]:
    try:
        yield proc
    finally:
        proc.stop()


RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672//"


def rabbitmq_running() -> bool:
    """Whether the machine's RabbitMQ answers; tests marked ``rabbitmq`` skip when it does not."""
    try:
        with socket.create_connection(("127.0.0.1", 5672), timeout=1):
            return True
    except OSError:
        return False


def collector_env(env: Mapping[str, str], **extra: str) -> dict[str, str]:
    """``env`` plus a free metrics port and fast flushing, for one collector subprocess."""
    return {
        **env,
        "TASKPULSE_METRICS_HOST": "127.0.0.1",
        "TASKPULSE_METRICS_PORT": str(free_port()),
        "TASKPULSE_BATCH_INTERVAL_MS": "20",
        "TASKPULSE_STATS_INTERVAL_SECONDS": "1",
        "TASKPULSE_RECONNECT_MAX_SECONDS": "1",
        **extra,
    }


def start_collector(
    env: Mapping[str, str], log_path: Path, *args: str, ready: str = "subscribed to"
) -> ServiceProcess:
    """``python -m event_collector`` as a subprocess, waited on until it is subscribed."""
    proc = ServiceProcess([sys.executable, "-m", "event_collector", *args], env, log_path)
    if ready:
        proc.wait_for_log(ready, timeout=30)
    return proc


def start_api(env: Mapping[str, str], log_path: Path,
              port: int | None = None) -> tuple[ServiceProcess, str]:
    """``python -m producer_api`` on ``port`` (default: a free loopback port); returns it and its
    base URL."""
    port = port or free_port()
    api_env = {**env, "TASKPULSE_API_PORT": str(port), "TASKPULSE_API_HOST": "127.0.0.1"}
    proc = ServiceProcess([sys.executable, "-m", "producer_api"], api_env, log_path)
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if proc.process.poll() is not None:
            raise RuntimeError(f"API exited early:\n{proc.log()[-3000:]}")
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=1) as response:
                return response.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    wait_until(healthy, timeout=30, what="producer API /healthz")
    return proc, base
