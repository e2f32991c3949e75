"""What the user types, read once: times (``--since 2h``), JSON arguments, ``key=value`` labels,
and the valid values of enum flags, taken from the API's own schema so they cannot drift."""

from __future__ import annotations

import argparse
import json
import re
from datetime import UTC, datetime, tzinfo
from typing import Any, Final, get_args, get_type_hints

from producer_api import schemas
from producer_api.cli.client import EXIT_USAGE, CliError

STATES: Final[tuple[str, ...]] = get_args(schemas.State)
PRIORITIES: Final[tuple[str, ...]] = get_args(schemas.Priority)
ROLES: Final[tuple[str, ...]] = get_args(schemas.Role)
GRANULARITIES: Final[tuple[str, ...]] = get_args(schemas.Granularity)
SIGNALS: Final[tuple[str, ...]] = get_args(get_type_hints(schemas.RevokeRequest)["signal"])

TIME_FORMATS: Final = (
    "a duration ago (90s, 30m, 2h, 7d, 1w, 1h30m), an ISO 8601 time "
    "(2026-01-31T08:00:00+08:00, or without offset in the display zone), or epoch seconds"
)
_UNIT_SECONDS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION: Final = re.compile(r"(?:\d+(?:\.\d+)?[smhdw])+")
_DURATION_PART: Final = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_NUMBER: Final = re.compile(r"\d+(?:\.\d+)?")


def parse_duration(text: str) -> float:
    """Seconds in ``90``, ``90s``, ``5m``, ``2h``, ``7d``, ``1w`` or ``1h30m``."""
    text = text.strip()
    if _NUMBER.fullmatch(text):
        return float(text)
    if not _DURATION.fullmatch(text):
        raise ValueError(f"{text!r} is not a duration: give seconds, or 90s, 5m, 2h, 7d, 1h30m")
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))


def parse_time(text: str, now: float, tz: tzinfo | None) -> float:
    """Epoch seconds for a ``--since``/``--until`` value; naive ISO times are read in ``tz``
    (None: the local zone). Raises ValueError naming the accepted forms."""
    text = text.strip()
    if _DURATION.fullmatch(text):
        return now - parse_duration(text)
    if _NUMBER.fullmatch(text):
        return float(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a time: give {TIME_FORMATS}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz) if tz is not None else moment.astimezone()
    return moment.astimezone(UTC).timestamp()


def time_option(text: str) -> str:
    """An argparse ``type`` for ``--since``/``--until``: checks the form at parse time, so a typo
    is a usage error of the command it was given to. Resolved by ``parse_time`` once the display
    zone is known (``--utc`` may come later on the line)."""
    try:
        parse_time(text, 0.0, UTC)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def json_arg(text: str, kind: type, what: str) -> Any:
    """A JSON array or object given on the command line."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise CliError(f"{what} is not valid JSON: {exc}", EXIT_USAGE) from None
    if not isinstance(value, kind):
        raise CliError(f"{what} must be a JSON {'array' if kind is list else 'object'}",
                       EXIT_USAGE)
    return value


def labels_arg(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise CliError(f"--label {pair!r} is not key=value", EXIT_USAGE)
        out[key] = value
    return out
