"""Request and response bodies, and query strings, as msgspec Structs.

Requests are decoded and validated once at the edge; the OpenAPI document is generated from these
same Structs (``openapi.py``), so the two cannot drift apart.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from event_collector.broker import PRIORITY_LEVELS
from event_collector.events import STATE_PRECEDENCE
from event_collector.failures import FINGERPRINT_PATTERN
from event_collector.keys import BUCKET_SECONDS
from event_collector.records import (
    DEFAULT_PAGE_SIZE,
    MAX_HISTORY_BUCKETS,
    MAX_PAGE_SIZE,
    SEARCH_TEXT_MAX,
    TaskRecord,
    TimelineEntry,
)
from producer_api.auth import ROLES

# Enums built from the tuples their owners keep (``Literal[a, b]`` is ``Literal[(a, b)]``); the
# JSON Schema lists their values sorted, whatever the order here.
Priority = Literal.__getitem__(PRIORITY_LEVELS)
Role = Literal.__getitem__(ROLES)
State = Literal.__getitem__(STATE_PRECEDENCE)
Granularity = Literal.__getitem__(tuple(BUCKET_SECONDS))
TaskName = Annotated[
    str,
    msgspec.Meta(
        min_length=1, max_length=200,
        description="A task name from `GET /catalog`. Any other name is refused with 422; "
        "`details.did_you_mean` then lists the closest known names.",
    ),
]
IDEMPOTENCY_KEY_MAX = 200
IdempotencyKey = Annotated[
    str,
    msgspec.Meta(
        min_length=1, max_length=IDEMPOTENCY_KEY_MAX,
        description="The same key with the same request answers with the first task (marked "
        "`duplicate`) for TASKPULSE_API_IDEMPOTENCY_TTL seconds; with a different request it is "
        "409. Also accepted as the `Idempotency-Key` header (never truncated: longer is 422).",
    ),
]
# No setting may allow more than this; the configured horizon (TASKPULSE_API_MAX_DELAY_SECONDS,
# default one year) is enforced when a request is resolved, and the OpenAPI shows it.
MAX_DELAY_CEILING_SECONDS = 10 * 365 * 86400
Seconds = Annotated[float, msgspec.Meta(ge=0, le=MAX_DELAY_CEILING_SECONDS)]
Timestamp = Annotated[float, msgspec.Meta(ge=0, le=1e11)]
# RFC 3339 date-times carry an offset: a naive time would be read in whatever zone the reader
# assumes, and could not be compared with the horizon.
DateTime = Annotated[datetime, msgspec.Meta(tz=True, extra_json_schema={"format": "date-time"})]
# A priority number 1-4. JSON Schema counts 2.0 as the integer 2, so the API does too: a number
# with no fraction (multipleOf 1), not a JSON integer token only.
PriorityNumber = Annotated[float, msgspec.Meta(ge=1, le=4, multiple_of=1)]
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
    priority: Priority | PriorityNumber | None = None
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


Fingerprint = Annotated[
    str,
    msgspec.Meta(
        pattern=FINGERPRINT_PATTERN,
        description="A failure group's fingerprint (`GET /failures`): tasks whose latest "
        "failure is in that group.",
    ),
]
ExceptionType = Annotated[
    str,
    msgspec.Meta(
        min_length=1, max_length=200,
        description="An exception type as a failure shows it (`KeyError`, "
        "`celery.exceptions.TimeLimitExceeded`): tasks in any failure group of that type.",
    ),
]
SearchText = Annotated[
    str,
    msgspec.Meta(
        min_length=1, max_length=SEARCH_TEXT_MAX,
        description="Text the task's args, kwargs, result or exception contain (ignoring "
        "ASCII case). Reads every record it walks, so it stops after a bounded number of "
        "records (TASKPULSE_API_SEARCH_SCAN_MAX) and then answers `exact: false` with a "
        "cursor to continue: narrow it with the other filters and a time window.",
    ),
]


class TaskCountQuery(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Filters (all optional, combined with AND); ``since``/``until`` bound first-seen time."""

    state: State | None = None
    name: str | None = None
    queue: str | None = None
    worker: str | None = None
    exception: ExceptionType | None = None
    fingerprint: Fingerprint | None = None
    q: SearchText | None = None
    since: Timestamp | None = None
    until: Timestamp | None = None


class TaskListQuery(TaskCountQuery, frozen=True, forbid_unknown_fields=True):
    """The count filters plus a page: ``limit`` rows after ``cursor``, newest first."""

    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE
    cursor: Annotated[
        str,
        msgspec.Meta(
            max_length=500, pattern="^[A-Za-z0-9_-]+$",
            description="Opaque: the `next_cursor` of the previous page, unchanged (URL-safe "
            "base64). Any other value is 422.",
        ),
    ] | None = None


class HistoryQuery(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Buckets from ``since`` (default: 60 buckets ago) to ``until`` (default: now)."""

    granularity: Granularity = "hour"
    since: Annotated[
        Timestamp,
        msgspec.Meta(
            description=f"At most {MAX_HISTORY_BUCKETS} buckets of `granularity` per request: "
            "`(until - since) / bucket seconds` must stay below that, and `since` must not be "
            "after `until`; otherwise 422.",
        ),
    ] | None = None
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
    # ASCII only: Python's \w would also take any Unicode letter, which the schema's readers
    # (JavaScript, JSON Schema validators) would not.
    name: Annotated[
        str, msgspec.Meta(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.@-]+(?!\n)$")
    ]
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
