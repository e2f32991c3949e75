"""Sustained overload: more events than the consumer can fold, for minutes, on this machine.

``--tasks`` task lifecycles (4 events each) are published at ``--rate`` events/s into one consumer
on a private broker, by ``--publishers`` processes sending through Celery's own
``EventDispatcher`` (``bench/dispatch.py``: task-sent one PUBLISH each, the worker's events as
``task.multi`` batches the way a prefork worker flushes them), or with ``--publisher wire`` by
``bench/publisher.py`` (the same wire format pre-encoded and pipelined: a cheap publisher, so the
consumer gets most of the CPU). The publishers compete with the consumer for the same cores, as
the issue's run did. Measured, for taskpulse and then Flower 2.2, each against its own broker:

- lost: events (and tasks without their task-succeeded) published but never folded, once the
  consumer's count stops moving; the broker log's "output buffer limits" disconnects;
- drain rate while the publishers run (events folded / publish time) and the catch-up after
  they stop (seconds until the count stops moving, and the rate over that time);
- peak RSS (process tree) sampled every ``--sample`` seconds; for taskpulse also the peak backlog
  in memory and in the spool (its ``taskpulse_buffer_*`` gauges), drops and disconnects.

    .venv/bin/python bench/overload.py --tasks 200000                # while developing
    .venv/bin/python bench/overload.py --tasks 1000000 --rate 25000  # the issue's run
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prometheus_client.parser import text_string_to_metric_families

from bench import harness
from bench.consumers import Consumer, FlowerConsumer, TaskpulseConsumer
from bench.harness import Row, progress
from tests.services import REPO_ROOT, RedisServer

EVENTS_PER_TASK = 4


def start_publishers(args: argparse.Namespace, url: str) -> list[subprocess.Popen[str]]:
    """The publisher processes, splitting tasks and rate evenly."""
    count = args.publishers if args.publisher == "celery" else 1
    procs = []
    for i in range(count):
        tasks = args.tasks // count + (1 if i < args.tasks % count else 0)
        rate = f"{args.rate / count:.3f}"
        argv = (
            [sys.executable, "-m", "bench.dispatch", "--url", url, "--tasks", str(tasks),
             "--rate", rate, "--multi-size", str(args.multi_size), "--name", f"w{i + 1}"]
            if args.publisher == "celery" else
            [sys.executable, "bench/publisher.py", "--url", url, "--tasks", str(tasks),
             "--rate", rate, "--multi-size", str(args.multi_size), "--chunk", "2000"]
        )
        procs.append(subprocess.Popen(argv, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True))
    return procs


def collector_gauges(url: str) -> dict[str, float]:
    """The collector's backlog, drop and disconnect figures from its /metrics."""
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in ("taskpulse_buffer_events", "taskpulse_buffer_bytes"):
                out[f"{sample.name}:{sample.labels['where']}"] = sample.value
            elif sample.name in ("taskpulse_events_dropped_total",
                                 "taskpulse_broker_disconnects_total"):
                out[sample.name] = out.get(sample.name, 0.0) + sample.value
    return out


class Peaks:
    """Largest value seen of each sampled figure."""

    def __init__(self) -> None:
        self.values: dict[str, float] = {}

    def add(self, figures: dict[str, float]) -> None:
        for key, value in figures.items():
            self.values[key] = max(self.values.get(key, value), value)


def overload(consumer: Consumer, broker: RedisServer, args: argparse.Namespace) -> dict:
    peaks = Peaks()
    gauges: Callable[[], dict[str, float]] = (
        (lambda: collector_gauges(consumer.metrics_url))
        if isinstance(consumer, TaskpulseConsumer) else dict
    )
    cpu_start = consumer.cpu()

    last = [0]

    def sample() -> int:
        try:
            last[0] = consumer.count()
            peaks.add({"rss_mb": consumer.rss(), **gauges()})
        except OSError as exc:  # an overloaded Flower may not answer its /metrics in time
            progress(f"{consumer.name}: no count this time ({exc}); keeping {last[0]:,}")
        return last[0]

    progress(f"{consumer.name}: publishing {args.tasks:,} tasks at {args.rate:,.0f} events/s"
             f" ({args.publisher} publisher x{args.publishers}), {harness.load_note()}")
    started = time.perf_counter()
    publishers = start_publishers(args, broker.url(0))
    try:
        next_note = started + 10
        while any(p.poll() is None for p in publishers):
            count = sample()
            if time.perf_counter() > next_note:
                progress(f"{consumer.name}: {count:,} events folded, RSS"
                         f" {peaks.values['rss_mb']:.0f} MiB, {harness.load_note()}")
                next_note = time.perf_counter() + 10
            time.sleep(args.sample)
        published_at = time.perf_counter()
        at_publish_end = sample()
        reports = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in publishers]
    finally:  # a failed run leaves no publisher behind
        for publisher in publishers:
            if publisher.poll() is None:
                publisher.kill()
                publisher.wait()
    published = sum(r["events"] for r in reports)
    drain = harness.wait_for_count(
        sample, published, started, idle_seconds=args.idle, max_seconds=3 * 3600,
        label=f"{consumer.name} catching up", interval=args.sample,
    )
    publish_seconds = published_at - started
    catch_up = max(0.0, drain.seconds - publish_seconds)
    try:
        succeeded: int | None = consumer.succeeded()
    except OSError as exc:  # Flower, still busy with what it buffered, may not answer
        progress(f"{consumer.name}: tasks succeeded unknown ({exc})")
        succeeded = None
    log = (broker.workdir / "redis.log").read_text(errors="replace")
    result = {
        "consumer": consumer.name, "published": published, "tasks": args.tasks,
        "publish_seconds": publish_seconds, "publish_rate": published / publish_seconds,
        "publisher_cpu_seconds": sum(r["cpu_seconds"] for r in reports),
        "folded_at_publish_end": at_publish_end,
        "drain_rate_while_publishing": at_publish_end / publish_seconds,
        "catch_up_seconds": catch_up,
        "drain_rate_after": (drain.final - at_publish_end) / catch_up if catch_up else None,
        "folded": drain.final, "lost_events": published - drain.final,
        "lost_tasks": None if succeeded is None else args.tasks - succeeded,
        "consumer_cpu_seconds": consumer.cpu() - cpu_start, "cpu_parts": consumer.cpu_parts(),
        "disconnected_for_output_buffer": log.count("output buffer limits"),
        "peaks": peaks.values, "load": harness.load_note(),
    }
    progress(f"{consumer.name}: lost {result['lost_events']:,} events"
             f" ({result['lost_tasks']} tasks), caught up {catch_up:.0f}s after the publishers"
             f" stopped, {harness.load_note()}")
    return result


def run_side(name: str, make: Callable[[RedisServer], Consumer], workdir: Path,
             args: argparse.Namespace) -> dict:
    with harness.consumer_on_private_broker(workdir, f"broker-{name}", make) as (broker, c):
        return overload(c, broker, args)


def rows(results: dict, args: argparse.Namespace) -> list[Row]:
    ours, peer = results.get("taskpulse"), results.get("flower")

    def get(side: dict | None, key: str) -> float | None:
        return None if side is None else side.get(key)

    def peak(side: dict | None, key: str) -> float | None:
        return None if side is None else side["peaks"].get(key)

    lost = get(ours, "lost_events")
    out = [
        Row("publish rate achieved, events/s", get(ours, "publish_rate"),
            get(peer, "publish_rate"), f"{args.rate:,.0f}"),
        Row(f"events lost of {args.tasks * EVENTS_PER_TASK:,}", lost, get(peer, "lost_events"),
            "0", None if lost is None else lost == 0, better="lower"),
        Row("tasks lost (no task-succeeded stored)", get(ours, "lost_tasks"),
            get(peer, "lost_tasks"), "0",
            None if ours is None or ours["lost_tasks"] is None else ours["lost_tasks"] == 0,
            better="lower"),
        Row("pub/sub disconnects (output buffer limit)",
            get(ours, "disconnected_for_output_buffer"),
            get(peer, "disconnected_for_output_buffer"), "0",
            None if ours is None else ours["disconnected_for_output_buffer"] == 0,
            better="lower"),
        Row("drain events/s while publishing", get(ours, "drain_rate_while_publishing"),
            get(peer, "drain_rate_while_publishing"), ">=25,000 or kept up",
            None if ours is None else (ours["drain_rate_while_publishing"] >= 25_000
                                       or ours["catch_up_seconds"] < 1)),
        Row("catch-up after publishers stop, s", get(ours, "catch_up_seconds"),
            get(peer, "catch_up_seconds"), "", better="lower"),
        Row("drain events/s while catching up", get(ours, "drain_rate_after"),
            get(peer, "drain_rate_after"), ""),
        Row("peak RSS MiB", peak(ours, "rss_mb"), peak(peer, "rss_mb"), "<200",
            None if ours is None else ours["peaks"]["rss_mb"] < 200, better="lower"),
        Row("peak spool MiB", _mib(peak(ours, "taskpulse_buffer_bytes:spool")), None, "",
            better="lower"),
        Row("peak events in spool", peak(ours, "taskpulse_buffer_events:spool"), None, "",
            better="lower"),
        Row("peak memory backlog MiB", _mib(peak(ours, "taskpulse_buffer_bytes:memory")), None,
            "", better="lower"),
        Row("events dropped (metric)", peak(ours, "taskpulse_events_dropped_total"), None, "0",
            better="lower"),
    ]
    return out


def _mib(value: float | None) -> float | None:
    return None if value is None else value / (1 << 20)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=200_000)
    parser.add_argument("--rate", type=float, default=25_000, help="events/s, all publishers")
    parser.add_argument("--publisher", choices=("celery", "wire"), default="celery")
    parser.add_argument("--publishers", type=int, default=2,
                        help="Celery dispatcher processes (the wire publisher is one)")
    parser.add_argument("--multi-size", type=int, default=4,
                        help="tasks per task.multi flush (events of one phase per message)")
    parser.add_argument("--sample", type=float, default=0.5, help="seconds between samples")
    parser.add_argument("--idle", type=float, default=15.0,
                        help="the drain is over once the count stops moving this long")
    parser.add_argument("--flower-max-tasks", type=int, default=100_000)
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra TASKPULSE_* setting for the collector (repeatable)")
    parser.add_argument("--skip-flower", action="store_true")
    parser.add_argument("--skip-taskpulse", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results: dict = {"args": vars(args), "load_start": harness.load_note()}
    extra_env = dict(item.split("=", 1) for item in args.env)
    with tempfile.TemporaryDirectory(prefix="tp-overload-") as tmp:
        workdir = Path(tmp)
        if not args.skip_taskpulse:
            store = harness.start_redis(workdir, "store")
            try:
                results["taskpulse"] = run_side(
                    "taskpulse", lambda broker: TaskpulseConsumer(broker, store, workdir,
                                                                  **extra_env),
                    workdir, args)
            finally:
                store.stop()
            progress(f"taskpulse side: {harness.write_results('overload', results)}")
        if not args.skip_flower:
            harness.ensure_flower_venv()
            results["flower"] = run_side(
                "flower", lambda broker: FlowerConsumer(broker, workdir, args.flower_max_tasks),
                workdir, args)
    results["load_end"] = harness.load_note()
    table = rows(results, args)
    results["rows"] = harness.rows_json(table)
    harness.print_table(f"overload: {args.tasks:,} tasks at {args.rate:,.0f} events/s"
                        f" ({args.publisher} publisher)", table, peer="flower")
    print(f"\n{results['load_start']} at start, {results['load_end']} at end")
    print(f"results: {harness.write_results('overload', results)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
