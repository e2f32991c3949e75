"""Each catalog task, run by a real worker, changes the store / files / Redis as it promises."""

from __future__ import annotations

import csv
import json
import os
import sqlite3
import time
from datetime import datetime, timedelta

import pytest
import redis

from tests.services import RedisServer
from tests.worker.conftest import RunTask
from tests.worker.rows import add_bill, add_user, bill_status
from worker.config import WorkerSettings


def local_today(settings: WorkerSettings) -> datetime:
    return datetime.now(settings.zone)


def test_check_pending_bills_marks_only_past_due_bills_overdue(
    run_task: RunTask, db: sqlite3.Connection, settings: WorkerSettings
) -> None:
    today = local_today(settings).date()
    user_id, _ = add_user(db)
    late = add_bill(db, user_id, (today - timedelta(days=1)).isoformat())
    due_today = add_bill(db, user_id, today.isoformat())

    result = run_task("finance.check_pending_bills")

    assert result.state == "SUCCESS"
    assert result.result["marked_overdue"] >= 1
    assert bill_status(db, late) == "overdue"
    assert bill_status(db, due_today) == "pending"


def test_send_bill_reminders_never_reminds_twice_on_the_same_day(
    run_task: RunTask, db: sqlite3.Connection, settings: WorkerSettings
) -> None:
    today = local_today(settings).date()
    user_id, email = add_user(db)
    soon = add_bill(db, user_id, (today + timedelta(days=2)).isoformat())
    later = add_bill(db, user_id, (today + timedelta(days=30)).isoformat())

    first = run_task("finance.send_bill_reminders", kwargs={"days_ahead": 3})
    second = run_task("finance.send_bill_reminders", kwargs={"days_ahead": 3})

    assert soon in first.result["bill_ids"]
    assert later not in first.result["bill_ids"]
    assert soon not in second.result["bill_ids"]
    reminders = db.execute(
        "SELECT COUNT(*) FROM notifications WHERE recipient = ?", (email,)
    ).fetchone()[0]
    assert reminders == 1


def test_monthly_revenue_sums_bills_paid_within_the_local_month(
    run_task: RunTask, db: sqlite3.Connection, settings: WorkerSettings
) -> None:
    zone = settings.zone
    user_id, _ = add_user(db)
    inside = [datetime(2020, 2, 1, 0, 30, tzinfo=zone), datetime(2020, 2, 29, 23, 30, tzinfo=zone)]
    outside = datetime(2020, 3, 1, 0, 10, tzinfo=zone)  # still February in UTC
    for paid_at, cents in [(inside[0], 1500), (inside[1], 2500), (outside, 9900)]:
        add_bill(db, user_id, "2020-02-01", "paid", cents, paid_at=paid_at.timestamp())

    result = run_task("finance.calculate_monthly_revenue", kwargs={"month": "2020-02"})

    assert result.result == {"month": "2020-02", "total_cents": 4000, "bills_paid": 2}
    row = db.execute("SELECT total_cents, bills_paid FROM revenue WHERE month = '2020-02'")
    assert tuple(row.fetchone()) == (4000, 2)


@pytest.mark.parametrize(
    ("kind", "start", "inside"),
    [
        ("hourly", "2021-05-03T14:00", "2021-05-03T14:59"),
        ("daily", "2021-05-04T00:00", "2021-05-04T23:00"),
        ("weekly", "2021-05-10T00:00", "2021-05-16T12:00"),
        ("monthly", "2021-06-01T00:00", "2021-06-30T23:00"),
    ],
)
def test_report_writes_its_file_and_row_for_the_period(
    run_task: RunTask,
    db: sqlite3.Connection,
    settings: WorkerSettings,
    kind: str,
    start: str,
    inside: str,
) -> None:
    user_id, _ = add_user(db)
    created = datetime.fromisoformat(inside).replace(tzinfo=settings.zone).timestamp()
    add_bill(db, user_id, "2021-07-01", created_at=created)

    result = run_task(f"reports.generate_{kind}_report", kwargs={"period_start": start})

    assert result.state == "SUCCESS", result.traceback
    with open(result.result["path"]) as handle:
        report = json.load(handle)
    assert report["kind"] == kind
    assert report["period_start"].startswith(start)
    assert report["bills_created"] == 1
    row = db.execute(
        "SELECT path FROM reports WHERE kind = ? AND period_start = ?",
        (kind, report["period_start"]),
    ).fetchone()
    assert row[0] == result.result["path"]


def test_report_that_cannot_be_written_leaves_no_row(
    run_task: RunTask, db: sqlite3.Connection, settings: WorkerSettings
) -> None:
    # A directory squatting on the report's file name makes the final rename fail.
    target = settings.data_dir / "reports" / "daily" / "daily-20190101T0000.json"
    target.mkdir(parents=True)

    result = run_task("reports.generate_daily_report", kwargs={"period_start": "2019-01-01"})

    assert result.state == "FAILURE"
    assert (
        db.execute("SELECT COUNT(*) FROM reports WHERE period_start LIKE '2019-01-01%'").fetchone()[
            0
        ]
        == 0
    )
    assert (
        db.execute(
            "SELECT COUNT(*) FROM audit_logs WHERE action = 'report.generated'"
            " AND detail LIKE '%2019-01-01%'"
        ).fetchone()[0]
        == 0
    )


def test_cleanup_old_notifications_deletes_only_older_than_the_cutoff(
    run_task: RunTask, db: sqlite3.Connection
) -> None:
    now = time.time()
    ids = [
        db.execute(
            "INSERT INTO notifications (channel, recipient, subject, body, status, created_at)"
            " VALUES ('in_app', 'x@example.com', 's', 'b', 'sent', ?)",
            (created,),
        ).lastrowid
        for created in (now - 40 * 86400, now - 10 * 86400)
    ]

    result = run_task("notifications.cleanup_old_notifications", kwargs={"days": 30})

    assert result.result["deleted"] >= 1
    left = {r[0] for r in db.execute("SELECT id FROM notifications WHERE id IN (?, ?)", ids)}
    assert left == {ids[1]}


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_export_data_writes_every_row_of_the_table(
    run_task: RunTask, db: sqlite3.Connection, fmt: str
) -> None:
    add_user(db)
    expected = [r[0] for r in db.execute("SELECT email FROM users ORDER BY id")]

    result = run_task("exports.export_data", kwargs={"kind": "users", "fmt": fmt})

    assert result.result["rows"] == len(expected)
    with open(result.result["path"], newline="") as handle:
        rows = list(csv.DictReader(handle)) if fmt == "csv" else json.load(handle)
    assert [row["email"] for row in rows] == expected


def test_backup_database_copies_the_store_and_keeps_only_the_newest(
    run_task: RunTask, db: sqlite3.Connection, settings: WorkerSettings
) -> None:
    users = db.execute("SELECT COUNT(*) FROM users").fetchone()[0]

    results = [run_task("maintenance.backup_database", kwargs={"keep": 2}) for _ in range(3)]

    backups = sorted((settings.data_dir / "backups").glob("taskpulse-*.db"))
    assert [str(p) for p in backups] == [r.result["path"] for r in results[1:]]
    assert results[2].result["removed"] == [results[0].result["path"]]
    with sqlite3.connect(backups[-1]) as copy:
        assert copy.execute("SELECT COUNT(*) FROM users").fetchone()[0] == users


def test_cleanup_cache_scans_and_unlinks_only_matching_keys(
    run_task: RunTask, redis_server: RedisServer
) -> None:
    client: redis.Redis = redis_server.client(0)
    client.mset({f"taskpulse:cache:{n}": "v" for n in range(1200)})
    client.set("taskpulse:keepme", "v")
    keys_calls_before = client.info("commandstats").get("cmdstat_keys", {}).get("calls", 0)

    result = run_task("maintenance.cleanup_cache", kwargs={"batch_size": 100})

    assert result.result["deleted"] == 1200
    assert not list(client.scan_iter(match="taskpulse:cache:*"))
    assert client.get("taskpulse:keepme") == b"v"
    stats = client.info("commandstats")
    assert stats.get("cmdstat_keys", {}).get("calls", 0) == keys_calls_before
    assert stats["cmdstat_unlink"]["calls"] >= 12


def test_cleanup_cache_deletes_only_under_the_given_part_of_the_cache_prefix(
    run_task: RunTask, redis_server: RedisServer
) -> None:
    client: redis.Redis = redis_server.client(0)
    client.mset({"taskpulse:cache:reports.1": "v", "taskpulse:cache:users.1": "v"})

    result = run_task("maintenance.cleanup_cache", kwargs={"under": "reports"})

    assert result.result == {"deleted": 1, "pattern": "taskpulse:cache:reports*"}
    assert client.get("taskpulse:cache:users.1") == b"v"


@pytest.mark.parametrize(
    "kwargs",
    [
        # The probe that deleted a schedule: a caller-chosen server and pattern.
        {"redis_url": "redis://127.0.0.1:{port}/0", "pattern": "redbeat:tp:nightly-demo*"},
        {"pattern": "redbeat:tp:nightly-demo*"},
        {"under": "*"},
        {"under": "../redbeat:tp:*"},
        {"under": "x[a-z]"},
    ],
)
def test_cleanup_cache_sent_around_the_api_refuses_any_other_server_or_pattern(
    run_task: RunTask, redis_server: RedisServer, kwargs: dict[str, str]
) -> None:
    client: redis.Redis = redis_server.client(0)
    client.mset({"redbeat:tp:nightly-demo": "schedule", "taskpulse:cache:x": "v"})
    kwargs = {k: v.format(port=redis_server.port) for k, v in kwargs.items()}

    result = run_task("maintenance.cleanup_cache", kwargs=kwargs)

    assert result.state == "FAILURE"
    assert type(result.result).__name__ == "InvalidArguments"
    assert client.get("redbeat:tp:nightly-demo") == b"schedule"
    assert client.get("taskpulse:cache:x") == b"v"


def test_cleanup_expired_data_removes_expired_sessions_and_old_exports(
    run_task: RunTask, db: sqlite3.Connection, settings: WorkerSettings
) -> None:
    user_id, _ = add_user(db)
    now = time.time()
    db.execute("INSERT INTO sessions VALUES ('expired', ?, ?)", (user_id, now - 1))
    db.execute("INSERT INTO sessions VALUES ('valid', ?, ?)", (user_id, now + 3600))
    exports = settings.data_dir / "exports"
    exports.mkdir(exist_ok=True)
    old, new = exports / "old.csv", exports / "new.csv"
    old.write_text("a\n")
    new.write_text("b\n")
    os.utime(old, (now - 10 * 86400, now - 10 * 86400))

    result = run_task("maintenance.cleanup_expired_data", kwargs={"export_days": 7})

    assert result.state == "SUCCESS"
    tokens = {r[0] for r in db.execute("SELECT token FROM sessions")}
    assert "expired" not in tokens
    assert "valid" in tokens
    assert not old.exists()
    assert new.exists()


def test_cleanup_audit_logs_dry_run_counts_and_real_run_deletes(
    run_task: RunTask, db: sqlite3.Connection
) -> None:
    ancient = time.time() - 400 * 86400
    for _ in range(3):
        db.execute(
            "INSERT INTO audit_logs (action, actor, created_at) VALUES ('old', 't', ?)", (ancient,)
        )

    dry = run_task("maintenance.cleanup_audit_logs", kwargs={"days": 365, "dry_run": True})
    old_after_dry = db.execute("SELECT COUNT(*) FROM audit_logs WHERE action = 'old'").fetchone()
    real = run_task("maintenance.cleanup_audit_logs", kwargs={"days": 365})

    assert dry.result["matched"] >= 3
    assert old_after_dry[0] == 3
    assert real.result["matched"] == dry.result["matched"]
    assert db.execute("SELECT COUNT(*) FROM audit_logs WHERE action = 'old'").fetchone()[0] == 0


@pytest.mark.parametrize(
    ("name", "kwargs", "queue"),
    [
        ("finance.check_pending_bills", {}, "finance"),
        ("reports.generate_hourly_report", {}, "reports"),
        ("exports.export_data", {"kind": "revenue"}, "reports"),
        (
            "notifications.send_notification_email",
            {"to": "route@example.com", "subject": "s", "body": "b"},
            "email",
        ),
        ("demo.test_task", {}, "default"),
    ],
)
def test_tasks_are_routed_to_their_queue(
    run_task: RunTask, name: str, kwargs: dict[str, object], queue: str
) -> None:
    result = run_task(name, kwargs=kwargs)

    assert result.state == "SUCCESS", result.traceback
    assert result._get_task_meta()["queue"] == queue
