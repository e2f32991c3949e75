"""What the read side returns: typed views of the projections described in ``keys.py``.

These Structs are also the API's response bodies, so their docstrings end up in the OpenAPI.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec


class Progress(msgspec.Struct, frozen=True, omit_defaults=True):
    """The last progress a running task reported (``task-progress`` events)."""

    current: float
    total: float | None = None
    timestamp: float | None = None


class TaskSummary(msgspec.Struct, frozen=True, omit_defaults=True):
    """One row of a task listing: enough to show a table without fetching each task."""

    id: str
    name: str | None = None
    state: str | None = None
    queue: str | None = None
    worker: str | None = None
    first_seen: float | None = None
    updated: float | None = None
    runtime: float | None = None
    retries: int | None = None
    exception: str | None = None
    fingerprint: str | None = None


class TimelineEntry(msgspec.Struct, frozen=True, omit_defaults=True):
    """One event in a task's life, oldest first."""

    type: str
    timestamp: float
    hostname: str | None = None
    fields: dict[str, Any] = {}


class TaskRecord(msgspec.Struct, frozen=True, omit_defaults=True):
    """Everything the collector knows about one task (``P task:<id>``)."""

    id: str
    name: str | None = None
    state: str | None = None
    args: str | None = None
    kwargs: str | None = None
    queue: str | None = None
    routing_key: str | None = None
    exchange: str | None = None
    priority: int | None = None
    worker: str | None = None
    sent: float | None = None
    received: float | None = None
    started: float | None = None
    succeeded: float | None = None
    failed: float | None = None
    retried: float | None = None
    revoked: float | None = None
    rejected: float | None = None
    runtime: float | None = None
    retries: int | None = None
    result: str | None = None
    exception: str | None = None
    # The failure group of the latest failure (``GET /failures``, failures.py).
    fingerprint: str | None = None
    traceback: str | None = None
    parent_id: str | None = None
    root_id: str | None = None
    eta: str | None = None
    expires: str | None = None
    first_seen: float | None = None
    updated: float | None = None
    note: str | None = None
    labels: dict[str, str] | None = None
    progress: Progress | None = None


# Rows per listing page: the API's query schema and the reader both bound ``limit`` by these.
DEFAULT_PAGE_SIZE: Final = 50
MAX_PAGE_SIZE: Final = 500
# A search text (``GET /tasks?q=``) is at most this long.
SEARCH_TEXT_MAX: Final = 200


class TaskPage(msgspec.Struct, frozen=True):
    """A page of tasks, newest first. Pass ``next_cursor`` back to get the next page.

    ``exact`` is false when the walk stopped at its scan bound (a combined filter or a search
    that matched few of the records it read) before the page was full: more may match past
    ``next_cursor``."""

    items: list[TaskSummary]
    next_cursor: str | None = None
    exact: bool = True


class FailureGroup(msgspec.Struct, frozen=True, omit_defaults=True):
    """Failures with one fingerprint: the same exception type and message once numbers, hex,
    UUIDs and quoted strings are masked. ``names``: the task names that failed so;
    ``hourly`` counts failures per hour, oldest first,
    the last entry being the current hour."""

    fingerprint: str
    exception: str
    count: int
    first_seen: float
    last_seen: float
    message: str = ""
    example_id: str = ""
    names: list[str] = []
    hourly: list[int] = []


class FailurePage(msgspec.Struct, frozen=True):
    """Failure groups, most recently seen first. Pass ``next_cursor`` back for the next page."""

    items: list[FailureGroup]
    next_cursor: str | None = None


class TaskCount(msgspec.Struct, frozen=True):
    """How many tasks match. ``exact`` is false when a combined filter hit the scan bound."""

    count: int
    exact: bool = True


class Stats(msgspec.Struct, frozen=True):
    """Totals computed from counters and index sizes: the same cost at 1k and at 100M tasks."""

    tasks_stored: int
    by_state: dict[str, int]
    events_total: dict[str, int]
    by_name: dict[str, dict[str, int]]
    workers_online: int
    workers_total: int
    queue_lengths: dict[str, int]


class HistoryBucket(msgspec.Struct, frozen=True):
    """Event counts by kind (SENT, SUCCESS, FAILURE, ...) in one time bucket."""

    start: int
    counts: dict[str, int]


# Buckets one history request may cover: the API's query schema and the reader both say so.
MAX_HISTORY_BUCKETS: Final = 1_500


class History(msgspec.Struct, frozen=True):
    granularity: str
    buckets: list[HistoryBucket]


class WorkerInfo(msgspec.Struct, frozen=True, omit_defaults=True):
    """A worker as last seen. ``alive`` = not offline and last heartbeat within freq x 2
    (Celery's default 2 s heartbeat when freq is missing or 0)."""

    hostname: str
    alive: bool
    last_heartbeat: float | None = None
    freq: float | None = None
    active: int | None = None
    processed: int | None = None
    loadavg: list[float] | None = None
    sw_ident: str | None = None
    sw_ver: str | None = None
    sw_sys: str | None = None
    pid: int | None = None
    online_at: float | None = None
    offline_at: float | None = None


class QueueInfo(msgspec.Struct, frozen=True, omit_defaults=True):
    """A broker queue's waiting messages (all priorities), as last polled by the collector."""

    name: str
    length: int | None = None
    consumers: int | None = None
    workers: int | None = None
    processes: int | None = None
    updated: float | None = None
    paused: bool = False  # by an operator (event_collector.fleet): its messages wait
