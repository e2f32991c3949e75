"""Reading what the user types: ``--since``/``--until`` times, durations, JSON arguments."""

from __future__ import annotations

from datetime import UTC
from zoneinfo import ZoneInfo

import pytest

from producer_api.cli.arguments import json_arg, parse_duration, parse_time
from producer_api.cli.client import CliError

NOW = 1767225600.0  # 2026-01-01T00:00:00Z
SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.mark.parametrize(("text", "ago"), [
    ("90s", 90), ("30m", 1800), ("2h", 7200), ("7d", 7 * 86400), ("1w", 7 * 86400),
    ("1h30m", 5400), ("1.5h", 5400),
])  # fmt: skip
def test_a_duration_means_that_long_before_now(text: str, ago: float) -> None:
    assert parse_time(text, NOW, UTC) == NOW - ago


def test_epoch_seconds_are_taken_as_they_are() -> None:
    assert parse_time("1700000000.5", NOW, UTC) == 1700000000.5


def test_an_iso_time_with_an_offset_is_that_instant_in_any_zone() -> None:
    assert parse_time("2026-01-01T08:00:00+08:00", NOW, UTC) == NOW
    assert parse_time("2026-01-01T00:00:00Z", NOW, SHANGHAI) == NOW


def test_an_iso_time_without_an_offset_is_read_in_the_display_zone() -> None:
    assert parse_time("2026-01-01T08:00", NOW, SHANGHAI) == NOW
    assert parse_time("2026-01-01T00:00", NOW, UTC) == NOW


def test_a_date_alone_is_its_midnight() -> None:
    assert parse_time("2026-01-01", NOW, UTC) == NOW


@pytest.mark.parametrize("text", ["yesterday", "2x", "-5m", "2026-13-01", ""])
def test_anything_else_is_refused_naming_the_accepted_forms(text: str) -> None:
    with pytest.raises(ValueError, match=r"duration ago .* ISO 8601 .* epoch seconds"):
        parse_time(text, NOW, UTC)


def test_an_interval_is_seconds_or_a_duration() -> None:
    assert [parse_duration(t) for t in ("90", "90s", "5m", "1h30m")] == [90, 90, 300, 5400]


def test_json_arguments_must_be_of_the_asked_kind() -> None:
    assert json_arg('{"a": 1}', dict, "--kwargs") == {"a": 1}
    with pytest.raises(CliError, match="--args must be a JSON array"):
        json_arg('{"a": 1}', list, "--args")
