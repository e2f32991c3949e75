"""Schedules edited through the API drive real beats; one beat is active, the others stand by."""

from __future__ import annotations

import itertools
import re
import signal
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.services import ServiceProcess, wait_until
from tests.workflows.conftest import Stack

INTERVAL = 2.0
SHANGHAI = ZoneInfo("Asia/Shanghai")  # TASKPULSE_TIMEZONE's default, which the stack keeps
_SENT = re.compile(
    r"\[(?P<ts>[\d-]+ [\d:,]+): INFO/MainProcess\] Scheduler: Sending due task (?P<name>\S+)"
)


def schedule_body(name: str, message: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name, "task": "demo.test_task", "interval": {"every": INTERVAL},
        "kwargs": {"message": message}, **extra,
    }  # fmt: skip


def sends(beat: ServiceProcess, name: str) -> list[float]:
    """When ``beat`` sent the entry ``name`` (from its log), as epoch seconds."""
    out = []
    for m in _SENT.finditer(beat.log()):
        if m["name"] == name:
            out.append(datetime.strptime(m["ts"], "%Y-%m-%d %H:%M:%S,%f").timestamp())
    return out


@pytest.fixture
def beat(stack: Stack) -> Iterator[ServiceProcess]:
    proc = stack.beat(uuid.uuid4().hex[:6])
    proc.wait_for_log("beat: Acquired lock", timeout=30)
    yield proc
    proc.stop()


def test_a_schedule_added_through_the_api_fires_on_the_worker_and_stops_when_paused(
    stack: Stack, beat: ServiceProcess
) -> None:
    name, message = f"every-2s-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex
    created = stack.call("POST", "/schedules", "admin", json=schedule_body(name, message))
    assert created.status_code == 201, created.text
    assert created.json()["next_run_at"] is not None

    # The first run comes one interval after creation (plus at most one beat tick).
    wait_until(lambda: len(stack.demo_runs(message)) >= 2, timeout=3 * INTERVAL + 4,
               what="two runs of the new schedule")  # fmt: skip
    shown = stack.call("GET", f"/schedules/{name}", "viewer").json()
    assert shown["last_run_at"] is not None
    assert shown["total_run_count"] >= 2

    paused = stack.call("PATCH", f"/schedules/{name}", "admin", json={"enabled": False})
    assert paused.status_code == 200
    assert "next_run_at" not in paused.json()
    time.sleep(1.5)  # a tick that began before the pause may still send once
    sent = stack.call("GET", f"/schedules/{name}", "viewer").json()["total_run_count"]
    wait_until(lambda: len(stack.demo_runs(message)) == sent, timeout=10,
               what="the runs sent before the pause")  # fmt: skip
    time.sleep(3 * INTERVAL)
    assert len(stack.demo_runs(message)) == sent
    before_resume = stack.call("GET", f"/schedules/{name}", "viewer").json()
    assert before_resume["total_run_count"] == sent

    # Resuming skips the missed runs: the next one is a whole interval away, counts are kept,
    # and the last run is still the last real one, not the resume.
    resumed = stack.call("PATCH", f"/schedules/{name}", "admin", json={"enabled": True}).json()
    next_run = datetime.fromisoformat(resumed["next_run_at"]).timestamp()
    assert next_run >= time.time() + INTERVAL - 1.5
    assert resumed["total_run_count"] >= shown["total_run_count"]
    assert resumed["last_run_at"] == before_resume["last_run_at"]
    stack.call("DELETE", f"/schedules/{name}", "admin")


def test_a_standby_beat_takes_over_when_the_active_one_is_killed_without_double_runs(
    stack: Stack, beat: ServiceProcess
) -> None:
    name, message = f"takeover-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex
    standby = stack.beat("standby")
    try:
        standby.wait_for_log("standing by", timeout=30)
        stack.call("POST", "/schedules", "admin", json=schedule_body(name, message))
        wait_until(lambda: len(sends(beat, name)) >= 2, timeout=10, what="active beat sending")
        assert sends(standby, name) == []

        beat.stop(signal.SIGKILL)  # no lock release: the standby waits for it to lapse
        killed_at = time.time()
        standby.wait_for_log("beat: Acquired lock", timeout=15)
        wait_until(lambda: len(sends(standby, name)) >= 2, timeout=10, what="standby sending")
    finally:
        standby.stop()
        stack.call("DELETE", f"/schedules/{name}", "admin")

    active, taken_over = sends(beat, name), sends(standby, name)
    context = f"active sent {active}, standby sent {taken_over}, killed at {killed_at}"
    assert max(active) < killed_at <= min(taken_over), context
    times = sorted(active + taken_over)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= INTERVAL - 0.5, f"two sends {min(gaps):.2f}s apart: {context}"
    # Each send ran once on the worker. The kill may cut one send between its log line and
    # publishing it (at most once, never twice), so one run may be missing, none extra.
    wait_until(lambda: len(stack.demo_runs(message)) >= len(times) - 1, timeout=10,
               what="the sends running")  # fmt: skip
    time.sleep(1)
    assert len(stack.demo_runs(message)) <= len(times), context


def test_static_entries_are_seeded_once_and_runtime_edits_survive_a_beat_restart(
    stack: Stack, beat: ServiceProcess
) -> None:
    listed = {s["name"]: s for s in stack.call("GET", "/schedules", "viewer").json()["items"]}
    assert listed["hourly-report"]["crontab"] == {"minute": "0"}
    assert listed["hourly-report"]["task"] == "reports.generate_hourly_report"
    stack.call("PATCH", "/schedules/hourly-report", "admin", json={"enabled": False})
    stack.call("DELETE", "/schedules/weekly-report", "admin")

    beat.stop()
    again = stack.beat("restarted")
    try:
        again.wait_for_log("beat: Acquired lock", timeout=30)
        listed = {s["name"]: s for s in stack.call("GET", "/schedules", "viewer").json()["items"]}
    finally:
        again.stop()
        stack.call("PATCH", "/schedules/hourly-report", "admin", json={"enabled": True})
    assert listed["hourly-report"]["enabled"] is False
    assert "weekly-report" not in listed


def test_an_invalid_crontab_is_refused_naming_the_field(stack: Stack) -> None:
    body = {"name": "bad-cron", "task": "demo.test_task", "crontab": {"minute": "61"}}
    r = stack.call("POST", "/schedules", "admin", json=body)
    assert r.status_code == 422
    assert r.json()["error"]["details"]["field"] == "crontab.minute"


def test_a_crontab_schedule_shows_its_next_run_in_the_configured_timezone(stack: Stack) -> None:
    name = f"daily-{uuid.uuid4().hex[:6]}"
    body = {"name": name, "task": "demo.test_task", "crontab": {"minute": "0", "hour": "2"}}
    created = stack.call("POST", "/schedules", "admin", json=body).json()
    shown = stack.call("GET", f"/schedules/{name}", "viewer").json()  # read back from Redis
    stack.call("DELETE", f"/schedules/{name}", "admin")
    for view in (created, shown):
        next_run = datetime.fromisoformat(view["next_run_at"])
        assert next_run.utcoffset().total_seconds() == 8 * 3600  # Asia/Shanghai, the default
        assert (next_run.hour, next_run.minute, next_run.second) == (2, 0, 0)
        assert timedelta(0) < next_run - datetime.now(next_run.tzinfo) <= timedelta(days=1)


def next_full_hour(when: datetime) -> datetime:
    return when.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)


def test_an_hourly_crontab_runs_next_at_the_full_hour_the_same_at_every_call(
    stack: Stack,
) -> None:
    name = f"hourly-{uuid.uuid4().hex[:6]}"
    body = {"name": name, "task": "demo.test_task", "crontab": {"minute": "0"}}
    before = datetime.now(SHANGHAI)
    created = stack.call("POST", "/schedules", "admin", json=body).json()
    after = datetime.now(SHANGHAI)
    views = [created]
    for _ in range(3):
        time.sleep(1)
        views.append(stack.call("GET", f"/schedules/{name}", "viewer").json())
    stack.call("DELETE", f"/schedules/{name}", "admin")

    assert {v["next_run_at"] for v in views} == {created["next_run_at"]}
    next_run = datetime.fromisoformat(created["next_run_at"])
    assert next_run in {next_full_hour(before), next_full_hour(after)}
    assert next_run.utcoffset() == timedelta(hours=8)
    for view in views:  # it has not run: no last run
        assert view["total_run_count"] == 0
        assert view.get("last_run_at") is None


def test_an_interval_runs_next_one_period_after_its_creation(stack: Stack) -> None:
    name = f"hourly-interval-{uuid.uuid4().hex[:6]}"
    body = {"name": name, "task": "demo.test_task", "interval": {"every": 3600}}
    before = datetime.now(UTC)
    created = stack.call("POST", "/schedules", "admin", json=body).json()
    after = datetime.now(UTC)
    time.sleep(1)
    shown = stack.call("GET", f"/schedules/{name}", "viewer").json()
    stack.call("DELETE", f"/schedules/{name}", "admin")

    next_run = datetime.fromisoformat(created["next_run_at"])
    assert before + timedelta(hours=1) <= next_run <= after + timedelta(hours=1)
    assert shown["next_run_at"] == created["next_run_at"]
    assert shown.get("last_run_at") is None


def test_schedules_refuse_unknown_tasks_and_duplicates(stack: Stack) -> None:
    name = f"dup-{uuid.uuid4().hex[:6]}"
    unknown = {**schedule_body(name, "x"), "task": "no.such_task"}
    assert stack.call("POST", "/schedules", "admin", json=unknown).status_code == 422
    assert (
        stack.call("POST", "/schedules", "admin", json=schedule_body(name, "x")).status_code == 201
    )
    again = stack.call("POST", "/schedules", "admin", json=schedule_body(name, "x"))
    assert again.status_code == 409
    assert stack.call("DELETE", f"/schedules/{name}", "admin").status_code == 204
    assert stack.call("GET", f"/schedules/{name}", "viewer").status_code == 404


def test_viewers_read_schedules_but_only_admins_change_them(stack: Stack) -> None:
    assert stack.call("GET", "/schedules", "viewer").status_code == 200
    body = schedule_body(f"nope-{uuid.uuid4().hex[:6]}", "x")
    assert stack.call("POST", "/schedules", "operator", json=body).status_code == 403


def test_a_crontab_that_never_fires_is_refused(stack: Stack) -> None:
    never = {"minute": "0", "hour": "0", "day_of_month": "31", "month_of_year": "2"}
    body = {"name": "feb-31", "task": "demo.test_task", "crontab": never}
    r = stack.call("POST", "/schedules", "admin", json=body)
    assert r.status_code == 422
    assert r.json()["error"]["details"]["field"] == "crontab.day_of_month"


def test_changing_the_task_moves_the_schedule_to_that_task_s_queue(stack: Stack) -> None:
    name = f"move-{uuid.uuid4().hex[:6]}"
    stack.call("POST", "/schedules", "admin", json=schedule_body(name, "x", enabled=False))
    changed = stack.call("PATCH", f"/schedules/{name}", "admin",
                         json={"task": "finance.check_pending_bills", "kwargs": {}})  # fmt: skip
    assert changed.status_code == 200, changed.text
    assert changed.json()["queue"] == "finance"
    assert changed.json()["enabled"] is False
    stack.call("DELETE", f"/schedules/{name}", "admin")
