"""The CLI's one voice (``producer_api.cli.output``): times, values, numbers, booleans."""

from __future__ import annotations

from datetime import UTC
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from producer_api.cli.arguments import parse_duration
from producer_api.cli.output import (
    Output,
    event_detail,
    format_duration,
    format_number,
    format_recorded,
    format_time,
)

NOW = 1767225600.0  # 2026-01-01T00:00:00Z
SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_times_are_iso_8601_with_the_offset_of_the_display_zone() -> None:
    assert format_time(NOW, SHANGHAI) == "2026-01-01T08:00:00+08:00"
    assert format_time(NOW, UTC) == "2026-01-01T00:00:00+00:00"


def test_iso_times_from_the_api_are_shown_in_the_display_zone() -> None:
    assert format_time("2026-01-01T08:00:00+08:00", UTC) == "2026-01-01T00:00:00+00:00"


def test_the_local_zone_is_the_default_and_says_its_offset() -> None:
    assert format_time(NOW, None)[-6] in "+-"


def test_a_naive_recorded_time_is_utc() -> None:
    assert format_time("2026-01-01T00:00:00", SHANGHAI) == "2026-01-01T08:00:00+08:00"


@pytest.mark.parametrize(("recorded", "shown"), [
    ("{'a': 1, 'ok': True, 'none': None}", '{"a": 1, "ok": true, "none": null}'),
    ("(1, 'x')", '[1, "x"]'),
    ("'done'", '"done"'),
])  # fmt: skip
def test_celery_reprs_are_shown_as_json(recorded: str, shown: str) -> None:
    assert format_recorded(recorded) == shown


@pytest.mark.parametrize("recorded", [
    "<object object at 0x7f>", "{1, 2}", "b'raw'", "float('nan')", "{'a': 1, 'b': ...",
])  # fmt: skip
def test_reprs_that_are_not_plain_literals_are_shown_as_recorded(recorded: str) -> None:
    assert format_recorded(recorded) == recorded


def test_numbers_drop_a_trailing_point_zero() -> None:
    assert [format_number(v) for v in (10.0, 2.5, 0.30000000000000004, 7)] == [
        "10", "2.5", "0.3", "7",
    ]


@pytest.mark.parametrize(("seconds", "shown"), [
    (0.3, "0.3s"), (0, "0s"), (59.9996, "1m"), (300.0, "5m"), (5400, "1h30m"),
    (90061.5, "1d1h1m1.5s"),
])  # fmt: skip
def test_durations_carry_their_units(seconds: float, shown: str) -> None:
    assert format_duration(seconds) == shown


@given(st.floats(min_value=0, max_value=400 * 86400))
def test_a_shown_duration_reads_back_as_the_same_seconds(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds, abs=0.0005)


def test_booleans_are_spelled_as_json_in_every_table(capsys: pytest.CaptureFixture) -> None:
    Output(tz=UTC).table([{"alive": True, "enabled": False}], ["alive", "enabled"])
    assert capsys.readouterr().out.splitlines()[1].split() == ["true", "false"]


def test_progress_is_current_over_total_without_decimals() -> None:
    assert Output(tz=UTC).cell("progress", {"current": 10.0, "total": 10.0}) == "10/10"


def test_an_event_detail_names_progress_runtime_and_exception() -> None:
    assert event_detail({"progress_current": 3.0, "progress_total": 10.0}) == "progress 3/10"
    assert event_detail({"runtime": 1.25}) == "runtime 1.25s"
    assert event_detail({"exception": "KeyError('x')", "retries": 2}) == "retries 2  KeyError('x')"
