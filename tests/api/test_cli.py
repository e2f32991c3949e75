"""The ``taskpulse`` command against the running API (in-process ``main``, real HTTP)."""

from __future__ import annotations

import json
import os
import select
import sqlite3
import subprocess
import sys
import time

import pytest

from producer_api import auth
from producer_api.auth import TokenStore
from producer_api.cli import main
from producer_api.cli.client import EXIT_UNREACHABLE
from tests.api.conftest import ApiClient, apply_events
from tests.events import task_event
from tests.services import free_port, wait_until


@pytest.fixture
def cli(api: ApiClient, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    monkeypatch.setenv("TASKPULSE_API_URL", api.base_url)
    monkeypatch.setenv("TASKPULSE_TOKEN", api.tokens["admin"])
    monkeypatch.delenv("TASKPULSE_API_TOKENS_FILE", raising=False)

    def run(*argv: str) -> tuple[int, str, str]:
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse refusing the command line
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_send_then_list_shows_a_table_and_json(cli, api_redis, store) -> None:
    code, out, _ = cli("tasks", "send", "demo.test_task", "--kwargs", '{"message": "x"}',
                       "--priority", "high", "--json")
    assert code == 0
    task_id = json.loads(out)["id"]
    apply_events(api_redis, [task_event("sent", task_id, 1.0, name="demo.test_task")])
    code, out, _ = cli("tasks", "list")
    assert code == 0
    header, row = out.splitlines()[:2]
    assert header.split()[:3] == ["ID", "NAME", "STATE"]
    assert row.startswith(task_id)
    code, out, _ = cli("tasks", "list", "--json")
    assert json.loads(out)["items"][0]["id"] == task_id


def test_bad_kwargs_json_is_a_usage_error(cli) -> None:
    code, _, err = cli("tasks", "send", "demo.test_task", "--kwargs", "{nope")
    assert code == 2
    assert "--kwargs is not valid JSON" in err


def test_validation_errors_name_the_field(cli) -> None:
    code, _, err = cli("tasks", "send", "demo.test_task", "--kwargs", '{"message": 1}')
    assert code == 1
    assert "HTTP 422" in err
    assert "[kwargs.message]" in err


def test_missing_token_says_how_to_fix_it(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TASKPULSE_TOKEN")
    code, _, err = cli("stats")
    assert code == 1
    assert "HTTP 401" in err
    assert "TASKPULSE_TOKEN" in err


def test_wrong_role_is_explained(cli, api: ApiClient) -> None:
    code, _, err = cli("--token", api.tokens["viewer"], "tasks", "revoke", "some-id")
    assert code == 1
    assert "HTTP 403" in err
    assert "role" in err


def test_unreachable_api_is_a_clear_connection_error(cli) -> None:
    code, _, err = cli("--api-url", f"http://127.0.0.1:{free_port()}", "stats")
    assert code == EXIT_UNREACHABLE
    assert "cannot reach the taskpulse API" in err
    assert "TASKPULSE_API_URL" in err


def test_tokens_create_over_the_api_shows_the_secret_once(cli, api: ApiClient) -> None:
    code, out, _ = cli("tokens", "create", "--role", "viewer", "--name", "cli-made", "--json")
    assert code == 0
    created = json.loads(out)
    assert api.get("/api/v1/stats", token=created["token"]).status_code == 200
    code, out, _ = cli("tokens", "list")
    assert "cli-made" in out
    assert created["token"] not in out


def test_tokens_create_with_a_file_needs_no_running_api(cli, tmp_path) -> None:
    path = tmp_path / "tokens.json"
    code, out, _ = cli("tokens", "create", "--role", "admin", "--name", "boot", "--file",
                       str(path), "--json")
    assert code == 0
    assert json.loads(out)["token"].startswith("tp_")
    assert [e.name for e in TokenStore(path).list()] == ["boot"]


def assert_one_error_line(code: int, err: str, *words: str) -> None:
    assert code == 1
    assert err.startswith("taskpulse: "), err
    assert err.count("\n") == 1, err
    assert all(word in err for word in words), err


def test_a_tokens_file_another_writer_holds_past_the_timeout_is_one_error_line(
    cli, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "tokens.db"
    TokenStore(path).create("first", "admin")
    monkeypatch.setattr(auth, "BUSY_TIMEOUT_SECONDS", 0.2)  # not the real 10 s
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN EXCLUSIVE")
    try:
        create = cli("tokens", "create", "--role", "viewer", "--file", str(path))
        revoke = cli("tokens", "revoke", "nope", "--file", str(path))
    finally:
        writer.close()
    assert_one_error_line(*create[::2], str(path), "unavailable", "database is locked")
    assert_one_error_line(*revoke[::2], str(path), "unavailable", "database is locked")


def test_a_tokens_file_that_is_neither_a_database_nor_json_is_one_error_line(
    cli, tmp_path
) -> None:
    path = tmp_path / "tokens.db"
    path.write_text("not tokens")
    code, _, err = cli("tokens", "list", "--file", str(path))
    assert_one_error_line(code, err, str(path), "neither a taskpulse token database nor a JSON")


def test_a_damaged_token_database_is_one_error_line(cli, tmp_path) -> None:
    path = tmp_path / "tokens.db"
    path.write_bytes(auth.SQLITE_HEADER + b"\xff" * 4000)
    code, _, err = cli("tokens", "list", "--file", str(path))
    assert_one_error_line(code, err, str(path), "not a database")


def test_stats_workers_queues_history_print_tables(cli, store) -> None:
    for command in (["stats"], ["workers"], ["queues"], ["history", "--granularity", "minute"]):
        code, out, err = cli(*command)
        assert code == 0, (command, err)
        assert out.strip(), command


def test_watch_tails_live_events_of_one_task(api: ApiClient, api_redis, store, tmp_path) -> None:
    env = {**os.environ, "TASKPULSE_API_URL": api.base_url, "TASKPULSE_TOKEN": api.tokens["viewer"],
           "PYTHONUNBUFFERED": "1"}
    watcher = subprocess.Popen(
        [sys.executable, "-m", "producer_api.cli", "tasks", "watch", "--task-id", "w-1", "--json"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )
    try:
        # The stream starts at "now": keep sending until the watcher is connected and prints.
        def printed() -> str:
            apply_events(api_redis, [task_event("started", "w-1", time.time())])
            ready, _, _ = select.select([watcher.stdout], [], [], 0.3)
            return watcher.stdout.readline() if ready else ""

        line = wait_until(printed, timeout=15, what="a watched event")
    finally:
        watcher.terminate()
        watcher.wait(timeout=10)
    event = json.loads(line)
    assert (event["type"], event["uuid"]) == ("task-started", "w-1")
    assert event["stream_id"]


def test_an_invalid_state_lists_the_valid_ones(cli) -> None:
    code, _, err = cli("tasks", "list", "--state", "DONE")
    assert code == 2
    # In precedence order, strongest first, as event_collector.events keeps them.
    assert "invalid choice: 'DONE' (choose from 'SUCCESS', 'FAILURE', 'REVOKED', 'STARTED', " \
        "'RECEIVED', 'REJECTED', 'RETRY', 'PENDING')" in err


def test_an_invalid_priority_lists_the_valid_ones(cli) -> None:
    code, _, err = cli("tasks", "send", "demo.test_task", "--priority", "urgent")
    assert code == 2
    assert "(choose from 'low', 'normal', 'high', 'critical')" in err


def test_an_unknown_task_name_gets_a_did_you_mean(cli) -> None:
    code, _, err = cli("tasks", "send", "demo.tset_task")
    assert code == 1
    assert err.strip().endswith("[name] — did you mean demo.test_task?")


def test_an_unknown_queue_lists_the_queues_once_and_gets_a_did_you_mean(cli) -> None:
    code, _, err = cli("tasks", "send", "demo.test_task", "--queue", "fnance")
    assert code == 1
    assert err.count("one of default, finance") == 1, err
    assert err.strip().endswith("[queue] — did you mean finance?")


def test_an_unknown_schedule_task_gets_a_did_you_mean(cli, store) -> None:
    code, _, err = cli("schedules", "add", "x", "finance.calculate_monthly_revnue", "--every", "60")
    assert code == 1
    assert "did you mean finance.calculate_monthly_revenue?" in err


def test_forbidden_says_the_apis_reason_once(cli, api: ApiClient) -> None:
    refused = api.post("/api/v1/tasks/some-id/revoke", role="viewer", json={})
    code, _, err = cli("--token", api.tokens["viewer"], "tasks", "revoke", "some-id")
    assert code == 1
    assert err == f"taskpulse: HTTP 403: {refused.json()['error']['message']}\n"


def test_since_a_duration_leaves_out_older_tasks(cli, api_redis, store) -> None:
    now = time.time()
    apply_events(api_redis, [task_event("sent", "old", now - 3 * 3600, name="demo.test_task"),
                             task_event("sent", "new", now - 600, name="demo.test_task")])
    _, out, _ = cli("tasks", "list", "--since", "1h", "--json")
    assert [t["id"] for t in json.loads(out)["items"]] == ["new"]


def test_until_an_iso_time_leaves_out_later_tasks(cli, api_redis, store) -> None:
    apply_events(api_redis, [task_event("sent", "a", 1767225600.0, name="demo.test_task"),
                             task_event("sent", "b", 1767229200.0, name="demo.test_task")])
    code, out, _ = cli("tasks", "count", "--until", "2026-01-01T08:30:00+08:00")
    assert (code, out) == (0, "1\n")


def test_a_bad_time_is_a_usage_error_naming_the_accepted_forms(cli) -> None:
    code, _, err = cli("history", "--since", "yesterday")
    assert code == 2
    assert "argument --since: 'yesterday' is not a time: give a duration ago" in err


def test_times_are_in_the_local_zone_by_default(tmp_path) -> None:
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps({"tokens": [
        {"id": "a1", "name": "ci", "role": "viewer", "sha256": "0" * 64, "created": 1767225600.0},
    ]}))  # fmt: skip
    listed = subprocess.run(
        [sys.executable, "-m", "producer_api.cli", "tokens", "list", "--file", str(path)],
        env={**os.environ, "TZ": "Asia/Shanghai"}, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "2026-01-01T08:00:00+08:00" in listed


def test_watch_names_the_task_of_events_that_carry_no_name(
    api: ApiClient, api_redis, store, tmp_path
) -> None:
    env = {**os.environ, "TASKPULSE_API_URL": api.base_url, "TASKPULSE_TOKEN": api.tokens["viewer"],
           "PYTHONUNBUFFERED": "1"}
    apply_events(api_redis, [task_event("sent", "n-1", time.time(), name="demo.test_task")])
    watcher = subprocess.Popen(
        [sys.executable, "-m", "producer_api.cli", "tasks", "watch", "--task-id", "n-1"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )
    try:
        def printed() -> str:
            apply_events(api_redis, [task_event("started", "n-1", time.time())])
            ready, _, _ = select.select([watcher.stdout], [], [], 0.3)
            return watcher.stdout.readline() if ready else ""

        line = wait_until(printed, timeout=15, what="a watched event")
    finally:
        watcher.terminate()
        watcher.wait(timeout=10)
    assert line.split()[1:4] == ["task-started", "n-1", "demo.test_task"]
