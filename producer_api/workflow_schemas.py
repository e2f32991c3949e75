"""Request and response bodies of workflows, schedules and task-record lifecycle (msgspec).

They sit next to ``schemas.py`` and feed the same generated OpenAPI document.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from producer_api.schemas import Priority, TaskName

MAX_WORKFLOW_TASKS = 100
MAX_WORKFLOW_DEPTH = 5
ScheduleName = Annotated[
    str, msgspec.Meta(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
]
Note = Annotated[str, msgspec.Meta(max_length=2000)]
LabelKey = Annotated[str, msgspec.Meta(min_length=1, max_length=63, pattern=r"^[A-Za-z0-9_.\-/]+$")]
LabelValue = Annotated[str, msgspec.Meta(max_length=200)]
Labels = Annotated[dict[LabelKey, LabelValue], msgspec.Meta(max_length=20)]


# ----------------------------------------------------------------------------- workflows


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


# ----------------------------------------------------------------------------- schedules


class Interval(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    every: Annotated[float, msgspec.Meta(ge=1, le=366 * 86400)]  # seconds


class Crontab(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """Celery crontab fields, evaluated in the beat's timezone (``TASKPULSE_TIMEZONE``)."""

    minute: str = "*"
    hour: str = "*"
    day_of_week: str = "*"
    day_of_month: str = "*"
    month_of_year: str = "*"


class ScheduleCreate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A new periodic task: give ``interval`` or ``crontab``."""

    name: ScheduleName
    task: TaskName
    interval: Interval | None = None
    crontab: Crontab | None = None
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    queue: str | None = None
    enabled: bool = True


class SchedulePatch(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Fields to change; absent ones stay. Giving ``interval`` replaces a crontab and back."""

    task: TaskName | msgspec.UnsetType = msgspec.UNSET
    interval: Interval | msgspec.UnsetType = msgspec.UNSET
    crontab: Crontab | msgspec.UnsetType = msgspec.UNSET
    args: list[Any] | msgspec.UnsetType = msgspec.UNSET
    kwargs: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET
    queue: str | msgspec.UnsetType = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET


class Schedule(msgspec.Struct, frozen=True, omit_defaults=True):
    """A periodic task as beat sees it, times in ``TASKPULSE_TIMEZONE``. ``last_run_at`` is absent
    until it first ran; ``next_run_at`` is absent while disabled, and in the past while beat is
    late (it sends the task at its next tick)."""

    name: str
    task: str
    enabled: bool
    queue: str | None = None
    interval: Interval | None = None
    crontab: Crontab | None = None
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    last_run_at: datetime | None = None
    next_run_at: datetime | None = None
    total_run_count: int | None = None


class ScheduleList(msgspec.Struct, frozen=True):
    items: list[Schedule]


# ----------------------------------------------------------------------------- task records


class TaskPatch(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Operator annotations. Absent: unchanged; ``""`` / ``{}`` removes. Never the state."""

    note: Note | None = None
    labels: Labels | None = None


class TaskAnnotations(msgspec.Struct, frozen=True, omit_defaults=True):
    id: str
    note: str | None = None
    labels: dict[str, str] | None = None


class TaskForgotten(msgspec.Struct, frozen=True):
    """The record, its timeline and index entries are gone; an audit event stays."""

    id: str
    forgotten: bool = True
