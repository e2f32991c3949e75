"""Demo data: users with bills in every state, old and new notifications and audit entries.

Enough variety that every task has something to do on a fresh install (``make run``).
"""

from __future__ import annotations

import json
import random
import sqlite3
import time
from datetime import date, timedelta

import msgspec

from worker.domain.store import transaction

DAY = 86400.0


class SeedSummary(msgspec.Struct, frozen=True):
    users: int
    bills: int
    notifications: int
    audit_logs: int
    sessions: int
    skipped: bool = False


def seed_demo(conn: sqlite3.Connection, today: date, users: int = 8, seed: int = 7) -> SeedSummary:
    """Insert demo rows in one transaction; a store that already has users is left alone."""
    rng = random.Random(seed)
    now = time.time()
    with transaction(conn):
        if conn.execute("SELECT COUNT(*) FROM users").fetchone()[0]:
            return SeedSummary(0, 0, 0, 0, 0, skipped=True)
        user_ids = [
            conn.execute(
                "INSERT INTO users (email, name, created_at) VALUES (?, ?, ?)",
                (f"user{n}@example.com", f"Demo User {n}", now - 400 * DAY),
            ).lastrowid
            for n in range(1, users + 1)
        ]
        bills = sum(_seed_bills(conn, user_id, today, now, rng) for user_id in user_ids)
        notifications = _seed_aged(conn, "notifications", user_ids, now, rng)
        audit_logs = _seed_aged(conn, "audit_logs", user_ids, now, rng)
        for user_id in user_ids:
            for expires in (now - DAY, now + 7 * DAY):
                conn.execute(
                    "INSERT INTO sessions (token, user_id, expires_at) VALUES (?, ?, ?)",
                    (f"{rng.getrandbits(64):016x}", user_id, expires),
                )
    return SeedSummary(len(user_ids), bills, notifications, audit_logs, 2 * len(user_ids))


def _seed_bills(
    conn: sqlite3.Connection, user_id: int, today: date, now: float, rng: random.Random
) -> int:
    """Per user: one overdue, one due soon, one due later and two paid (this and last month)."""
    plans = [
        (-5, "pending", None),
        (1, "pending", None),
        (20, "pending", None),
        (-3, "paid", now - 2 * DAY),
        (-35, "paid", now - 32 * DAY),
    ]
    for offset, status, paid_at in plans:
        conn.execute(
            "INSERT INTO bills (user_id, amount_cents, due_date, status, created_at, paid_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                user_id,
                rng.randrange(1_000, 50_000),
                (today + timedelta(days=offset)).isoformat(),
                status,
                now - (abs(offset) + 10) * DAY,
                paid_at,
            ),
        )
    return len(plans)


def _seed_aged(
    conn: sqlite3.Connection, table: str, user_ids: list[int], now: float, rng: random.Random
) -> int:
    """Rows spread over the last 500 days, so retention cleanups have work on both sides."""
    ages = [rng.uniform(0, 500) for _ in range(10 * len(user_ids))]
    for age in ages:
        user_id = rng.choice(user_ids)
        created = now - age * DAY
        if table == "notifications":
            conn.execute(
                "INSERT INTO notifications (user_id, channel, recipient, subject, body, status,"
                " created_at, sent_at) VALUES (?, 'in_app', ?, 'Welcome', 'Hello!', 'sent', ?, ?)",
                (user_id, f"user{user_id}@example.com", created, created),
            )
        else:
            conn.execute(
                "INSERT INTO audit_logs (action, actor, detail, created_at) VALUES (?, ?, ?, ?)",
                ("user.login", f"user{user_id}", json.dumps({"demo": True}), created),
            )
    return len(ages)
