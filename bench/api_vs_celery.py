"""taskpulse's HTTP API vs raw Celery (enqueue) and vs raw Redis reads (queries), same run.

- enqueue: ``app.send_task`` in a loop (one process, one pooled producer, the API's own Celery
  settings) vs ``POST /api/v1/tasks`` one task per request and ``POST /api/v1/tasks/batch``.
  Compared per CPU-second of the process doing the sending (the API server's CPU, all threads),
  which is what "per core" means on a shared machine; wall-clock rates are printed too;
- queries: the store is filled with N finished tasks through the collector's real Lua
  (``bench/fill.py``), then ``GET /tasks/{id}``, a filtered and an unfiltered ``GET /tasks``
  page are timed sequentially (p50/p99) next to the same reads done directly with redis-py
  (the floor);
- stats: ``GET /api/v1/stats`` at 10k tasks and at N: it must not grow with N.

    .venv/bin/python bench/api_vs_celery.py                    # quick, ~1-2 min
    .venv/bin/python bench/api_vs_celery.py --tasks 1000000    # full (fill takes minutes, ~GBs)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import redis
from redis.asyncio import Redis as AsyncRedis

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness
from bench.fill import Filler
from bench.harness import Row, percentile, progress
from event_collector.keys import Keys
from event_collector.segments import INDEX_SCRIPT, range_args, script_head
from event_collector.task_ids import task_id_of
from tests.services import RedisServer, ServiceProcess, free_port, wait_until

QUICK = {"enqueue": 2000, "tasks": 20_000, "queries": 300}
FULL = {"enqueue": 20_000, "tasks": 1_000_000, "queries": 2000}
STATS_BASE_TASKS = 10_000
TASK = {"name": "demo.test_task", "kwargs": {"message": "bench"}}


# ---------------------------------------------------------------- processes


class Api:
    """``python -m producer_api`` against the bench's broker and store, with one operator token."""

    def __init__(self, broker: RedisServer, store: RedisServer, workdir: Path,
                 **settings: str) -> None:
        from producer_api.auth import TokenStore

        tokens = workdir / "tokens.json"
        _, self.token = TokenStore(tokens).create("bench", "operator")
        self.port = free_port()
        env = {
            **os.environ, "TASKPULSE_BROKER_URL": broker.url(0),
            "TASKPULSE_REDIS_URL": store.url(0), "TASKPULSE_API_HOST": "127.0.0.1",
            "TASKPULSE_API_PORT": str(self.port), "TASKPULSE_API_TOKENS_FILE": str(tokens),
            "PYTHONUNBUFFERED": "1", **settings,
        }
        self.proc = ServiceProcess([sys.executable, "-m", "producer_api"], env,
                                   workdir / "api.log")
        harness.ensure_ready(self.proc, lambda: wait_until(self._healthy, timeout=60,
                                                           what="producer_api /healthz"))

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def cpu(self) -> float:
        return harness.cpu_seconds(self.proc.process.pid)

    def _healthy(self) -> bool:
        import urllib.request

        if self.proc.process.poll() is not None:
            raise RuntimeError(f"producer_api exited:\n{self.proc.log()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        self.proc.stop()


def api_available() -> bool:
    return (harness.REPO_ROOT / "producer_api" / "__main__.py").exists()


# ---------------------------------------------------------------- enqueue


def raw_send_task(broker_url: str, count: int) -> dict:
    """The ceiling: Celery configured as the API configures it, sending in a tight loop."""
    from producer_api.catalog import load_catalog
    from producer_api.config import PACKAGED_CATALOG
    from producer_api.publisher import producer_app

    catalog = load_catalog(PACKAGED_CATALOG)
    app = producer_app(broker_url, catalog, timeout=2.0, pool_size=4)
    with app.producer_or_acquire() as producer:
        app.send_task(TASK["name"], kwargs=TASK["kwargs"], queue="default", producer=producer)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for _ in range(count):
            app.send_task(TASK["name"], kwargs=TASK["kwargs"], queue="default", priority=6,
                          producer=producer)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    app.close()
    return {"tasks": count, "wall_s": wall, "cpu_s": cpu, "per_s": count / wall,
            "per_cpu_s": count / cpu}


async def _post_all(api: Api, path: str, bodies: list[dict], concurrency: int) -> int:
    queue: asyncio.Queue[dict] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    failures = 0

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal failures
        while not queue.empty():
            body = queue.get_nowait()
            async with session.post(api.base + path, json=body, headers=api.headers) as resp:
                await resp.read()
                failures += resp.status != 202

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
    return failures


async def api_enqueue(api: Api, count: int, batch_size: int, concurrency: int) -> dict:
    if batch_size == 1:
        path, bodies = "/tasks", [TASK] * count
    else:
        path = "/tasks/batch"
        bodies = [{"tasks": [TASK] * batch_size} for _ in range(max(count // batch_size, 1))]
        count = len(bodies) * batch_size
    cpu0, wall0 = api.cpu(), time.perf_counter()
    failures = await _post_all(api, path, bodies, concurrency)
    cpu, wall = api.cpu() - cpu0, time.perf_counter() - wall0
    if failures:
        raise RuntimeError(f"{failures} enqueue requests failed; see {api.proc.log_path}")
    return {"tasks": count, "wall_s": wall, "cpu_s": cpu, "per_s": count / wall,
            "per_cpu_s": count / cpu if cpu else None, "batch_size": batch_size}


# ---------------------------------------------------------------- queries


async def _timed_gets(api: Api, paths: list[str]) -> list[float]:
    timings = []
    async with aiohttp.ClientSession(headers=api.headers) as session:
        for path in paths:
            started = time.perf_counter()
            async with session.get(api.base + path) as resp:
                await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"GET {path} -> {resp.status}")
            timings.append((time.perf_counter() - started) * 1000)
    return timings


async def _tasks_stored(api: Api) -> int:
    """What the API itself says is stored: proves the reads ran against the full store."""
    async with (
        aiohttp.ClientSession(headers=api.headers) as session,
        session.get(api.base + "/stats") as resp,
    ):
        return int((await resp.json())["tasks_stored"])


def _summary(timings: list[float]) -> dict:
    return {"n": len(timings), "p50_ms": percentile(timings, 50),
            "p99_ms": percentile(timings, 99)}


def raw_reads(store: redis.Redis, keys: Keys, ids: list[str], queries: int) -> dict:
    """The same data fetched with redis-py directly: what the API adds on top of Redis."""
    get_ms, list_ms, list_all_ms = [], [], []
    index_script = store.register_script(INDEX_SCRIPT)

    def newest(indexes: list[str]) -> list[list[bytes]]:
        """The newest 50 (member, score, ...) of each (one partition's) segmented index."""
        return index_script(keys=indexes, args=[*script_head(keys, "range"),
                                                *range_args("+inf", "-inf", 50)])

    for task_id in random.sample(ids, min(queries, len(ids))):
        started = time.perf_counter()
        pipe = store.pipeline(transaction=False)
        pipe.hgetall(keys.task(task_id))  # the timeline lives in the task hash
        pipe.zrange(keys.index_children(task_id), 0, 99)
        pipe.execute()
        get_ms.append((time.perf_counter() - started) * 1000)
    for _ in range(queries):
        started = time.perf_counter()
        page = newest([keys.index_name("demo.test_task")])[0][0::2]
        pipe = store.pipeline(transaction=False)
        for member in page:
            pipe.hgetall(keys.task(task_id_of(member)))
        pipe.execute()
        list_ms.append((time.perf_counter() - started) * 1000)
    for _ in range(queries):  # unfiltered: the newest 50 of the state indexes merged
        started = time.perf_counter()
        rows = sorted(
            ((float(flat[i + 1]), flat[i]) for flat in newest(list(keys.state_indexes))
             for i in range(0, len(flat), 2)),
            reverse=True,
        )[:50]
        pipe = store.pipeline(transaction=False)
        for _, member in rows:
            pipe.hgetall(keys.task(task_id_of(member)))
        pipe.execute()
        list_all_ms.append((time.perf_counter() - started) * 1000)
    return {"get": _summary(get_ms), "list": _summary(list_ms), "list_all": _summary(list_all_ms)}


async def api_reads(api: Api, ids: list[str], queries: int) -> dict:
    gets = [f"/tasks/{task_id}" for task_id in random.sample(ids, min(queries, len(ids)))]
    lists = ["/tasks?state=SUCCESS&name=demo.test_task&limit=50"] * queries
    lists_all = ["/tasks?limit=50"] * queries
    stats = ["/stats"] * queries
    return {
        "get": _summary(await _timed_gets(api, gets)),
        "list": _summary(await _timed_gets(api, lists)),
        "list_all": _summary(await _timed_gets(api, lists_all)),
        "stats": _summary(await _timed_gets(api, stats)),
    }




# ---------------------------------------------------------------- verdict


def rows_for(results: dict, n: int) -> list[Row]:
    rows = []
    raw = results["raw_send_task"]
    for key, label, target in (("single", "enqueue one/request", 0.7),
                               ("batch", "enqueue batch", 1.0)):
        side = results.get(f"api_{key}")
        ours = side and side["per_cpu_s"]
        passed = None if not ours else ours >= target * raw["per_cpu_s"]
        rows.append(Row(f"{label}: tasks per CPU-s", ours, raw["per_cpu_s"],
                        f">={target:.0%} of raw", passed))
        rows.append(Row(f"{label}: tasks/s wall", side and side["per_s"], raw["per_s"], ""))
    reads = results.get("reads", {}).get(str(n))
    floor = results.get("raw_reads", {}).get(str(n))
    if reads and floor:
        for key, label in (("get", "GET /tasks/{id}"), ("list", "GET /tasks filtered page"),
                           ("list_all", "GET /tasks unfiltered page")):
            rows.append(Row(f"{label} p50 ms @ {n:,}", reads[key]["p50_ms"],
                            floor[key]["p50_ms"], "", None, better="lower"))
            p99 = reads[key]["p99_ms"]
            rows.append(Row(f"{label} p99 ms @ {n:,}", p99, floor[key]["p99_ms"], "<5",
                            p99 < 5, better="lower"))
    base = results.get("reads", {}).get(str(STATS_BASE_TASKS))
    if reads and base:
        ours, small = reads["stats"]["p50_ms"], base["stats"]["p50_ms"]
        rows.append(Row(f"GET /stats p50 ms @ {n:,} (peer col = @ 10k)", ours, small,
                        "ratio ~1 (<1.5)", ours <= 1.5 * small, better="lower"))
    return rows


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--full", action="store_true", help="full sizes: " + str(FULL))
    parser.add_argument("--enqueue", type=int, help="tasks per enqueue phase")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=16, help="client connections")
    parser.add_argument("--tasks", type=int, help="tasks stored for the query phase (N)")
    parser.add_argument("--queries", type=int, help="timed requests per query kind")
    args = parser.parse_args(argv)
    for key, value in (FULL if args.full else QUICK).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results: dict = {"args": vars(args), "load_start": harness.load_note(), "fill": {},
                     "reads": {}, "raw_reads": {}}
    with tempfile.TemporaryDirectory(prefix="tp-bench-api-") as tmp:
        workdir = Path(tmp)
        broker = harness.start_redis(workdir, "broker")
        store = harness.start_redis(workdir, "store")
        try:
            progress(f"raw send_task x {args.enqueue:,} ({harness.load_note()})")
            results["raw_send_task"] = raw_send_task(broker.url(0), args.enqueue)
            if api_available():
                asyncio.run(_run_api(args, results, workdir, broker, store))
            else:
                results["api_missing"] = "producer_api/__main__.py not in the tree yet"
                progress("producer_api not available yet: raw Celery baseline only")
        finally:
            broker.stop()
            store.stop()
    results["load_end"] = harness.load_note()
    rows = rows_for(results, args.tasks)
    results["rows"] = harness.rows_json(rows)
    harness.print_table("API: taskpulse vs raw Celery send_task / raw redis-py reads", rows,
                        peer="raw")
    for size, fill in results["fill"].items():
        reads = results["reads"][size]
        print(f"fill to {int(size):,} tasks: {fill['tasks']:,} more in {fill['seconds']:.1f}s "
              f"({fill['events_per_s']:,.0f} events/s through EventStore.apply); /stats says "
              f"{reads['tasks_stored']:,} stored, Redis used_memory "
              f"{reads['store_used_memory'] / 2**20:,.0f} MiB")
    print(f"\n{results['load_start']} at start, {results['load_end']} at end")
    print(f"results: {harness.write_results('api_vs_celery', results)}")
    return 0


async def _run_api(args: argparse.Namespace, results: dict, workdir: Path,
                   broker: RedisServer, store: RedisServer) -> None:
    api = Api(broker, store, workdir)
    writer = AsyncRedis.from_url(store.url(0))
    try:
        progress(f"API single enqueue x {args.enqueue:,}")
        results["api_single"] = await api_enqueue(api, args.enqueue, 1, args.concurrency)
        progress(f"API batch enqueue x {args.enqueue:,} ({args.batch_size}/request)")
        results["api_batch"] = await api_enqueue(api, args.enqueue, args.batch_size,
                                                 max(args.concurrency // 4, 1))
        broker.client().flushall()  # the queued messages are not part of the query phase
        store.client().flushall()
        filler = Filler(writer, Keys(), args.tasks, span_hours=24.0)
        for size in sorted({min(STATS_BASE_TASKS, args.tasks), args.tasks}):
            progress(f"filling the store to {size:,} tasks")
            report = await filler.fill(size - filler.tasks, label="fill")
            results["fill"][str(size)] = {"tasks": report.tasks, "seconds": report.seconds,
                                          "events_per_s": report.events_per_s}
            progress(f"timing reads at {size:,} tasks ({harness.load_note()})")
            reads = await api_reads(api, filler.task_ids, args.queries)
            reads["store_used_memory"] = harness.used_memory(store.client())
            reads["tasks_stored"] = await _tasks_stored(api)
            results["reads"][str(size)] = reads
            results["raw_reads"][str(size)] = raw_reads(store.client(), Keys(),
                                                        filler.task_ids, args.queries)
    finally:
        await writer.aclose()
        api.stop()


if __name__ == "__main__":
    raise SystemExit(main())
