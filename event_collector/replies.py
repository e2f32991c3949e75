"""Values read back from the store. Its connections do not decode replies (the stream holds
binary entries), so every reader turns bytes into text and numbers here, by one rule."""

from __future__ import annotations

from collections.abc import Mapping


def text(value: bytes | str | None) -> str:
    """A reply as text; a missing one (None) is ""."""
    if isinstance(value, bytes):
        return value.decode()
    return value or ""


def hash_text(raw: Mapping[bytes, bytes] | Mapping[str, str]) -> dict[str, str]:
    """An HGETALL reply as text."""
    return {text(k): text(v) for k, v in raw.items()}


def number(value: bytes | str | None) -> float | None:
    """A stored number; None when it is missing, empty or not a number."""
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def integer(value: bytes | str | None) -> int | None:
    """A stored whole number (``number`` truncated); None as for ``number``."""
    parsed = number(value)
    return None if parsed is None else int(parsed)
