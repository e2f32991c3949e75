"""What each ``taskpulse`` command prints, as golden text (``tests/api/cli_snapshots/*.txt``).

Known data goes in through the collector's real Lua; the API is a real subprocess with a small
catalog of its own (so these outputs do not change when the product catalog grows); every command
runs with ``--utc``. Generated ids and secrets are replaced by placeholders. After an intended
change of output, regenerate with ``TASKPULSE_UPDATE_SNAPSHOTS=1`` and read the diff.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from event_collector.events import Event
from event_collector.keys import Keys
from event_collector.workflows import record_chord_bodies
from producer_api.cli import main
from tests.api.conftest import STORE_DB, ApiClient, make_tokens, start_api
from tests.api.conftest import apply_events as apply
from tests.events import task_event, worker_event
from tests.services import RedisServer

SNAPSHOTS = Path(__file__).parent / "cli_snapshots"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
BASE = 1767225600.0  # 2026-01-01T00:00:00Z
OK, FAILED, RUNNING = ("6f1c2e4a-0000-4000-8000-00000000000" + c for c in "123")
CHAIN_ROOT, CHAIN_CHILD = ("6f1c2e4a-0000-4000-8000-00000000000" + c for c in "45")
# A chord sent as a whole: a made-up root id, two header tasks, and the body, which Celery sends
# from the header task that finished last (so its parent id is that task).
CHORD_ROOT, HEADER_1, HEADER_2, BODY = ("6f1c2e4a-0000-4000-8000-0000000000c" + c for c in "0123")
PRIORITIES = {
    "levels": ["low", "normal", "high", "critical"], "default": "normal",
    "redis": {"low": 9, "normal": 6, "high": 3, "critical": 0},
    "amqp": {"low": 1, "normal": 2, "high": 3, "critical": 4},
}  # fmt: skip
CATALOG = {
    "version": 1, "queues": ["default", "finance"], "priorities": PRIORITIES,
    "tasks": [
        {"name": "demo.test_task", "queue": "default", "description": "Record a run of message.",
         "parameters": [
             {"name": "message", "type": "str", "required": False,
              "schema": {"type": "string", "maxLength": 200}, "default": "ok"},
             {"name": "fail", "type": "bool", "required": False, "schema": {"type": "boolean"},
              "default": False}]},
        {"name": "exports.export_data", "queue": "default", "parameters": [
            {"name": "fmt", "type": "str", "required": False, "schema": {"enum": ["csv", "json"]},
             "default": "csv"}]},
        {"name": "finance.calculate_monthly_revenue", "queue": "finance",
         "description": "Sum one month's paid bills.", "parameters": [
             {"name": "month", "type": "str",
              "schema": {"type": "string", "minLength": 7, "maxLength": 7}},
             {"name": "days", "type": "int", "required": False,
              "schema": {"type": "integer", "minimum": 1, "maximum": 31}, "default": 30},
             {"name": "accounts", "type": "list[int] | None", "required": False,
              "schema": {"anyOf": [{"type": "array", "items": {"type": "integer", "minimum": 1}},
                                   {"type": "null"}]}, "default": None}]},
        {"name": "maintenance.cleanup_cache", "queue": "default"},
    ],
}  # fmt: skip


def life(task_id: str, ts: float, name: str, queue: str, **sent: str) -> list[Event]:
    return [
        task_event("sent", task_id, ts, hostname="api@host", name=name, queue=queue, **sent),
        task_event("received", task_id, ts + 0.1, name=name, queue=queue),
        task_event("started", task_id, ts + 0.2),
    ]


EVENTS = [
    *life(OK, BASE, "demo.test_task", "default", args="()", kwargs="{'message': 'hello'}"),
    task_event("succeeded", OK, BASE + 0.5, runtime=0.3,
               result="{'message': 'hello', 'ok': True}"),
    *life(FAILED, BASE + 60, "finance.calculate_monthly_revenue", "finance",
          args="('2026-13',)", kwargs="{}"),
    task_event("failed", FAILED, BASE + 61.5, exception="ValueError('month must be YYYY-MM')",
               traceback="Traceback (most recent call last):\n  File \"revenue.py\", line 9\n"
               "ValueError: month must be YYYY-MM\n"),
    *life(RUNNING, BASE + 3600, "demo.long_running_task", "default", args="(10, 1.0)"),
    task_event("task-progress", RUNNING, BASE + 3605, progress_current=5.0, progress_total=10.0),
    task_event("task-progress", RUNNING, BASE + 3610, progress_current=10.0, progress_total=10.0),
    *life(CHAIN_ROOT, BASE + 7200, "demo.test_task", "default", root_id=CHAIN_ROOT),
    task_event("succeeded", CHAIN_ROOT, BASE + 7201, runtime=0.8, result="'ok'"),
    *life(CHAIN_CHILD, BASE + 7202, "exports.export_data", "default", root_id=CHAIN_ROOT,
          parent_id=CHAIN_ROOT),
    task_event("failed", CHAIN_CHILD, BASE + 7203, exception="OSError('disk full')"),
    worker_event("online", "w1@box", BASE - 10),
    worker_event("heartbeat", "w1@box", BASE + 7200, active=1),
]  # fmt: skip


@pytest.fixture(scope="module")
def snap_api(api_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
        ApiClient]:
    workdir = tmp_path_factory.mktemp("snap-api")
    (workdir / "catalog.json").write_text(json.dumps(CATALOG))
    tokens = make_tokens(workdir / "tokens.json")
    proc, base = start_api(api_redis, workdir, workdir / "tokens.json",
                           TASKPULSE_CATALOG_FILE=str(workdir / "catalog.json"))  # fmt: skip
    yield ApiClient(base, tokens)
    proc.stop()


@pytest.fixture
def taskpulse(snap_api: ApiClient, api_redis: RedisServer, store, monkeypatch: pytest.MonkeyPatch,
              capsys: pytest.CaptureFixture) -> Callable[..., str]:
    """Runs the command (in UTC) over the known data; returns what it printed."""
    apply(api_redis, EVENTS)
    monkeypatch.setenv("TASKPULSE_API_URL", snap_api.base_url)
    monkeypatch.setenv("TASKPULSE_TOKEN", snap_api.tokens["admin"])
    monkeypatch.delenv("TASKPULSE_API_TOKENS_FILE", raising=False)

    def run(*argv: str) -> str:
        code = main([*argv, "--utc"])
        out, err = capsys.readouterr()
        assert code == 0, err
        return out

    return run


def mask(pattern: re.Pattern[str], label: str, out: str) -> str:
    """``out`` with each match of a generated value replaced by ``label``, padded to the match's
    width so that columns stay aligned (and no line ends in padding)."""
    masked = pattern.sub(lambda m: label.ljust(len(m.group())), out)
    return "\n".join(line.rstrip() for line in masked.split("\n"))


def assert_snapshot(name: str, out: str) -> None:
    path = SNAPSHOTS / f"{name}.txt"
    if os.environ.get("TASKPULSE_UPDATE_SNAPSHOTS"):
        path.write_text(out)
    assert out == path.read_text()


def test_tasks_list(taskpulse) -> None:
    assert_snapshot("tasks_list", taskpulse("tasks", "list"))


def test_tasks_count(taskpulse) -> None:
    assert_snapshot("tasks_count", taskpulse("tasks", "count", "--state", "failure"))


def test_tasks_show_a_success(taskpulse) -> None:
    assert_snapshot("tasks_show_success", taskpulse("tasks", "show", OK))


def test_tasks_show_a_failure(taskpulse) -> None:
    assert_snapshot("tasks_show_failure", taskpulse("tasks", "show", FAILED))


def test_tasks_show_a_task_in_progress(taskpulse) -> None:
    assert_snapshot("tasks_show_progress", taskpulse("tasks", "show", RUNNING))


def test_tasks_tree(taskpulse) -> None:
    assert_snapshot("tasks_tree", taskpulse("tasks", "tree", CHAIN_CHILD))


def test_tasks_tree_draws_a_chord_s_body_after_its_header(taskpulse, api_redis) -> None:
    apply(api_redis, [
        *life(HEADER_1, BASE + 9000, "demo.test_task", "default", root_id=CHORD_ROOT),
        task_event("succeeded", HEADER_1, BASE + 9001, runtime=0.8, result="'a'"),
        *life(HEADER_2, BASE + 9000, "demo.test_task", "default", root_id=CHORD_ROOT),
        task_event("succeeded", HEADER_2, BASE + 9002, runtime=1.8, result="'b'"),
        *life(BODY, BASE + 9003, "exports.export_data", "default", root_id=CHORD_ROOT,
              parent_id=HEADER_2),
    ])  # fmt: skip

    async def record() -> None:  # what the API records when it sends the chord
        client = aioredis.Redis.from_url(api_redis.url(STORE_DB))
        try:
            await record_chord_bodies(client, Keys(), CHORD_ROOT, {BODY: HEADER_1})
        finally:
            await client.aclose()

    asyncio.run(record())
    assert_snapshot("tasks_tree_chord", taskpulse("tasks", "tree", BODY))


def test_tasks_send(taskpulse) -> None:
    out = taskpulse("tasks", "send", "demo.test_task", "--kwargs", '{"message": "hi"}',
                    "--priority", "high")  # fmt: skip
    assert_snapshot("tasks_send", mask(UUID, "<id>", out))


def test_test_task(taskpulse) -> None:
    assert_snapshot("test_task", mask(UUID, "<id>", taskpulse("test-task")))


def test_tasks_revoke(taskpulse) -> None:
    assert_snapshot("tasks_revoke", taskpulse("tasks", "revoke", RUNNING, "--terminate"))


def test_tasks_retry(taskpulse) -> None:
    out = taskpulse("tasks", "retry", FAILED)
    assert_snapshot("tasks_retry", mask(UUID, "<new id>", out.replace(FAILED, "<failed id>")))


def test_tasks_annotate(taskpulse) -> None:
    out = taskpulse("tasks", "annotate", OK, "--note", "seen", "--label", "team=ops")
    assert_snapshot("tasks_annotate", out)


def test_tasks_forget(taskpulse) -> None:
    assert_snapshot("tasks_forget", taskpulse("tasks", "forget", OK))


def test_workflows_send(taskpulse) -> None:
    out = taskpulse("workflows", "send", json.dumps(
        {"chain": [{"name": "demo.test_task"}, {"name": "exports.export_data"}]}))
    assert_snapshot("workflows_send", mask(UUID, "<id>", out))


def test_stats(taskpulse) -> None:
    assert_snapshot("stats", taskpulse("stats"))


def test_history_prints_only_buckets_with_events(taskpulse) -> None:
    out = taskpulse("history", "--since", "2025-12-31T22:00:00Z", "--until", "2026-01-01T05:00Z")
    assert_snapshot("history", out)


def test_history_all_prints_every_bucket(taskpulse) -> None:
    out = taskpulse("history", "--since", "2025-12-31T22:00:00Z", "--until", "2026-01-01T05:00Z",
                    "--all")  # fmt: skip
    assert_snapshot("history_all", out)


def test_workers(taskpulse) -> None:
    assert_snapshot("workers", taskpulse("workers"))


def test_queues(taskpulse) -> None:
    assert_snapshot("queues", taskpulse("queues"))


def test_catalog(taskpulse) -> None:
    assert_snapshot("catalog", taskpulse("catalog"))


def test_catalog_of_one_task(taskpulse) -> None:
    assert_snapshot("catalog_one", taskpulse("catalog", "finance.calculate_monthly_revenue"))


def test_schedules_add(taskpulse) -> None:
    out = taskpulse("schedules", "add", "nightly-export", "exports.export_data", "--cron",
                    "0 2 * * *", "--kwargs", '{"fmt": "json"}', "--paused")  # fmt: skip
    assert_snapshot("schedules_add", out)


def test_schedules_list(taskpulse) -> None:
    taskpulse("schedules", "add", "nightly-export", "exports.export_data", "--cron", "0 2 * * *",
              "--paused")  # fmt: skip
    taskpulse("schedules", "add", "ping", "demo.test_task", "--every", "5m", "--paused")
    out = taskpulse("schedules", "list")
    assert_snapshot("schedules_list", out)


def test_schedules_remove(taskpulse) -> None:
    taskpulse("schedules", "add", "ping", "demo.test_task", "--every", "90", "--paused")
    assert_snapshot("schedules_remove", taskpulse("schedules", "remove", "ping"))


def test_tokens_list(taskpulse, tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps({"tokens": [
        {"id": "a1b2c3d4", "name": "ci", "role": "operator", "sha256": "0" * 64,
         "created": BASE},
        {"id": "e5f6a7b8", "name": "me", "role": "admin", "sha256": "1" * 64,
         "created": BASE + 86400.5},
    ]}))  # fmt: skip
    assert_snapshot("tokens_list", taskpulse("tokens", "list", "--file", str(path)))


def test_tokens_create(taskpulse, tmp_path: Path) -> None:
    out = taskpulse("tokens", "create", "--role", "viewer", "--name", "grafana", "--file",
                    str(tmp_path / "tokens.json"))  # fmt: skip
    out = re.sub(r"tp_[\w-]+", "<secret>", re.sub(r"token [0-9a-f]{8} ", "token <id> ", out))
    assert_snapshot("tokens_create", out)


def test_failures(taskpulse) -> None:
    assert_snapshot("failures", taskpulse("failures"))


def test_tasks_list_by_exception(taskpulse) -> None:
    assert_snapshot("tasks_list_exception", taskpulse("tasks", "list", "--exception", "OSError"))


def test_tasks_list_search(taskpulse) -> None:
    assert_snapshot("tasks_list_search", taskpulse("tasks", "list", "--search", "2026-13"))


def test_tasks_retry_by_filter_dry_run(taskpulse) -> None:
    out = taskpulse("tasks", "retry", "--filter", "exception=ValueError", "--dry-run")
    assert_snapshot("tasks_retry_filter_dry_run", out)
