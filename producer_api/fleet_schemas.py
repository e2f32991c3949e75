"""Bodies and answers of the fleet routes: worker control, task-type limits, queue operations."""

from __future__ import annotations

from typing import Annotated

import msgspec

from producer_api.broker_queues import WaitingMessage
from producer_api.control import WorkerReply

PoolSize = Annotated[int, msgspec.Meta(ge=1, le=1000)]
TimeLimitSeconds = Annotated[float, msgspec.Meta(gt=0, le=7 * 86400)]
# celery.utils.time.rate: a number of tasks per second, or per ``/s``, ``/m``, ``/h``.
RATE_LIMIT_PATTERN = r"^\d+(\.\d+)?(/[smh])?$"
RateLimit = Annotated[
    str,
    msgspec.Meta(
        pattern=RATE_LIMIT_PATTERN, max_length=32,
        description="Celery's rate syntax: `10/m` (ten a minute), `2/s`, `100/h`, or a bare "
        "number per second. `0` or null: no limit.",
    ),
]
MAX_PEEK = 100


class Autoscale(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    max: PoolSize
    min: Annotated[int, msgspec.Meta(ge=0, le=1000)] = 0


class PoolChange(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """Exactly one of: ``grow``/``shrink`` by n processes, ``autoscale`` bounds (a worker
    started with ``--autoscale``), ``restart: true`` (needs ``worker_pool_restarts``, on in
    taskpulse workers unless ``TASKPULSE_POOL_RESTARTS=0``)."""

    grow: PoolSize | None = None
    shrink: PoolSize | None = None
    autoscale: Autoscale | None = None
    restart: bool | None = None


class ConsumerChange(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """Exactly one of ``add`` (start consuming a queue) or ``cancel`` (stop), a known queue."""

    add: str | None = None
    cancel: str | None = None


class LimitsUpdate(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """The limits to put in force, replacing what was set before. ``rate_limit`` absent or null:
    unlimited. The time limits (seconds) go together, ``soft_time_limit <= time_limit``;
    absent: the workers' own configuration (taken back by workers when they restart)."""

    rate_limit: RateLimit | None = None
    soft_time_limit: TimeLimitSeconds | None = None
    time_limit: TimeLimitSeconds | None = None


class LimitsInForce(msgspec.Struct, frozen=True, omit_defaults=True):
    rate_limit: str | None = None
    soft_time_limit: float | None = None
    time_limit: float | None = None


class TaskLimitsView(msgspec.Struct, frozen=True):
    """``desired``: what an operator set (re-applied to workers coming online), null if nothing;
    ``workers``: what each answering worker has in force now; ``no_reply``: alive workers that
    did not answer."""

    name: str
    desired: LimitsInForce | None
    set_by: str | None
    set_at: float | None
    workers: dict[str, LimitsInForce]
    no_reply: list[str]


class LimitsApplied(msgspec.Struct, frozen=True):
    name: str
    desired: LimitsInForce
    workers: dict[str, WorkerReply]
    no_reply: list[str]


class PurgeRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``expected``: the count the caller saw and agrees to lose; more waiting now is 409."""

    expected: Annotated[int, msgspec.Meta(ge=0)]


class Purged(msgspec.Struct, frozen=True):
    queue: str
    purged: int


class QueueControl(msgspec.Struct, frozen=True):
    """A pause or resume: the queue's state now and what each addressed worker answered."""

    queue: str
    paused: bool
    workers: dict[str, WorkerReply]
    no_reply: list[str]


class PeekQuery(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_PEEK)] = 20


class QueueMessages(msgspec.Struct, frozen=True):
    """The first waiting messages in the order a consumer would take them (see ``order``),
    none of them consumed."""

    queue: str
    length: int
    messages: list[WaitingMessage]
    order: str
