"""The workflow tree and its roll-up state, from task records alone (pure code)."""

from __future__ import annotations

from event_collector.workflows import WorkflowNode, build_tree


def node(task_id: str, state: str, parent: str | None = None) -> WorkflowNode:
    return WorkflowNode(id=task_id, name=f"demo.{task_id}", state=state, parent_id=parent)


def test_chain_nests_each_task_under_its_parent() -> None:
    tree = build_tree(
        "a", [node("a", "SUCCESS"), node("b", "SUCCESS", "a"), node("c", "STARTED", "b")]
    )
    assert tree.root.id == "a"
    assert [c.id for c in tree.root.children] == ["b"]
    assert [c.id for c in tree.root.children[0].children] == ["c"]
    assert tree.state == "running"


def test_group_members_hang_under_a_virtual_root() -> None:
    tree = build_tree("g", [node("x", "SUCCESS"), node("y", "SUCCESS")])
    assert tree.root.virtual
    assert [c.id for c in tree.root.children] == ["x", "y"]
    assert tree.state == "succeeded"


def test_one_failed_task_fails_the_workflow_and_names_the_task() -> None:
    nodes = [node("h1", "SUCCESS"), node("h2", "FAILURE"), node("h3", "SUCCESS")]
    tree = build_tree("r", nodes)
    assert tree.state == "failed"
    assert tree.failed_nodes == ["h2"]
    assert tree.by_state == {"SUCCESS": 2, "FAILURE": 1}


def test_a_task_whose_parent_is_unknown_is_kept_under_the_root() -> None:
    tree = build_tree("a", [node("a", "SUCCESS"), node("z", "SUCCESS", "expired-parent")])
    assert [c.id for c in tree.root.children] == ["z"]


def test_a_revoked_task_fails_the_workflow_too() -> None:
    tree = build_tree("a", [node("a", "SUCCESS"), node("b", "REVOKED", "a")])
    assert (tree.state, tree.failed_nodes) == ("failed", ["b"])


def test_a_workflow_with_tasks_still_running_is_running() -> None:
    tree = build_tree("g", [node("x", "SUCCESS"), node("y", "RECEIVED")])
    assert tree.state == "running"


def test_a_chord_body_goes_after_its_header_under_the_root_marked_as_body() -> None:
    # Celery names the header task that finished last as the body's parent.
    nodes = [node("h1", "SUCCESS"), node("h2", "SUCCESS"), node("cb", "SUCCESS", "h2")]
    tree = build_tree("r", nodes, chord_bodies={"cb": "h1"})
    assert [c.id for c in tree.root.children] == ["h1", "h2", "cb"]
    assert tree.root.children[2].role == "chord_body"
    assert tree.root.children[2].parent_id == "h2"  # who sent it stays visible
    assert tree.root.children[1].children == []
    assert tree.root.children[0].role is None


def test_a_chord_in_a_chain_has_its_body_beside_its_header_under_the_step_before() -> None:
    nodes = [node("a", "SUCCESS"), node("b", "SUCCESS", "a"), node("c", "SUCCESS", "a"),
             node("d", "SUCCESS", "c"), node("e", "STARTED", "d")]  # fmt: skip
    tree = build_tree("a", nodes, chord_bodies={"d": "b"})
    assert [c.id for c in tree.root.children] == ["b", "c", "d"]
    assert [c.id for c in tree.root.children[2].children] == ["e"]  # the chain goes on below


def test_the_body_of_a_chord_that_is_itself_a_body_sits_beside_that_body() -> None:
    # chord([a], chord([b], c)): b is the outer body, c the inner one.
    nodes = [node("a", "SUCCESS"), node("b", "SUCCESS", "a"), node("c", "SUCCESS", "b")]
    tree = build_tree("r", nodes, chord_bodies={"b": "a", "c": "b"})
    assert [(c.id, c.role) for c in tree.root.children] == [
        ("a", None), ("b", "chord_body"), ("c", "chord_body")]


def test_a_chord_body_whose_header_is_unknown_hangs_under_the_root() -> None:
    nodes = [node("h2", "SUCCESS"), node("cb", "SUCCESS", "h2")]
    tree = build_tree("r", nodes, chord_bodies={"cb": "expired-h1"})
    assert [c.id for c in tree.root.children] == ["h2", "cb"]
