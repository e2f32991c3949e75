"""Report periods are the last complete hour/day/week/month in the configured timezone."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from worker.domain.periods import month_bounds, period_starting, report_period
from worker.errors import InvalidArguments

SHANGHAI = ZoneInfo("Asia/Shanghai")
# Monday 1 March 2027, 00:20 in Shanghai — still Sunday 28 February in UTC.
NOW = datetime(2027, 3, 1, 0, 20, tzinfo=SHANGHAI)


@pytest.mark.parametrize(
    ("kind", "start", "end"),
    [
        ("hourly", datetime(2027, 2, 28, 23, 0), datetime(2027, 3, 1, 0, 0)),
        ("daily", datetime(2027, 2, 28), datetime(2027, 3, 1)),
        ("weekly", datetime(2027, 2, 22), datetime(2027, 3, 1)),
        ("monthly", datetime(2027, 2, 1), datetime(2027, 3, 1)),
    ],
)
def test_report_covers_the_last_complete_local_period(
    kind: str, start: datetime, end: datetime
) -> None:
    assert report_period(kind, NOW) == (
        start.replace(tzinfo=SHANGHAI),
        end.replace(tzinfo=SHANGHAI),
    )


def test_a_monthly_report_in_january_covers_last_december() -> None:
    start, end = report_period("monthly", datetime(2027, 1, 15, tzinfo=SHANGHAI))

    assert (start.year, start.month, end.year, end.month) == (2026, 12, 2027, 1)


def test_month_bounds_are_local_midnights() -> None:
    start, end = month_bounds("2026-12", SHANGHAI)

    assert start == datetime(2026, 12, 1, tzinfo=SHANGHAI)
    assert end == datetime(2027, 1, 1, tzinfo=SHANGHAI)


def test_a_monthly_period_must_start_on_the_first() -> None:
    with pytest.raises(InvalidArguments, match="starts on the 1st"):
        period_starting("monthly", "2026-01-31", SHANGHAI)
