"""Arranging rows in the worker's store for a test."""

from __future__ import annotations

import sqlite3
import uuid


def add_user(conn: sqlite3.Connection) -> tuple[int, str]:
    email = f"u{uuid.uuid4().hex[:12]}@example.com"
    user_id = conn.execute(
        "INSERT INTO users (email, name, created_at) VALUES (?, ?, 0)", (email, email)
    ).lastrowid
    return user_id, email


def add_bill(
    conn: sqlite3.Connection,
    user_id: int,
    due_date: str,
    status: str = "pending",
    amount_cents: int = 1000,
    created_at: float = 0.0,
    paid_at: float | None = None,
) -> int:
    return conn.execute(
        "INSERT INTO bills (user_id, amount_cents, due_date, status, created_at, paid_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (user_id, amount_cents, due_date, status, created_at, paid_at),
    ).lastrowid


def bill_status(conn: sqlite3.Connection, bill_id: int) -> str:
    return conn.execute("SELECT status FROM bills WHERE id = ?", (bill_id,)).fetchone()[0]
