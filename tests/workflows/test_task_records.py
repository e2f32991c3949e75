"""Task records: admins forget finished ones everywhere they are listed; operators annotate."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

from event_collector.stored import decode_stored
from tests.workflows.conftest import Stack


def run_task(stack: Stack, **kwargs: Any) -> str:
    body = {"name": "demo.test_task", "kwargs": {"message": uuid.uuid4().hex, **kwargs}}
    r = stack.call("POST", "/tasks", "operator", json=body)
    assert r.status_code == 202, r.text
    return r.json()["id"]


def listed_ids(stack: Stack, **query: str) -> set[str]:
    page = stack.call("GET", "/tasks", "viewer", params={"limit": "500", **query}).json()
    return {item["id"] for item in page["items"]}


def counts(stack: Stack) -> dict[str, int]:
    def count(**query: str) -> int:
        return stack.call("GET", "/tasks/count", "viewer", params=query).json()["count"]

    stats = stack.call("GET", "/stats", "viewer").json()
    return {
        "all": count(),
        "by_name": count(name="demo.test_task"),
        "by_state": count(state="SUCCESS"),
        "by_queue": count(queue="default"),
        "stored": stats["tasks_stored"],
        "stats_success": stats["by_state"]["SUCCESS"],
    }


def test_forget_removes_the_record_from_every_list_and_count(stack: Stack) -> None:
    task_id = run_task(stack)
    record = stack.wait_task(task_id)
    assert record["state"] == "SUCCESS"
    before = counts(stack)
    filters = [{}, {"name": "demo.test_task"}, {"state": "SUCCESS"}, {"queue": "default"},
               {"worker": record["worker"]}]  # fmt: skip
    assert all(task_id in listed_ids(stack, **f) for f in filters)

    r = stack.call("DELETE", f"/tasks/{task_id}", "admin")

    assert r.status_code == 200, r.text
    assert stack.call("GET", f"/tasks/{task_id}", "viewer").status_code == 404
    assert stack.store().exists(f"tp:task:{task_id}") == 0
    assert all(task_id not in listed_ids(stack, **f) for f in filters)
    after = counts(stack)
    assert after == {k: v - 1 for k, v in before.items()}


def test_forget_leaves_an_audit_event_in_the_stream(stack: Stack) -> None:
    task_id = run_task(stack)
    stack.wait_task(task_id)
    stack.call("DELETE", f"/tasks/{task_id}", "admin")
    entries = stack.store().xrange("tp:events")
    events = [msgspec.to_builtins(decode_stored(f[b"e"])) for _, f in entries]
    audits = [e for e in events if e["type"] == "taskpulse-audit" and e.get("uuid") == task_id]
    assert [e["action"] for e in audits if e["action"] == "forget"] == ["forget"]
    assert audits[-1]["actor"] == "test-admin"


def test_a_running_task_cannot_be_forgotten_until_revoked(stack: Stack) -> None:
    task_id = run_task(stack, sleep_seconds=30)
    stack.wait_task(task_id, frozenset({"STARTED"}))

    refused = stack.call("DELETE", f"/tasks/{task_id}", "admin")
    assert refused.status_code == 409
    assert refused.json()["error"]["details"]["state"] == "STARTED"

    revoke = stack.call("POST", f"/tasks/{task_id}/revoke", "admin", json={"terminate": True})
    assert revoke.status_code < 300, revoke.text
    stack.wait_task(task_id, frozenset({"REVOKED"}))
    assert stack.call("DELETE", f"/tasks/{task_id}", "admin").status_code == 200


def test_only_admins_forget(stack: Stack) -> None:
    task_id = run_task(stack)
    stack.wait_task(task_id)
    assert stack.call("DELETE", f"/tasks/{task_id}", "operator").status_code == 403
    assert stack.call("GET", f"/tasks/{task_id}", "viewer").status_code == 200


def test_forgetting_an_unknown_task_is_404(stack: Stack) -> None:
    assert stack.call("DELETE", "/tasks/never-was", "admin").status_code == 404


def test_operator_sets_and_clears_a_note_and_labels(stack: Stack) -> None:
    task_id = run_task(stack)
    stack.wait_task(task_id)

    r = stack.call("PATCH", f"/tasks/{task_id}", "operator",
                   json={"note": "looked at it", "labels": {"ticket": "OPS-1"}})  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json() == {"id": task_id, "note": "looked at it", "labels": {"ticket": "OPS-1"}}
    record = stack.call("GET", f"/tasks/{task_id}", "viewer").json()
    assert (record["note"], record["labels"]) == ("looked at it", {"ticket": "OPS-1"})
    assert record["state"] == "SUCCESS"

    cleared = stack.call("PATCH", f"/tasks/{task_id}", "operator", json={"note": ""}).json()
    assert cleared == {"id": task_id, "labels": {"ticket": "OPS-1"}}


def test_state_is_not_editable(stack: Stack) -> None:
    task_id = run_task(stack, fail=True)
    stack.wait_task(task_id)
    r = stack.call("PATCH", f"/tasks/{task_id}", "admin", json={"state": "SUCCESS"})
    assert r.status_code == 422
    assert stack.call("GET", f"/tasks/{task_id}", "viewer").json()["state"] == "FAILURE"


def test_annotating_an_unknown_task_is_404(stack: Stack) -> None:
    r = stack.call("PATCH", "/tasks/never-was", "operator", json={"note": "x"})
    assert r.status_code == 404


def test_a_forgotten_task_stays_forgotten_while_the_collector_goes_on(stack: Stack) -> None:
    task_id = run_task(stack)
    stack.wait_task(task_id)
    stack.call("DELETE", f"/tasks/{task_id}", "admin")
    other = run_task(stack)
    stack.wait_task(other)
    assert task_id not in listed_ids(stack)
    assert stack.call("GET", f"/tasks/{task_id}", "viewer").status_code == 404
