"""Partitioned store on a Redis Cluster vs one partition on one Redis: cost and reads, one run.

    .venv/bin/python bench/partitions.py                        # quick: 20k tasks folded, 100k read
    .venv/bin/python bench/partitions.py --fold-tasks 30000 --read-tasks 1000000
    .venv/bin/python bench/partitions.py --store single         # ours on one redis-server instead

The store of "ours" (``--store``): ``cluster`` (default) is a real Redis Cluster of
``--primaries`` primaries (3) and no replicas (``tests/cluster.py``: ``redis-server
--cluster-enabled yes`` nodes joined by ``redis-cli --cluster create``), reached as
``redis+cluster://``; ``single`` is one plain redis-server (the partitions then only share its one
core). The peer is always one collector, one partition, one plain redis-server.

fold   ``--fold-tasks`` lifecycles (4 events each, ``bench/publisher.py``'s real wire format) are
       published on a private broker at ``--rate`` events/s into (ours) two collector processes
       sharing 8 partitions and (peer) one collector with one partition; the same published
       events in the same run, each setup with its own store and broker. Figure: task events
       folded (summed ``cnt:total`` of every partition) per CPU-second of the collectors + every
       redis-server of the store (all cluster nodes; none are replicas) + the broker redis, read
       from ``/proc``. Cost, not speed-up, since the box has 2 cores: >= 0.80x of the peer means
       spreading the work over processes and primaries wastes < 20 %. Also one collector with 8
       partitions on the same store, to tell the partitions' cost from the second collector's.
reads  ``--read-tasks`` finished tasks are written through the real write path (``bench/fill.py``:
       normalize + the collector's store script, only the broker hop skipped) into ours (8
       partitions on the cluster, or on one Redis) and the peer (1 partition, one Redis); an API
       process (``producer_api``, ``TASKPULSE_REDIS_URL`` of that store) reads each. Figures:
       p50/p99 of ``GET /tasks/{id}`` (random ids, the same positions in both) and of a filtered
       page ``GET /tasks?name=…&state=SUCCESS&limit=50`` walked by cursor, ``--queries`` each,
       after ``--warmup`` requests of each kind. ``--repartition`` also times
       ``taskpulse-collector repartition`` of the filled peer store from 1 partition to 8.
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

import redis

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness
from bench.fill import Filler
from bench.publisher import TASK_ROUTES, EventSource, db_of, publish
from event_collector.connection import open_async, open_sync, store_keys
from event_collector.keys import COUNTER_FIELD_SEPARATOR, Keys
from event_collector.repartition import Repartitioner
from producer_api.auth import TokenStore
from tests.cluster import ClusterStore
from tests.services import RedisServer, ServiceProcess, free_port, wait_until

TASK_KINDS = ("SENT", "RECEIVED", "STARTED", "SUCCESS")
CHUNK_TASKS = 500


class Store:
    """The store a setup writes to: one plain redis-server, or a Redis Cluster of ``primaries``
    primaries without replicas (so every node's CPU is the cluster's work, nothing else)."""

    def __init__(self, workdir: Path, name: str, kind: str, primaries: int = 3) -> None:
        self.kind = kind
        self.cluster: ClusterStore | None = None
        self.server: RedisServer | None = None
        if kind == "cluster":
            (workdir / name).mkdir(parents=True, exist_ok=True)
            self.cluster = ClusterStore(workdir / name, primaries=primaries, replicas=0)
            self.cluster.start()
        else:
            self.server = harness.start_redis(workdir, name)

    @property
    def nodes(self) -> list[RedisServer]:
        return self.cluster.nodes if self.cluster is not None else [self.server]  # type: ignore[list-item]

    @property
    def url(self) -> str:
        """``TASKPULSE_REDIS_URL`` for the collectors and the API."""
        return self.cluster.url if self.cluster is not None else self.nodes[0].url(0)

    def keys(self, partitions: int) -> Keys:
        """The key layout every role derives from that URL (the default prefix)."""
        return store_keys(self.url, "", partitions)

    def client(self) -> redis.Redis:
        return open_sync(self.url)  # type: ignore[return-value]

    def cpu(self) -> float:
        return sum(harness.cpu_seconds(n.process.pid) for n in self.nodes if n.process)

    def used_memory(self) -> int:
        return sum(harness.used_memory(n.client(0)) for n in self.nodes)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


class Fleet:
    """``collectors`` collector processes sharing one store of ``partitions`` partitions."""

    def __init__(self, broker: RedisServer, store: Store, workdir: Path,
                 collectors: int, partitions: int) -> None:
        self.keys = store.keys(partitions)
        self.store, self.broker = store, broker
        self.client = store.client()
        self.procs: list[ServiceProcess] = []
        for i in range(collectors):
            env = {
                **os.environ, "TASKPULSE_BROKER_URL": broker.url(0),
                "TASKPULSE_REDIS_URL": store.url, "TASKPULSE_PARTITIONS": str(partitions),
                "TASKPULSE_COLLECTOR_ID": f"bench-{i}", "TASKPULSE_METRICS_HOST": "127.0.0.1",
                "TASKPULSE_METRICS_PORT": str(free_port()),
                "TASKPULSE_SPOOL_DIR": str(workdir / f"spool-{i}"), "PYTHONUNBUFFERED": "1",
            }
            proc = ServiceProcess([sys.executable, "-m", "event_collector"], env,
                                  workdir / f"collector-{i}.log")
            harness.ensure_ready(proc, lambda p=proc: p.wait_for_log("subscribed to", 60))
            self.procs.append(proc)
        if partitions > 1:
            wait_until(self._leases_spread, timeout=60, what="every collector holding leases")

    def _leases_spread(self) -> bool:
        # one GET each: the lease keys may live on different cluster nodes
        with self.client.pipeline(transaction=False) as pipe:
            for p in range(self.keys.partitions):
                pipe.get(self.keys.lease(p))
            held = pipe.execute()
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
            "store_redis": self.store.cpu(),
            "broker_redis": harness.cpu_seconds(self.broker.process.pid),
        }

    def stop(self) -> None:
        for proc in self.procs:
            proc.stop()
        self.client.close()


def fold(workdir: Path, collectors: int, partitions: int, tasks: int, rate: float,
         kind: str, primaries: int) -> dict:
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        broker = harness.start_redis(Path(tmp), "broker")
        store = Store(Path(tmp), "store", kind, primaries)
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
                                           label=f"{collectors}x{partitions} {kind}")
            after = fleet.cpu()
            cpu = {k: after[k] - before[k] for k in after}
            return {
                "store": kind, "store_nodes": len(store.nodes), "collectors": collectors,
                "partitions": partitions, "published": published,
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
    def __init__(self, broker: RedisServer, store: Store, workdir: Path,
                 partitions: int) -> None:
        tokens = workdir / "tokens.db"
        _, self.token = TokenStore(tokens).create("bench", "viewer")
        self.port = free_port()
        env = {
            **os.environ, "TASKPULSE_BROKER_URL": broker.url(0),
            "TASKPULSE_REDIS_URL": store.url, "TASKPULSE_PARTITIONS": str(partitions),
            "TASKPULSE_API_HOST": "127.0.0.1", "TASKPULSE_API_PORT": str(self.port),
            "TASKPULSE_API_TOKENS_FILE": str(tokens), "PYTHONUNBUFFERED": "1",
        }
        self.proc = ServiceProcess([sys.executable, "-m", "producer_api"], env,
                                   workdir / f"api-{store.kind}-{partitions}.log")
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
    redis = open_async(url)  # a RedisCluster client for a cluster URL: the collector's own path
    try:
        filler = Filler(redis, keys, tasks, span_hours=24.0)  # type: ignore[arg-type]
        await filler.fill(tasks, label=f"fill {keys.partitions}p")
        return filler.task_ids
    finally:
        await redis.aclose()


async def _repartition(url: str) -> float:
    """``taskpulse-collector repartition`` of the filled one-partition store to 8, timed."""
    redis = open_async(url)
    try:
        started = time.perf_counter()
        await Repartitioner(redis, Keys.layout("tp:", 8)).run()  # type: ignore[arg-type]
        return time.perf_counter() - started
    finally:
        await redis.aclose()


def _read(api: Api, ids: list[str], positions: list[int], name: str, warmup: int) -> dict:
    """p50/p99 of task lookups and of a filtered listing walked by cursor."""
    page = f"/tasks?name={name}&state=SUCCESS&limit=50"
    for i in positions[:warmup]:  # connections opened, scripts loaded, caches warm
        api.get(f"/tasks/{ids[i]}")
        api.get(page)
    lookups = [api.get(f"/tasks/{ids[i]}")[0] for i in positions]
    pages, cursor = [], None
    for _ in positions:
        ms, body = api.get(page + (f"&cursor={cursor}" if cursor else ""))
        pages.append(ms)
        cursor = body.get("next_cursor") or None
    cpu = harness.cpu_seconds(api.proc.process.pid)
    return {
        "get_task_ms": {"p50": harness.percentile(lookups, 50),
                        "p99": harness.percentile(lookups, 99)},
        "filtered_page_ms": {"p50": harness.percentile(pages, 50),
                             "p99": harness.percentile(pages, 99)},
        "api_cpu_seconds": cpu,
    }


def reads(workdir: Path, tasks: int, queries: int, kind: str, primaries: int, warmup: int,
          repartition: bool) -> dict:
    out: dict = {}
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        broker = harness.start_redis(Path(tmp), "broker")
        stores = {"ours": (Store(Path(tmp), "store-ours", kind, primaries), 8),
                  "peer": (Store(Path(tmp), "store-peer", "single"), 1)}
        apis: list[Api] = []
        try:
            # the same workload in both (ids are random: the same positions are looked up)
            ids = {side: asyncio.run(_fill(store.url, store.keys(p), tasks))
                   for side, (store, p) in stores.items()}
            positions = random.Random(1).choices(range(tasks), k=queries)
            name = TASK_ROUTES[1][0]
            for side, (store, partitions) in stores.items():
                api = Api(broker, store, Path(tmp), partitions)
                apis.append(api)
                out[side] = _read(api, ids[side], positions, name, warmup)
                out[side]["store_bytes"] = store.used_memory()
                out[side]["store_nodes"] = len(store.nodes)
                api.stop()
            if repartition:
                out["repartition_seconds"] = asyncio.run(_repartition(stores["peer"][0].url))
        finally:
            for api in apis:
                api.stop()
            broker.stop()
            for store, _ in stores.values():
                store.stop()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", choices=("cluster", "single"), default="cluster",
                        help="ours: a Redis Cluster (default) or one redis-server")
    parser.add_argument("--primaries", type=int, default=3, help="cluster primaries (no replicas)")
    parser.add_argument("--fold-tasks", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=12_000, help="events/s published")
    parser.add_argument("--read-tasks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20, help="requests of each kind first")
    parser.add_argument("--repartition", action="store_true",
                        help="also time repartitioning the filled peer store 1 -> 8")
    parser.add_argument("--skip-fold", action="store_true")
    parser.add_argument("--skip-alone", action="store_true",
                        help="skip the 1 collector x 8 partitions fold run")
    parser.add_argument("--skip-reads", action="store_true")
    args = parser.parse_args(argv)
    harness.BENCH_DIR.mkdir(exist_ok=True)
    print(harness.load_note())
    results: dict = {"args": vars(args), "load_start": harness.load_note()}
    rows: list[harness.Row] = []
    workdir = Path(tempfile.mkdtemp(prefix="tp-bench-partitions-"))
    where = f"{args.primaries}-primary cluster" if args.store == "cluster" else "one Redis"
    if not args.skip_fold:
        ours = fold(workdir, 2, 8, args.fold_tasks, args.rate, args.store, args.primaries)
        peer = fold(workdir, 1, 1, args.fold_tasks, args.rate, "single", 1)
        results["fold"] = {"ours": ours, "peer": peer}
        if not args.skip_alone:  # the partitions' own cost, without the second collector
            alone = fold(workdir, 1, 8, args.fold_tasks, args.rate, args.store, args.primaries)
            results["fold"]["one_collector_8_partitions"] = alone
            rows.append(harness.Row("  same, 1 collector x 8 partitions (ours column)",
                                    alone["folded_per_cpu_second"],
                                    peer["folded_per_cpu_second"]))
        rows += [
            harness.Row("events folded / CPU-second (collectors + redis)",
                        ours["folded_per_cpu_second"], peer["folded_per_cpu_second"],
                        target=">= 0.80x", passed=ours["folded_per_cpu_second"]
                        >= 0.8 * peer["folded_per_cpu_second"]),
            harness.Row("  collectors' CPU-seconds", ours["cpu"]["collectors"],
                        peer["cpu"]["collectors"], unit=" s", better="lower"),
            harness.Row("  store redis CPU-seconds (all nodes)", ours["cpu"]["store_redis"],
                        peer["cpu"]["store_redis"], unit=" s", better="lower"),
            harness.Row("  broker redis CPU-seconds", ours["cpu"]["broker_redis"],
                        peer["cpu"]["broker_redis"], unit=" s", better="lower"),
            harness.Row("events folded / s (wall, paced publisher)", ours["folded_per_second"],
                        peer["folded_per_second"]),
            harness.Row("events folded (of published)", ours["folded"], peer["folded"],
                        target=f"= {ours['published']:,}",
                        passed=ours["folded"] == ours["published"] == peer["folded"]),
        ]
    if not args.skip_reads:
        measured = reads(workdir, args.read_tasks, args.queries, args.store, args.primaries,
                         args.warmup, args.repartition)
        results["reads"] = measured
        ours_r, peer_r = measured["ours"], measured["peer"]
        for what in ("get_task_ms", "filtered_page_ms"):
            for pct in ("p50", "p99"):
                rows.append(harness.Row(
                    f"{what.removesuffix('_ms')} {pct} ({args.read_tasks:,} tasks)",
                    ours_r[what][pct], peer_r[what][pct], unit=" ms", better="lower",
                    target="< 5 ms" if pct == "p99" else "",
                    passed=ours_r[what][pct] < 5 if pct == "p99" else None))
        rows.append(harness.Row("  API process CPU-seconds for the reads",
                                ours_r["api_cpu_seconds"], peer_r["api_cpu_seconds"],
                                unit=" s", better="lower"))
        rows.append(harness.Row("store bytes (all nodes)", ours_r["store_bytes"],
                                peer_r["store_bytes"], better="lower"))
        if args.repartition:
            rows.append(harness.Row("repartition 1 -> 8 in place",
                                    measured["repartition_seconds"], None, unit=" s",
                                    better="lower"))
    harness.print_table(f"8 partitions, 2 collectors, {where} (ours) vs 1 partition,"
                        " 1 collector, one Redis (peer)", rows, ours="8p", peer="1p")
    results["rows"] = harness.rows_json(rows)
    results["load_end"] = harness.load_note()
    print(harness.load_note())
    print(f"results: {harness.write_results('partitions', results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
