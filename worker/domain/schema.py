"""Tables of the domain store. Times are Unix seconds (UTC); days and months are ISO text."""

from __future__ import annotations

from typing import Final, Literal, get_args

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS users (
    id          INTEGER PRIMARY KEY,
    email       TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    created_at  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS bills (
    id            INTEGER PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES users(id),
    amount_cents  INTEGER NOT NULL CHECK (amount_cents > 0),
    due_date      TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('pending', 'overdue', 'paid')),
    created_at    REAL NOT NULL,
    paid_at       REAL
);
CREATE INDEX IF NOT EXISTS bills_status_due ON bills (status, due_date);
CREATE INDEX IF NOT EXISTS bills_paid_at ON bills (paid_at);
-- One row per bill and local day: the primary key is what makes a second reminder impossible.
CREATE TABLE IF NOT EXISTS bill_reminders (
    bill_id  INTEGER NOT NULL REFERENCES bills(id),
    day      TEXT NOT NULL,
    sent_at  REAL NOT NULL,
    PRIMARY KEY (bill_id, day)
);
CREATE TABLE IF NOT EXISTS notifications (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER REFERENCES users(id),
    channel     TEXT NOT NULL CHECK (channel IN ('email', 'in_app')),
    recipient   TEXT NOT NULL,
    subject     TEXT NOT NULL,
    body        TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('pending', 'sent')),
    created_at  REAL NOT NULL,
    sent_at     REAL
);
CREATE INDEX IF NOT EXISTS notifications_created ON notifications (created_at);
CREATE TABLE IF NOT EXISTS audit_logs (
    id          INTEGER PRIMARY KEY,
    action      TEXT NOT NULL,
    actor       TEXT NOT NULL,
    detail      TEXT NOT NULL DEFAULT '{}',
    created_at  REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_logs_created ON audit_logs (created_at);
CREATE TABLE IF NOT EXISTS revenue (
    month        TEXT PRIMARY KEY,
    total_cents  INTEGER NOT NULL,
    bills_paid   INTEGER NOT NULL,
    computed_at  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS reports (
    id            INTEGER PRIMARY KEY,
    kind          TEXT NOT NULL,
    period_start  TEXT NOT NULL,
    period_end    TEXT NOT NULL,
    path          TEXT NOT NULL,
    created_at    REAL NOT NULL,
    UNIQUE (kind, period_start)
);
CREATE TABLE IF NOT EXISTS sessions (
    token       TEXT PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users(id),
    expires_at  REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_expires ON sessions (expires_at);
-- Demo bookkeeping: how often a task id has run (drives deterministic retries) and what ran.
CREATE TABLE IF NOT EXISTS task_attempts (
    task_id   TEXT PRIMARY KEY,
    attempts  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS demo_runs (
    id           INTEGER PRIMARY KEY,
    task_id      TEXT NOT NULL,
    message      TEXT NOT NULL,
    started_at   REAL NOT NULL,
    finished_at  REAL NOT NULL
);
"""

# Tables ``export_data`` may write out; never interpolate a name that is not in this list.
ExportKind = Literal["users", "bills", "notifications", "audit_logs", "revenue", "reports"]
EXPORTABLE: Final[tuple[str, ...]] = get_args(ExportKind)
