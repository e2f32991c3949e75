"""Request and response bodies of beat's schedule (``/schedules``), as msgspec Structs beside
``schemas.py``, feeding the same generated OpenAPI document."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec

from producer_api.schemas import TaskName

ScheduleName = Annotated[
    str, msgspec.Meta(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
]


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
