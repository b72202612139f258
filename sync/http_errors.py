"""The outermost ASGI layer: every uncaught error becomes one `http_error` log line and a 500
JSON answer, and goes no further.

Without it, Starlette's ServerErrorMiddleware answers a plain-text 500 and re-raises to uvicorn,
which logs "Exception in ASGI application" with the whole traceback as a line of its own. Here
the error is logged once, through structlog: its redactor masks the configured secrets
(channel credentials, the API token, the database's and broker's passwords) in the traceback
as on every line, whatever the error quotes (SQL with its parameters, a URL, the request).
"""

from __future__ import annotations

import traceback

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sync.logs import get_logger
from sync.metrics import Metrics

log = get_logger("stocksync.http")

_LONGEST_PATH = 200  # the path as logged: a client chooses it


def internal_error() -> Response:
    """The answer to a request that failed inside: no detail (it is in the log)."""
    return JSONResponse({"ok": False, "error": "internal error"}, status_code=500)


async def internal_error_handler(_request: Request, _exc: Exception) -> Response:
    """For Starlette's exception_handlers: ServerErrorMiddleware answers with this, then
    re-raises to ErrorBoundary, which logs."""
    return internal_error()


class ErrorBoundary:
    """Wraps the whole application. An exception from inside is logged once as `http_error`
    (method, path, error type, traceback), counted in stocksync_http_errors_total, answered
    500 JSON unless an answer was already started, and not re-raised. A client that went away
    (ClientDisconnect) is not an error: there is nobody left to answer."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_tracked)
        except ClientDisconnect:
            return
        except Exception as exc:  # the boundary: everything is logged here and goes no further
            self.metrics.http_errors.inc()
            log.error(
                "http_error",
                method=scope.get("method"),
                path=str(scope.get("path", ""))[:_LONGEST_PATH],
                error=type(exc).__name__,
                # formatted here, not exc_info: one string the redactor masks like any value
                exception="".join(traceback.format_exception(exc)),
            )
            if not started:
                await internal_error()(scope, receive, send)
