"""A minimal real Celery app for the lag benchmark: ``celery -A bench.lag_app worker -E``.

Its own app (not ``worker/``) so the benchmark measures event plumbing, not task bodies; the broker
comes from ``BENCH_BROKER_URL`` because ``celery -A`` gives no other way to pass it in.
"""

from __future__ import annotations

import os

from celery import Celery

app = Celery("bench", broker=os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/0"))
app.conf.update(
    worker_send_task_events=True,
    task_send_sent_event=True,
    task_ignore_result=True,
    worker_prefetch_multiplier=16,
)


@app.task(name="demo.test_task")
def test_task(value: int) -> int:
    return value * 2
