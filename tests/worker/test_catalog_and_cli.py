"""The catalog file the API reads, argument validation, and ``python -m worker`` commands."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.services import REPO_ROOT
from worker.application import create_app
from worker.catalog import build_catalog, catalog_json
from worker.config import WorkerSettings
from worker.domain.store import connect
from worker.errors import InvalidArguments
from worker.tasks import task_names

FIXED_NAMES = {
    "finance.check_pending_bills",
    "finance.send_bill_reminders",
    "finance.calculate_monthly_revenue",
    "reports.generate_hourly_report",
    "reports.generate_daily_report",
    "reports.generate_weekly_report",
    "reports.generate_monthly_report",
    "notifications.send_notification_email",
    "notifications.cleanup_old_notifications",
    "exports.export_data",
    "maintenance.backup_database",
    "maintenance.cleanup_cache",
    "maintenance.cleanup_expired_data",
    "maintenance.cleanup_audit_logs",
    "demo.test_task",
    "demo.long_running_task",
}


def run_cli(*argv: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TASKPULSE_DATA_DIR": str(data_dir)}
    return subprocess.run(
        [sys.executable, "-m", "worker", *argv],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_committed_catalog_is_what_the_code_generates(tmp_path: Path) -> None:
    generated = run_cli("catalog", data_dir=tmp_path)

    assert generated.returncode == 0, generated.stderr
    assert (REPO_ROOT / "producer_api" / "catalog.json").read_text() == generated.stdout


def test_catalog_lists_exactly_the_fixed_task_names() -> None:
    assert set(task_names()) == FIXED_NAMES


def test_catalog_describes_parameters_from_signatures() -> None:
    catalog = build_catalog(create_app(WorkerSettings()))
    tasks = {task["name"]: task for task in catalog["tasks"]}

    email = {p["name"]: p for p in tasks["notifications.send_notification_email"]["parameters"]}
    export = {p["name"]: p for p in tasks["exports.export_data"]["parameters"]}

    assert [p for p in email if email[p]["required"]] == ["to", "subject", "body"]
    assert email["user_id"] == {
        "name": "user_id",
        "type": "int | None",
        "required": False,
        "default": None,
        "schema": {"anyOf": [{"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
                             {"type": "null"}]},
    }
    assert export["fmt"]["schema"] == {"enum": ["csv", "json"]}
    assert tasks["demo.long_running_task"]["description"].startswith("Work through")
    assert catalog["queues"] == ["default", "finance", "reports", "email"]
    assert set(catalog["priorities"]["redis"]) == set(catalog["priorities"]["levels"])


def test_catalog_json_does_not_depend_on_the_environment() -> None:
    other = WorkerSettings(broker_url="amqp://x//", timezone="UTC", default_priority="high")

    assert catalog_json(create_app(other)) == catalog_json(create_app(WorkerSettings()))


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("finance.send_bill_reminders", {"days_ahead": -1}, "days_ahead: Expected `int` >= 0"),
        ("finance.calculate_monthly_revenue", {"month": "May 2024"}, "month: Expected `str`"),
        ("reports.generate_daily_report", {"period_start": "yesterday"}, "period_start:"),
        ("exports.export_data", {"kind": "bills", "fmt": "xml"}, "fmt: Invalid enum value 'xml'"),
        ("maintenance.cleanup_cache", {"under": "*"}, "under: Expected `str` matching"),
        ("maintenance.cleanup_audit_logs", {"days": 0}, "nothing to do"),
        ("notifications.cleanup_old_notifications", {"days": 0}, "days: Expected `int` >= 1"),
        ("maintenance.backup_database", {"keep": 0}, "keep: Expected `int` >= 1"),
        ("demo.long_running_task", {"total": 0}, "total: Expected `int` >= 1"),
        ("demo.test_task", {"sleep_seconds": -5}, "sleep_seconds: Expected `float` >= 0"),
        ("demo.test_task", {"sleep_seconds": "1"}, "sleep_seconds: Expected `float`, got `str`"),
        ("finance.calculate_monthly_revenue", {"month": "2026-10\n"}, "month:"),
        ("reports.generate_monthly_report", {"period_start": "9999-12-01"}, "period_start:"),
        ("reports.generate_monthly_report", {"period_start": "2026-10-02"}, "period_start:"),
        ("maintenance.cleanup_cache", {"redis_url": "redis://127.0.0.1:1/1"}, "redis_url"),
        ("demo.test_task", {"no_such": 1}, "unexpected keyword argument 'no_such'"),
    ],
)
def test_bad_arguments_are_rejected_with_a_clear_message(
    tmp_path: Path, name: str, kwargs: dict[str, object], message: str
) -> None:
    app = create_app(WorkerSettings(data_dir=tmp_path))

    outcome = app.tasks[name].apply(kwargs=kwargs)

    assert outcome.state == "FAILURE"
    assert isinstance(outcome.result, InvalidArguments)
    assert message in str(outcome.result)


def add_audit_rows(db_path: Path, ages_in_days: list[float]) -> None:
    conn = connect(db_path)
    now = time.time()
    conn.executemany(
        "INSERT INTO audit_logs (action, actor, created_at) VALUES ('t', 't', ?)",
        [(now - age * 86400,) for age in ages_in_days],
    )
    conn.close()


def audit_count(db_path: Path) -> int:
    with sqlite3.connect(db_path) as conn:
        return conn.execute("SELECT COUNT(*) FROM audit_logs").fetchone()[0]


def test_audit_cleanup_dry_run_reports_and_deletes_nothing(tmp_path: Path) -> None:
    add_audit_rows(tmp_path / "taskpulse.db", [400, 380, 10, 1])

    dry = run_cli("audit-cleanup", "--dry-run", data_dir=tmp_path)

    assert dry.returncode == 0, dry.stderr
    assert "would delete 2 audit-log entries (older than 365 days" in dry.stdout
    assert audit_count(tmp_path / "taskpulse.db") == 4


def test_audit_cleanup_deletes_by_age_and_by_keep_count(tmp_path: Path) -> None:
    add_audit_rows(tmp_path / "taskpulse.db", [400, 380, 30, 20, 10, 1])

    done = run_cli("audit-cleanup", "--days", "365", "--keep", "3", data_dir=tmp_path)

    assert done.returncode == 0, done.stderr
    assert "deleted 3 audit-log entries (older than 365 days or beyond the newest 3" in done.stdout
    with sqlite3.connect(tmp_path / "taskpulse.db") as conn:
        actions = [r[0] for r in conn.execute("SELECT action FROM audit_logs ORDER BY id")]
    assert actions == ["t", "t", "t", "audit_logs.cleaned"]


def test_audit_cleanup_without_any_rule_is_refused(tmp_path: Path) -> None:
    refused = run_cli("audit-cleanup", "--days", "0", data_dir=tmp_path)

    assert refused.returncode == 2
    assert "nothing to do" in refused.stderr


def test_seed_demo_fills_an_empty_store_once(tmp_path: Path) -> None:
    first = run_cli("seed-demo", data_dir=tmp_path)
    second = run_cli("seed-demo", data_dir=tmp_path)

    assert first.returncode == 0, first.stderr
    assert "seeded" in first.stdout
    assert "left it as it is" in second.stdout
    with sqlite3.connect(tmp_path / "taskpulse.db") as conn:
        statuses = {r[0] for r in conn.execute("SELECT DISTINCT status FROM bills")}
        users = conn.execute("SELECT COUNT(*) FROM users").fetchone()[0]
    assert statuses == {"pending", "paid"}
    assert users == 8
