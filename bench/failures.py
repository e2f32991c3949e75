"""Failure groups, text search and bulk dry runs: what they cost, next to a floor from the same run.

Failing task lifecycles (sent, received, started, failed with an exception whose message carries
ids and numbers) go through the collector's real write path (``normalize`` +
``EventStore.apply``, as bench/fill.py), into two private redis-servers:

- ``with``: this code (each failure fingerprinted, grouped and indexed in the same Lua call);
- ``without``: the same events, the store's task-failed check switched off for the run, so
  nothing is fingerprinted and the Lua writes no group, hourly count or ``idx:fp`` entry — the
  store as it was before grouping.

Sections (all in one run):
  ingest    events per CPU-second (this process + the store's redis-server) through the write
            path, with vs without; rounds alternate between the two so load drifts hit both,
            and the verdict is the median of the per-round ratios (target: with >= 0.9 x
            without). ``--fail-share`` (default 1.0: every task fails, each failure in another
            group than the one before, the worst case for the batch)
  memory    Redis used_memory growth per failed task, with minus without (target <= 100 B)
  failures  GET /failures?limit=50 p99 over HTTP with --tasks failures in --groups groups
            (target < 5 ms); peer: GET /tasks?limit=50 on the same API
  bulk      POST /tasks/bulk/retry dry run whose filter matches every failure (exception=),
            p99 (target < 1 s); peer: the same count as redis-py ZCOUNTs of the groups' indexes
  search    GET /tasks?q=<absent text> over a window holding every task, records scanned/s;
            peer: redis-py pipelined HMGET of the same four fields of the same ids + Python
            ``in`` (the floor a client-side scan would reach)

    .venv/bin/python bench/failures.py                    # 100k failures in 1,000 groups
    .venv/bin/python bench/failures.py --ingest-only --rounds 4   # ingest + memory only, with
        # the per-round ratios and each side's CPU (this process vs redis-server)
    .venv/bin/python bench/failures.py --tasks 2000 --groups 20 --queries 20   # smoke
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import redis
from redis.asyncio import Redis as AsyncRedis

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness, wire
from bench.api_vs_celery import Api
from bench.harness import Row, percentile, progress
from bench.publisher import make_specs
from event_collector import store as store_module
from event_collector.config import CollectorSettings
from event_collector.events import TASK_FAILED, Event
from event_collector.keys import Keys
from event_collector.normalize import normalize
from event_collector.read import SEARCH_SCAN_MAX
from event_collector.segments import INDEX_SCRIPT, Indexes, range_args, script_head
from event_collector.store import EventStore, raise_listpack_limits
from event_collector.task_ids import task_id_of
from tests.services import RedisServer

KEYS = Keys()
SUCCEEDING = (wire.task_sent, wire.task_received, wire.task_started, wire.task_succeeded)
EXCEPTION_TYPE = "InvoiceError"


def _group_word(group: int) -> str:
    """Letters only (the fingerprint masks digits and hex runs, not words): 1 group, 1 word."""
    return "".join(chr(97 + (group // 26**i) % 26) for i in range(4))


class FailingTasks:
    """Task lifecycles ending in task-failed (``fail_share`` of them, the rest succeed); the
    n-th failure is in group ``n % groups``, so consecutive failures are in different groups
    (the worst case for the batch: no two share a group write)."""

    def __init__(self, total: int, groups: int, span_hours: float = 23.0,
                 fail_share: float = 1.0) -> None:
        start = time.time() - span_hours * 3600
        step = span_hours * 3600 / max(total * 4, 1)
        self.groups = groups
        self.every = max(1, round(1 / fail_share)) if fail_share > 0 else 0
        self.failures = 0
        self.producer = wire.Clock("gen1@bench", 1, start, step)
        self.worker = wire.Clock("bench@worker1", 2, start, step)
        self.made = 0

    def batch(self, count: int) -> list[Event]:
        specs = make_specs(count, self.made)
        self.made += count
        events = []
        for spec in specs:
            if not self.every or spec.seq % self.every:
                events += [normalize(phase(spec, self.producer if phase is wire.task_sent
                                           else self.worker)) for phase in SUCCEEDING]
                continue
            word = _group_word(self.failures % self.groups)
            self.failures += 1
            failed = self.worker.stamp(TASK_FAILED, {
                "uuid": spec.task_id,
                "exception": f"{EXCEPTION_TYPE}('step {word} failed for invoice {spec.seq} "
                             f"of customer {spec.task_id}')",
                "traceback": "Traceback (most recent call last):\n  ...\n",
            })  # fmt: skip
            events += [
                normalize(wire.task_sent(spec, self.producer)),
                normalize(wire.task_received(spec, self.worker)),
                normalize(wire.task_started(spec, self.worker)),
                normalize(failed),
            ]
        return events


async def _apply(
    store: EventStore, server_pid: int, batches: list[list[Event]], grouping: bool
) -> tuple[float, float, float]:
    """(wall seconds, client CPU seconds, server CPU seconds) to flatten and apply the
    batches: this process's CPU (rows, encoding) and the store redis-server's (the Lua call).
    CPU is what the comparison uses: the machine is shared, and wall time moves with whatever
    else runs; the two shares say which side a difference is on."""
    # without: store.event_row sees no task-failed, so it neither fingerprints the failure
    # nor adds the fingerprint to the row, and the Lua writes no group and no idx:fp entry
    store_module.TASK_FAILED = TASK_FAILED if grouping else "(grouping off)"  # type: ignore[misc]
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        server_cpu = harness.cpu_seconds(server_pid)
        for batch in batches:
            await store.apply(batch)
        server_cpu = harness.cpu_seconds(server_pid) - server_cpu
        return time.perf_counter() - wall, time.process_time() - cpu, server_cpu
    finally:
        store_module.TASK_FAILED = TASK_FAILED  # type: ignore[misc]


async def ingest(servers: dict[str, RedisServer], tasks: int, groups: int,
                 batch_tasks: int, rounds: int, fail_share: float) -> dict:
    """Both stores get the same events, round by round, in alternating order."""
    clients = {label: AsyncRedis.from_url(server.url(0)) for label, server in servers.items()}
    pids = {label: server.process.pid for label, server in servers.items()}  # type: ignore[union-attr]
    try:
        stores = {}
        for label, client in clients.items():
            await raise_listpack_limits(client, CollectorSettings().redis_listpack_value)
            stores[label] = EventStore(client, KEYS)
        before = {label: int((await c.info("memory"))["used_memory"])
                  for label, c in clients.items()}
        source = FailingTasks(tasks, groups, fail_share=fail_share)
        seconds = {"with": 0.0, "without": 0.0}
        cpu = {"with": 0.0, "without": 0.0}
        split = {label: {"client": 0.0, "server": 0.0} for label in cpu}
        round_ratios = []
        per_round = tasks // rounds
        for index in range(rounds):
            count = per_round if index < rounds - 1 else tasks - per_round * (rounds - 1)
            batches = [source.batch(min(batch_tasks, count - done))
                       for done in range(0, count, batch_tasks)]  # fmt: skip
            order = ("with", "without") if index % 2 == 0 else ("without", "with")
            used_now = {}
            for label in order:
                wall, client_cpu, server_cpu = await _apply(
                    stores[label], pids[label], batches, label == "with")
                used = client_cpu + server_cpu
                seconds[label] += wall
                cpu[label] += used
                split[label]["client"] += client_cpu
                split[label]["server"] += server_cpu
                used_now[label] = used
            round_ratios.append(used_now["without"] / used_now["with"])
            progress(f"ingest round {index + 1}/{rounds}: {source.made:,} tasks each, "
                     f"with/without {round_ratios[-1]:.3f}")
        after = {label: int((await c.info("memory"))["used_memory"])
                 for label, c in clients.items()}
        accounted = await _accounted_bytes(clients["with"], clients["without"])
    finally:
        for client in clients.values():
            await client.aclose()
    events = tasks * 4
    return {
        "events": events,
        "events_per_s": {label: events / s for label, s in seconds.items()},
        "events_per_cpu_s": {label: events / s for label, s in cpu.items()},
        # with/without throughput per round; the median shrugs off a round another process
        # disturbed
        "median_round_ratio": statistics.median(round_ratios),
        "round_ratios": round_ratios,
        # CPU seconds per side: which one grouping's cost is on
        "cpu_split": split,
        "failed_tasks": source.failures,
        "used_memory_growth": {label: after[label] - before[label] for label in clients},
        # MEMORY USAGE of what grouping adds: its keys, and the failed tasks' hashes with vs
        # without their fingerprint field (a sample); steadier than used_memory, which moves
        # with allocator and rehash timing
        "accounted_bytes_per_failed_task": (
            accounted["keys"] / max(source.failures, 1) + accounted["task_hash_delta"]
        ),
        "accounted": accounted,
        "bytes_per_failed_task": (
            (after["with"] - before["with"]) - (after["without"] - before["without"])
        ) / max(source.failures, 1),
    }


async def _accounted_bytes(with_: AsyncRedis, without: AsyncRedis, sample: int = 2000) -> dict:
    keys = 0
    for pattern in (KEYS.index_fingerprint("*"), KEYS.failure_group("*"),
                    KEYS.failure_exception("*"), KEYS.failure_groups):
        async for key in with_.scan_iter(match=pattern, count=1000):
            keys += int(await with_.memory_usage(key, samples=0) or 0)
    (oldest,) = await Indexes(with_, KEYS).ranges([KEYS.index_state("FAILURE")], "+inf", "-inf",
                                                   sample, desc=False)
    members = [member for member, _ in oldest]
    delta = 0
    for member in members:
        task = KEYS.task(task_id_of(member))
        delta += int(await with_.memory_usage(task, samples=0) or 0)
        delta -= int(await without.memory_usage(task, samples=0) or 0)
    return {"keys": keys, "task_hash_delta": delta / max(len(members), 1)}


async def _timed(session: aiohttp.ClientSession, method: str, url: str, queries: int,
                 json: dict | None = None) -> tuple[list[float], dict]:
    timings, body = [], {}
    for _ in range(queries):
        started = time.perf_counter()
        async with session.request(method, url, json=json) as resp:
            body = await resp.json()
            if resp.status != 200:
                raise RuntimeError(f"{method} {url} -> {resp.status}: {body}")
        timings.append((time.perf_counter() - started) * 1000)
    return timings, body


def _floor_count(client: redis.Redis) -> tuple[list[float], int]:
    """The dry run's count, straight from Redis: ZCOUNT of every group index of the type."""
    started = time.perf_counter()
    fps = client.smembers(KEYS.failure_exception(EXCEPTION_TYPE))
    pipe = client.pipeline(transaction=False)
    for fp in fps:
        pipe.zcount(KEYS.index_fingerprint(fp.decode()), "-inf", "+inf")
    total = sum(pipe.execute())
    return [(time.perf_counter() - started) * 1000], total


def _floor_scan(client: redis.Redis, needle: str) -> tuple[float, int]:
    """Records/s of a client-side scan: ids from the FAILURE index, HMGET of the four fields
    in pipelines of 1,000, ``in`` on each."""
    started = time.perf_counter()
    flat = client.register_script(INDEX_SCRIPT)(
        keys=[KEYS.index_state("FAILURE")],
        args=[*script_head(KEYS, "range"), *range_args("+inf", "-inf", 10**9)],
    )[0]
    members = flat[0::2]
    scanned = found = 0
    for chunk in range(0, len(members), 1000):
        pipe = client.pipeline(transaction=False)
        for member in members[chunk:chunk + 1000]:
            pipe.hmget(KEYS.task(task_id_of(member)), "args", "kwargs", "result", "exception")
        for fields in pipe.execute():
            scanned += 1
            found += any(f is not None and needle in f.decode().lower() for f in fields)
    return scanned / (time.perf_counter() - started), found


async def reads(api: Api, store_url: str, tasks: int, queries: int) -> dict:
    client = redis.Redis.from_url(store_url)
    out: dict = {}
    async with aiohttp.ClientSession(headers=api.headers) as session:
        failures, page = await _timed(session, "GET", api.base + "/failures?limit=50", queries)
        listing, _ = await _timed(session, "GET", api.base + "/tasks?limit=50", queries)
        out["failures_ms"], out["tasks_ms"] = failures, listing
        out["failure_page"] = {"groups": len(page["items"]),
                               "count_sum": sum(g["count"] for g in page["items"])}
        body = {"filter": {"exception": EXCEPTION_TYPE}}
        dry, answer = await _timed(session, "POST", api.base + "/tasks/bulk/retry",
                                   max(queries // 10, 3), json=body)
        out["dry_run_ms"], out["dry_run"] = dry, {k: answer[k] for k in ("matched", "exact")}
        combo = {"filter": {"exception": EXCEPTION_TYPE, "name": "demo.test_task"}}
        combo_ms, combo_answer = await _timed(session, "POST", api.base + "/tasks/bulk/retry",
                                              3, json=combo)
        out["dry_run_combined_ms"] = combo_ms
        out["dry_run_combined"] = {k: combo_answer[k] for k in ("matched", "exact")}
        floor_ms = []
        for _ in range(max(queries // 10, 3)):
            ms, floor_total = _floor_count(client)
            floor_ms += ms
        out["floor_count_ms"], out["floor_count"] = floor_ms, floor_total
        needle = "absent-text-xyz"
        started = time.perf_counter()
        search, result = await _timed(session, "GET", api.base + f"/tasks?q={needle}&limit=50",
                                      1)
        out["search"] = {"ms": search[0], "items": len(result["items"]),
                         "exact": result["exact"],
                         "records_per_s": tasks / (time.perf_counter() - started)}
    floor_rate, floor_found = _floor_scan(client, needle)
    out["floor_scan"] = {"records_per_s": floor_rate, "found": floor_found}
    client.close()
    return out


def rows_for(results: dict, args: argparse.Namespace) -> list[Row]:
    ing = results["ingest"]
    rate, wall = ing["events_per_cpu_s"], ing["events_per_s"]
    median = ing["median_round_ratio"]
    share = f"{args.fail_share:.0%} failing"
    rows = [
        Row(f"ingest events per CPU-s (client + redis), {share}, with vs without",
            rate["with"], rate["without"], "report", None),
        Row(f"  median of {args.rounds} alternating rounds: with/without", median, 1.0,
            ">= 0.90", median >= 0.9),
        Row("ingest events/s wall (noisy on a shared box), with vs without", wall["with"],
            wall["without"], "report", None),
        Row("bytes per failed task: MEMORY USAGE of what grouping adds",
            ing["accounted_bytes_per_failed_task"], None, "<= 100 B",
            ing["accounted_bytes_per_failed_task"] <= 100, " B", "lower"),
        Row("  used_memory growth per failed task, with minus without",
            ing["bytes_per_failed_task"], None, "report", None, " B", "lower"),
    ]
    if "reads" not in results:
        return rows
    rd = results["reads"]
    rows += [
        Row(f"GET /failures p99 ms ({args.tasks:,} in {args.groups:,} groups) vs GET /tasks",
            percentile(rd["failures_ms"], 99), percentile(rd["tasks_ms"], 99), "< 5 ms",
            percentile(rd["failures_ms"], 99) < 5, " ms", "lower"),
        Row(f"bulk dry run p99 ms ({rd['dry_run']['matched']:,} match) vs redis-py ZCOUNTs",
            percentile(rd["dry_run_ms"], 99), percentile(rd["floor_count_ms"], 99), "< 1000 ms",
            percentile(rd["dry_run_ms"], 99) < 1000, " ms", "lower"),
        Row("search records/s (GET /tasks?q=) vs redis-py HMGET pipeline",
            rd["search"]["records_per_s"], rd["floor_scan"]["records_per_s"], "report", None),
    ]
    return rows


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000, help="failed tasks (100,000)")
    parser.add_argument("--groups", type=int, default=1000, help="failure groups (1,000)")
    parser.add_argument("--batch-tasks", type=int, default=125,
                        help="tasks per Lua batch (125 = 500 events, the collector's batch)")
    parser.add_argument("--rounds", type=int, default=8, help="alternating ingest rounds (8)")
    parser.add_argument("--queries", type=int, default=500, help="timed GETs per route (500)")
    parser.add_argument("--fail-share", type=float, default=1.0,
                        help="share of the tasks that fail (1.0: every one, the worst case)")
    parser.add_argument("--ingest-only", action="store_true",
                        help="the ingest and memory sections only (no API, no HTTP reads)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results: dict = {"args": vars(args), "load_start": harness.load_note()}
    with tempfile.TemporaryDirectory(prefix="tp-bench-failures-") as tmp:
        workdir = Path(tmp)
        servers: list[RedisServer] = []
        api = None
        try:
            with_store, without_store, broker = (
                harness.start_redis(workdir, name) for name in ("with", "without", "broker")
            )
            servers += [with_store, without_store, broker]
            progress(f"ingest {args.tasks:,} failing tasks into each store ({harness.load_note()})")
            results["ingest"] = asyncio.run(ingest(
                {"with": with_store, "without": without_store}, args.tasks, args.groups,
                args.batch_tasks, args.rounds, args.fail_share,
            ))  # fmt: skip
            if not args.ingest_only:
                api = Api(broker, with_store, workdir, TASKPULSE_API_SEARCH_SCAN_MAX=str(
                    max(args.tasks, SEARCH_SCAN_MAX)))
                progress(f"reads over HTTP ({harness.load_note()})")
                results["reads"] = asyncio.run(reads(api, with_store.url(0), args.tasks,
                                                     args.queries))
        finally:
            if api is not None:
                api.stop()
            for server in servers:
                server.stop()
    return _report(results, args)


def _report(results: dict, args: argparse.Namespace) -> int:
    results["load_end"] = harness.load_note()
    rows = rows_for(results, args)
    results["rows"] = harness.rows_json(rows)
    harness.print_table("failures: grouping, search and bulk dry runs", rows,
                        ours="taskpulse", peer="floor")
    ing = results["ingest"]
    print("\nper-round with/without: " + " ".join(f"{r:.3f}" for r in ing["round_ratios"]))
    for label, split in ing["cpu_split"].items():
        print(f"CPU {label}: client {split['client']:.2f} s, redis {split['server']:.2f} s")
    rd = results.get("reads")
    if rd is None:
        print(f"\n{results['load_start']} at start, {results['load_end']} at end")
        print(f"results: {harness.write_results('failures', results)}")
        return 0
    print(f"\nGET /failures p50 {statistics.median(rd['failures_ms']):.2f} ms, first page "
          f"{rd['failure_page']['groups']} groups; dry run matched {rd['dry_run']['matched']:,} "
          f"(exact {rd['dry_run']['exact']}), redis-py count {rd['floor_count']:,}; "
          f"name+exception dry run p99 {percentile(rd['dry_run_combined_ms'], 99):.0f} ms, "
          f"matched {rd['dry_run_combined']['matched']:,} (exact "
          f"{rd['dry_run_combined']['exact']})")
    print(f"search: one request scanned {args.tasks:,} records in {rd['search']['ms']:.0f} ms "
          f"(exact {rd['search']['exact']}); the redis-py floor found "
          f"{rd['floor_scan']['found']} matches")
    acc = results["ingest"]["accounted"]
    print(f"grouping keys {acc['keys'] / 2**20:,.2f} MiB for "
          f"{results['ingest']['failed_tasks']:,} failures; a failed task's hash "
          f"{acc['task_hash_delta']:+.1f} B with its fingerprint field")
    growth = results["ingest"]["used_memory_growth"]
    print(f"used_memory growth: with {growth['with'] / 2**20:,.1f} MiB, without "
          f"{growth['without'] / 2**20:,.1f} MiB")
    print(f"\n{results['load_start']} at start, {results['load_end']} at end")
    print(f"results: {harness.write_results('failures', results)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
