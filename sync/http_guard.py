"""Connections that hold the server without finishing a request: deadlines and a cap.

uvicorn's h11 server waits for a request's headers and body as long as bytes keep coming, and
keeps accepting connections until the process runs out of file descriptors; 1,100 clients
that never finish their headers (slowloris) then starve webhooks, /healthz and /readyz. Here:

- each connection must send its request line and headers within `header_timeout_s` of opening
  (or of the previous response, when kept alive), and its body within `body_timeout_s` once
  the headers are in; a connection past its deadline is closed;
- at most `cap` connections are open (sync/fd_limit.py derives it from RLIMIT_NOFILE); a new
  one beyond it closes the connection that has waited longest for its headers, so the newest
  clients (a shop delivering a webhook) are served while idle ones make room. Only when no
  connection is waiting for headers (all are sending bodies or being answered) is the new
  one closed instead;
- a request answered before its body was read (413, 401) ends the connection shortly after
  the answer instead of reading the rest.

`guarded_h11(guard)` is the protocol class to give `uvicorn.Config(http=...)`.
"""

from __future__ import annotations

import asyncio
import enum
from collections import OrderedDict
from typing import Any, ClassVar, Protocol, cast

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from sync.http_limits import HttpLimits
from sync.metrics import Metrics

# reasons the server closes a connection (the `reason` label of
# stocksync_http_connections_closed_total)
HEADER_TIMEOUT = "header_timeout"
BODY_TIMEOUT = "body_timeout"
EVICTED = "evicted"
REFUSED = "refused"
BODY_UNREAD = "body_unread"


class Droppable(Protocol):
    """What the guard needs of a connection: a way to close it, counted under a reason."""

    def drop(self, reason: str) -> None: ...


class ConnectionGuard:
    """Shared by all connections of one server, on its event loop thread (no locking)."""

    def __init__(self, limits: HttpLimits, cap: int, metrics: Metrics) -> None:
        self.limits = limits
        self.cap = cap
        self.metrics = metrics
        self._open: set[Droppable] = set()  # not yet dropped (a dropped one closes soon)
        # waiting for request headers, longest-waiting first: the ones to evict
        self._waiting: OrderedDict[Droppable, None] = OrderedDict()
        metrics.http_connections_limit.set(cap)
        metrics.http_connections_open.set(0)

    @property
    def open_count(self) -> int:
        return len(self._open)

    def opened(self, conn: Droppable) -> None:
        """A new connection; beyond the cap the longest-waiting idle one is dropped, or this
        one when none is idle."""
        self._open.add(conn)
        self._changed()
        if len(self._open) <= self.cap:
            return
        victim = next((c for c in self._waiting if c is not conn), None)
        if victim is None:
            conn.drop(REFUSED)
        else:
            victim.drop(EVICTED)

    def awaiting_headers(self, conn: Droppable) -> None:
        """`conn` waits for a request's headers from now on (newest last)."""
        self._waiting.pop(conn, None)
        self._waiting[conn] = None

    def working(self, conn: Droppable) -> None:
        """`conn` has sent its headers: it is receiving a body or being answered."""
        self._waiting.pop(conn, None)

    def dropped(self, conn: Droppable, reason: str) -> None:
        """The server closes `conn` (it is closed a moment later)."""
        self.metrics.http_connections_closed.labels(reason).inc()
        self.closed(conn)

    def closed(self, conn: Droppable) -> None:
        self._waiting.pop(conn, None)
        self._open.discard(conn)
        self._changed()

    def _changed(self) -> None:
        self.metrics.http_connections_open.set(len(self._open))


class _Phase(enum.Enum):
    HEADERS = "headers"  # waiting for a request line and headers: the header deadline runs
    BODY = "body"  # headers in, the body coming: the body deadline runs
    BUSY = "busy"  # the request is in; the application answers (no deadline of ours)
    ENDING = "ending"  # answered without reading the body: closing after LINGER_S


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with the guard's deadlines. Each server gets a subclass bound to
    its guard (guarded_h11), since uvicorn builds protocols from a class and its own args."""

    guard: ClassVar[ConnectionGuard]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._phase: _Phase | None = None
        self._deadline: asyncio.TimerHandle | None = None

    # -------------------------------------------------------------------- uvicorn's hooks
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.guard.opened(self)
        if not transport.is_closing():
            self._follow_request()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self.transport.is_closing():
            self._follow_request()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.transport.is_closing():
            return
        if self.conn.their_state is h11.SEND_BODY:
            self._end_unread()
        else:
            self._follow_request()  # kept alive: the next request's header deadline starts

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._cancel_deadline()
        self.guard.closed(self)

    # -------------------------------------------------------------------- the guard's side
    def drop(self, reason: str) -> None:
        """Close the connection now, counted under `reason`."""
        if self.transport.is_closing():
            return
        self._cancel_deadline()
        self.guard.dropped(self, reason)
        self.transport.close()

    # -------------------------------------------------------------------- deadlines
    def _follow_request(self) -> None:
        """Arm the deadline that fits where the client is in its request. A deadline is set
        when a phase starts and never moved by more bytes of the same phase."""
        if self._phase is _Phase.ENDING:  # closing: bytes already on the way change nothing
            return
        state = self.conn.their_state
        limits = self.guard.limits
        if state is h11.IDLE:
            if self._phase is not _Phase.HEADERS:
                self._enter(_Phase.HEADERS, limits.header_timeout_s, HEADER_TIMEOUT)
                self.guard.awaiting_headers(self)
        elif state is h11.SEND_BODY:
            if self._phase is not _Phase.BODY:
                self._enter(_Phase.BODY, limits.body_timeout_s, BODY_TIMEOUT)
                self.guard.working(self)
        elif self._phase is not _Phase.BUSY:
            self._phase = _Phase.BUSY
            self._cancel_deadline()
            self.guard.working(self)

    def _end_unread(self) -> None:
        """The answer went out before the body was read: stop reading and close soon.
        Draining it instead (uvicorn's way) would read a 300 MB upload we refused."""
        self._phase = _Phase.ENDING
        self.guard.working(self)
        self._unset_keepalive_if_required()
        self.flow.pause_reading()
        if self.transport.can_write_eof():
            self.transport.write_eof()  # the client sees our answer end, then its reset
        self._arm(self.guard.limits.linger_s, BODY_UNREAD)

    def _enter(self, phase: _Phase, seconds: float, reason: str) -> None:
        self._phase = phase
        self._arm(seconds, reason)

    def _arm(self, seconds: float, reason: str) -> None:
        self._cancel_deadline()
        self._deadline = self.loop.call_later(seconds, self.drop, reason)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None


def guarded_h11(guard: ConnectionGuard) -> type[H11Protocol]:
    """A GuardedH11Protocol class bound to `guard`, for `uvicorn.Config(http=...)`."""
    bound = type("GuardedH11Protocol", (GuardedH11Protocol,), {"guard": guard})
    return cast(type[H11Protocol], bound)
