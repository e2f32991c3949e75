"""The event stream (``P events``, keys.py): how an entry is encoded, and every append to it.

Three writers append, and all take their entry from ``encode`` and their trim from here:
- the collector, each accepted event inside its batch's ``store.lua`` call (``script_maxlen``);
- the operator actions' script, ``lifecycle.lua`` (forget / annotate with their audit event,
  atomically; ``script_maxlen`` too);
- the API, the audit events of control actions and of the publisher's enqueues
  (``queue_appends`` into the caller's pipeline).
Every append trims with ``XADD ... MAXLEN ~ <max_length>``, so no writer grows the stream past
retention between two sweeps; the retention sweep trims by age (``MINID``) with ``trim``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from event_collector.events import Event
from event_collector.keys import Keys
from event_collector.stored import encode_stored

# The stream entry's one field (keys.py).
ENTRY_FIELD: Final = "e"


class EventStream:
    """Appends to and trims one store's stream. ``max_length`` 0 = no length trim,
    ``max_age_seconds`` 0 = no age trim (``Retention.stream_*``)."""

    def __init__(self, keys: Keys, max_length: int, max_age_seconds: float = 0) -> None:
        self.keys = keys
        self.max_length = max_length
        self.max_age_seconds = max_age_seconds

    @staticmethod
    def encode(event: Event, task_id: str | bytes | None = None) -> bytes:
        """The entry's ``e`` (stored.py: compact MessagePack for Celery events, JSON for audit
        events); ``task_id`` is ``task_ids.compact_id(event.uuid)`` when the caller has it."""
        return encode_stored(event, task_id)

    @property
    def script_maxlen(self) -> str:
        """The MAXLEN argument a script appending to the stream is handed ("0" = no trim)."""
        return str(self.max_length)

    def queue_appends(self, pipe: Any, events: Sequence[Event]) -> None:
        """Queue one XADD per event on ``pipe`` (a sync or asyncio redis-py pipeline: both only
        buffer here); the caller executes it with whatever else it writes."""
        trim = {"maxlen": self.max_length, "approximate": True} if self.max_length > 0 else {}
        for event in events:
            pipe.xadd(self.keys.events, {ENTRY_FIELD: self.encode(event)}, **trim)

    async def trim(self, redis: Any, now: float) -> int:
        """Drop entries older than the max age (exact: stream ids are ``<ms>-<seq>`` insertion
        times) and beyond the max length (approximate, as every append does)."""
        trimmed = 0
        if self.max_age_seconds > 0:
            min_id = f"{int((now - self.max_age_seconds) * 1000)}-0"
            trimmed = await redis.xtrim(self.keys.events, minid=min_id, approximate=False)
        if self.max_length > 0:
            trimmed += await redis.xtrim(
                self.keys.events, maxlen=self.max_length, approximate=True
            )
        return int(trimmed)
