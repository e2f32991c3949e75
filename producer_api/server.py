"""Serving the app: ``web.run_app`` plus JSON answers to requests aiohttp rejects before routing.

aiohttp's HTTP parser refuses an oversize request line or header, too many headers or garbage
before any middleware runs, and its ``RequestHandler.handle_error`` answers in text/plain and
logs an ERROR with a traceback. There is no public hook for that answer (aio-libs/aiohttp#3287),
so this module serves through a ``RequestHandler`` subclass whose ``handle_error`` answers parser
errors in the API's error shape and logs them at INFO: they are the client's mistake, not ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, HttpProcessingError, LineTooLong

from producer_api.middleware import error_response

log = logging.getLogger("producer_api")

# aiohttp's parser limits (RequestHandler's defaults), named so the answers can quote them.
MAX_LINE_BYTES = 8190
MAX_HEADERS = 128


def _rejection(exc: HttpProcessingError) -> web.Response:
    if isinstance(exc, LineTooLong):
        # The parser does not say whether the URL or a header overflowed, so neither do we.
        return error_response(
            400, "bad_request",
            f"the request line (URL) or a header is longer than {MAX_LINE_BYTES} bytes",
            {"limit_bytes": MAX_LINE_BYTES},
        )
    if isinstance(exc, BadHttpMessage) and exc.message == "Too many headers received":
        return error_response(
            431, "request_header_fields_too_large",
            f"more than {MAX_HEADERS} header fields", {"limit": MAX_HEADERS},
        )
    return error_response(400, "bad_request", f"malformed HTTP request: {exc.message}")


class JsonErrorRequestHandler(web.RequestHandler):
    __slots__ = ()

    def handle_error(
        self, request: Any, status: int = 500, exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if not isinstance(exc, HttpProcessingError):
            return super().handle_error(request, status, exc, message)
        log.info("rejected a malformed request from %s: %s", request.remote, exc.message)
        response = _rejection(exc)
        response.force_close()  # the parser's state is lost: this connection cannot go on
        return response


class _Server(web.Server):
    def __call__(self) -> web.RequestHandler:
        return JsonErrorRequestHandler(
            self, loop=self._loop, max_line_size=MAX_LINE_BYTES, max_field_size=MAX_LINE_BYTES,
            max_headers=MAX_HEADERS, **self._kwargs,
        )


class _Runner(web.AppRunner):
    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _Server  # same state, one method different: which handler it builds
        return server


def run(app: web.Application, host: str, port: int, shutdown_timeout: float) -> None:
    """Serve ``app`` until SIGINT/SIGTERM, then shut down gracefully, as ``web.run_app`` does."""

    async def serve() -> None:
        runner = _Runner(app, handle_signals=True, access_log=None,
                         shutdown_timeout=shutdown_timeout)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
            await asyncio.Event().wait()  # until a signal raises GracefulExit out of the loop
        finally:
            await runner.cleanup()

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    main = loop.create_task(serve())
    try:
        loop.run_until_complete(main)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        if not main.done():  # else a startup error: re-running it would lose its traceback
            main.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                loop.run_until_complete(main)  # runner.cleanup(): on_shutdown, drain, contexts
        leftovers = asyncio.all_tasks(loop)
        for task in leftovers:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
