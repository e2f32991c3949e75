"""Parameter types of the catalog tasks: each constraint is written once, here, as an annotation.

A task's signature is the single owner of what it accepts. The worker checks every call against
it before the task body runs (``TaskpulseTask.__call__``), and ``python -m worker catalog``
turns the same annotations into the JSON Schemas the API enforces at the edge
(``msgspec.json.schema``), so the API and the worker cannot disagree about a value.

Patterns are searched, not fully matched (JSON Schema and msgspec alike), so each is anchored.
Python's ``$`` also matches before a trailing newline, where JavaScript's does not; ``line``
adds ``(?!\\n)`` so that ``"2026-10\\n"`` is refused by every reader of the schema.
"""

from __future__ import annotations

from typing import Annotated, Final

import msgspec


def line(body: str) -> str:
    """An anchored pattern that matches ``body`` exactly, with no trailing newline."""
    return f"^(?:{body})(?!\\n)$"


_YEAR: Final = "(?:19[7-9][0-9]|20[0-9]{2})"  # 1970..2099: beyond that is a typo, not a report
_MONTH: Final = "(?:0[1-9]|1[0-2])"
_DAY: Final = "(?:0[1-9]|[12][0-9]|3[01])"
_TIME: Final = "(?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9])?"
_OFFSET: Final = "(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])?"

Month = Annotated[
    str,
    msgspec.Meta(max_length=7, pattern=line(f"{_YEAR}-{_MONTH}"),
                 description="a month, YYYY-MM (1970-2099)"),
]
PeriodStart = Annotated[
    str,
    msgspec.Meta(
        max_length=25,
        pattern=line(f"{_YEAR}-{_MONTH}-{_DAY}(?:T{_TIME}{_OFFSET})?"),
        description="ISO local date or date-time, YYYY-MM-DD[THH:MM[:SS][offset]] (1970-2099)",
    ),
]
MonthStart = Annotated[
    str,
    msgspec.Meta(
        max_length=25,
        pattern=line(f"{_YEAR}-{_MONTH}-01(?:T00:00(?::00)?{_OFFSET})?"),
        description="the first day of a month, YYYY-MM-01[T00:00[:00][offset]] (1970-2099)",
    ),
]
# A deliberately plain address: no spaces, quotes, brackets, colons or slashes, a dotted domain.
# The relay is the real judge; this stops garbage (and anything shaped like a URL or host:port)
# before a network round trip.
EmailAddress = Annotated[
    str,
    msgspec.Meta(
        max_length=254,
        pattern=line(r"[A-Za-z0-9._%+=!#$&'^`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"),
        description="an email address, local@domain.tld",
    ),
]
Subject = Annotated[
    str,
    msgspec.Meta(min_length=1, max_length=200, pattern=line(r"[^\r\n]*\S[^\r\n]*"),
                 description="one non-blank line"),
]
Body = Annotated[str, msgspec.Meta(max_length=100_000)]
Message = Annotated[str, msgspec.Meta(max_length=1000)]
# A literal key-name part under the deployment's cache prefix: no glob characters, colons or
# slashes, so it can neither widen the match nor name another keyspace.
CacheKeyPart = Annotated[
    str,
    msgspec.Meta(max_length=100, pattern=line(r"[A-Za-z0-9_.-]*"),
                 description="letters, digits, '_', '.', '-' (may be empty: the whole cache)"),
]

Days = Annotated[int, msgspec.Meta(ge=1, le=3650)]
DaysAhead = Annotated[int, msgspec.Meta(ge=0, le=60)]
AuditDays = Annotated[int, msgspec.Meta(ge=0, le=36_500, description="0: no age limit")]
AuditKeep = Annotated[int, msgspec.Meta(ge=0, le=1_000_000_000)]
BackupsKept = Annotated[int, msgspec.Meta(ge=1, le=1000)]
BatchSize = Annotated[int, msgspec.Meta(ge=1, le=10_000)]
Seconds = Annotated[float, msgspec.Meta(ge=0, le=3600)]
Steps = Annotated[int, msgspec.Meta(ge=1, le=100_000)]
PlannedFailures = Annotated[int, msgspec.Meta(ge=0, le=100)]
UserId = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]
