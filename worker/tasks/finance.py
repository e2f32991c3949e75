"""Bills and revenue."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from worker.domain.periods import local_now, month_bounds, previous_month
from worker.domain.store import audit, transaction
from worker.tasks.base import TaskpulseTask
from worker.tasks.params import DaysAhead, Month


def check_pending_bills(self: TaskpulseTask) -> dict[str, int]:
    """Mark pending bills past their due date as overdue and count what is still open."""
    today = local_now(self.settings.zone).date().isoformat()
    with self.store() as conn, transaction(conn):
        marked = conn.execute(
            "UPDATE bills SET status = 'overdue' WHERE status = 'pending' AND due_date < ?",
            (today,),
        ).rowcount
        counts = dict(
            conn.execute(
                "SELECT status, COUNT(*) FROM bills WHERE status != 'paid' GROUP BY status"
            ).fetchall()
        )
        if marked:
            audit(conn, "bills.marked_overdue", count=marked, day=today)
    return {
        "marked_overdue": marked,
        "pending": counts.get("pending", 0),
        "overdue": counts.get("overdue", 0),
    }


def send_bill_reminders(self: TaskpulseTask, days_ahead: DaysAhead = 3) -> dict[str, Any]:
    """Remind the owner of every unpaid bill due within ``days_ahead`` days (or overdue).

    At most one reminder per bill and local day: the (bill, day) key is claimed in the same
    transaction that writes the notification, so a rerun the same day sends nothing.
    """
    today = local_now(self.settings.zone).date()
    horizon = (today + timedelta(days=days_ahead)).isoformat()
    now = time.time()
    reminded: list[int] = []
    with self.store() as conn, transaction(conn):
        bills = conn.execute(
            "SELECT b.id, b.amount_cents, b.due_date, b.user_id, u.email FROM bills b "
            "JOIN users u ON u.id = b.user_id "
            "WHERE b.status IN ('pending', 'overdue') AND b.due_date <= ? ORDER BY b.id",
            (horizon,),
        ).fetchall()
        for bill in bills:
            claimed = conn.execute(
                "INSERT OR IGNORE INTO bill_reminders (bill_id, day, sent_at) VALUES (?, ?, ?)",
                (bill["id"], today.isoformat(), now),
            ).rowcount
            if not claimed:
                continue
            conn.execute(
                "INSERT INTO notifications (user_id, channel, recipient, subject, body, status,"
                " created_at, sent_at) VALUES (?, 'in_app', ?, ?, ?, 'sent', ?, ?)",
                (
                    bill["user_id"],
                    bill["email"],
                    f"Bill #{bill['id']} is due {bill['due_date']}",
                    f"Please pay {bill['amount_cents'] / 100:.2f} by {bill['due_date']}.",
                    now,
                    now,
                ),
            )
            reminded.append(bill["id"])
        if reminded:
            audit(conn, "bills.reminded", bills=reminded, day=today.isoformat())
    return {"reminded": len(reminded), "bill_ids": reminded, "day": today.isoformat()}


def calculate_monthly_revenue(self: TaskpulseTask, month: Month | None = None) -> dict[str, Any]:
    """Sum the bills paid in ``month`` (YYYY-MM, local time; default: last month) into revenue."""
    zone = self.settings.zone
    month = month or previous_month(local_now(zone))
    start, end = month_bounds(month, zone)
    with self.store() as conn, transaction(conn):
        total, count = conn.execute(
            "SELECT COALESCE(SUM(amount_cents), 0), COUNT(*) FROM bills "
            "WHERE status = 'paid' AND paid_at >= ? AND paid_at < ?",
            (start.timestamp(), end.timestamp()),
        ).fetchone()
        conn.execute(
            "INSERT INTO revenue (month, total_cents, bills_paid, computed_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (month) DO UPDATE SET total_cents = excluded.total_cents,"
            " bills_paid = excluded.bills_paid, computed_at = excluded.computed_at",
            (month, total, count, time.time()),
        )
        audit(conn, "revenue.calculated", month=month, total_cents=total)
    return {"month": month, "total_cents": total, "bills_paid": count}


TASKS = (check_pending_bills, send_bill_reminders, calculate_monthly_revenue)
