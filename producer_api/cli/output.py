"""The CLI's one voice: how every time, number, boolean, structured value and table is printed.

- Times: ISO 8601 to the second with an explicit offset, in the local zone (``--utc``: UTC).
- Structured values: JSON. Celery records a task's args, kwargs and result as Python reprs
  (``{'a': 1}``); they are shown as JSON when ``ast.literal_eval`` reads them, else as recorded.
- Booleans: ``true``/``false``, as JSON spells them. Numbers: at most three decimals, no trailing
  zeros (``10/10``, not ``10/10.0``); durations with units, as typed (``0.3s``, ``1h30m``).
  Nothing: ``-``.
- ``--json`` prints the API's JSON unchanged, for scripts.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any, Final

# API fields by what they hold, wherever they appear (records, rows, schedules, tokens, events).
TIME_FIELDS: Final = frozenset({
    "sent", "received", "started", "succeeded", "failed", "retried", "revoked", "rejected",
    "first_seen", "updated", "timestamp", "last_heartbeat", "online_at", "offline_at", "created",
    "last_run_at", "next_run_at", "start", "eta", "expires", "last_seen",
})  # fmt: skip
DURATION_FIELDS: Final = frozenset({"runtime"})
RECORDED_FIELDS: Final = frozenset({"args", "kwargs", "result"})  # Python reprs, from Celery
NOTHING: Final = "-"
_DURATION_UNITS: Final = (("d", 86400), ("h", 3600), ("m", 60))


def format_time(value: float | str, tz: tzinfo | None) -> str:
    """Epoch seconds or an ISO 8601 string, in ``tz`` (None: the local zone)."""
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return value
        if moment.tzinfo is None:  # Celery writes naive times in UTC (enable_utc)
            moment = moment.replace(tzinfo=UTC)
    else:
        try:
            moment = datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):  # beyond what a datetime can hold
            return format_number(value)
    return moment.astimezone(tz).isoformat(timespec="seconds")


def format_number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def format_duration(seconds: float) -> str:
    """In the form ``--since`` and ``--every`` accept: ``0.3s``, ``5m``, ``1h30m``, ``2d3h``."""
    rest = round(seconds, 3)
    parts = []
    for unit, size in _DURATION_UNITS:
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{int(count)}{unit}")
    if rest or not parts:
        parts.append(format_number(rest) + "s")
    return "".join(parts)


def format_bool(value: bool) -> str:
    return "true" if value else "false"


def format_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def format_recorded(text: str) -> str:
    """A Celery repr as JSON when it is a plain literal; anything else as recorded."""
    try:
        value = ast.literal_eval(text)
        return json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return text


def format_progress(current: float, total: float | None) -> str:
    return f"{format_number(current)}/{format_number(total) if total else '?'}"


def event_detail(fields: Mapping[str, Any]) -> str:
    """What a task event adds beyond its type: progress, runtime, retries, exception, flags."""
    parts = []
    if fields.get("progress_current") is not None:
        parts.append("progress " + format_progress(fields["progress_current"],
                                                   fields.get("progress_total")))
    if fields.get("runtime") is not None:
        parts.append("runtime " + format_duration(fields["runtime"]))
    if fields.get("retries"):
        parts.append(f"retries {fields['retries']}")
    parts += [flag for flag in ("terminated", "expired", "requeue") if fields.get(flag)]
    if fields.get("signum"):
        parts.append(f"signal {fields['signum']}")
    if fields.get("exception"):
        parts.append(fields["exception"])
    return "  ".join(parts)


class Output:
    """Prints for one command run: tables and key/value lists, or the API's JSON (``--json``)."""

    def __init__(self, json_mode: bool = False, tz: tzinfo | None = None) -> None:
        self.json = json_mode
        self.tz = tz

    def time(self, value: float | str) -> str:
        return format_time(value, self.tz)

    def cell(self, key: str, value: Any) -> str:
        """One value as text, by what its field holds, else by its type."""
        if value is None or value == "":
            return NOTHING
        if isinstance(value, bool):
            return format_bool(value)
        if key in TIME_FIELDS and isinstance(value, (int, float, str)):
            return self.time(value)
        if key in DURATION_FIELDS and isinstance(value, (int, float)):
            return format_duration(value)
        if key in RECORDED_FIELDS and isinstance(value, str):
            return format_recorded(value)
        if key == "progress" and isinstance(value, dict):
            return format_progress(value["current"], value.get("total"))
        if isinstance(value, (int, float)):
            return format_number(value)
        if isinstance(value, (list, dict)):
            return format_json(value)
        return str(value)

    def emit(self, value: Any, show: Callable[[Any], None]) -> None:
        if self.json:
            print(json.dumps(value, indent=2))
        else:
            show(value)

    def table(self, rows: Sequence[Mapping[str, Any]], columns: Sequence[str],
              indent: str = "") -> None:
        """Aligned columns headed by the upper-cased field names; ``(none)`` when empty."""
        if not rows:
            print(indent + "(none)")
            return
        cells = [[self.cell(c, row.get(c)) for c in columns] for row in rows]
        widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
        for line in [[c.upper() for c in columns], *cells]:
            text = "  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True))
            print(indent + text.rstrip())

    def fields(self, record: Mapping[str, Any], keys: Sequence[str]) -> None:
        """``key  value`` lines for the keys the record has, keys aligned."""
        present = [k for k in keys if record.get(k) not in (None, "", {}, [])]
        width = max((len(k) for k in present), default=0)
        for key in present:
            print(f"{key.ljust(width)}  {self.cell(key, record[key])}")
