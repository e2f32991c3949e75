"""Celery wire events -> ``Event``: validate once at the edge, reject what cannot be trusted.

Celery events are loose dicts (``celery.events.Event``): ``type``, ``timestamp`` (``time.time()``
of the sender, UTC epoch seconds — kept as sent, never shifted by ``utcoffset``), ``hostname``,
``pid``, ``clock`` plus type-specific fields. ``args``/``kwargs``/``result`` arrive as reprs
(strings); anything else is rendered to a string here so the store handles one type.

Two ways in, one result: ``task_events`` decodes a message body of well-formed task events
straight from JSON in C (msgspec), which is what Celery sends nearly always; anything it does not
vouch for goes through ``normalize`` (the general rules, with a reason for each rejection).
"""

from __future__ import annotations

from binascii import b2a_base64
from collections.abc import Callable, Mapping
from hashlib import blake2b
from typing import Any, Final

import msgspec
import orjson

from event_collector.events import (
    AUDIT_EVENT,
    KNOWN_EVENT_TYPES,
    TASK_EVENT_KINDS,
    TASK_FLAG_FIELDS,
    TASK_PROGRESS,
    TASK_TEXT_FIELDS,
    TASK_TYPES,
    WORKER_EVENT_TYPES,
    WORKER_TEXT_FIELDS,
    Event,
)

EVENT_ID_BYTES: Final = 9  # 12 base64 characters: short, collisions negligible per task
_URLSAFE: Final = bytes.maketrans(b"+/", b"-_")


class InvalidEvent(ValueError):
    """An event that cannot be folded; ``reason`` is a short label for metrics and logs."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def event_id(
    type_: str, uuid: str, hostname: str, pid: int, clock: int, timestamp: float
) -> str:
    """Stable short id of one emitted event: the same event delivered twice gets the same id,
    whichever collector sees it."""
    key = f"{type_}\x00{uuid}\x00{hostname}\x00{pid}\x00{clock}\x00{timestamp!r}".encode()
    digest = blake2b(key, digest_size=EVENT_ID_BYTES).digest()
    # base64.urlsafe_b64encode, minus its two Python-level wrappers (this runs per event)
    return b2a_base64(digest, newline=False).translate(_URLSAFE).decode()


def _text(raw: Mapping[str, Any], name: str) -> str:
    value = raw.get(name)
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return orjson.dumps(value, default=repr).decode()


def _opt_float(raw: Mapping[str, Any], name: str) -> float | None:
    value = raw.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise InvalidEvent("bad_field", name)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InvalidEvent("bad_field", name) from None


def _int(raw: Mapping[str, Any], name: str) -> int:
    value = raw.get(name)
    if value is None or value == "":
        return 0
    if isinstance(value, bool):
        raise InvalidEvent("bad_field", name)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InvalidEvent("bad_field", name) from None


def _opt_int(raw: Mapping[str, Any], name: str) -> int | None:
    return None if raw.get(name) is None else _int(raw, name)


def _head(raw: Mapping[str, Any]) -> tuple[str, float, str, int, int]:
    type_ = raw.get("type")
    if not isinstance(type_, str) or not type_:
        raise InvalidEvent("missing_type")
    if type_ not in KNOWN_EVENT_TYPES:
        raise InvalidEvent("unknown_type", type_[:64])
    try:
        timestamp = _opt_float(raw, "timestamp")
    except InvalidEvent:
        timestamp = None
    if timestamp is None or not 0 < timestamp < 1e11:
        raise InvalidEvent("bad_timestamp")
    hostname = raw.get("hostname") or ""
    # tabs/newlines would break the task hash's timeline entries (keys.py ``_tl``)
    if not isinstance(hostname, str) or "\n" in hostname or "\t" in hostname:
        raise InvalidEvent("bad_field", "hostname")
    return type_, timestamp, hostname, _int(raw, "pid"), _int(raw, "clock")


# Only the fields an event carries are looked at (an event has ~10 keys, the Event ~25
# fields: iterating the event's own keys is the cheap way), so the groups are sets here.
_TASK_TEXT: Final = frozenset(TASK_TEXT_FIELDS)
_TASK_FLAGS: Final = frozenset(TASK_FLAG_FIELDS)


def _task_fields(raw: Mapping[str, Any], uuid: str) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for key, value in raw.items():
        if key in _TASK_TEXT:
            if value is not None:
                fields[key] = (
                    value if isinstance(value, str) else orjson.dumps(value, default=repr).decode()
                )
        elif key in _TASK_FLAGS:
            fields[key] = bool(value)
    if fields.get("root_id") == uuid:
        # Celery sets root_id = the task's own id on every top-level task; "" says the same in
        # fewer bytes (each task would store its id twice more: two events and the hash).
        del fields["root_id"]
    if "runtime" in raw:
        fields["runtime"] = _opt_float(raw, "runtime")
    if "priority" in raw:
        fields["priority"] = _opt_int(raw, "priority")
    if "retries" in raw:
        fields["retries"] = _int(raw, "retries")
    return fields


def _task_event(raw: Mapping[str, Any], head: tuple[str, float, str, int, int]) -> Event:
    type_, timestamp, hostname, pid, clock = head
    uuid = raw.get("uuid")
    if not isinstance(uuid, str) or not uuid or len(uuid) > 255 or " " in uuid:
        raise InvalidEvent("missing_uuid")
    fields = _task_fields(raw, uuid)
    progress = raw.get("progress") if type_ == TASK_PROGRESS else None
    if isinstance(progress, Mapping):  # task-progress may nest {"current", "total"}
        fields["progress_current"] = _opt_float(progress, "current")
        fields["progress_total"] = _opt_float(progress, "total")
    else:
        if "current" in raw:
            fields["progress_current"] = _opt_float(raw, "current")
        if "total" in raw:
            fields["progress_total"] = _opt_float(raw, "total")
    return Event(
        id=event_id(type_, uuid, hostname, pid, clock, timestamp),
        type=type_, timestamp=timestamp, hostname=hostname, pid=pid, clock=clock, uuid=uuid,
        **fields,
    )


def _worker_event(raw: Mapping[str, Any], head: tuple[str, float, str, int, int]) -> Event:
    type_, timestamp, hostname, pid, clock = head
    if not hostname:
        raise InvalidEvent("missing_hostname")
    loadavg = raw.get("loadavg") or ()
    if not isinstance(loadavg, list | tuple):
        raise InvalidEvent("bad_field", "loadavg")
    return Event(
        id=event_id(type_, "", hostname, pid, clock, timestamp),
        type=type_, timestamp=timestamp, hostname=hostname, pid=pid, clock=clock,
        freq=_opt_float(raw, "freq"), active=_opt_int(raw, "active"),
        processed=_opt_int(raw, "processed"),
        loadavg=tuple(float(x) for x in loadavg if isinstance(x, int | float)),
        **{name: _text(raw, name) for name in WORKER_TEXT_FIELDS},
    )


def normalize(raw: Mapping[str, Any]) -> Event:
    """One Celery event dict -> ``Event``; raises ``InvalidEvent`` with a reason otherwise."""
    if not isinstance(raw, Mapping):
        raise InvalidEvent("not_an_object")
    head = _head(raw)
    type_ = head[0]
    if type_ in TASK_EVENT_KINDS or type_ == TASK_PROGRESS:
        return _task_event(raw, head)
    if type_ in WORKER_EVENT_TYPES:
        return _worker_event(raw, head)
    if type_ == AUDIT_EVENT:
        # Audit events are written by the API, never by workers: one on the broker is forged.
        raise InvalidEvent("audit_on_broker")
    raise InvalidEvent("unknown_type", type_)


# -- well-formed task events, decoded in C ------------------------------------------------------

# ``Event``'s fields from ``type`` to ``progress_total`` (the task ones), as a Celery event carries
# them: a null is accepted where the field has a default (Celery sends eta, expires, parent_id
# ... as null) and stands for that default; ``current``/``total`` are the progress fields; a
# nested ``progress`` (task-progress may nest current/total) is left to ``normalize``.
_FIELDS: Final = msgspec.structs.fields(Event)
_TASK_END: Final = [f.name for f in _FIELDS].index("progress_total") + 1
_WIRE_FIELDS: Final = _FIELDS[1:_TASK_END]
_NULL_MEANS_DEFAULT: Final = tuple(
    (i, f.default) for i, f in enumerate(_WIRE_FIELDS) if not f.required and f.default is not None
)
_WireTask = msgspec.defstruct(
    "_WireTask",
    [
        (f.name, f.type) if f.required
        else (f.name, f.type if f.default is None else f.type | None, f.default)
        for f in _WIRE_FIELDS
    ] + [("progress", Any, msgspec.UNSET)],
    rename={"progress_current": "current", "progress_total": "total"},
)
_DECODE_WIRE: Final = msgspec.json.Decoder(list[_WireTask] | _WireTask).decode
_AT: Final = {f.name: i for i, f in enumerate(_WIRE_FIELDS)}
_HOST, _PID, _CLOCK, _ROOT = (_AT[n] for n in ("hostname", "pid", "clock", "root_id"))


def task_events(body: bytes) -> list[Event] | None:
    """The events of a message body (one event or a ``task.multi`` list) when all are well-formed
    task events, exactly as ``normalize`` would make them; else None (``normalize`` decides).

    ~2.5 us an event less than ``orjson.loads`` + ``normalize``: the types are checked while
    parsing, and only the rules a type cannot say are checked here."""
    try:
        wires = _DECODE_WIRE(body)
    except msgspec.DecodeError:  # ValidationError included
        return None
    out = []
    for wire in wires if isinstance(wires, list) else (wires,):
        type_, timestamp, uuid = wire.type, wire.timestamp, wire.uuid
        if (
            type_ not in TASK_TYPES or wire.progress is not msgspec.UNSET
            or not 0 < timestamp < 1e11 or not uuid or len(uuid) > 255 or " " in uuid
        ):
            return None
        values = list(msgspec.structs.astuple(wire))
        del values[-1]  # progress
        for i, default in _NULL_MEANS_DEFAULT:
            if values[i] is None:
                values[i] = default
        hostname = values[_HOST]
        if "\n" in hostname or "\t" in hostname:
            return None
        if values[_ROOT] == uuid:
            values[_ROOT] = ""  # as _task_fields does
        out.append(Event(
            event_id(type_, uuid, hostname, values[_PID], values[_CLOCK], timestamp), *values
        ))
    return out


def body_events(
    body: bytes, invalid: Callable[[str, BaseException], None] | None = None
) -> list[Event]:
    """A message body's valid events (one event or a ``task.multi`` list): ``task_events`` when
    it vouches for them all, else ``normalize`` each; ``invalid(reason, error)`` hears of each
    one skipped."""
    events = task_events(body)  # the common case, parsed and checked in C
    if events is not None:
        return events
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if invalid is not None:
            invalid("bad_json", exc)
        return []
    out = []
    for item in parsed if isinstance(parsed, list) else (parsed,):
        try:
            out.append(normalize(item))
        except InvalidEvent as exc:
            if invalid is not None:
                invalid(exc.reason, exc)
    return out


class _WireHead(msgspec.Struct):
    type: str
    uuid: str = ""


_DECODE_HEAD: Final = msgspec.json.Decoder(_WireHead).decode
_RAW_ITEMS: Final = msgspec.json.Decoder(list[msgspec.Raw]).decode


def task_heads(body: bytes) -> list[tuple[str, bytes | msgspec.Raw]] | None:
    """Each event of a message body as (task id, its own JSON), read without building the
    events (~1 us an event against ~5 for ``task_events``), so a collector can set aside the
    events it does not apply before paying for decoding them. None unless every event is a
    task event with an id (decode the body then to know). The ids are those ``task_events`` and
    ``normalize`` give the events; each item's JSON decodes alone (``body_events``)."""
    try:
        items = _RAW_ITEMS(body) if body[:1] == b"[" else (body,)
        heads = [(_DECODE_HEAD(item), item) for item in items]
    except msgspec.DecodeError:  # ValidationError included
        return None
    out: list[tuple[str, bytes | msgspec.Raw]] = []
    for head, item in heads:
        if head.type not in TASK_TYPES or not head.uuid:
            return None
        out.append((head.uuid, item))
    return out


def join_items(items: list[bytes | msgspec.Raw]) -> bytes:
    """Events' JSON (``task_heads`` items) as one message body again."""
    return b"[" + b",".join(items) + b"]"
