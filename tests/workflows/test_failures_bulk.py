"""Failure groups, search and bulk retry/revoke by filter, on the real stack (worker, collector,
API): tasks really fail in a Celery worker, and the retried ones really run again."""

from __future__ import annotations

import random
import string
import time
from typing import Any

import msgspec
import pytest

from event_collector.stored import decode_stored
from tests.workflows.conftest import Stack
from worker.application import TaskpulseCelery, create_app
from worker.config import load_settings


@pytest.fixture(scope="module")
def producer(stack: Stack) -> TaskpulseCelery:
    """A Celery producer that is not the API: it can send what the API's checks would refuse,
    as another service sharing the broker may."""
    return create_app(load_settings(stack.env))


def word() -> str:
    """A tag made of letters only: the fingerprint masks digits and hex runs, not words."""
    return "".join(random.choices(string.ascii_lowercase, k=10))


def send(stack: Stack, name: str, role: str = "operator", **body: Any) -> str:
    r = stack.call("POST", "/tasks", role, json={"name": name, **body})
    assert r.status_code == 202, r.text
    return r.json()["id"]


def fail(stack: Stack, message: str) -> str:
    return send(stack, "demo.test_task", kwargs={"message": message, "fail": True})


def group(stack: Stack, fingerprint: str) -> dict[str, Any] | None:
    cursor = None
    while True:
        params = {"limit": "500", **({"cursor": cursor} if cursor else {})}
        page = stack.call("GET", "/failures", "viewer", params=params).json()
        for g in page["items"]:
            if g["fingerprint"] == fingerprint:
                return g
        cursor = page["next_cursor"]
        if cursor is None:
            return None


def audits(stack: Stack, action: str) -> list[dict[str, Any]]:
    entries = stack.store().xrange("tp:events")
    events = [msgspec.to_builtins(decode_stored(f[b"e"])) for _, f in entries]
    return [e for e in events if e["type"] == "taskpulse-audit" and e["action"] == action]


def test_the_same_message_with_different_ids_is_one_group_and_two_exceptions_two(
    stack: Stack, producer: TaskpulseCelery,
) -> None:
    tag = word()
    permanent = [fail(stack, f"{tag} order {n} of {n * 7919}") for n in range(1, 4)]
    invalid = [producer.send_task("exports.export_data", kwargs={"kind": f"{tag}{n}"}).id
               for n in range(2)]  # fmt: skip
    records = [stack.wait_task(t) for t in permanent + invalid]
    assert {r["state"] for r in records} == {"FAILURE"}
    fingerprints = {r["fingerprint"] for r in records[:3]}
    assert len(fingerprints) == 1
    other = {r["fingerprint"] for r in records[3:]}
    assert len(other) == 1
    assert other != fingerprints

    permanent_group = group(stack, records[0]["fingerprint"])
    assert permanent_group is not None
    assert permanent_group["count"] == 3
    assert permanent_group["exception"].endswith("PermanentError")
    assert permanent_group["names"] == ["demo.test_task"]
    assert permanent_group["example_id"] in permanent
    assert sum(permanent_group["hourly"]) == 3
    by_fp = stack.call("GET", "/tasks", "viewer",
                       params={"fingerprint": records[0]["fingerprint"]}).json()
    assert {t["id"] for t in by_fp["items"]} == set(permanent)


def test_search_finds_a_task_by_a_unique_string_in_its_kwargs(stack: Stack) -> None:
    since = time.time()
    needle = f"needle-{word()}"
    wanted = send(stack, "demo.test_task", kwargs={"message": needle})
    others = [send(stack, "demo.test_task", kwargs={"message": word()}) for _ in range(3)]
    for task_id in [wanted, *others]:
        stack.wait_task(task_id)
    page = stack.call("GET", "/tasks", "viewer",
                      params={"q": needle.upper(), "since": str(since)}).json()
    assert [t["id"] for t in page["items"]] == [wanted]
    assert page["exact"] is True


def test_bulk_retry_dry_run_counts_then_retries_each_failed_match_once(
    stack: Stack, producer: TaskpulseCelery,
) -> None:
    since = time.time()
    tag = word()
    failed = [fail(stack, f"{tag} bill {n}") for n in range(3)]
    noise = [
        send(stack, "demo.test_task", kwargs={"message": tag}),  # same name, succeeds
        producer.send_task("exports.export_data", kwargs={"kind": tag}).id,  # other name/type
    ]
    for task_id in failed + noise:
        stack.wait_task(task_id)
    exception = stack.wait_task(failed[0])["exception"].split("(")[0]
    body = {"filter": {"name": "demo.test_task", "exception": exception, "since": since}}

    dry = stack.call("POST", "/tasks/bulk/retry", "operator", json=body)
    assert dry.status_code == 200, dry.text
    assert dry.json()["matched"] == 3
    assert dry.json()["exact"] is True
    assert set(dry.json()["ids"]) == set(failed)

    items, cursor = [], None
    while True:
        r = stack.call("POST", "/tasks/bulk/retry", "operator",
                       json={**body, "dry_run": False, "limit": 2, "cursor": cursor})
        assert r.status_code == 200, r.text
        items += r.json()["items"]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    originals = [i["id"] for i in items]
    assert sorted(originals) == sorted(failed)  # each once, across chunks
    for item in items:
        retried = stack.wait_task(item["new_id"])
        assert retried["parent_id"] == item["id"]
        assert retried["name"] == "demo.test_task"
    bulk = [a for a in audits(stack, "bulk-retry") if a["actor"] == "test-operator"]
    assert bulk
    assert f'"exception":"{exception}"' in bulk[-1]["detail"]


def test_bulk_revoke_by_filter_revokes_the_waiting_matches(stack: Stack) -> None:
    since = time.time()
    tag = word()
    waiting = [send(stack, "demo.test_task", kwargs={"message": tag}, countdown=3)
               for _ in range(2)]  # fmt: skip
    for task_id in waiting:
        stack.wait_task(task_id, frozenset({"RECEIVED"}))
    body = {"filter": {"name": "demo.test_task", "state": "RECEIVED", "since": since}}

    dry = stack.call("POST", "/tasks/bulk/revoke", "admin", json=body).json()
    assert (dry["matched"], sorted(dry["ids"])) == (2, sorted(waiting))
    assert stack.call("POST", "/tasks/bulk/revoke", "operator", json=body).status_code == 403

    done = stack.call("POST", "/tasks/bulk/revoke", "admin", json={**body, "dry_run": False})
    assert done.status_code == 200, done.text
    assert sorted(done.json()["ids"]) == sorted(waiting)
    for task_id in waiting:
        assert stack.wait_task(task_id)["state"] == "REVOKED"
    assert any(a["actor"] == "test-admin" for a in audits(stack, "bulk-revoke"))
