"""How long the HTTP server waits for a client, and how many clients it holds at once.

Module constants for now (the config model lives in rules/ and has no `server` keys for these
yet); each can be overridden by an environment variable of `stocksync run`, documented in
docs/operations.md, which is also how the tests make them short.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

# A request's line and headers must be in within this many seconds of the connection opening
# (or, on a kept-alive connection, of the previous response): a client that sends a byte now
# and then (slowloris) cannot hold a connection for longer. Real clients send headers at once.
HEADER_TIMEOUT_S = 10.0
# The whole body within this many seconds once the headers are in: a 5 MB body (the largest we
# accept) at a slow 200 kB/s fits; a body trickled to hold the connection does not.
BODY_TIMEOUT_S = 30.0
# The most HTTP connections held open at once, whatever the open-file limit allows: one daemon
# of a small shop answers a few webhooks a second; thousands of connections are an attack.
MAX_CONNECTIONS = 4096
# After answering a request whose body we did not read (413, 401 before reading), wait this
# long with reading paused, our side shut, before closing: closing with unread bytes sends a
# reset, which can overtake the answer; the client has it by then.
LINGER_S = 1.0
# Connections asyncio accepts in one pass of the event loop (it takes this from the backlog it
# listens with). Python 3.11 retries a failed accept() once per remaining slot of the pass, so
# this multiplies each "too many open files"; uvicorn's 2048 made ~200,000 log lines in 15 s.
# Up to three passes of connections are open before the guard has counted them or closed the
# ones it evicted for them: FD_RESERVE (sync/fd_limit.py) covers that.
ACCEPT_BATCH = 50
# The kernel's queue of connections waiting for accept() (uvicorn's default): set after asyncio
# listened with ACCEPT_BATCH, so a burst of clients waits in the queue instead of having its
# connection attempts dropped (and retried only after a second).
LISTEN_BACKLOG = 2048

HEADER_TIMEOUT_ENV = "STOCKSYNC_HEADER_TIMEOUT_S"
BODY_TIMEOUT_ENV = "STOCKSYNC_BODY_TIMEOUT_S"
MAX_CONNECTIONS_ENV = "STOCKSYNC_MAX_CONNECTIONS"


@dataclass(frozen=True)
class HttpLimits:
    header_timeout_s: float = HEADER_TIMEOUT_S
    body_timeout_s: float = BODY_TIMEOUT_S
    max_connections: int = MAX_CONNECTIONS
    linger_s: float = LINGER_S

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> HttpLimits:
        """The defaults, overridden by the environment; ValueError names a bad variable."""
        return cls(
            header_timeout_s=_seconds(environ, HEADER_TIMEOUT_ENV, HEADER_TIMEOUT_S),
            body_timeout_s=_seconds(environ, BODY_TIMEOUT_ENV, BODY_TIMEOUT_S),
            max_connections=_count(environ, MAX_CONNECTIONS_ENV, MAX_CONNECTIONS),
        )


def _seconds(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name}={raw!r}: expected a number of seconds above 0")
    return value


def _count(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{name}={raw!r}: expected a whole number above 0")
    return int(raw)
