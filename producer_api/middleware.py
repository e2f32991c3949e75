"""The three middlewares, outermost first: metrics, errors, auth."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from aiohttp import hdrs, web
from kombu.exceptions import OperationalError

from event_collector.connection import STORE_ERRORS, STORE_UNAVAILABLE
from producer_api.auth import role_allows
from producer_api.console.sessions import session_actor, session_id_of
from producer_api.errors import ERROR_CODES, ApiError, Forbidden, Unauthorized, Unavailable
from producer_api.http import Handler, endpoint_of, json_response
from producer_api.resources import METRICS, TOKENS
from producer_api.schemas import ErrorBody, ErrorResponse

log = logging.getLogger("producer_api")

ACTOR = "taskpulse.actor"  # request key: the authenticated TokenEntry
_UNAVAILABLE = (*STORE_UNAVAILABLE, OperationalError)
# nginx's "client closed request": recorded in the metrics when a client hangs up before its
# answer (nobody receives it), so a hang-up is not counted as a server error.
CLIENT_CLOSED_REQUEST = 499
# Headers an HTTPException carries that describe its own text body, not the JSON we send instead.
_BODY_HEADERS = frozenset({hdrs.CONTENT_TYPE, hdrs.CONTENT_LENGTH})


def error_response(
    status: int, code: str, message: str, details: object = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    sent = dict(headers or {})
    if status == 401:
        sent["WWW-Authenticate"] = 'Bearer realm="taskpulse"'
    body = ErrorResponse(error=ErrorBody(code=code, message=message, details=details))
    return json_response(body, status=status, headers=sent or None)


def route_of(request: web.Request) -> str:
    """The route template (``/api/v1/tasks/{task_id}``), never the raw path: bounded labels."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def dependency_of(exc: BaseException | None) -> str:
    """The backing service an outage error came from, as a 503 names it."""
    return "redis" if isinstance(exc, STORE_ERRORS) else "broker"


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    route = route_of(request)
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
    """Every failure becomes ``{"error": {...}}``; a dependency being down is a 503, not a 500.

    A 503 names the dependency (``redis`` or ``broker``) and nothing more: addresses and driver
    messages go to the log, not to clients."""
    try:
        return await handler(request)
    except Unavailable as exc:
        details = exc.details if isinstance(exc.details, dict) else {}
        dependency = details.get("dependency") or dependency_of(exc.__cause__)
        return _unavailable(request, dependency, exc.message, exc.__cause__ or exc.message)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message, exc.details)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = ERROR_CODES.get(exc.status) or exc.reason.lower().replace(" ", "_")
        message = exc.text if exc.text and exc.text != f"{exc.status}: {exc.reason}" else exc.reason
        headers = {k: v for k, v in exc.headers.items() if k not in _BODY_HEADERS}  # e.g. Allow
        return error_response(exc.status, code, message, headers=headers)
    except web.RequestPayloadError as exc:  # e.g. a body that says gzip and is not
        log.info("malformed request body on %s %s: %s", request.method, route_of(request),
                 exc.__cause__ or exc)
        return error_response(400, "bad_request", "malformed request body (transfer or "
                              "content encoding)")
    except _UNAVAILABLE as exc:
        dependency = dependency_of(exc)
        return _unavailable(request, dependency, f"{dependency} is unreachable", exc)
    except ConnectionError:
        if not client_gone(request):
            log.exception("unhandled error on %s %s", request.method, route_of(request))
            return error_response(500, "internal_error", "internal error")
        log.info("client hung up during %s %s", request.method, route_of(request))
        return web.Response(status=CLIENT_CLOSED_REQUEST)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, route_of(request))
        return error_response(500, "internal_error", "internal error")


def _unavailable(request: web.Request, dependency: str, message: str,
                 cause: object) -> web.Response:
    log.warning("%s unavailable on %s %s: %s", dependency, request.method, route_of(request),
                cause)
    return error_response(503, "unavailable", message, {"dependency": dependency})


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
