"""Periodic reports: a JSON file per period plus a row in ``reports``."""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import datetime
from typing import Any

from worker.domain.periods import local_now, period_starting, report_period
from worker.domain.store import audit, transaction
from worker.files import atomic_write
from worker.tasks.base import TaskpulseTask
from worker.tasks.params import MonthStart, PeriodStart


def generate_hourly_report(
    self: TaskpulseTask, period_start: PeriodStart | None = None
) -> dict[str, Any]:
    """Report on the last complete hour (or the hour starting at ``period_start``)."""
    return _generate(self, "hourly", period_start)


def generate_daily_report(
    self: TaskpulseTask, period_start: PeriodStart | None = None
) -> dict[str, Any]:
    """Report on yesterday (or the day starting at ``period_start``)."""
    return _generate(self, "daily", period_start)


def generate_weekly_report(
    self: TaskpulseTask, period_start: PeriodStart | None = None
) -> dict[str, Any]:
    """Report on last Monday-to-Sunday week (or the week starting at ``period_start``)."""
    return _generate(self, "weekly", period_start)


def generate_monthly_report(
    self: TaskpulseTask, period_start: MonthStart | None = None
) -> dict[str, Any]:
    """Report on last calendar month (or the month starting at ``period_start``)."""
    return _generate(self, "monthly", period_start)


def _generate(task: TaskpulseTask, kind: str, period_start: str | None) -> dict[str, Any]:
    zone = task.settings.zone
    if period_start is None:
        start, end = report_period(kind, local_now(zone))
    else:
        start, end = period_starting(kind, period_start, zone)
    path = task.settings.data_dir / "reports" / kind / f"{kind}-{start:%Y%m%dT%H%M}.json"
    with task.store() as conn:
        figures = _figures(conn, start, end)
        report = {
            "kind": kind,
            "period_start": start.isoformat(),
            "period_end": end.isoformat(),
            "generated_at": time.time(),
            **figures,
        }
        # The row and the file land together: if writing the file fails, the row rolls back.
        with transaction(conn):
            conn.execute(
                "INSERT INTO reports (kind, period_start, period_end, path, created_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (kind, period_start) DO UPDATE"
                " SET path = excluded.path, created_at = excluded.created_at",
                (kind, start.isoformat(), end.isoformat(), str(path), report["generated_at"]),
            )
            audit(conn, "report.generated", kind=kind, period_start=start.isoformat())
            with atomic_write(path) as handle:
                json.dump(report, handle, indent=2, sort_keys=True)
    return {"path": str(path), **report}


def _figures(conn: sqlite3.Connection, start: datetime, end: datetime) -> dict[str, int]:
    window = (start.timestamp(), end.timestamp())
    bills_created = conn.execute(
        "SELECT COUNT(*) FROM bills WHERE created_at >= ? AND created_at < ?", window
    ).fetchone()[0]
    paid, revenue = conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(amount_cents), 0) FROM bills"
        " WHERE status = 'paid' AND paid_at >= ? AND paid_at < ?",
        window,
    ).fetchone()
    notifications = conn.execute(
        "SELECT COUNT(*) FROM notifications WHERE sent_at >= ? AND sent_at < ?", window
    ).fetchone()[0]
    overdue = conn.execute("SELECT COUNT(*) FROM bills WHERE status = 'overdue'").fetchone()[0]
    return {
        "bills_created": bills_created,
        "bills_paid": paid,
        "revenue_cents": revenue,
        "notifications_sent": notifications,
        "bills_overdue_now": overdue,
    }


TASKS = (
    generate_hourly_report,
    generate_daily_report,
    generate_weekly_report,
    generate_monthly_report,
)
