"""taskpulse's event collector vs Flower 2.2, same event stream, same run, same machine.

Measures, for each consumer against its own private broker redis-server:

- sustained: a closed-loop publisher keeps the consumer saturated (backlog capped at --window
  events, so nobody gets disconnected) up to each size in --sizes; at every size we wait for the
  drain and record throughput so far, RSS, and (taskpulse) Redis used_memory per task;
- burst: --burst-tasks tasks (4 events each) pre-encoded and published open-loop at --burst-rate
  events/s; loss = published - folded into the consumer's state once it stops moving;
- lag: a real ``celery worker -E`` runs --lag-tasks tasks sent at --lag-rate/s; a sampler polls
  ``tp:task:<id>`` (Flower: ``/api/task/info/<id>``) and records event timestamp → visible.

    .venv/bin/python bench/collector_vs_flower.py            # quick, ~1-2 min on 2 cores
    .venv/bin/python bench/collector_vs_flower.py --full     # documented targets (long)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import redis

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness, lag
from bench.consumers import Consumer, FlowerConsumer, TaskpulseConsumer, collector_ready
from bench.harness import Row, progress
from bench.publisher import EventSource, Message, db_of, publish
from tests.services import RedisServer

PREENCODE_MAX_TASKS = 200_000
QUICK = {"sizes": "10000,50000", "burst_tasks": 50_000, "lag_tasks": 2000, "lag_rate": 1000}
FULL = {"sizes": "10000,100000,1000000", "burst_tasks": 100_000, "lag_tasks": 5000,
        "lag_rate": 1000}


def sustained(
    make: Callable[[RedisServer], Consumer], workdir: Path, sizes: list[int], window: int,
    chunk: int,
) -> dict:
    with harness.consumer_on_private_broker(workdir, "broker", make) as (broker, consumer):
        return _sustained(consumer, broker.client(), db_of(broker.url(0)), sizes, window, chunk)


def _sustained(
    consumer: Consumer, client: redis.Redis, db: int, sizes: list[int], window: int, chunk: int
) -> dict:
    source = EventSource(db)
    result = {"consumer": consumer.name, "rss_start_mb": consumer.rss(), "checkpoints": []}
    published, busy_seconds, cpu_start = 0, 0.0, consumer.cpu()
    for size in sizes:
        started = 0.0  # set at the first PUBLISH: pre-encoding is not the consumer's time
        next_note = time.perf_counter() + 10
        for messages in _chunks(source, size, chunk, PREENCODE_MAX_TASKS):
            started = started or time.perf_counter()
            while published - consumer.count() > window:
                time.sleep(consumer.poll_interval)
            published += publish(client, messages).events
            if time.perf_counter() > next_note:
                progress(f"{consumer.name}: {published:,} events published toward "
                         f"{size * 4:,}, {harness.load_note()}")
                next_note = time.perf_counter() + 10
        drain = harness.wait_for_count(
            consumer.count, published, started, label=f"{consumer.name} sustained {size:,}",
            interval=consumer.poll_interval, max_seconds=3600,
        )
        busy_seconds += drain.seconds
        store = consumer.store_bytes()
        point = {
            "tasks": size, "published": published, "processed": drain.final,
            "events_per_s": drain.final / busy_seconds,
            "events_per_cpu_s": drain.final / max(consumer.cpu() - cpu_start, 1e-9),
            "rss_mb": consumer.rss(), "cpu_s": consumer.cpu_parts(),
            "store_bytes_per_task": None if store is None else store / size,
            "load": harness.load_note(),
        }
        result["checkpoints"].append(point)
        progress(f"{consumer.name} @ {size:,} tasks: {point['events_per_s']:,.0f} ev/s, "
                 f"RSS {point['rss_mb']:.0f} MiB, {harness.load_note()}")
    return result


def _chunks(
    source: EventSource, size: int, chunk: int, preencode_max: int
) -> Iterator[list[Message]]:
    """Publish-sized slices up to ``size`` tasks. Encoded ahead when it fits in memory (~2 KB a
    task), so the publisher's CPU does not compete with the consumer while it is measured."""
    todo = size - source.tasks
    if todo <= preencode_max:
        messages = source.encode(todo)
        step = chunk * 7 // 4  # a task is 1.75 messages (sent alone + 3 in task.multi batches)
        for start in range(0, len(messages), step):
            yield messages[start:start + step]
        return
    while source.tasks < size:
        yield source.encode(min(chunk, size - source.tasks))


def burst(
    make: Callable[[RedisServer], Consumer], workdir: Path, tasks: int, rate: float
) -> dict:
    with harness.consumer_on_private_broker(workdir, "broker-burst", make) as (broker, consumer):
        source = EventSource(db_of(broker.url(0)), events_per_second=rate)
        messages = source.encode(tasks)  # pre-encoded: the publisher must not be the bottleneck
        progress(f"{consumer.name} burst: publishing {tasks * 4:,} events at {rate:,.0f}/s")
        started = time.perf_counter()
        report = publish(broker.client(), messages, rate)
        peak = [consumer.rss()]
        drain = harness.wait_for_count(
            consumer.count, report.events, started, idle_seconds=10,
            label=f"{consumer.name} burst", interval=max(consumer.poll_interval, 0.25),
            on_poll=lambda: peak.append(consumer.rss()),
        )
        log = (broker.workdir / "redis.log").read_text(errors="replace")
        return {
            "consumer": consumer.name, "published": report.events,
            "publish_rate": report.rate, "unheard_messages": report.unheard_messages,
            "processed": drain.final, "lost": report.events - drain.final,
            "lost_pct": 100 * (report.events - drain.final) / report.events,
            "drain_seconds": drain.seconds, "rss_peak_mb": max(peak),
            "rss_after_mb": peak[-1],
            "disconnected_for_output_buffer": log.count("output buffer limits"),
            "load": harness.load_note(),
        }


def rows_for(results: dict, args: argparse.Namespace) -> list[Row]:
    ours, peer = results.get("taskpulse", {}), results.get("flower", {})

    def checkpoint(side: dict, size: int, key: str) -> float | None:
        for point in side.get("sustained", {}).get("checkpoints", []):
            if point["tasks"] == size:
                return point[key]
        return None

    def last(side: dict, key: str) -> float | None:
        points = side.get("sustained", {}).get("checkpoints", [])
        return points[-1].get(key) if points else None

    rows = []
    rate_ours, rate_peer = last(ours, "events_per_s"), last(peer, "events_per_s")
    rows.append(Row("sustained events/s", rate_ours, rate_peer, ">=3x peer and >=13k",
                    None if rate_ours is None else (
                        rate_ours >= 13_000 and (rate_peer is None or rate_ours >= 3 * rate_peer)),
                    unit=""))
    cpu_ours, cpu_peer = last(ours, "events_per_cpu_s"), last(peer, "events_per_cpu_s")
    rows.append(Row("events per CPU-second (noise-robust)", cpu_ours, cpu_peer, ">=3x peer",
                    None if not (cpu_ours and cpu_peer) else cpu_ours >= 3 * cpu_peer))
    if args.burst_tasks:
        rows.extend(_burst_rows(ours.get("burst"), peer.get("burst"), args.burst_tasks))
    sizes = [int(s) for s in args.sizes.split(",")]
    rss_ours = [checkpoint(ours, s, "rss_mb") for s in sizes]
    for size, value in zip(sizes, rss_ours, strict=True):
        rows.append(Row(f"RSS MiB @ {size:,} tasks", value, checkpoint(peer, size, "rss_mb"),
                        "<150 and flat", None if value is None else value < 150, better="lower"))
    known = [v for v in rss_ours if v is not None]
    if len(known) >= 2:
        growth = known[-1] - known[0]
        rows.append(Row("RSS growth first→last size (MiB)", growth, None, "flat (<50)",
                        growth < 50, better="lower"))
    for size in sizes:
        per_task = checkpoint(ours, size, "store_bytes_per_task")
        rows.append(Row(f"Redis bytes/task @ {size:,}", per_task, None, "<=1536",
                        None if per_task is None else per_task <= 1536, better="lower"))
    if "lag" in ours:
        lag_rows = lag.rows(ours["lag"], peer.get("lag"))
        rows.extend(lag_rows)
    return rows


def _burst_rows(ours: dict | None, peer: dict | None, tasks: int) -> list[Row]:
    def get(side: dict | None, key: str) -> float | None:
        return side[key] if side else None

    passed = None if not ours else ours["lost"] == 0
    return [
        Row(f"burst {tasks:,} tasks: events lost", get(ours, "lost"), get(peer, "lost"), "0",
            passed, better="lower"),
        Row("burst: % lost", get(ours, "lost_pct"), get(peer, "lost_pct"), "0%", passed,
            unit="%", better="lower"),
        Row("burst: peak RSS MiB while draining", get(ours, "rss_peak_mb"),
            get(peer, "rss_peak_mb"), "(bounded buffer)", None, better="lower"),
    ]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--full", action="store_true", help="full sizes: " + str(FULL))
    parser.add_argument("--sizes", help="comma-separated task counts for the sustained run")
    parser.add_argument("--tasks", type=int, help="shorthand: sizes up to N and a burst of N")
    parser.add_argument("--burst-tasks", type=int, help="0 skips the burst phase")
    parser.add_argument("--burst-rate", type=float, default=29_000, help="events/s")
    parser.add_argument("--window", type=int, default=20_000,
                        help="closed-loop backlog cap in events (keeps output buffers < 32 MB)")
    parser.add_argument("--chunk", type=int, default=1000, help="tasks encoded per publish")
    parser.add_argument("--peer-max-sizes", type=int, default=0,
                        help="run Flower's sustained phase only up to this size (0 = all sizes)")
    parser.add_argument("--flower-max-tasks", type=int, default=100_000,
                        help="Flower --max_tasks (its default is 100000)")
    parser.add_argument("--lag-tasks", type=int)
    parser.add_argument("--lag-rate", type=float, help="tasks/s sent to the real worker")
    parser.add_argument("--lag-sample", type=int, default=5,
                        help="probe every Nth task in the store (one pipelined HMGET per 10 ms)")
    parser.add_argument("--peer-lag-sample", type=int, default=50,
                        help="probe every Nth task in Flower: one HTTP request per task per "
                             "poll, so fewer, to keep the probing from loading Flower")
    parser.add_argument("--skip-flower", action="store_true")
    parser.add_argument("--skip-taskpulse", action="store_true")
    parser.add_argument("--skip-lag", action="store_true")
    args = parser.parse_args(argv)
    defaults = FULL if args.full else QUICK
    if args.tasks:
        defaults = {**defaults, "sizes": ",".join(str(s) for s in _ladder(args.tasks)),
                    "burst_tasks": args.tasks}
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def _ladder(top: int) -> list[int]:
    sizes = [s for s in (10_000, 100_000, 1_000_000) if s < top]
    return [*sizes, top] if sizes else [max(top // 5, 1), top]


def run_side(name: str, make, workdir: Path, args: argparse.Namespace, sizes: list[int]) -> dict:
    progress(f"{name}: sustained run to {sizes[-1]:,} tasks ({harness.load_note()})")
    side = {"sustained": sustained(make, workdir / name, sizes, args.window, args.chunk)}
    if args.burst_tasks:
        side["burst"] = burst(make, workdir / name, args.burst_tasks, args.burst_rate)
        progress(f"{name}: burst lost {side['burst']['lost']:,} of "
                 f"{side['burst']['published']:,}")
    return side


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    results: dict = {"args": vars(args), "load_start": harness.load_note()}
    with tempfile.TemporaryDirectory(prefix="tp-bench-") as tmp:
        workdir = Path(tmp)
        if not args.skip_taskpulse:
            if collector_ready():
                store = harness.start_redis(workdir, "store")

                def make_ours(broker: RedisServer) -> TaskpulseConsumer:
                    store.client().flushall()
                    return TaskpulseConsumer(broker, store, workdir)

                try:
                    results["taskpulse"] = run_side("taskpulse", make_ours, workdir, args, sizes)
                    if not args.skip_lag:
                        results["taskpulse"]["lag"] = lag.run(
                            workdir, make_ours, args.lag_tasks, args.lag_rate, args.lag_sample)
                finally:
                    store.stop()
            else:
                results["taskpulse_missing"] = "event_collector/__main__.py not in the tree yet"
                progress("taskpulse collector not available yet: measuring the peer only")
        if not args.skip_flower:
            harness.ensure_flower_venv()
            peer_sizes = [s for s in sizes if not args.peer_max_sizes or s <= args.peer_max_sizes]

            def make_peer(broker: RedisServer) -> FlowerConsumer:
                return FlowerConsumer(broker, workdir, args.flower_max_tasks)

            results["flower"] = run_side("flower", make_peer, workdir, args, peer_sizes)
            if not args.skip_lag:
                results["flower"]["lag"] = lag.run(
                    workdir, make_peer, args.lag_tasks, args.lag_rate, args.peer_lag_sample)
    results["load_end"] = harness.load_note()
    rows = rows_for(results, args)
    results["rows"] = harness.rows_json(rows)
    harness.print_table("collector: taskpulse vs Flower " + harness.FLOWER_VERSION, rows,
                        peer="flower")
    print(f"\n{results['load_start']} at start, {results['load_end']} at end")
    print(f"results: {harness.write_results('collector_vs_flower', results)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
