"""Building real normalized events for tests (ids computed as the collector computes them)."""

from __future__ import annotations

from event_collector.events import Event
from event_collector.normalize import event_id


def task_event(kind: str, task_id: str, ts: float, hostname: str = "w1@box", **fields) -> Event:
    """A task event; ``kind`` is ``sent`` or ``task-sent``."""
    type_ = kind if kind.startswith("task-") else f"task-{kind}"
    return Event(
        id=event_id(type_, task_id, hostname, 1, 0, ts), type=type_, timestamp=ts,
        hostname=hostname, pid=1, uuid=task_id, **fields,
    )


def worker_event(
    kind: str, hostname: str, ts: float, freq: float | None = 2.0, active: int = 0
) -> Event:
    type_ = f"worker-{kind}"
    return Event(
        id=event_id(type_, "", hostname, 1, 0, ts), type=type_, timestamp=ts, hostname=hostname,
        pid=1, freq=freq, active=active,
    )


def sent_and_succeeded(task_id: str, ts: float, name: str = "demo.test_task",
                       queue: str = "default") -> list[Event]:
    return [
        task_event("sent", task_id, ts, hostname="gen1@api", name=name, queue=queue),
        task_event("received", task_id, ts + 0.1, name=name),
        task_event("started", task_id, ts + 0.2),
        task_event("succeeded", task_id, ts + 0.5, runtime=0.3, result="'ok'"),
    ]
