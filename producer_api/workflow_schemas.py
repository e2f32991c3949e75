"""Request and response bodies of workflows (chains, groups and chords of tasks), as msgspec
Structs beside ``schemas.py``, feeding the same generated OpenAPI document."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from producer_api.schemas import Priority, TaskName

MAX_WORKFLOW_TASKS = 100
MAX_WORKFLOW_DEPTH = 5


class Step(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """One step of a workflow: a task (``name`` …) or a nested ``chain``/``group``/``chord``.

    A task step is checked against the catalog like ``POST /tasks``. It ignores the result of
    the step before it unless ``immutable`` is false (then Celery passes that result as the first
    argument, and a chord body gets the list of its header's results).
    """

    name: TaskName | None = None
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    queue: str | None = None
    priority: Priority = "normal"
    immutable: bool = True
    chain: list[Step] | None = None
    group: list[Step] | None = None
    chord: Chord | None = None


class Chord(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Run ``header`` in parallel, then ``body`` once all of them succeeded."""

    header: Annotated[list[Step], msgspec.Meta(min_length=1)]
    body: Step


class WorkflowRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """Exactly one of ``chain``, ``group`` or ``chord``; steps may nest (5 levels, 100 tasks)."""

    chain: list[Step] | None = None
    group: list[Step] | None = None
    chord: Chord | None = None


class WorkflowTask(msgspec.Struct, frozen=True):
    id: str
    name: str
    queue: str


class WorkflowResponse(msgspec.Struct, frozen=True):
    """The workflow was handed to the broker. ``url`` shows it as a tree."""

    root_id: str
    kind: Literal["chain", "group", "chord"]
    url: str
    tasks: list[WorkflowTask]
