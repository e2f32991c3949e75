"""A task's timeline as the store keeps it (keys.py ``_tl``), read back.

The timeline is the one place a task's event timestamps are stored: the record's ``sent``,
``received``, ... (the latest of each kind), ``first_seen`` and ``updated`` are read off it here,
as ``store.lua`` reads them when it folds events.
"""

from __future__ import annotations

from typing import Final

import orjson

from event_collector.events import TASK_PROGRESS, TIMELINE_CODES, TIMELINE_TYPES
from event_collector.records import TimelineEntry

# Timeline code -> the record field holding the latest timestamp of that kind: the event type
# without ``task-`` (TaskRecord's ``sent`` .. ``rejected``); progress keeps its own for Progress.
TIMESTAMP_FIELDS: Final = {
    code: "progress_ts" if type_ == TASK_PROGRESS else type_.removeprefix("task-")
    for type_, code in TIMELINE_CODES.items()
}


def _lines(raw: str) -> list[str]:
    return raw.split("\n")[1:]


def entries(raw: str) -> list[TimelineEntry]:
    """The entries, oldest first, each with its hostname (an upper-case code means "the same
    host as the entry before": the store leaves it out)."""
    out = []
    host = ""
    for line in _lines(raw):
        _eid, stamp, body = line.split(" ", 2)
        code, rest = body[:1], body[1:]
        own_host, _, extra = rest.partition("\t")
        if code.islower():
            host = own_host
        out.append(TimelineEntry(
            type=TIMELINE_TYPES.get(code.lower(), ""), timestamp=float(stamp),
            hostname=host or None, fields=orjson.loads(extra) if extra else {},
        ))  # fmt: skip
    return out


def timestamps(raw: str, first_seen: str | None = None) -> dict[str, float]:
    """``sent`` .. ``rejected``, ``progress_ts``, ``first_seen`` and ``updated`` as far as the
    timeline knows them. ``first_seen`` is the hash's own field once the timeline was trimmed."""
    found: dict[str, float] = {}
    first = last = ""
    for line in _lines(raw):  # sorted by time: the last entry of a kind is its latest
        _eid, last, body = line.split(" ", 2)
        first = first or last
        field = TIMESTAMP_FIELDS.get(body[:1].lower())
        if field:
            found[field] = float(last)
    if last:
        found["first_seen"] = float(first_seen or first)
        found["updated"] = float(last)
    return found


def last_timestamp(raw: str) -> float | None:
    """The newest entry's timestamp (the record's ``updated``) without parsing the rest."""
    if not raw:
        return None
    return float(raw[raw.rfind("\n") + 1 :].split(" ", 2)[1])
