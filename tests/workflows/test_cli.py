"""The ``taskpulse`` commands for workflows, schedules and task records, against the real API."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

from tests.workflows.conftest import Stack


def taskpulse(stack: Stack, *argv: str, role: str = "admin", stdin: str = "") -> str:
    env = {**stack.env, "TASKPULSE_API_URL": stack.base_url, "TASKPULSE_TOKEN": stack.tokens[role]}
    done = subprocess.run(
        [sys.executable, "-m", "producer_api.cli", *argv],
        env=env, input=stdin, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_schedules_add_pause_resume_remove(stack: Stack) -> None:
    name = f"cli-{uuid.uuid4().hex[:6]}"
    added = taskpulse(stack, "schedules", "add", name, "demo.test_task", "--cron", "30 3 * * 1")
    assert name in added
    assert "cron 30 3 * * 1" in added

    taskpulse(stack, "schedules", "pause", name)
    shown = json.loads(taskpulse(stack, "schedules", "show", name, "--json", role="viewer"))
    assert shown["enabled"] is False
    taskpulse(stack, "schedules", "resume", name)
    listed = json.loads(taskpulse(stack, "schedules", "list", "--json", role="viewer"))
    assert {s["name"]: s["enabled"] for s in listed["items"]}[name] is True

    assert taskpulse(stack, "schedules", "remove", name).strip() == f"removed schedule {name}"
    listed = json.loads(taskpulse(stack, "schedules", "list", "--json", role="viewer"))
    assert name not in {s["name"] for s in listed["items"]}


def test_workflows_send_reads_the_workflow_from_stdin(stack: Stack) -> None:
    workflow = {"group": [{"name": "demo.test_task"}, {"name": "demo.test_task"}]}
    out = taskpulse(stack, "workflows", "send", "-", "--json", role="operator",
                    stdin=json.dumps(workflow))  # fmt: skip
    sent = json.loads(out)
    assert sent["kind"] == "group"
    assert len(sent["tasks"]) == 2


def test_tasks_annotate_then_forget(stack: Stack) -> None:
    task_id = stack.call("POST", "/tasks", "operator", json={"name": "demo.test_task"}).json()["id"]
    stack.wait_task(task_id)
    taskpulse(stack, "tasks", "annotate", task_id, "--note", "checked", "--label", "team=ops",
              role="operator")  # fmt: skip
    record = stack.call("GET", f"/tasks/{task_id}", "viewer").json()
    assert record["note"] == "checked"

    assert "forgot" in taskpulse(stack, "tasks", "forget", task_id)
    assert stack.call("GET", f"/tasks/{task_id}", "viewer").status_code == 404
