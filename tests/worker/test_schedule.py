"""Beat's next run times for every seed schedule, evaluated in the configured timezone."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from worker.application import create_app
from worker.config import WorkerSettings
from worker.schedule import next_run_at

SHANGHAI = ZoneInfo("Asia/Shanghai")
# A Wednesday morning in Shanghai (01:30 UTC).
NOW = datetime(2026, 11, 25, 9, 30, 15, tzinfo=SHANGHAI)


@pytest.mark.parametrize(
    ("entry", "task", "expected"),
    [
        ("check-pending-bills", "finance.check_pending_bills", datetime(2026, 11, 25, 9, 31)),
        ("send-bill-reminders", "finance.send_bill_reminders", datetime(2026, 11, 25, 9, 31)),
        ("hourly-report", "reports.generate_hourly_report", datetime(2026, 11, 25, 10, 0)),
        (
            "cleanup-old-notifications",
            "notifications.cleanup_old_notifications",
            datetime(2026, 11, 26, 2, 0),
        ),
        ("cleanup-audit-logs", "maintenance.cleanup_audit_logs", datetime(2026, 11, 26, 2, 0)),
        ("weekly-report", "reports.generate_weekly_report", datetime(2026, 11, 30, 10, 0)),
        ("monthly-report", "reports.generate_monthly_report", datetime(2026, 12, 1, 0, 0)),
    ],
)
def test_next_run_in_shanghai(entry: str, task: str, expected: datetime) -> None:
    app = create_app(WorkerSettings(timezone="Asia/Shanghai"))
    schedule = app.conf.beat_schedule[entry]

    next_run = next_run_at(schedule["schedule"], NOW, app.timezone)

    assert schedule["task"] == task
    assert next_run == expected.replace(tzinfo=SHANGHAI)


def test_monthly_report_runs_at_local_midnight_which_is_the_previous_day_in_utc() -> None:
    app = create_app(WorkerSettings(timezone="Asia/Shanghai"))

    next_run = next_run_at(app.conf.beat_schedule["monthly-report"]["schedule"], NOW, app.timezone)

    assert next_run.astimezone(ZoneInfo("UTC")) == datetime(
        2026, 11, 30, 16, 0, tzinfo=ZoneInfo("UTC")
    )


def test_schedule_follows_the_configured_timezone() -> None:
    app = create_app(WorkerSettings(timezone="UTC"))

    next_run = next_run_at(
        app.conf.beat_schedule["cleanup-audit-logs"]["schedule"], NOW, app.timezone
    )

    # 09:30 in Shanghai is 01:30 UTC, so 02:00 UTC is the same day, half an hour later.
    assert next_run == datetime(2026, 11, 25, 2, 0, tzinfo=ZoneInfo("UTC"))


def test_every_scheduled_task_exists() -> None:
    app = create_app(WorkerSettings())

    for entry in app.conf.beat_schedule.values():
        assert entry["task"] in app.tasks
