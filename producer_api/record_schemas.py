"""Request and response bodies that change a task's record rather than the task: operator
annotations and forgetting it (``PATCH``/``DELETE /tasks/{id}``), as msgspec Structs beside
``schemas.py``, feeding the same generated OpenAPI document."""

from __future__ import annotations

from typing import Annotated

import msgspec

Note = Annotated[str, msgspec.Meta(max_length=2000)]
LabelKey = Annotated[str, msgspec.Meta(min_length=1, max_length=63, pattern=r"^[A-Za-z0-9_.\-/]+$")]
LabelValue = Annotated[str, msgspec.Meta(max_length=200)]
Labels = Annotated[dict[LabelKey, LabelValue], msgspec.Meta(max_length=20)]


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
