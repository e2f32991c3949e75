"""Calendar arithmetic in the configured timezone: local days, months and report periods."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from worker.errors import InvalidArguments

REPORT_KINDS: Final[tuple[str, ...]] = ("hourly", "daily", "weekly", "monthly")


def local_now(zone: ZoneInfo) -> datetime:
    return datetime.now(zone)


def month_bounds(month: str, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """``"2026-10"`` → its first instant and the next month's first instant, in ``zone``."""
    try:
        start = datetime.strptime(month, "%Y-%m").replace(tzinfo=zone)
    except ValueError:
        raise InvalidArguments(f"month must look like YYYY-MM, got {month!r}") from None
    return start, _add_month(start)


def previous_month(now: datetime) -> str:
    first = now.replace(day=1) - timedelta(days=1)
    return first.strftime("%Y-%m")


def report_period(kind: str, now: datetime) -> tuple[datetime, datetime]:
    """The last *complete* period of ``kind`` before ``now`` (a local, aware datetime)."""
    hour = now.replace(minute=0, second=0, microsecond=0)
    day = hour.replace(hour=0)
    if kind == "hourly":
        return hour - timedelta(hours=1), hour
    if kind == "daily":
        return day - timedelta(days=1), day
    if kind == "weekly":
        monday = day - timedelta(days=day.weekday())
        return monday - timedelta(days=7), monday
    if kind == "monthly":
        first = day.replace(day=1)
        return _sub_month(first), first
    raise InvalidArguments(f"report kind must be one of {REPORT_KINDS}, got {kind!r}")


def period_starting(kind: str, start: str, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The period of ``kind`` beginning at the ISO local time ``start`` (for re-running one)."""
    try:
        begin = datetime.fromisoformat(start)
    except ValueError:
        raise InvalidArguments(f"period_start must be an ISO date/time, got {start!r}") from None
    begin = begin.replace(tzinfo=zone) if begin.tzinfo is None else begin.astimezone(zone)
    lengths = {
        "hourly": timedelta(hours=1),
        "daily": timedelta(days=1),
        "weekly": timedelta(days=7),
    }
    if kind == "monthly":
        if (begin.day, begin.hour, begin.minute) != (1, 0, 0):
            raise InvalidArguments(f"a monthly period starts on the 1st at 00:00, not {start!r}")
        return begin, _add_month(begin)
    if kind not in lengths:
        raise InvalidArguments(f"report kind must be one of {REPORT_KINDS}, got {kind!r}")
    return begin, begin + lengths[kind]


def _add_month(moment: datetime) -> datetime:
    year, month = divmod(moment.month, 12)
    return moment.replace(year=moment.year + year, month=month + 1)


def _sub_month(moment: datetime) -> datetime:
    if moment.month == 1:
        return moment.replace(year=moment.year - 1, month=12)
    return moment.replace(month=moment.month - 1)
