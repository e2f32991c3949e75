"""Event → queryable state lag with a real Celery worker, for either consumer.

A producer subprocess sends ``--tasks`` tasks at ``--rate``/s with known ids (``<run>-<i>``) to a
real ``celery -A bench.lag_app worker -E``; the consumer folds the events. Every 10 ms a sampler
probes every ``sample``-th id (taskpulse: pipelined HMGET of ``tp:task:<id>``; Flower: its
``/api/task/info/<id>``) and records, the first time it sees them, ``now - sent`` (task visible)
and ``now - succeeded`` (final state visible), where sent/succeeded are the events' own
timestamps as the consumer stored them. Same host, same clock.

    .venv/bin/python bench/lag.py produce --url redis://... --tasks 1000 --rate 500 --run r1
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness
from bench.consumers import Consumer
from bench.harness import Row, percentile, progress
from tests.services import REPO_ROOT, RedisServer, ServiceProcess

POLL_SECONDS = 0.01


def produce(url: str, tasks: int, rate: float, run: str) -> None:
    from celery import Celery

    app = Celery("bench-producer", broker=url)
    app.conf.task_send_sent_event = True
    with app.producer_or_acquire() as producer:
        started = time.perf_counter()
        for i in range(tasks):
            app.send_task("demo.test_task", args=(i,), task_id=f"{run}-{i}", producer=producer)
            ahead = started + (i + 1) / rate - time.perf_counter()
            if ahead > 0:
                time.sleep(ahead)
    print(f"sent {tasks} in {time.perf_counter() - started:.2f}s", flush=True)


def _sample(consumer: Consumer, ids: list[str], rate: float, timeout: float) -> dict:
    sent_lag: dict[str, float] = {}
    done_lag: dict[str, float] = {}
    started = time.perf_counter()
    pending = list(ids)
    index = {task_id: n for n, task_id in enumerate(ids)}
    while pending and time.perf_counter() - started < timeout:
        # Only ids the producer can have sent by now (plus slack): keeps each poll small.
        horizon = (time.perf_counter() - started) * rate * 1.2 + 50
        active = [t for t in pending if index[t] <= horizon]
        seen = consumer.probe(active)
        now = time.time()
        for task_id, (state, sent, succeeded) in zip(active, seen, strict=True):
            if sent is not None and task_id not in sent_lag:
                sent_lag[task_id] = now - sent
            if state == "SUCCESS" and succeeded is not None:
                done_lag[task_id] = now - succeeded
        pending = [t for t in pending if t not in done_lag]
        time.sleep(POLL_SECONDS)
    return {"sent": list(sent_lag.values()), "done": list(done_lag.values()),
            "missing": len(pending)}


def run(
    workdir: Path, make: Callable[[RedisServer], Consumer], tasks: int, rate: float, sample: int
) -> dict:
    """Lag through ``make(broker)``'s consumer, probing every ``sample``-th task."""
    with (
        harness.consumer_on_private_broker(workdir, "broker-lag", make) as (broker, consumer),
        contextlib.ExitStack() as stack,  # the worker and producer started below
    ):
        env = {**os.environ, "BENCH_BROKER_URL": broker.url(0), "PYTHONUNBUFFERED": "1"}
        worker = ServiceProcess(
            [sys.executable, "-m", "celery", "-A", "bench.lag_app", "worker", "-E", "-c", "2",
             "-P", "prefork", "--without-mingle", "--without-gossip", "-l", "INFO"],
            env, workdir / "lag-worker.log",
        )
        stack.callback(worker.stop)
        worker.wait_for_log(" ready.", timeout=60)
        run_id = uuid.uuid4().hex[:8]
        producer = ServiceProcess(
            [sys.executable, str(REPO_ROOT / "bench" / "lag.py"), "produce", "--url",
             broker.url(0), "--tasks", str(tasks), "--rate", str(rate), "--run", run_id],
            env, workdir / "lag-producer.log",
        )
        stack.callback(producer.stop)
        progress(f"{consumer.name} lag: {tasks:,} tasks at {rate:,.0f}/s through a real worker")
        ids = [f"{run_id}-{i}" for i in range(0, tasks, sample)]
        lags = _sample(consumer, ids, rate, timeout=tasks / rate + 60)
        producer.process.wait(timeout=60)
        summary = {"tasks": tasks, "rate": rate, "sampled": len(ids), "sample_every": sample,
                   "missing": lags["missing"], "load": harness.load_note()}
        for key in ("sent", "done"):
            values = [v * 1000 for v in lags[key]]
            summary[f"{key}_ms"] = {"p50": percentile(values, 50), "p99": percentile(values, 99),
                                    "max": max(values, default=float("nan"))}
        return summary


def rows(ours: dict, peer: dict | None) -> list[Row]:
    def get(side: dict | None, key: str, pct: str) -> float | None:
        return side[f"{key}_ms"][pct] if side else None

    out = []
    for key, label in (("sent", "task visible"), ("done", "final state visible")):
        p99 = ours[f"{key}_ms"]["p99"]
        out.append(Row(f"lag {label} p50 ms @ {ours['rate']:.0f}/s", get(ours, key, "p50"),
                       get(peer, key, "p50"), "", None, better="lower"))
        out.append(Row(f"lag {label} p99 ms @ {ours['rate']:.0f}/s", p99, get(peer, key, "p99"),
                       "<250", p99 < 250 and not ours["missing"], better="lower"))
    if peer and peer["missing"]:
        out.append(Row("lag: probed tasks never seen final", ours["missing"], peer["missing"],
                       "0", not ours["missing"], better="lower"))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("produce", help="send tasks with known ids at a fixed rate")
    cmd.add_argument("--url", required=True)
    cmd.add_argument("--tasks", type=int, required=True)
    cmd.add_argument("--rate", type=float, required=True)
    cmd.add_argument("--run", required=True, help="id prefix")
    args = parser.parse_args(argv)
    produce(args.url, args.tasks, args.rate, args.run)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
