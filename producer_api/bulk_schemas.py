"""Bodies of the failure and bulk-action routes (``GET /failures``, ``POST /tasks/bulk/*``)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from event_collector.records import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from producer_api.schemas import TaskCountQuery

Cursor = Annotated[
    str,
    msgspec.Meta(
        max_length=500, pattern="^[A-Za-z0-9_-]+$",
        description="Opaque: the `next_cursor` of the previous answer, unchanged.",
    ),
]
PageLimit = Annotated[int, msgspec.Meta(ge=1, le=MAX_PAGE_SIZE)]


class FailuresQuery(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A page of failure groups, most recently seen first."""

    limit: PageLimit = DEFAULT_PAGE_SIZE
    cursor: Cursor | None = None


class BulkRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An action on every task the filter matches (the filters of `GET /tasks`).

    ``dry_run`` (the default) changes nothing: it answers how many tasks match and the first
    ``limit`` ids. A real run acts on at most ``limit`` matching tasks, newest first, and
    answers ``next_cursor`` while more may match: send the same body with that cursor to go on.
    Retry acts on tasks in the filter's state: FAILURE when it names none (with an exception or
    fingerprint filter, the failed tasks of those groups); revoke skips tasks already
    finished. A task is acted on at most once per request."""

    filter: TaskCountQuery = TaskCountQuery()
    dry_run: bool = True
    limit: PageLimit = 100
    cursor: Cursor | None = None


class BulkItem(msgspec.Struct, frozen=True, omit_defaults=True):
    """One task a real run acted on: ``new_id`` is a retry's new task; ``error`` says why this
    one was not acted on (the others were)."""

    id: str
    new_id: str | None = None
    error: str | None = None


class BulkResponse(msgspec.Struct, frozen=True):
    """``matched``: tasks the filter matches (dry run; ``exact`` false when counting stopped at
    its scan bound). ``ids``: the first matching ids (dry run) or the ids acted on. ``skipped``:
    tasks of this chunk in a state the action does not apply to."""

    action: Literal["retry", "revoke"]
    dry_run: bool
    ids: list[str]
    matched: int | None = None
    exact: bool = True
    items: list[BulkItem] = []
    skipped: int = 0
    next_cursor: str | None = None
