"""The three middlewares, outermost first: metrics, errors, auth."""

from __future__ import annotations

import logging
import time

import redis.exceptions
from aiohttp import web
from kombu.exceptions import OperationalError

from producer_api.auth import role_allows
from producer_api.console.sessions import session_actor, session_id_of
from producer_api.errors import ERROR_CODES, ApiError, Forbidden, Unauthorized
from producer_api.http import Handler, endpoint_of, json_response
from producer_api.resources import METRICS, TOKENS
from producer_api.schemas import ErrorBody, ErrorResponse

log = logging.getLogger("producer_api")

ACTOR = "taskpulse.actor"  # request key: the authenticated TokenEntry
_UNAVAILABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OperationalError)


def error_response(status: int, code: str, message: str, details: object = None) -> web.Response:
    headers = {"WWW-Authenticate": 'Bearer realm="taskpulse"'} if status == 401 else None
    body = ErrorResponse(error=ErrorBody(code=code, message=message, details=details))
    return json_response(body, status=status, headers=headers)


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    status = 500
    try:
        response = await handler(request)
        status = response.status
        if not response.prepared:  # a stream's headers are already sent
            # The console shows the API's own time beside what the browser measured.
            elapsed_ms = (time.perf_counter() - started) * 1000
            response.headers["Server-Timing"] = f"app;dur={elapsed_ms:.2f}"
        return response
    finally:
        metrics = request.app[METRICS]
        metrics.requests.labels(request.method, route, str(status)).inc()
        metrics.latency.labels(request.method, route).observe(time.perf_counter() - started)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure becomes ``{"error": {...}}``; a dependency being down is a 503, not a 500."""
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message, exc.details)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = ERROR_CODES.get(exc.status) or exc.reason.lower().replace(" ", "_")
        message = exc.text if exc.text and exc.text != f"{exc.status}: {exc.reason}" else exc.reason
        return error_response(exc.status, code, message)
    except _UNAVAILABLE as exc:
        log.warning("dependency unavailable on %s %s: %s", request.method, request.path, exc)
        return error_response(503, "unavailable", "a backing service is unreachable", str(exc))
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "internal error")


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    spec = endpoint_of(request)
    if spec is None or spec.role is None:
        return await handler(request)
    header = request.headers.get("Authorization", "")
    if not header and session_id_of(request):
        # The web console: a session cookie instead of a bearer token (console/sessions.py).
        entry = await session_actor(request, request.app[TOKENS])
    else:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("missing bearer token (Authorization: Bearer <token>)")
        found = request.app[TOKENS].authenticate(token.strip())
        if found is None:
            raise Unauthorized("invalid or revoked token")
        entry = found
    if not role_allows(entry.role, spec.role):
        raise Forbidden(
            f"role {entry.role!r} may not do this; needs {spec.role!r}",
            {"role": entry.role, "required": spec.role},
        )
    request[ACTOR] = entry
    return await handler(request)
