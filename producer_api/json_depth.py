"""How deep a JSON request body may nest, checked on the raw bytes before it is decoded.

msgspec decodes recursively, so a body nested ~1000 levels (well under the size limit) raises
``RecursionError`` from deep inside a handler; and anything that nests far deeper than a task's
arguments need costs every later encoder (kombu, the audit entry, the worker) the same risk. The
check here runs at C speed over the bytes (~1.5 ms for a batch of 1000 tasks, a few tens of ms
for a 1 MB body of nothing but brackets): a body with fewer brackets than the limit is not even
scanned, and the slower walk that names the offending field runs only for a rejected body.
"""

from __future__ import annotations

import re
from array import array
from itertools import accumulate
from typing import Final

import msgspec

# Objects and arrays, counting the body itself: {"args": [[1]]} nests 3 deep.
MAX_JSON_DEPTH: Final = 64
# A rejected body's field is named by at most this many path parts (keys and list positions):
# enough to reach a task's argument in a batch or a workflow, short enough to read.
FIELD_PARTS: Final = 8

_STRING: Final = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET: Final = bytes(b for b in range(256) if b not in b"[]{}")
_STEP: Final = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # as signed bytes: +1, -1
_TOKEN: Final = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},:]')


def too_deep(raw: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``raw`` nests objects/arrays deeper than ``limit``. Malformed JSON may say either;
    the decoder reports it as malformed whenever this says False."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    # Strings out, then each bracket as +1/-1: the running sum is the depth at that point.
    steps = _STRING.sub(b"", raw).translate(None, _NOT_BRACKET).translate(_STEP)
    return max(accumulate(array("b", steps)), default=0) > limit


def deepest_field(raw: bytes, limit: int = MAX_JSON_DEPTH) -> str:
    """The field (``tasks[0].kwargs.config``) holding the first value nested past ``limit``: the
    path to that value, cut to its first ``FIELD_PARTS`` parts and without trailing list
    positions. For a rejected body only: a Python-speed walk."""
    path: list[str | int] = []  # the current position: keys and list indexes
    in_object: list[bool] = []
    expecting_key = False
    for match in _TOKEN.finditer(raw):
        token = match.group()
        if token in (b"{", b"["):
            if len(in_object) == limit:
                return _format(path)
            in_object.append(token == b"{")
            expecting_key = token == b"{"
            if token == b"[":
                path.append(0)
        elif token in (b"}", b"]"):
            if in_object.pop():
                if not expecting_key:
                    path.pop()  # the last member's key
            else:
                path.pop()
            expecting_key = False
        elif token == b",":
            if in_object[-1]:
                path.pop()
                expecting_key = True
            else:
                path[-1] = int(path[-1]) + 1
        elif token != b":" and expecting_key:
            path.append(_key(token))
            expecting_key = False
    return _format(path)


def _key(token: bytes) -> str:
    try:
        return msgspec.json.decode(token, type=str)
    except msgspec.DecodeError:
        return token[1:-1].decode(errors="replace")


def _format(path: list[str | int]) -> str:
    path = path[:FIELD_PARTS]
    while path and isinstance(path[-1], int):
        path.pop()
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out
