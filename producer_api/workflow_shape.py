"""Which tasks of a built canvas are chord bodies, for the workflow tree.

Celery sends a chord's body from the header task that finished last, so its events name that
task as the parent and the tree would draw the body under it. The canvas still knows better when
the API sends it; ``event_collector.workflows.record_chord_bodies`` keeps what this returns.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from celery import group
from celery.canvas import _chain, _chord


def entry_ids(sig: Any) -> list[str]:
    """The tasks a step sends first: those whose parent is whatever started the step."""
    if isinstance(sig, _chain):
        return entry_ids(sig.tasks[0])
    if isinstance(sig, (_chord, group)):
        return [i for member in _members(sig) for i in entry_ids(member)]
    return [sig.id]


def chord_bodies(canvas: Any) -> dict[str, str]:
    """Chord body task id -> the id of the first task of that chord's header.

    Chords written as such, and the ones Celery makes of a chain where a group is followed by
    another step (``chain(group(a, b), c)`` runs as ``chord([a, b], c)``)."""
    found: dict[str, str] = {}

    def mark(header: Any, body: Any) -> None:
        first = entry_ids(header)[0]
        found.update(dict.fromkeys(entry_ids(body), first))

    def walk(sig: Any) -> None:
        if isinstance(sig, _chord):
            mark(sig, sig.body)
            walk(sig.body)
        elif isinstance(sig, _chain):
            for step, following in pairwise(_steps(sig)):
                if isinstance(step, group):
                    mark(step, following)
        if isinstance(sig, (_chain, _chord, group)):
            for member in _members(sig):
                walk(member)

    walk(canvas)
    return found


def _steps(chain: _chain) -> list[Any]:
    """A chain's steps with nested chains spliced in, as Celery runs them."""
    steps: list[Any] = []
    for step in chain.tasks:
        steps.extend(_steps(step) if isinstance(step, _chain) else [step])
    return steps


def _members(sig: Any) -> list[Any]:
    """A chain's steps, a group's members, a chord's header tasks."""
    tasks = sig.tasks
    return list(tasks.tasks if isinstance(tasks, group) else tasks)
