"""Which tasks of a canvas are chord bodies, as the API records them for the tree (pure code)."""

from __future__ import annotations

from celery import Celery, chain, chord, group, signature
from celery.canvas import Signature

from producer_api.workflow_shape import chord_bodies

APP = Celery("shape-test", set_as_current=False)


def t(task_id: str) -> Signature:
    return signature("demo.test_task", task_id=task_id, app=APP)


def test_a_chord_s_body_is_marked_with_the_first_task_of_its_header() -> None:
    assert chord_bodies(chord([t("h1"), t("h2")], t("cb"), app=APP)) == {"cb": "h1"}


def test_every_task_a_chord_body_sends_first_is_a_body() -> None:
    body = group([t("x"), chain(t("y1"), t("y2"), app=APP)], app=APP)
    assert chord_bodies(chord([t("h")], body, app=APP)) == {"x": "h", "y1": "h"}


def test_a_chord_nested_in_a_chain_and_in_a_body_is_found() -> None:
    inner = chord([t("b1"), t("b2")], t("c"), app=APP)
    canvas = chain(t("a"), chord([t("h")], inner, app=APP), app=APP)
    assert chord_bodies(canvas) == {"b1": "h", "b2": "h", "c": "b1"}


def test_a_group_followed_by_a_step_in_a_chain_is_a_chord() -> None:
    canvas = chain(t("a"), chain(group([t("g1"), t("g2")], app=APP), app=APP), t("d"), app=APP)
    assert chord_bodies(canvas) == {"d": "g1"}


def test_chains_and_groups_alone_have_no_bodies() -> None:
    canvas = group([chain(t("a"), t("b"), app=APP), t("c")], app=APP)
    assert chord_bodies(chain(t("x"), canvas, app=APP)) == {}
