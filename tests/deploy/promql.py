"""Turn an alert expression into the signals a live Prometheus must return data for.

An alert like ``X > 0.1 and Y >= 10`` is rightly empty on a healthy system, so "the query returns
data" proves nothing about it. With every comparison made a ``bool`` comparison
(``X > bool 0.1 and Y >= bool 10``) the same expression returns one 0/1 sample per monitored
thing: its selectors, aggregations and ``and``/``on`` label matching are all exercised against
real series, only the threshold is left out (promtool's unit tests cover thresholds).
``unless`` removes exactly the healthy series, so each side of it is checked on its own.
"""

from __future__ import annotations

import re

COMPARISONS = ("==", "!=", ">=", "<=", ">", "<")
_MODIFIER = re.compile(r"^\s*(on|ignoring)\s*\([^)]*\)\s*")


def _top_level(expr: str) -> list[bool]:
    """For each character: is it outside label braces, strings and parentheses?"""
    flags = []
    braces = parens = 0
    quote = ""
    for char in expr:
        if quote:
            flags.append(False)
            if char == quote:
                quote = ""
            continue
        if char in "\"'`" and braces:
            quote = char
        braces += {"{": 1, "}": -1}.get(char, 0)
        parens += {"(": 1, ")": -1}.get(char, 0)
        flags.append(braces == 0 and parens == 0 and char not in "{}()")
    return flags


def as_bool(expr: str) -> str:
    """``a > 1`` -> ``a > bool 1`` for every comparison outside label matchers."""
    out = []
    braces = 0
    quote = ""
    i = 0
    while i < len(expr):
        char = expr[i]
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'`" and braces:
            quote = char
        elif char in "{}":
            braces += 1 if char == "{" else -1
        elif braces == 0:
            op = next((op for op in COMPARISONS if expr.startswith(op, i)), None)
            if op is not None:
                rest = expr[i + len(op):]
                out.append(op if rest.lstrip().startswith("bool") else f"{op} bool")
                i += len(op)
                continue
        out.append(char)
        i += 1
    return "".join(out)


def split_unless(expr: str) -> list[str]:
    """The operands of top-level ``unless`` (modifiers such as ``on (x)`` dropped)."""
    flags = _top_level(expr)
    parts, start = [], 0
    for match in re.finditer(r"\bunless\b", expr):
        if flags[match.start()]:
            parts.append(expr[start:match.start()])
            start = match.end()
    parts.append(expr[start:])
    return [_MODIFIER.sub("", part).strip() for part in parts]


def signals(expr: str) -> list[str]:
    """What must be non-empty for ``expr`` to be able to fire on this system's series."""
    return [as_bool(part) for part in split_unless(expr)]


def fill_grafana_variables(expr: str, values: dict[str, str]) -> str:
    """Replace ``$name`` / ``${name}`` with concrete values (longest names first)."""
    for name in sorted(values, key=len, reverse=True):
        expr = expr.replace("${" + name + "}", values[name]).replace("$" + name, values[name])
    return expr
