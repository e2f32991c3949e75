"""The CLI's HTTP client for ``/api/v1``, and how its failures are worded for a person.

Standard library only (urllib): the CLI must start fast and work wherever the package installs.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any, Final

DEFAULT_URL: Final = "http://127.0.0.1:8080"
EXIT_API_ERROR: Final = 1
EXIT_USAGE: Final = 2
EXIT_UNREACHABLE: Final = 3
# What to do next, for statuses where the API's own message does not say it. A 403 is left out:
# its message already names the role held and the role needed.
_HINTS: Final[dict[int, str]] = {
    401: "set TASKPULSE_TOKEN (or --token) to a valid token",
    503: "the API cannot reach Redis or the broker; try again shortly",
}


class CliError(Exception):
    """A failure to print as ``taskpulse: <message>``, exiting with ``code``."""

    def __init__(self, message: str, code: int = EXIT_API_ERROR) -> None:
        super().__init__(message)
        self.code = code


class ApiError(CliError):
    """The API answered with an error body ``{"error": {"code", "message", "details"}}``."""

    def __init__(self, status: int, message: str, details: Any = None, hint: str = "") -> None:
        self.status, self.message, self.details, self.hint = status, message, details, hint
        text = f"HTTP {status}: {message}" + (f" [{self.field}]" if self.field else "")
        super().__init__(text + (f" — {hint}" if hint else ""))

    @property
    def field(self) -> str | None:
        return self.details.get("field") if isinstance(self.details, dict) else None

    def with_hint(self, hint: str) -> ApiError:
        return ApiError(self.status, self.message, self.details, hint)


def did_you_mean(names: list[str] | str) -> str:
    names = [names] if isinstance(names, str) else names
    return "did you mean " + " or ".join(names) + "?" if names else ""


def one_of(allowed: list[Any]) -> str:
    return "one of " + ", ".join(map(str, allowed))


def _details_hint(message: str, details: dict[str, Any]) -> str:
    """What a 422's details add for a person: the valid values (``allowed``, unless the message
    already lists them, as the API's own enum and queue errors do) and ``did_you_mean``."""
    allowed, suggested = details.get("allowed"), details.get("did_you_mean")
    parts = []
    if allowed and isinstance(allowed, list) and one_of(allowed) not in message:
        parts.append(one_of(allowed))
    if suggested:
        parts.append(did_you_mean(suggested))
    return "; ".join(parts)


def api_error(status: int, reason: str, body: bytes) -> ApiError:
    """The error a response body describes; a body that is not ours falls back to the reason."""
    try:
        error = json.loads(body)["error"]
        message, details = str(error["message"]), error.get("details")
    except (ValueError, KeyError, TypeError):
        message, details = reason, None
    hint = _details_hint(message, details) if isinstance(details, dict) else ""
    return ApiError(status, message, details, hint or _HINTS.get(status, ""))


class Api:
    """A small JSON-over-HTTP client; every failure becomes a ``CliError`` worded for a person."""

    def __init__(self, base_url: str, token: str | None, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def _request(self, method: str, path: str, body: Any = None,
                 query: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> urllib.request.Request:
        params = {k: v for k, v in (query or {}).items() if v is not None}
        url = f"{self.base_url}/api/v1{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        data = None if body is None else json.dumps(body).encode()
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        if self.token:
            all_headers["Authorization"] = f"Bearer {self.token}"
        return urllib.request.Request(url, data=data, method=method, headers=all_headers)

    def _open(self, request: urllib.request.Request, timeout: float) -> Any:
        try:
            return urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as exc:
            raise api_error(exc.code, str(exc.reason), exc.read()) from None
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            raise CliError(
                f"cannot reach the taskpulse API at {self.base_url}: {reason} "
                "(is it running? set TASKPULSE_API_URL or --api-url)", EXIT_UNREACHABLE,
            ) from None

    def call(self, method: str, path: str, body: Any = None,
             query: dict[str, Any] | None = None) -> Any:
        with self._open(self._request(method, path, body, query), self.timeout) as response:
            return json.loads(response.read() or b"null")

    def stream(self, path: str, query: dict[str, Any],
               last_event_id: str | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
        """(stream id, event) pairs from a Server-Sent Events endpoint, until it ends. Connects
        at once, so a refusal is raised here rather than on the first event."""
        headers = {"Last-Event-ID": last_event_id} if last_event_id else None
        # Longer than the API's SSE heartbeat, so a quiet but healthy stream is not cut off.
        response = self._open(self._request("GET", path, query=query, headers=headers), 120)
        return self._events(response)

    @staticmethod
    def _events(response: Any) -> Iterator[tuple[str, dict[str, Any]]]:
        entry_id, data = "", ""
        # A connection cut mid-stream just ends it: the caller resumes from the last id.
        with response, contextlib.suppress(OSError, http.client.HTTPException):
            for raw in response:
                line = raw.decode().rstrip("\n")
                if line.startswith("id: "):
                    entry_id = line[4:]
                elif line.startswith("data: "):
                    data = line[6:]
                elif not line and data:
                    yield entry_id, json.loads(data)
                    entry_id, data = "", ""
