"""What every bench script shares: processes under test, measuring them, printing the verdict."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, TypeVar

import redis

from tests.services import REPO_ROOT, RedisServer, ServiceProcess, free_port, wait_until

BENCH_DIR = REPO_ROOT / "bench"
RESULTS_DIR = BENCH_DIR / "results"
FLOWER_VENV = BENCH_DIR / ".venv-flower"
FLOWER_VERSION = "2.2.0"


# ---------------------------------------------------------------- measuring processes


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and all its descendants, in MiB (VmRSS from /proc)."""
    total_kb = 0
    for proc in _process_tree(pid):
        try:
            for line in Path(f"/proc/{proc}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
        except FileNotFoundError:
            continue
    return total_kb / 1024


def _process_tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                todo.extend(int(c) for c in (task / "children").read_text().split())
            except FileNotFoundError:
                continue
    return pids


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` (all its threads) and its descendants so far."""
    ticks = 0
    for proc in _process_tree(pid):
        try:
            fields = Path(f"/proc/{proc}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return ticks / os.sysconf("SC_CLK_TCK")


def load_note() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


# ---------------------------------------------------------------- waiting on a consumer


@dataclass
class Drain:
    """Where a consumer's processed-event count ended up, and when it last moved."""

    final: int
    seconds: float  # from the start mark until the last observed progress


def wait_for_count(
    count: Callable[[], int],
    target: int,
    started: float,
    idle_seconds: float = 5.0,
    max_seconds: float = 600.0,
    label: str = "",
    interval: float = 0.1,
    on_poll: Callable[[], object] | None = None,
) -> Drain:
    """Poll ``count`` until it reaches ``target`` or stops moving for ``idle_seconds``;
    ``on_poll`` runs at every poll (e.g. to sample memory while the backlog drains)."""
    last, last_change = -1, time.perf_counter()
    drain = Drain(final=0, seconds=0.0)
    next_progress = time.perf_counter() + 5
    while True:
        now = time.perf_counter()
        value = count()
        if on_poll is not None:
            on_poll()
        if value != last:
            last, last_change = value, now
            drain.final, drain.seconds = value, now - started
        if value >= target or now - last_change > idle_seconds or now - started > max_seconds:
            return drain
        if label and now > next_progress:
            progress(f"{label}: {value:,}/{target:,} events processed")
            next_progress = now + 5
        time.sleep(interval)


def progress(message: str) -> None:
    print(f"  [{datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def ensure_ready(proc: ServiceProcess, ready: Callable[[], object]) -> None:
    """Run ``ready``; if it raises, stop ``proc`` first so a failed start leaves no orphan."""
    try:
        ready()
    except BaseException:
        proc.stop()
        raise


# ---------------------------------------------------------------- Flower, in its own venv


def flower_available() -> bool:
    return (FLOWER_VENV / "bin" / "celery").exists()


def ensure_flower_venv() -> None:
    """Create ``bench/.venv-flower`` with Flower and *our* celery/kombu versions, once."""
    if flower_available():
        return
    import celery
    import kombu

    progress(f"creating {FLOWER_VENV} (flower=={FLOWER_VERSION}, celery=={celery.__version__})")
    subprocess.run([sys.executable, "-m", "venv", str(FLOWER_VENV)], check=True)
    subprocess.run(
        [str(FLOWER_VENV / "bin" / "pip"), "install", "-q", f"flower=={FLOWER_VERSION}",
         f"celery=={celery.__version__}", f"kombu=={kombu.__version__}", "redis[hiredis]",
         # kombu's Redis transport imports it without declaring it
         "packaging"],
        check=True,
    )


class Flower:
    """``celery flower`` against a broker; it folds events into its in-memory State."""

    def __init__(self, broker_url: str, log_path: Path, max_tasks: int) -> None:
        self.port = free_port()
        env = {**os.environ, "FLOWER_UNAUTHENTICATED_API": "true", "PYTHONUNBUFFERED": "1"}
        argv = [
            str(FLOWER_VENV / "bin" / "celery"), f"--broker={broker_url}", "flower",
            f"--port={self.port}", "--address=127.0.0.1", f"--max_tasks={max_tasks}",
        ]
        self.proc = ServiceProcess(argv, env, log_path)
        ensure_ready(self.proc, lambda: wait_until(self._healthy, timeout=60,
                                                   what="flower /healthcheck"))

    @property
    def pid(self) -> int:
        return self.proc.process.pid

    def _get(self, path: str) -> bytes:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=30) as resp:
            return resp.read()

    def _healthy(self) -> bool:
        if self.proc.process.poll() is not None:
            raise RuntimeError(f"flower exited:\n{self.proc.log()[-3000:]}")
        try:
            return self._get("/healthcheck") == b"OK"
        except OSError:
            return False

    def task_events(self, kind: str = "task-") -> int:
        """Task events (whose type starts with ``kind``) folded into Flower's state (its
        ``flower_events_total`` counter)."""
        total = 0.0
        for line in self._get("/metrics").decode().splitlines():
            if line.startswith("flower_events_total{") and f'type="{kind}' in line:
                total += float(line.rsplit(" ", 1)[1])
        return int(total)

    def task_info(self, task_id: str) -> dict:
        return json.loads(self._get(f"/api/task/info/{task_id}"))

    def stop(self) -> None:
        self.proc.stop()


# ---------------------------------------------------------------- private Redis servers


def start_redis(workdir: Path, name: str) -> RedisServer:
    path = workdir / name
    path.mkdir(parents=True, exist_ok=True)
    server = RedisServer(path)
    server.start()
    return server


class Stoppable(Protocol):
    def stop(self) -> object: ...


StoppableT = TypeVar("StoppableT", bound=Stoppable)


@contextlib.contextmanager
def consumer_on_private_broker(
    workdir: Path, name: str, make: Callable[[RedisServer], StoppableT]
) -> Iterator[tuple[RedisServer, StoppableT]]:
    """A fresh broker redis-server and ``make(broker)``'s consumer on it; whatever started is
    stopped on exit, even when a phase fails half-way."""
    with contextlib.ExitStack() as stack:
        broker = start_redis(workdir, name)
        stack.callback(broker.stop)
        consumer = make(broker)
        stack.callback(consumer.stop)
        yield broker, consumer


# ---------------------------------------------------------------- reporting


@dataclass
class Row:
    metric: str
    ours: float | None
    peer: float | None
    target: str = ""
    passed: bool | None = None
    unit: str = ""
    # "higher" when more is better; ratio is always ours / peer.
    better: str = "higher"

    @property
    def ratio(self) -> float | None:
        if self.ours is None or not self.peer:
            return None
        return self.ours / self.peer


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}{unit}"
    return f"{value:,.2f}{unit}"


def print_table(title: str, rows: list[Row], ours: str = "taskpulse", peer: str = "peer") -> None:
    header = ("metric", ours, peer, "ratio", "target", "pass")
    lines = [header]
    for row in rows:
        ratio = row.ratio
        verdict = "n/a" if row.passed is None else ("PASS" if row.passed else "FAIL")
        lines.append((
            row.metric, _fmt(row.ours, row.unit), _fmt(row.peer, row.unit),
            "n/a" if ratio is None else f"{ratio:.2f}x", row.target, verdict,
        ))
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    print(f"\n== {title} ==")
    for index, line in enumerate(lines):
        print(" | ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)))
        if index == 0:
            print("-+-".join("-" * width for width in widths))


def write_results(name: str, payload: dict) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"{name}-{stamp}.json"
    path.write_text(json.dumps(payload, indent=2, default=str))
    return path


def rows_json(rows: list[Row]) -> list[dict]:
    return [{**row.__dict__, "ratio": row.ratio} for row in rows]
