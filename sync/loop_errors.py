"""The HTTP event loop's exception handler: errors counted, logged once per interval.

asyncio reports a failed accept() ("too many open files") through the loop's exception handler,
and Python 3.11 does so once per remaining slot of the accept pass, every time it retries: with
uvicorn's backlog of 2048 that was ~200,000 tracebacks in 15 s. The default handler logs each
with a traceback; this one counts each in stocksync_event_loop_errors_total and logs one line
per kind and exception type per interval, without a traceback for resource exhaustion (the
traceback says nothing the errno does not).
"""

from __future__ import annotations

import asyncio
import errno
import traceback
from typing import Any

from sync.log_throttle import Throttle
from sync.logs import get_logger
from sync.metrics import Metrics

log = get_logger("stocksync.http")

OUT_OF_RESOURCES = "out_of_resources"
OTHER = "other"
_RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class LoopErrorHandler:
    """For `loop.set_exception_handler`; one per loop."""

    def __init__(self, metrics: Metrics, throttle: Throttle | None = None) -> None:
        self.metrics = metrics
        self.throttle = throttle or Throttle()

    def __call__(self, _loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        kind = _kind(exc)
        self.metrics.event_loop_errors.labels(kind).inc()
        # keyed by kind and type, never by the message: messages carry reprs of sockets and
        # tasks, and every distinct key is remembered
        held_back = self.throttle.allow((kind, type(exc).__name__))
        if held_back is None:
            return
        message = str(context.get("message") or "").splitlines()
        fields: dict[str, Any] = {
            "kind": kind,
            "message": message[0][:200] if message else "",
            "error": repr(exc)[:300] if exc is not None else None,
            "held_back": held_back,
        }
        if kind == OTHER and isinstance(exc, BaseException):
            fields["exception"] = "".join(traceback.format_exception(exc))
        log.error("event_loop_error", **fields)


def _kind(exc: object) -> str:
    if isinstance(exc, OSError) and exc.errno in _RESOURCE_ERRNOS:
        return OUT_OF_RESOURCES
    return OTHER
