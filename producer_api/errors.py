"""Typed API errors. Handlers raise these; one middleware turns them into
``{"error": {"code", "message", "details"}}`` responses."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class BadRequest(ApiError):
    status, code = 400, "bad_request"


class Unauthorized(ApiError):
    status, code = 401, "unauthorized"


class Forbidden(ApiError):
    status, code = 403, "forbidden"


class NotFound(ApiError):
    status, code = 404, "not_found"


class Conflict(ApiError):
    status, code = 409, "conflict"


class PayloadTooLarge(ApiError):
    status, code = 413, "payload_too_large"


class Unprocessable(ApiError):
    status, code = 422, "validation_error"


class Unavailable(ApiError):
    status, code = 503, "unavailable"


# Every status an endpoint may answer with an error body, for the OpenAPI document.
ERROR_CODES: dict[int, str] = {
    cls.status: cls.code
    for cls in (
        BadRequest, Unauthorized, Forbidden, NotFound, Conflict, PayloadTooLarge, Unprocessable,
        Unavailable,
    )
}
