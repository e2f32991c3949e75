"""Synthetic Celery event publisher: real wire format, pre-encoded, pipelined, rate-controlled.

Ground truth for every collector benchmark is what this publishes. Usable as a module (the bench
scripts publish chunk by chunk) or on its own::

    .venv/bin/python bench/publisher.py --url redis://127.0.0.1:6380/0 --tasks 100000 --rate 29000
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlparse

import redis

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import wire

# (name, queue) pairs from the taskpulse catalog, so per-name indexes and counters get real spread.
TASK_ROUTES: tuple[tuple[str, str], ...] = (
    ("demo.test_task", "default"),
    ("finance.check_pending_bills", "finance"),
    ("reports.generate_hourly_report", "reports"),
    ("notifications.send_notification_email", "email"),
    ("maintenance.cleanup_cache", "default"),
    ("exports.export_data", "reports"),
)

Message = tuple[bytes, bytes, int]  # channel, payload, number of events inside


@dataclass
class PublishReport:
    events: int = 0
    messages: int = 0
    seconds: float = 0.0
    unheard_messages: int = 0  # PUBLISH answered 0 receivers: lost before any consumer

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def db_of(url: str) -> int:
    path = urlparse(url).path.strip("/")
    return int(path) if path else 0


def make_specs(count: int, first_seq: int = 0) -> list[wire.TaskSpec]:
    specs = []
    for seq in range(first_seq, first_seq + count):
        name, queue = TASK_ROUTES[seq % len(TASK_ROUTES)]
        specs.append(wire.TaskSpec(str(uuid.uuid4()), name, queue, seq))
    return specs


class EventSource:
    """Encodes task lifecycles for one fake producer + one fake prefork worker."""

    def __init__(self, db: int, multi_size: int = 4, events_per_second: float = 29_000) -> None:
        host = socket.gethostname()
        now, step = time.time(), 1.0 / max(events_per_second, 1.0)
        self.db = db
        self.multi_size = multi_size
        self.producer = wire.Clock(f"gen{os.getpid()}@{host}", os.getpid(), now, step)
        self.worker = wire.Clock(f"bench@{host}", os.getpid() + 1, now, step)
        self.tasks = 0

    def encode(self, count: int) -> list[Message]:
        specs = make_specs(count, self.tasks)
        self.tasks += count
        return list(
            wire.lifecycle_messages(specs, self.producer, self.worker, self.db, self.multi_size)
        )


def publish(
    client: redis.Redis, messages: list[Message], rate: float = 0.0, pipeline_size: int = 200,
    paced_from: tuple[float, int] | None = None,
) -> PublishReport:
    """PUBLISH ``messages`` in pipelines, pacing to ``rate`` events/s (0 = as fast as possible);
    ``paced_from`` (start time, events published since) paces a run of several calls as one."""
    report = PublishReport()
    started = time.perf_counter()
    origin, before = paced_from or (started, 0)
    for start in range(0, len(messages), pipeline_size):
        chunk = messages[start:start + pipeline_size]
        pipe = client.pipeline(transaction=False)
        for chan, payload, _ in chunk:
            pipe.execute_command("PUBLISH", chan, payload)
        receivers = pipe.execute()
        report.messages += len(chunk)
        report.events += sum(n for _, _, n in chunk)
        report.unheard_messages += sum(1 for r in receivers if not r)
        if rate:
            ahead = origin + (before + report.events) / rate - time.perf_counter()
            if ahead > 0:
                time.sleep(ahead)
    report.seconds = time.perf_counter() - started
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="broker Redis URL (its db picks the channel)")
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=29_000, help="events/s, 0 = unlimited")
    parser.add_argument("--multi-size", type=int, default=4, help="events per task.multi batch")
    parser.add_argument("--chunk", type=int, default=0,
                        help="encode and publish this many tasks at a time (0 = encode all"
                             " first: ~2 KB a task)")
    args = parser.parse_args(argv)
    source = EventSource(db_of(args.url), args.multi_size, args.rate or 29_000)
    client = redis.Redis.from_url(args.url)
    if args.chunk:
        report, started = PublishReport(), time.perf_counter()
        while source.tasks < args.tasks:
            part = publish(client, source.encode(min(args.chunk, args.tasks - source.tasks)),
                           args.rate, paced_from=(started, report.events))
            report.events += part.events
            report.messages += part.messages
            report.unheard_messages += part.unheard_messages
        report.seconds = time.perf_counter() - started
        print(json.dumps({**asdict(report), "rate": report.rate,
                          "cpu_seconds": time.process_time()}))
        return 0
    encode_started = time.perf_counter()
    messages = source.encode(args.tasks)
    encode_seconds = time.perf_counter() - encode_started
    report = publish(client, messages, args.rate)
    print(json.dumps({**asdict(report), "rate": report.rate, "encode_seconds": encode_seconds}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
