"""``taskpulse tasks watch`` lines: quiet, named, and saying what went wrong."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from producer_api.cli.output import Output
from producer_api.cli.watch import EventLines, TaskNames

TS = 1767225600.0  # 2026-01-01T00:00:00Z
TASK = "6f1c2e4a-0000-4000-8000-000000000001"


def event(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "timestamp": TS, "hostname": "w1@box", **fields}


def lines(names: dict[str, str] | None = None, heartbeats: bool = False) -> EventLines:
    return EventLines(Output(tz=UTC), TaskNames((names or {}).get), heartbeats)


def test_worker_heartbeats_are_hidden_by_default() -> None:
    assert not lines().shown(event("worker-heartbeat", active=1))
    assert lines().shown(event("worker-online"))


def test_heartbeats_are_shown_when_asked_for() -> None:
    assert lines(heartbeats=True).shown(event("worker-heartbeat", active=1))


def test_a_task_event_without_a_name_is_named_from_its_record() -> None:
    line = lines({TASK: "demo.test_task"}).line(event("task-started", uuid=TASK))
    assert line.split()[3] == "demo.test_task"


def test_the_events_own_name_wins_over_a_lookup() -> None:
    line = lines({TASK: "stale.name"}).line(event("task-received", uuid=TASK, name="demo.x"))
    assert line.split()[3] == "demo.x"


def test_a_name_is_looked_up_once_per_task() -> None:
    asked: list[str] = []
    names = TaskNames(lambda task_id: asked.append(task_id) or "demo.test_task")
    for kind in ("task-started", "task-progress", "task-succeeded"):
        names(event(kind, uuid=TASK))
    assert asked == [TASK]


def test_a_name_seen_on_an_event_needs_no_lookup() -> None:
    asked: list[str] = []
    names = TaskNames(lambda task_id: asked.append(task_id) or "")
    names(event("task-received", uuid=TASK, name="demo.test_task"))
    assert names(event("task-started", uuid=TASK)) == "demo.test_task"
    assert asked == []


def test_a_failure_shows_its_exception() -> None:
    line = lines({TASK: "demo.test_task"}).line(
        event("task-failed", uuid=TASK, exception="ValueError('boom')"))
    assert line.endswith("w1@box  ValueError('boom')")


def test_a_progress_event_shows_its_values() -> None:
    line = lines({TASK: "demo.long_running_task"}).line(
        event("task-progress", uuid=TASK, progress_current=3.0, progress_total=10.0))
    assert line.endswith("progress 3/10")


def test_a_line_starts_with_the_time_with_its_offset() -> None:
    line = lines({TASK: "demo.test_task"}).line(event("task-started", uuid=TASK))
    assert line.split()[:3] == ["2026-01-01T00:00:00+00:00", "task-started", TASK]
