"""Beat schedule (from the seed system), evaluated in the configured timezone."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from celery.schedules import crontab


def beat_schedule() -> dict[str, dict[str, Any]]:
    """Entry name → task and crontab. Celery reads the crontabs in ``app.conf.timezone``."""
    return {
        "check-pending-bills": {
            "task": "finance.check_pending_bills",
            "schedule": crontab(),  # every minute
        },
        # Every minute too: the (bill, day) key makes repeats free, and a bill that becomes
        # due is reminded within a minute rather than at some fixed hour.
        "send-bill-reminders": {
            "task": "finance.send_bill_reminders",
            "schedule": crontab(),
        },
        "hourly-report": {
            "task": "reports.generate_hourly_report",
            "schedule": crontab(minute=0),
        },
        "cleanup-old-notifications": {
            "task": "notifications.cleanup_old_notifications",
            "schedule": crontab(minute=0, hour=2),
        },
        "cleanup-audit-logs": {
            "task": "maintenance.cleanup_audit_logs",
            "schedule": crontab(minute=0, hour=2),
        },
        "weekly-report": {
            "task": "reports.generate_weekly_report",
            "schedule": crontab(minute=0, hour=10, day_of_week=1),
        },
        "monthly-report": {
            "task": "reports.generate_monthly_report",
            "schedule": crontab(minute=0, hour=0, day_of_month=1),
        },
    }


def next_run_at(schedule: crontab, after: datetime, zone: ZoneInfo) -> datetime:
    """The first time ``schedule`` fires strictly after ``after``, as an aware time in ``zone``."""
    last, delta, _now = schedule.remaining_delta(after.astimezone(zone), tz=zone)
    return last + delta
