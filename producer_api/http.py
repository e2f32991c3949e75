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

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
T = TypeVar("T")
_ENCODER = msgspec.json.Encoder()
_FIELD_PATH = re.compile(r" - at `\$\.?(?P<path>[^`]*)`")
_PATH_STEP = re.compile(r"[^.\[\]]+|\[\d+\]")


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
    # Path parameter -> the response field that fills it (``{"task_id": "id"}``): the OpenAPI
    # links this response to every operation taking that parameter (clients and the stateful
    # fuzzer follow them).
    links: tuple[tuple[str, str], ...] = ()


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
    links: dict[str, str] | None = None,
) -> Callable[[Handler], Handler]:
    spec = Endpoint(summary, role, body, query, response, status, errors, content_type, tag,
                    tuple((links or {}).items()))

    def mark(handler: Handler) -> Handler:
        handler.endpoint = spec  # type: ignore[attr-defined]
        return handler

    return mark


def endpoint_of(request: web.Request) -> Endpoint | None:
    return getattr(request.match_info.handler, "endpoint", None)


def _validation_error(exc: msgspec.ValidationError, where: str, type_: Any) -> Unprocessable:
    text = str(exc)
    match = _FIELD_PATH.search(text)
    field = match.group("path") if match else ""
    details: dict[str, Any] = {"field": field, "in": where}
    if text.startswith("Invalid enum value") and (allowed := _allowed_values(type_, field)):
        # msgspec names the bad value only; a caller (and the CLI) needs the good ones too.
        text = f"{text}; one of {', '.join(map(str, allowed))}"
        details["allowed"] = allowed
    return Unprocessable(text, details)


def _allowed_values(type_: Any, path: str) -> list[Any]:
    """The enum at ``path`` (``tasks[0].priority``) of ``type_``'s JSON Schema, if any. Only on
    the error path, so the schema is derived when needed rather than kept."""
    schema = msgspec.json.schema(type_)
    defs = schema.get("$defs", {})

    def branches(node: dict[str, Any]) -> list[dict[str, Any]]:
        if "$ref" in node:
            node = defs.get(node["$ref"].rpartition("/")[2], {})
        return [b for sub in node["anyOf"] for b in branches(sub)] if "anyOf" in node else [node]

    nodes = branches(schema)
    for step in _PATH_STEP.findall(path):
        children = [n.get("items") if step.startswith("[") else n.get("properties", {}).get(step)
                    for n in nodes]  # fmt: skip
        nodes = [b for child in children if isinstance(child, dict) for b in branches(child)]
    return [value for node in nodes for value in node.get("enum", ())]


async def read_body(request: web.Request, type_: type[T], optional: bool = False) -> T:
    """Decode and validate the JSON body: 400 if it is not JSON, 422 if it breaks the schema."""
    raw = await request.read()  # over client_max_size: aiohttp raises 413
    if not raw.strip() and optional:
        return type_()
    try:
        return msgspec.json.decode(raw, type=type_)
    except msgspec.ValidationError as exc:
        raise _validation_error(exc, "body", type_) from None
    except msgspec.DecodeError as exc:
        raise BadRequest(f"malformed JSON body: {exc}") from None


def parse_query(request: web.Request, type_: type[T]) -> T:
    """Decode the query string (non-strict: ``limit=5`` is a number). A query string cannot say
    null: a parameter that is present must have a value (``until=null`` or ``until=`` is 422),
    an absent one is how "no value" is said, as the OpenAPI document states."""
    query = dict(request.query)
    try:
        parsed = msgspec.convert(query, type_, strict=False)
    except msgspec.ValidationError as exc:
        raise _validation_error(exc, "query", type_) from None
    for name, raw in query.items():
        if getattr(parsed, name, None) is None:
            raise Unprocessable(
                f"{raw!r} is not a value for {name}; leave the parameter out for none",
                {"field": name, "in": "query"},
            )
    return parsed


def json_response(
    value: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=_ENCODER.encode(value), status=status, content_type="application/json",
        headers=headers,
    )
