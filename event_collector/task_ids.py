"""Compact forms of a task id, for the places that repeat it per event or per index entry.

Celery task ids are canonical UUIDs unless the caller chose one: those are kept as their 16
bytes in the stream (``stored.py``) and as 22 base64url characters behind ``~`` in the index
sorted sets (``index_member``): Redis allocates that member in 32 bytes instead of 48, once in
each of a task's four or more indexes. Any other id is kept as it is.
"""

from __future__ import annotations

from base64 import urlsafe_b64decode, urlsafe_b64encode
from typing import Final

from event_collector.replies import text

_MEMBER_MARK: Final = "~"
_MEMBER_LEN: Final = 23  # the mark and 22 base64 characters (16 bytes, padding left off)


def uuid_bytes(task_id: str) -> bytes | None:
    """The 16 bytes of a canonical (lower-case, hyphenated) UUID, else None."""
    if len(task_id) != 36 or not task_id[8] == task_id[13] == task_id[18] == task_id[23] == "-":
        return None
    digits = task_id.replace("-", "")
    try:
        raw = bytes.fromhex(digits)
    except ValueError:
        return None
    # fromhex also takes upper case and skips spaces: only a lossless round trip counts
    return raw if raw.hex() == digits else None


def uuid_text(raw: bytes) -> str:
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def compact_id(task_id: str) -> str | bytes:
    """How the stream keeps ``task_id``: a canonical UUID's 16 bytes, any other id as it is."""
    return uuid_bytes(task_id) or task_id


def member_of(compact: str | bytes) -> str:
    """The index member for a task id in its ``compact_id`` form."""
    if isinstance(compact, bytes):
        return _MEMBER_MARK + urlsafe_b64encode(compact)[:22].decode()
    # an id that starts with the mark gets a second one, so no id reads back as another
    return _MEMBER_MARK + compact if compact.startswith(_MEMBER_MARK) else compact


def index_member(task_id: str) -> str:
    """The member standing for ``task_id`` in the index sorted sets (keys.py)."""
    return member_of(compact_id(task_id))


def task_id_of(member: bytes | str) -> str:
    """The task id an index member stands for (``index_member`` reversed)."""
    value = text(member)
    if not value.startswith(_MEMBER_MARK):
        return value
    if len(value) == _MEMBER_LEN and value[1] != _MEMBER_MARK:
        return uuid_text(urlsafe_b64decode(value[1:] + "=="))
    return value[1:]
