"""Many live event streams vs the rest of the API: ``/stats`` latency and ``/readyz`` with N
Server-Sent Event streams open, next to the same figures with none open, in the same run.

- baseline: ``--requests`` sequential ``GET /api/v1/stats`` (and a fifth as many ``GET /readyz``)
  with no stream open, while ``--rate`` events/s are written into the store through the
  collector's ``EventStore.apply``;
- loaded: the same, with ``--streams`` (300) ``GET /api/v1/events`` streams open and live;
- delivered: every stream must receive every event written while it was open.

The streams and the writer run in a child process, so the timed client shares no event loop (nor
GIL) with them; all of them share the machine's cores with the API and Redis.

``--peer-root DIR`` measures another checkout's API the same way (e.g. ``/work/main`` before the
shared feed, where each stream held a pooled Redis connection) as a further table.

    .venv/bin/python bench/sse_fanout.py                      # 300 streams, ~1 min
    .venv/bin/python bench/sse_fanout.py --streams 20 --requests 50
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from multiprocessing.connection import Connection
from pathlib import Path

import aiohttp
import redis.asyncio as aioredis

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness
from bench.harness import Row, percentile, progress
from event_collector.keys import Keys
from event_collector.store import EventStore
from producer_api.auth import TokenStore
from tests.events import sent_and_succeeded
from tests.services import REPO_ROOT, RedisServer, free_port, wait_until

STATS_P99_TARGET_MS = 50.0


class Api:
    """``python -m producer_api`` from ``root`` (this checkout or a peer's), on ``server``."""

    def __init__(self, root: Path, server: RedisServer, workdir: Path) -> None:
        tokens = workdir / "tokens.json"
        _, self.token = TokenStore(tokens).create("bench", "viewer")
        self.port = free_port()
        env = {
            **os.environ, "TASKPULSE_BROKER_URL": server.url(0),
            "TASKPULSE_REDIS_URL": server.url(1), "TASKPULSE_API_HOST": "127.0.0.1",
            "TASKPULSE_API_PORT": str(self.port), "TASKPULSE_API_TOKENS_FILE": str(tokens),
            "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(root),
        }
        self.log_path = workdir / "api.log"
        with self.log_path.open("wb") as log:  # cwd = root: `-m producer_api` is root's
            self.proc = subprocess.Popen([sys.executable, "-m", "producer_api"], cwd=root,
                                         env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until(self._healthy, timeout=60, what=f"producer_api from {root}")
        except BaseException:
            self.stop()
            raise

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def _healthy(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"producer_api exited:\n{self.log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(self.base + "/healthz", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def timed_requests(session: aiohttp.ClientSession, api: Api, requests: int) -> dict:
    """Sequential /stats (and /readyz) requests: latency and how many answered 200."""
    stats_ms, stats_failed = [], 0
    for _ in range(requests):
        started = time.perf_counter()
        async with session.get(api.base + "/api/v1/stats", headers=api.headers) as resp:
            await resp.read()
        stats_ms.append((time.perf_counter() - started) * 1000)
        stats_failed += resp.status != 200
    ready = []
    for _ in range(max(requests // 5, 1)):
        async with session.get(api.base + "/readyz") as resp:
            ready.append(resp.status == 200 and (await resp.json())["redis"])
    return {"requests": requests, "p50_ms": percentile(stats_ms, 50),
            "p99_ms": percentile(stats_ms, 99), "max_ms": max(stats_ms),
            "failed": stats_failed, "ready_pct": 100.0 * sum(ready) / len(ready)}


class Streams:
    """``count`` SSE streams held open, each counting the events it receives."""

    def __init__(self, base: str, token: str, count: int) -> None:
        self.url, self.count = base + "/api/v1/events", count
        self.headers = {"Authorization": f"Bearer {token}"}
        self.received = [0] * count
        self.refused = 0
        self._connected = 0
        self._all_connected = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def open(self, session: aiohttp.ClientSession) -> None:
        self._tasks = [asyncio.create_task(self._hold(session, i)) for i in range(self.count)]
        await asyncio.wait_for(self._all_connected.wait(), timeout=120)

    async def _hold(self, session: aiohttp.ClientSession, index: int) -> None:
        try:
            async with session.get(self.url, headers=self.headers) as resp:
                if resp.status != 200:
                    self.refused += 1
                    self._arrived()
                    return
                tail = b""
                first = True
                while chunk := await resp.content.readany():
                    if first:
                        first = False
                        self._arrived()
                    text = tail + chunk
                    self.received[index] += text.count(b"\nid: ") + text.startswith(b"id: ")
                    tail = text[-5:]  # an "\nid: " split across two chunks
        except aiohttp.ClientError:
            pass

    def _arrived(self) -> None:
        self._connected += 1
        if self._connected == self.count:
            self._all_connected.set()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def write_events(store: EventStore, rate: float, stop: asyncio.Event) -> int:
    """Tasks' four events at ``rate`` events/s, applied every 50 ms until ``stop``."""
    written, tick, task = 0, 0.05, 0
    per_tick = max(1, round(rate * tick / 4))
    next_at = time.perf_counter()
    while not stop.is_set():
        now = time.time()
        batch = [e for i in range(per_tick) for e in sent_and_succeeded(f"bench-{task + i}", now)]
        task += per_tick
        await store.apply(batch)
        written += len(batch)
        next_at += tick
        await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
    return written


def load(base: str, token: str, store_url: str, streams: int, rate: float,
         conn: Connection) -> None:
    """In a child process, so the timed client shares no event loop with the load: hold
    ``streams`` streams open and write ``rate`` events/s until told to stop; report counts."""

    async def run() -> dict:
        client = aioredis.Redis.from_url(store_url)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                         timeout=aiohttp.ClientTimeout(total=None)) as session:
            held = Streams(base, token, streams)
            if streams:
                await held.open(session)
            stop = asyncio.Event()
            writer = asyncio.create_task(write_events(EventStore(client, Keys()), rate, stop))
            conn.send("ready")
            await asyncio.get_running_loop().run_in_executor(None, conn.recv)
            stop.set()
            written = await writer
            await asyncio.sleep(2)  # the last batch reaches every stream
            await held.close()
        await client.aclose()
        return {"refused": held.refused, "written": written, "deliveries": sum(held.received)}

    conn.send(asyncio.run(run()))


async def _phase(api: Api, server: RedisServer, streams: int, args: argparse.Namespace) -> dict:
    spawn = multiprocessing.get_context("spawn")  # a fresh interpreter: no inherited event loop
    parent, child = spawn.Pipe()
    loader = spawn.Process(
        target=load, args=(api.base, api.token, server.url(1), streams, args.rate, child),
    )
    loader.start()
    try:
        while not parent.poll(1):
            if not loader.is_alive():
                raise RuntimeError("the load process died before it was ready")
        assert parent.recv() == "ready"
        cpu = harness.cpu_seconds(api.proc.pid)  # the load alone: no timed requests yet
        await asyncio.sleep(args.cpu_window)
        cpu = harness.cpu_seconds(api.proc.pid) - cpu
        connector = aiohttp.TCPConnector(limit=1)
        async with aiohttp.ClientSession(connector=connector) as session:
            started = time.perf_counter()
            timed = await timed_requests(session, api, args.requests)
            seconds = time.perf_counter() - started
        parent.send("stop")
        counts = parent.recv()
    finally:
        loader.join(timeout=60)
        if loader.is_alive():
            loader.kill()
    live = streams - counts["refused"]
    expected = counts["written"] * live
    return {**timed, "seconds": seconds, "api_cpu_pct": 100.0 * cpu / args.cpu_window,
            "streams": streams, **counts,
            "delivered_pct": 100.0 * counts["deliveries"] / expected if expected else None}


async def measure(root: Path, args: argparse.Namespace, workdir: Path) -> dict:
    server = harness.start_redis(workdir, "redis")
    api = Api(root, server, workdir)
    try:
        progress(f"{root}: {args.requests} requests, no stream open, {args.rate:g} events/s "
                 f"written ({harness.load_note()})")
        baseline = await _phase(api, server, 0, args)
        progress(f"{root}: {args.requests} requests, {args.streams} streams open, "
                 f"{args.rate:g} events/s written ({harness.load_note()})")
        loaded = await _phase(api, server, args.streams, args)
        return {"root": str(root), "baseline": baseline, "loaded": loaded}
    finally:
        api.stop()
        server.stop()


def rows_for(result: dict, streams: int) -> list[Row]:
    base, loaded = result["baseline"], result["loaded"]
    p99 = loaded["p99_ms"]
    delivered = loaded["delivered_pct"] or 0.0
    return [
        Row("GET /stats p50 ms", loaded["p50_ms"], base["p50_ms"], better="lower"),
        Row("GET /stats p99 ms", p99, base["p99_ms"], f"<{STATS_P99_TARGET_MS:g}",
            p99 < STATS_P99_TARGET_MS, better="lower"),
        Row("GET /stats answers not 200", loaded["failed"], base["failed"], "0",
            loaded["failed"] == 0, better="lower"),
        Row("GET /readyz ready (redis true) %", loaded["ready_pct"], base["ready_pct"], "100",
            loaded["ready_pct"] == 100.0),
        Row("API CPU % of a core, load alone", loaded["api_cpu_pct"], base["api_cpu_pct"],
            better="lower"),
        Row(f"streams refused of {streams}", loaded["refused"], None, "0",
            loaded["refused"] == 0, better="lower"),
        Row("events delivered to every stream %", delivered, None, "100", delivered >= 99.9),
    ]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--streams", type=int, default=300, help="SSE streams held open")
    parser.add_argument("--requests", type=int, default=500, help="timed /stats per phase")
    parser.add_argument("--rate", type=float, default=200.0, help="events/s written meanwhile")
    parser.add_argument("--cpu-window", type=float, default=5.0,
                        help="seconds the API's CPU is measured under the load alone")
    parser.add_argument("--peer-root", type=Path,
                        help="another checkout whose API to measure the same way")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results: dict = {"args": {k: str(v) for k, v in vars(args).items()},
                     "load_start": harness.load_note()}
    roots = [("taskpulse", REPO_ROOT)]
    if args.peer_root:
        roots.append((f"peer ({args.peer_root})", args.peer_root.resolve()))
    for label, root in roots:
        with tempfile.TemporaryDirectory(prefix="tp-bench-sse-") as tmp:
            results[label] = asyncio.run(measure(root, args, Path(tmp)))
    results["load_end"] = harness.load_note()
    for label, _ in roots:
        result = results[label]
        rows = rows_for(result, args.streams)
        result["rows"] = harness.rows_json(rows)
        harness.print_table(
            f"SSE fan-out, {label}: {args.streams} open streams vs none", rows,
            ours=f"{args.streams} streams", peer="no streams",
        )
        loaded = result["loaded"]
        print(f"with streams open: {loaded['written']:,} events written in "
              f"{loaded['seconds']:.1f}s, {loaded['deliveries']:,} deliveries to "
              f"{args.streams - loaded['refused']} streams")
    print(f"\n{results['load_start']} at start, {results['load_end']} at end")
    print(f"results: {harness.write_results('sse_fanout', results)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
