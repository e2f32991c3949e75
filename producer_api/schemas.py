"""Request and response bodies, and query strings, as msgspec Structs.

Requests are decoded and validated once at the edge; the OpenAPI document is generated from these
same Structs (``openapi.py``), so the two cannot drift apart.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from event_collector.records import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, TaskRecord, TimelineEntry

Priority = Literal["low", "normal", "high", "critical"]
Role = Literal["viewer", "operator", "admin"]
State = Literal[
    "PENDING", "RECEIVED", "STARTED", "SUCCESS", "FAILURE", "RETRY", "REVOKED", "REJECTED"
]
Granularity = Literal["minute", "hour", "day"]
TaskName = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
IdempotencyKey = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Seconds = Annotated[float, msgspec.Meta(ge=0, le=365 * 86400)]
Timestamp = Annotated[float, msgspec.Meta(ge=0, le=1e11)]
DateTime = Annotated[datetime, msgspec.Meta(extra_json_schema={"format": "date-time"})]
MAX_BATCH = 1000


class ErrorBody(msgspec.Struct, frozen=True):
    code: str
    message: str
    details: Any = None


class ErrorResponse(msgspec.Struct, frozen=True):
    """Every error the API returns has this shape."""

    error: ErrorBody


class EnqueueRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One task to send. ``name`` must be in the catalog; args/kwargs are checked against it."""

    name: TaskName
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    queue: str | None = None
    # A level name, or its number 1-4 (low..critical); the catalog's default when absent.
    priority: Priority | Annotated[int, msgspec.Meta(ge=1, le=4)] | None = None
    countdown: Seconds | None = None
    eta: DateTime | None = None
    expires: Seconds | None = None
    idempotency_key: IdempotencyKey | None = None


class EnqueueResponse(msgspec.Struct, frozen=True, omit_defaults=True):
    """The task was handed to the broker (or already was, for a repeated idempotency key)."""

    id: str
    url: str
    name: str
    queue: str
    priority: Priority
    duplicate: bool = False
    parent_id: str | None = None


class BatchRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    tasks: Annotated[list[EnqueueRequest], msgspec.Meta(min_length=1, max_length=MAX_BATCH)]


class BatchResponse(msgspec.Struct, frozen=True):
    tasks: list[EnqueueResponse]


class RevokeRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``terminate`` also kills the task if it is already running (signal SIGTERM by default)."""

    terminate: bool = False
    signal: Literal["SIGTERM", "SIGKILL", "SIGINT", "SIGQUIT", "SIGUSR1"] = "SIGTERM"


class RevokeResponse(msgspec.Struct, frozen=True):
    id: str
    terminate: bool
    revoked: bool = True


class TaskDetail(TaskRecord, frozen=True):
    """A task's record with its timeline (oldest first) and its direct children's ids."""

    timeline: list[TimelineEntry] = []
    children: list[str] = []


class TaskEvents(msgspec.Struct, frozen=True):
    task_id: str
    events: list[TimelineEntry]


class TaskCountQuery(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Filters (all optional, combined with AND); ``since``/``until`` bound first-seen time."""

    state: State | None = None
    name: str | None = None
    queue: str | None = None
    worker: str | None = None
    since: Timestamp | None = None
    until: Timestamp | None = None


class TaskListQuery(TaskCountQuery, frozen=True, forbid_unknown_fields=True):
    """The count filters plus a page: ``limit`` rows after ``cursor``, newest first."""

    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE
    cursor: Annotated[str, msgspec.Meta(max_length=500)] | None = None


class HistoryQuery(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Buckets from ``since`` (default: 60 buckets ago) to ``until`` (default: now)."""

    granularity: Granularity = "hour"
    since: Timestamp | None = None
    until: Timestamp | None = None
    name: str | None = None


class EventsQuery(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Live event filter. ``state`` matches task events of that kind (SUCCESS, FAILURE, ...)."""

    name: str | None = None
    state: State | None = None
    task_id: str | None = None
    last_event_id: Annotated[str, msgspec.Meta(pattern=r"^\d+-\d+$")] | None = None


class Health(msgspec.Struct, frozen=True):
    status: str


class Readiness(msgspec.Struct, frozen=True):
    """``ready`` only when both the monitoring Redis and the broker answer."""

    status: Literal["ready", "unavailable"]
    redis: bool
    broker: bool


class TokenCreate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=r"^[\w.@-]+$")]
    role: Role


class TokenInfo(msgspec.Struct, frozen=True):
    id: str
    name: str
    role: Role
    created: float


class TokenCreated(msgspec.Struct, frozen=True):
    """The secret is in ``token`` and is shown only this once; only its hash is stored."""

    id: str
    name: str
    role: Role
    created: float
    token: str


class TokenList(msgspec.Struct, frozen=True):
    tokens: list[TokenInfo]


class Deleted(msgspec.Struct, frozen=True):
    id: str
    deleted: bool = True
