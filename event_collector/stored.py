"""How an ``Event`` is kept in the stream (``P events``, field ``e``): small, because every
accepted event is stored there for as long as retention allows.

The collector writes a MessagePack array of the Event's fields in declaration order, without
``id``, cut after the last field not at its default (a task-started is six values, a
task-succeeded eight: events.py orders the fields for this). The type is a code
(``STORED_TYPES``); a canonical UUID task id is its 16 bytes. The event id is not stored: it is a
hash of stored fields (``normalize.event_id``), recomputed on decode. The API's audit events are
JSON objects; ``decode_stored`` reads both.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from event_collector.events import EVENT_DECODER, EVENT_ENCODER, Event
from event_collector.normalize import event_id
from event_collector.task_ids import compact_id, uuid_text

# Type codes are positions in this tuple: append only, a stored entry keeps its code forever.
STORED_TYPES: Final = (
    "task-sent", "task-received", "task-started", "task-succeeded", "task-failed",
    "task-retried", "task-revoked", "task-rejected", "task-progress", "worker-online",
    "worker-heartbeat", "worker-offline",
)  # fmt: skip
_TYPE_CODES: Final = {type_: code for code, type_ in enumerate(STORED_TYPES)}

_FIELDS: Final = msgspec.structs.fields(Event)[1:]  # all but "id"
_TYPE_AT: Final = 0
_UUID_AT: Final = [f.name for f in _FIELDS].index("uuid")
_QUEUE_AT: Final = [f.name for f in _FIELDS].index("queue")
_ROUTING_KEY_AT: Final = [f.name for f in _FIELDS].index("routing_key")
# Try cutting after the task head (type .. uuid), then after result/runtime, after the
# descriptive fields (name .. root_id), after exception/traceback; else keep everything.
_CUTS: Final = tuple(
    [f.name for f in _FIELDS].index(name) + 1
    for name in ("uuid", "runtime", "root_id", "traceback")
)
_DEFAULTS: Final = [f.default for f in _FIELDS]


def _stored_type(field: msgspec.structs.FieldInfo) -> Any:
    if field.name == "type":
        return int
    if field.name == "uuid":
        return Any  # str, or the 16 bytes of a canonical UUID
    if field.name == "routing_key":
        return str | None  # None: the same as the queue (Celery's usual direct routing)
    return field.type


_StoredEvent = msgspec.defstruct(
    "_StoredEvent",
    [
        (f.name, _stored_type(f))
        if f.required
        else (f.name, _stored_type(f), f.default)
        for f in _FIELDS
    ],
    array_like=True, frozen=True,
)
_ENCODE: Final = msgspec.msgpack.Encoder().encode
_DECODE: Final = msgspec.msgpack.Decoder(_StoredEvent).decode


def encode_stored(event: Event, task_id: str | bytes | None = None) -> bytes:
    """The stream entry field ``e`` for an event the collector appends. ``task_id`` is
    ``task_ids.compact_id(event.uuid)`` when the caller has it already."""
    code = _TYPE_CODES.get(event.type)
    if code is None:
        return EVENT_ENCODER.encode(event)
    values = list(msgspec.structs.astuple(event))
    del values[0]
    values[_TYPE_AT] = code
    values[_UUID_AT] = compact_id(event.uuid) if task_id is None else task_id
    if event.routing_key and event.routing_key == event.queue:
        values[_ROUTING_KEY_AT] = None
    for cut in _CUTS:
        if values[cut:] == _DEFAULTS[cut:]:
            break
    else:
        cut = len(values)
    # then past every trailing default of the last group kept (a task-sent's unset priority,
    # eta, expires, parent and root: five bytes of every sent and received entry)
    while cut > _UUID_AT + 1 and values[cut - 1] == _DEFAULTS[cut - 1]:
        cut -= 1
    return _ENCODE(values[:cut])


def decode_stored(raw: bytes) -> Event:
    """Any stream entry's ``e`` (collector array or audit JSON). Raises msgspec.DecodeError."""
    if raw[:1] == b"{":
        return EVENT_DECODER.decode(raw)
    stored = _DECODE(raw)
    if not 0 <= stored.type < len(STORED_TYPES):
        raise msgspec.DecodeError(f"unknown stored event type code {stored.type}")
    uuid = stored.uuid
    if isinstance(uuid, bytes) and len(uuid) == 16:
        uuid = uuid_text(uuid)
    elif not isinstance(uuid, str):
        raise msgspec.DecodeError("stored task id is neither text nor a 16-byte UUID")
    type_ = STORED_TYPES[stored.type]
    values = list(msgspec.structs.astuple(stored))
    values[_TYPE_AT], values[_UUID_AT] = type_, uuid
    if values[_ROUTING_KEY_AT] is None:
        values[_ROUTING_KEY_AT] = values[_QUEUE_AT]
    event_key = event_id(type_, uuid, stored.hostname, stored.pid, stored.clock, stored.timestamp)
    return Event(event_key, *values)
