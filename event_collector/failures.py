"""Failure fingerprints: which failures are "the same error", so they can be counted as a group.

Celery's task-failed event carries the exception as ``safe_repr(exc)``: ``Type('message')``
(the reconciler writes the same form, reconcile.py). Two failures are the same error when their
exception type and their message with the variable parts masked are equal: numbers, hex,
UUIDs and quoted strings are what differs between two occurrences of one bug ("invoice 4711 not
found" / "invoice 4712 not found").

Pure functions, no I/O. The store calls ``failure_of`` while it flattens a task-failed event
for the Lua batch (store.py), so the stream keeps the event as Celery sent it and ``rebuild``
recomputes every fingerprint with the current rule.
"""

from __future__ import annotations

import ast
import re
from hashlib import blake2b
from typing import Final

import msgspec

FINGERPRINT_BYTES: Final = 8  # 16 hex characters; 2^-64 collision odds per pair of groups
FINGERPRINT_PATTERN: Final = "^[0-9a-f]{16}$"
UNKNOWN_TYPE: Final = "UnknownException"
# Enough of a repr to tell errors apart; bounds the parse for a huge message.
PARSE_MAX: Final = 2000

_REPR: Final = re.compile(r"^\s*([A-Za-z_][\w.]*)\((.*)\)\s*$", re.S)
_TYPE_COLON: Final = re.compile(r"^\s*([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning))"
                                r"\s*:\s*(.*)$", re.S)
# Quoted strings first (they may contain anything); then, only in the words that have a digit
# (the rest cannot change), UUIDs before hex runs before numbers. Loops unrolled: Python's re
# is slow at a per-character alternation.
_QUOTED: Final = re.compile(r"'[^'\\]*(?:\\.[^'\\]*)*'" r'|"[^"\\]*(?:\\.[^"\\]*)*"')
_HAS_DIGIT: Final = re.compile(r"\d").search
_IN_WORD: Final = re.compile(
    r"(?P<uuid>\b[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?"
    r"[0-9a-fA-F]{12}\b)"
    # 0x..., or a run of 8+ hex digits with a digit in it: object ids, hashes, addresses
    r"|(?P<hex>\b0[xX][0-9a-fA-F]+\b|\b(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{8,}\b)"
    r"|(?P<num>[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)"
)
_MASKED: Final = {"uuid": "<uuid>", "hex": "<hex>", "num": "<num>"}
_CANONICAL_UUID: Final = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
).fullmatch
# The common repr: one string argument. Its text is taken as it is (escapes included): the
# fingerprint needs a stable text, not the exact string.
_ONE_STRING: Final = re.compile(r"'([^'\\]*(?:\\.[^'\\]*)*)'" r'|"([^"\\]*(?:\\.[^"\\]*)*)"')


class Failure(msgspec.Struct, frozen=True):
    """What a task-failed event says about its error, reduced for grouping."""

    fingerprint: str
    exception_type: str
    message: str  # the normalised message, the group's identity with the type


def exception_type(exception: str) -> str:
    """``ValueError`` of ``ValueError('boom')``; the dotted name when Celery sent one."""
    return _parts(exception)[0]


def _parts(exception: str) -> tuple[str, str]:
    """(exception type, message) of an exception repr, from one match (this runs for every
    failure the collector sees)."""
    match = _REPR.match(exception)
    if match is not None:
        return match.group(1), _arguments(match.group(2))
    colon = _TYPE_COLON.match(exception)
    return (colon.group(1), colon.group(2)) if colon else (UNKNOWN_TYPE, exception)


def _message(exception: str) -> str:
    """The exception's message: the repr's arguments unquoted (``'a', 1`` -> ``a, 1``)."""
    return _parts(exception)[1]


def _arguments(inner: str) -> str:
    """A repr's arguments as message text."""
    if one := _ONE_STRING.fullmatch(inner):
        return one.group(1) if one.group(1) is not None else one.group(2)
    try:
        value = ast.literal_eval(f"({inner},)") if inner.strip() else ()
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return inner  # not literals (an object's repr): masked as text
    return ", ".join(v if isinstance(v, str) else repr(v) for v in value)


def normalise_message(message: str) -> str:
    """Mask what varies between occurrences of one error: quoted strings, UUIDs, hex, numbers."""
    if "'" in message or '"' in message:
        message = _QUOTED.sub("<str>", message)
    # isalpha (C, no regex call) settles most words: a letter-only word has no digit
    return " ".join(
        [w if w.isalpha() or not _HAS_DIGIT(w) else _masked_word(w) for w in message.split()]
    )


def _masked_word(word: str) -> str:
    """``_IN_WORD`` masked in one word that has a digit. The two words ids are made of go
    without the regex and its per-match callback: all ASCII digits (32 of them read as a UUID,
    8 or more as hex, as ``_IN_WORD`` reads them) and a canonical UUID."""
    if word.isdigit() and word.isascii():
        size = len(word)
        return "<uuid>" if size == 32 else "<hex>" if size >= 8 else "<num>"
    if len(word) == 36 and _CANONICAL_UUID(word):
        return "<uuid>"
    return _IN_WORD.sub(_mask, word)


def _mask(match: re.Match[str]) -> str:
    return _MASKED[match.lastgroup or "num"]


def fingerprint(type_name: str, normalised: str) -> str:
    key = f"{type_name}\n{normalised}".encode()
    return blake2b(key, digest_size=FINGERPRINT_BYTES).hexdigest()


def failure_of(exception: str) -> Failure:
    """The group a failure with this exception repr belongs to."""
    type_name, message = _parts(exception[:PARSE_MAX])
    normalised = normalise_message(message)
    return Failure(fingerprint(type_name, normalised), type_name, normalised)
