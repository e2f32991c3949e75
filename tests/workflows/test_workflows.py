"""Workflows sent through the API run on a real worker and read back as one tree."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from tests.services import wait_until
from tests.workflows.conftest import FINAL, Stack


def task(message: str, **kwargs: Any) -> dict[str, Any]:
    return {"name": "demo.test_task", "kwargs": {"message": message, **kwargs}}


def settled_tree(stack: Stack, root_id: str, size: int) -> dict[str, Any]:
    """The tree once ``size`` tasks are known and all of them are finished."""

    def settled() -> dict[str, Any] | None:
        r = stack.call("GET", f"/tasks/{root_id}/tree", "viewer")
        if r.status_code != 200:
            return None
        tree = r.json()
        states = tree["by_state"]
        finished = sum(n for s, n in states.items() if s in FINAL)
        return tree if tree["total"] == size and finished == size else None

    return wait_until(settled, timeout=30, interval=0.2, what=f"workflow {root_id} settled")


def test_chord_with_a_failing_header_task_is_one_failed_tree_naming_that_task(stack: Stack) -> None:
    body = {"chord": {"header": [task("h1"), task("h2", fail=True), task("h3")],
                      "body": task("callback")}}  # fmt: skip
    r = stack.call("POST", "/workflows", "operator", json=body)
    assert r.status_code == 202, r.text
    sent = r.json()
    assert sent["kind"] == "chord"
    header_ids = [t["id"] for t in sent["tasks"][:3]]

    tree = settled_tree(stack, sent["root_id"], 3)

    assert tree["state"] == "failed"
    assert tree["failed_nodes"] == [header_ids[1]]
    assert tree["root"]["virtual"] is True
    assert sorted(c["id"] for c in tree["root"]["children"]) == sorted(header_ids)
    # The callback never runs once a header task failed.
    assert tree["by_state"] == {"SUCCESS": 2, "FAILURE": 1}


def test_a_chord_s_body_comes_after_its_header_under_the_root_marked_as_body(
    stack: Stack,
) -> None:
    body = {"chord": {"header": [task("a"), task("b"), task("c")], "body": task("cb")}}
    sent = stack.call("POST", "/workflows", "operator", json=body).json()
    header_ids, callback_id = [t["id"] for t in sent["tasks"][:3]], sent["tasks"][3]["id"]

    tree = settled_tree(stack, sent["root_id"], 4)

    assert tree["state"] == "succeeded"
    children = tree["root"]["children"]
    assert sorted(c["id"] for c in children[:3]) == sorted(header_ids)
    assert [c.get("role") for c in children] == [None, None, None, "chord_body"]
    assert children[3]["id"] == callback_id
    assert children[3]["parent_id"] in header_ids  # the header task that finished last
    assert all("children" not in c for c in children)


def test_a_chord_inside_a_chain_has_its_body_beside_its_header(stack: Stack) -> None:
    body = {"chain": [task("first"),
                      {"chord": {"header": [task("h1"), task("h2")], "body": task("cb")}},
                      task("last")]}  # fmt: skip
    sent = stack.call("POST", "/workflows", "operator", json=body).json()
    first, h1, h2, cb, last = (t["id"] for t in sent["tasks"])

    tree = settled_tree(stack, sent["root_id"], 5)

    assert tree["root"]["id"] == first
    under_first = tree["root"]["children"]
    assert sorted(c["id"] for c in under_first[:2]) == sorted([h1, h2])
    assert (under_first[2]["id"], under_first[2]["role"]) == (cb, "chord_body")
    assert [c["id"] for c in under_first[2]["children"]] == [last]


def test_chain_nests_each_step_under_the_one_before(stack: Stack) -> None:
    body = {"chain": [task("one"), task("two"), task("three")]}
    sent = stack.call("POST", "/workflows", "operator", json=body).json()
    ids = [t["id"] for t in sent["tasks"]]
    assert sent["root_id"] == ids[0]

    tree = settled_tree(stack, sent["root_id"], 3)

    assert tree["state"] == "succeeded"
    assert tree["root"]["id"] == ids[0]
    assert tree["root"]["children"][0]["id"] == ids[1]
    assert tree["root"]["children"][0]["children"][0]["id"] == ids[2]
    # Asking for any member gives the same tree.
    member = stack.call("GET", f"/tasks/{ids[2]}/tree", "viewer").json()
    assert member["root_id"] == ids[0]
    assert member["total"] == 3


def test_cli_renders_the_tree_with_the_failed_task(stack: Stack) -> None:
    body = {"group": [task("g1"), task("g2", fail=True)]}
    sent = stack.call("POST", "/workflows", "operator", json=body).json()
    settled_tree(stack, sent["root_id"], 2)
    out = subprocess.run(
        [sys.executable, "-m", "producer_api.cli", "tasks", "tree", sent["root_id"]],
        env={**stack.env, "TASKPULSE_API_URL": stack.base_url,
             "TASKPULSE_TOKEN": stack.tokens["viewer"]},
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    failed_id = sent["tasks"][1]["id"]
    assert out.splitlines()[0] == f"workflow {sent['root_id']}: failed ({failed_id})"
    assert (
        f"└── demo.test_task  {failed_id}  FAILURE" in out
        or f"├── demo.test_task  {failed_id}  FAILURE" in out
    )


def test_unknown_task_in_a_step_is_refused_naming_the_step(stack: Stack) -> None:
    body = {"chain": [task("fine"), {"name": "no.such_task"}]}
    r = stack.call("POST", "/workflows", "operator", json=body)
    assert r.status_code == 422
    assert r.json()["error"]["details"]["field"] == "chain[1].name"


def test_viewer_may_not_send_workflows(stack: Stack) -> None:
    r = stack.call("POST", "/workflows", "viewer", json={"group": [task("x")]})
    assert r.status_code == 403


def test_tree_of_an_unknown_id_is_404(stack: Stack) -> None:
    assert stack.call("GET", "/tasks/nope/tree", "viewer").status_code == 404


def test_absurdly_nested_workflows_are_refused_not_crashed_on(stack: Stack) -> None:
    deep = '{"chain": [' * 5000 + '{"name": "demo.test_task"}' + "]}" * 5000
    r = stack.call("POST", "/workflows", "operator", data=deep)
    assert r.status_code == 422
