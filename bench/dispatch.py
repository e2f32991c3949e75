"""Task events sent by Celery's own ``EventDispatcher``, paced: what a busy fleet puts on a broker.

Unlike ``publisher.py`` (pre-encoded wire format, pipelined PUBLISHes), every event here goes
through Celery and kombu exactly as in production: ``task-sent`` from a producer's dispatcher, one
PUBLISH each (as ``apply_async`` sends it), and received/started/succeeded from a worker's
dispatcher with ``buffer_group=["task"]`` — how a prefork worker buffers task events and flushes
them as ``task.multi`` batches once per loop iteration (here: once per phase of a group of
``--multi-size`` tasks). One process plays one producer and one worker; the overload bench runs
several side by side to reach its rate::

    .venv/bin/python -m bench.dispatch --url redis://127.0.0.1:6390/0 --tasks 10000 --rate 12500
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
import uuid
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from celery import Celery

from bench.publisher import TASK_ROUTES

EVENTS_PER_TASK = 4


def send(url: str, tasks: int, rate: float, multi_size: int, name: str) -> dict:
    """Send ``tasks`` lifecycles at ``rate`` events/s (0 = as fast as possible)."""
    app = Celery(broker=url, set_as_current=False)
    host = socket.gethostname()
    sent = 0
    started = time.perf_counter()
    with app.connection_for_write() as conn:
        producer = app.events.Dispatcher(conn, hostname=f"gen-{name}@{host}", enabled=True)
        worker = app.events.Dispatcher(
            conn, hostname=f"{name}@{host}", enabled=True, buffer_group=["task"],
        )
        for first in range(0, tasks, multi_size):
            group = [(str(uuid.uuid4()), *TASK_ROUTES[(first + i) % len(TASK_ROUTES)], first + i)
                     for i in range(min(multi_size, tasks - first))]
            for task_id, task_name, queue, seq in group:
                producer.send(
                    "task-sent", uuid=task_id, root_id=task_id, parent_id=None, name=task_name,
                    args=f"({seq},)", kwargs="{}", retries=0, eta=None, expires=None,
                    queue=queue, exchange="", routing_key=queue,
                )
            for task_id, task_name, _, seq in group:
                worker.send("task-received", uuid=task_id, name=task_name, args=f"({seq},)",
                            kwargs="{}", root_id=task_id, parent_id=None, retries=0, eta=None,
                            expires=None)
            worker.flush()
            for task_id, *_ in group:
                worker.send("task-started", uuid=task_id)
            worker.flush()
            for task_id, _, _, seq in group:
                worker.send("task-succeeded", uuid=task_id, result=str(seq * 2), runtime=0.0004)
            worker.flush()
            sent += len(group) * EVENTS_PER_TASK
            if rate:
                ahead = started + sent / rate - time.perf_counter()
                if ahead > 0:
                    time.sleep(ahead)
    seconds = time.perf_counter() - started
    return {"name": name, "tasks": tasks, "events": sent, "seconds": seconds,
            "rate": sent / seconds if seconds else 0.0, "cpu_seconds": time.process_time()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="broker Redis URL")
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=0, help="events/s, 0 = unlimited")
    parser.add_argument("--multi-size", type=int, default=4, help="tasks per task.multi flush")
    parser.add_argument("--name", default=f"w{os.getpid()}", help="worker node name")
    args = parser.parse_args(argv)
    print(json.dumps(send(args.url, args.tasks, args.rate, args.multi_size, args.name)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
