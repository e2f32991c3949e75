"""Partitioned store vs one partition: what scale-out costs and what reads cost, in one run.

    .venv/bin/python bench/partitions.py                        # quick: 20k tasks folded, 100k read
    .venv/bin/python bench/partitions.py --fold-tasks 50000 --read-tasks 1000000

fold   ``--fold-tasks`` lifecycles (4 events each, ``bench/publisher.py``'s real wire format) are
       published on a private broker at ``--rate`` events/s into (ours) two collector processes
       sharing 8 partitions and (peer) one collector with one partition, each against its own
       store redis-server. Figure: task events folded (summed ``cnt:total`` of every partition)
       per CPU-second of the collectors + the store redis + the broker redis (``/proc``); also
       one collector with 8 partitions, to tell the partitions' cost from the second reader's.
reads  ``--read-tasks`` finished tasks are written through the real write path (``bench/fill.py``)
       into an 8-partition store (ours) and a 1-partition store (peer); an API process reads
       each. Figures: p50/p99 of ``GET /tasks/{id}`` (random ids) and of a filtered page
       ``GET /tasks?name=…&state=SUCCESS&limit=50`` walked by cursor, ``--queries`` each; then
       the seconds ``taskpulse-collector repartition`` takes to move the 1-partition store to 8.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from redis.asyncio import Redis

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness
from bench.fill import Filler
from bench.publisher import TASK_ROUTES, EventSource, db_of, publish
from event_collector.keys import COUNTER_FIELD_SEPARATOR, Keys
from event_collector.repartition import Repartitioner
from producer_api.auth import TokenStore
from tests.services import RedisServer, ServiceProcess, free_port, wait_until

TASK_KINDS = ("SENT", "RECEIVED", "STARTED", "SUCCESS")
CHUNK_TASKS = 500


class Fleet:
    """``collectors`` collector processes sharing one store of ``partitions`` partitions."""

    def __init__(self, broker: RedisServer, store: RedisServer, workdir: Path,
                 collectors: int, partitions: int) -> None:
        self.keys = Keys.layout("tp:", partitions)
        self.store, self.broker = store, broker
        self.client = store.client(0)
        self.procs: list[ServiceProcess] = []
        for i in range(collectors):
            env = {
                **os.environ, "TASKPULSE_BROKER_URL": broker.url(0),
                "TASKPULSE_REDIS_URL": store.url(0), "TASKPULSE_PARTITIONS": str(partitions),
                "TASKPULSE_COLLECTOR_ID": f"bench-{i}", "TASKPULSE_METRICS_HOST": "127.0.0.1",
                "TASKPULSE_METRICS_PORT": str(free_port()),
                "TASKPULSE_SPOOL_DIR": str(workdir / "spool"), "PYTHONUNBUFFERED": "1",
            }
            proc = ServiceProcess([sys.executable, "-m", "event_collector"], env,
                                  workdir / f"collector-{i}.log")
            harness.ensure_ready(proc, lambda p=proc: p.wait_for_log("subscribed to", 60))
            self.procs.append(proc)
        if partitions > 1:
            wait_until(self._leases_spread, timeout=60, what="every collector holding leases")

    def _leases_spread(self) -> bool:
        held = self.client.mget([self.keys.lease(p) for p in range(self.keys.partitions)])
        return None not in held and len(set(held)) == len(self.procs)

    def folded(self) -> int:
        """Task events folded: ``cnt:total`` summed over the partitions (written by the same
        script call as the projections)."""
        with self.client.pipeline(transaction=False) as pipe:
            for keys in self.keys.each_partition():
                pipe.hgetall(keys.counters_total)
            hashes = pipe.execute()
        return sum(int(v) for h in hashes for k, v in h.items()
                   if k.decode().rpartition(COUNTER_FIELD_SEPARATOR)[2] in TASK_KINDS)

    def cpu(self) -> dict[str, float]:
        return {
            "collectors": sum(harness.cpu_seconds(p.process.pid) for p in self.procs),
            "store_redis": harness.cpu_seconds(self.store.process.pid),
            "broker_redis": harness.cpu_seconds(self.broker.process.pid),
        }

    def stop(self) -> None:
        for proc in self.procs:
            proc.stop()
        self.client.close()


def fold(workdir: Path, collectors: int, partitions: int, tasks: int, rate: float) -> dict:
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        broker = harness.start_redis(Path(tmp), "broker")
        store = harness.start_redis(Path(tmp), "store")
        fleet = None
        try:
            fleet = Fleet(broker, store, Path(tmp), collectors, partitions)
            source = EventSource(db_of(broker.url(0)), events_per_second=rate)
            client = broker.client(0)
            before = fleet.cpu()
            started = time.perf_counter()
            published = 0
            for first in range(0, tasks, CHUNK_TASKS):
                messages = source.encode(min(CHUNK_TASKS, tasks - first))
                published += publish(client, messages, rate,
                                     paced_from=(started, published)).events
            drain = harness.wait_for_count(fleet.folded, tasks * 4, started, idle_seconds=10,
                                           label=f"{collectors}x{partitions}")
            after = fleet.cpu()
            cpu = {k: after[k] - before[k] for k in after}
            return {
                "collectors": collectors, "partitions": partitions, "published": published,
                "folded": drain.final, "seconds": drain.seconds, "cpu": cpu,
                "folded_per_cpu_second": drain.final / max(sum(cpu.values()), 1e-9),
                "folded_per_second": drain.final / max(drain.seconds, 1e-9),
            }
        finally:
            if fleet is not None:
                fleet.stop()
            broker.stop()
            store.stop()


class Api:
    def __init__(self, broker: RedisServer, store: RedisServer, workdir: Path,
                 partitions: int) -> None:
        tokens = workdir / "tokens.db"
        _, self.token = TokenStore(tokens).create("bench", "viewer")
        self.port = free_port()
        env = {
            **os.environ, "TASKPULSE_BROKER_URL": broker.url(0),
            "TASKPULSE_REDIS_URL": store.url(0), "TASKPULSE_PARTITIONS": str(partitions),
            "TASKPULSE_API_HOST": "127.0.0.1", "TASKPULSE_API_PORT": str(self.port),
            "TASKPULSE_API_TOKENS_FILE": str(tokens), "PYTHONUNBUFFERED": "1",
        }
        self.proc = ServiceProcess([sys.executable, "-m", "producer_api"], env,
                                   workdir / f"api-{partitions}.log")
        harness.ensure_ready(self.proc, lambda: wait_until(self._healthy, timeout=60,
                                                           what="producer_api /healthz"))

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def get(self, path: str) -> tuple[float, dict]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/api/v1{path}",
            headers={"Authorization": f"Bearer {self.token}"},
        )
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=30) as response:
            body = json.loads(response.read())
        return (time.perf_counter() - started) * 1000, body

    def stop(self) -> None:
        self.proc.stop()


async def _fill(url: str, keys: Keys, tasks: int) -> list[str]:
    redis = Redis.from_url(url)
    try:
        filler = Filler(redis, keys, tasks, span_hours=24.0)
        await filler.fill(tasks, label=f"fill {keys.partitions}p")
        return filler.task_ids
    finally:
        await redis.aclose()


async def _repartition(url: str) -> float:
    """``taskpulse-collector repartition`` of the filled one-partition store to 8, timed."""
    redis = Redis.from_url(url)
    try:
        started = time.perf_counter()
        await Repartitioner(redis, Keys.layout("tp:", 8)).run()
        return time.perf_counter() - started
    finally:
        await redis.aclose()


def reads(workdir: Path, tasks: int, queries: int) -> dict:
    out: dict = {}
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        broker = harness.start_redis(Path(tmp), "broker")
        stores = {p: harness.start_redis(Path(tmp), f"store-{p}") for p in (8, 1)}
        apis: list[Api] = []
        try:
            # the same workload in both (ids are random: the same positions are looked up)
            ids = {p: asyncio.run(_fill(store.url(0), Keys.layout("tp:", p), tasks))
                   for p, store in stores.items()}
            positions = random.Random(1).choices(range(tasks), k=queries)
            name = TASK_ROUTES[1][0]
            for partitions, store in stores.items():
                api = Api(broker, store, Path(tmp), partitions)
                apis.append(api)
                lookups = [api.get(f"/tasks/{ids[partitions][i]}")[0] for i in positions]
                pages, cursor = [], None
                for _ in range(queries):
                    path = f"/tasks?name={name}&state=SUCCESS&limit=50"
                    ms, body = api.get(path + (f"&cursor={cursor}" if cursor else ""))
                    pages.append(ms)
                    cursor = body.get("next_cursor") or None
                out[partitions] = {
                    "get_task_ms": {"p50": harness.percentile(lookups, 50),
                                    "p99": harness.percentile(lookups, 99)},
                    "filtered_page_ms": {"p50": harness.percentile(pages, 50),
                                         "p99": harness.percentile(pages, 99)},
                    "store_bytes": harness.used_memory(store.client(0)),
                }
            out["repartition_seconds"] = asyncio.run(_repartition(stores[1].url(0)))
        finally:
            for api in apis:
                api.stop()
            broker.stop()
            for store in stores.values():
                store.stop()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fold-tasks", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=12_000, help="events/s published")
    parser.add_argument("--read-tasks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--skip-fold", action="store_true")
    parser.add_argument("--skip-reads", action="store_true")
    args = parser.parse_args(argv)
    harness.BENCH_DIR.mkdir(exist_ok=True)
    print(harness.load_note())
    results: dict = {"args": vars(args), "load_start": harness.load_note()}
    rows: list[harness.Row] = []
    workdir = Path(tempfile.mkdtemp(prefix="tp-bench-partitions-"))
    if not args.skip_fold:
        ours = fold(workdir, 2, 8, args.fold_tasks, args.rate)
        peer = fold(workdir, 1, 1, args.fold_tasks, args.rate)
        alone = fold(workdir, 1, 8, args.fold_tasks, args.rate)  # the partitions' own cost
        results["fold"] = {"ours": ours, "peer": peer, "one_collector_8_partitions": alone}
        rows += [
            harness.Row("  same, 1 collector x 8 partitions (ours column)",
                        alone["folded_per_cpu_second"], peer["folded_per_cpu_second"]),
            harness.Row("events folded / CPU-second (collectors + redis)",
                        ours["folded_per_cpu_second"], peer["folded_per_cpu_second"]),
            harness.Row("events folded / s (wall, paced publisher)", ours["folded_per_second"],
                        peer["folded_per_second"]),
            harness.Row("events folded (of published)", ours["folded"], peer["folded"],
                        target=f"= {ours['published']:,}",
                        passed=ours["folded"] == ours["published"] == peer["folded"]),
        ]
    if not args.skip_reads:
        measured = reads(workdir, args.read_tasks, args.queries)
        results["reads"] = measured
        for what in ("get_task_ms", "filtered_page_ms"):
            for pct in ("p50", "p99"):
                rows.append(harness.Row(f"{what.removesuffix('_ms')} {pct} ({args.read_tasks:,} "
                                        "tasks)", measured[8][what][pct], measured[1][what][pct],
                                        unit=" ms", better="lower"))
        rows.append(harness.Row("store bytes", measured[8]["store_bytes"],
                                measured[1]["store_bytes"], better="lower"))
        rows.append(harness.Row("repartition 1 -> 8 in place", measured["repartition_seconds"],
                                None, unit=" s", better="lower"))
    harness.print_table("8 partitions, 2 collectors (ours) vs 1 partition, 1 collector (peer)",
                        rows, ours="8p", peer="1p")
    results["rows"] = harness.rows_json(rows)
    results["load_end"] = harness.load_note()
    print(harness.load_note())
    print(f"results: {harness.write_results('partitions', results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
