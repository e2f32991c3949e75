"""Fill a taskpulse store with N finished tasks, fast, through the real write path.

Each task's four Celery events (sent/received/started/succeeded, built by ``bench.wire`` exactly
as a worker emits them) go through ``normalize`` and ``EventStore.apply`` (the collector's Lua) in
batches, skipping only the broker hop. Timestamps spread over the last ``--span-hours``.

    .venv/bin/python bench/fill.py --url redis://127.0.0.1:6390/0 --tasks 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from redis.asyncio import Redis

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import wire
from bench.harness import progress
from bench.publisher import make_specs
from event_collector.config import CollectorSettings
from event_collector.events import Event
from event_collector.keys import DEFAULT_KEY_PREFIX, Keys
from event_collector.normalize import normalize
from event_collector.store import EventStore, raise_listpack_limits

PHASES = (wire.task_sent, wire.task_received, wire.task_started, wire.task_succeeded)


@dataclass
class FillReport:
    tasks: int
    events: int
    seconds: float

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


class Filler:
    """Keeps its clocks between calls, so fill(10k) then fill(990k) reads as one history."""

    def __init__(self, redis: Redis, keys: Keys, planned_tasks: int, span_hours: float) -> None:
        self.store = EventStore(redis, keys)
        start = time.time() - span_hours * 3600
        step = span_hours * 3600 / max(planned_tasks * len(PHASES), 1)
        self.producer = wire.Clock("gen1@bench", 1, start, step)
        self.worker = wire.Clock("bench@worker1", 2, start, step)
        self.tasks = 0
        self.task_ids: list[str] = []

    def _events(self, count: int) -> list[Event]:
        specs = make_specs(count, self.tasks)
        self.tasks += count
        self.task_ids.extend(s.task_id for s in specs)
        return [
            normalize(phase(spec, self.producer if phase is wire.task_sent else self.worker))
            for spec in specs for phase in PHASES
        ]

    async def fill(self, tasks: int, batch_tasks: int = 250, label: str = "fill") -> FillReport:
        """Apply ``tasks`` more tasks; the next batch is built while Redis runs the previous."""
        # A running collector tunes its store at start; the fill bypasses it, so it does the same.
        await raise_listpack_limits(self.store.redis, CollectorSettings().redis_listpack_value)
        started, events, pending = time.perf_counter(), 0, None
        next_progress = started + 10
        target = self.tasks + tasks
        while self.tasks < target:
            batch = self._events(min(batch_tasks, target - self.tasks))
            events += len(batch)
            if pending is not None:
                await pending
            pending = asyncio.ensure_future(self.store.apply(batch))
            if time.perf_counter() > next_progress:
                progress(f"{label}: {self.tasks:,}/{target:,} tasks")
                next_progress = time.perf_counter() + 10
        if pending is not None:
            await pending
        return FillReport(tasks, events, time.perf_counter() - started)


async def _main(url: str, tasks: int, prefix: str, span_hours: float) -> None:
    redis = Redis.from_url(url)
    try:
        report = await Filler(redis, Keys(prefix), tasks, span_hours).fill(tasks)
    finally:
        await redis.aclose()
    print(f"filled {report.tasks:,} tasks ({report.events:,} events) in {report.seconds:.1f}s: "
          f"{report.events_per_s:,.0f} events/s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="store Redis URL (TASKPULSE_REDIS_URL)")
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--prefix", default=DEFAULT_KEY_PREFIX)
    parser.add_argument("--span-hours", type=float, default=24.0)
    args = parser.parse_args(argv)
    asyncio.run(_main(args.url, args.tasks, args.prefix, args.span_hours))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
