"""Handler plumbing: endpoint metadata, body/query decoding at the edge, JSON responses.

``@endpoint`` records what a handler needs (role) and speaks (body, query, response types); the
auth middleware and the OpenAPI generator both read it, so there is one description per route.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec
from aiohttp import web

from producer_api.errors import BadRequest, Unprocessable
from producer_api.json_depth import MAX_JSON_DEPTH, deepest_field, too_deep

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
T = TypeVar("T")
_ENCODER = msgspec.json.Encoder()
_FIELD_PATH = re.compile(r" - at `\$\.?(?P<path>[^`]*)`")


class Endpoint(msgspec.Struct, frozen=True):
    summary: str
    role: str | None  # None: public (health, docs, spec)
    body: Any = None
    query: Any = None
    response: Any = None
    status: int = 200
    errors: tuple[int, ...] = ()
    content_type: str = "application/json"
    tag: str = "tasks"


def endpoint(
    summary: str,
    role: str | None,
    *,
    body: Any = None,
    query: Any = None,
    response: Any = None,
    status: int = 200,
    errors: tuple[int, ...] = (),
    content_type: str = "application/json",
    tag: str = "tasks",
) -> Callable[[Handler], Handler]:
    spec = Endpoint(summary, role, body, query, response, status, errors, content_type, tag)

    def mark(handler: Handler) -> Handler:
        handler.endpoint = spec  # type: ignore[attr-defined]
        return handler

    return mark


def endpoint_of(request: web.Request) -> Endpoint | None:
    return getattr(request.match_info.handler, "endpoint", None)


def _validation_error(exc: msgspec.ValidationError, where: str) -> Unprocessable:
    text = str(exc)
    match = _FIELD_PATH.search(text)
    field = match.group("path") if match else ""
    return Unprocessable(text, {"field": field, "in": where})


async def read_body(request: web.Request, type_: type[T], optional: bool = False) -> T:
    """Decode and validate the JSON body: 400 if it is not JSON, 422 if it breaks the schema or
    nests deeper than ``MAX_JSON_DEPTH``."""
    raw = await request.read()  # over client_max_size: aiohttp raises 413
    if not raw.strip() and optional:
        return type_()
    if too_deep(raw):
        raise Unprocessable(
            f"JSON nested deeper than {MAX_JSON_DEPTH} levels (objects and arrays)",
            {"field": deepest_field(raw), "in": "body", "max_depth": MAX_JSON_DEPTH},
        )
    try:
        return msgspec.json.decode(raw, type=type_)
    except msgspec.ValidationError as exc:
        raise _validation_error(exc, "body") from None
    except msgspec.DecodeError as exc:
        raise BadRequest(f"malformed JSON body: {exc}") from None


def parse_query(request: web.Request, type_: type[T]) -> T:
    try:
        return msgspec.convert(dict(request.query), type_, strict=False)
    except msgspec.ValidationError as exc:
        raise _validation_error(exc, "query") from None


def json_response(
    value: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=_ENCODER.encode(value), status=status, content_type="application/json",
        headers=headers,
    )
