"""The process's open-file limit (RLIMIT_NOFILE) and the HTTP connections it leaves room for.

Every HTTP connection is a file descriptor. When they run out, accept() fails, and so does
everything else that opens one: database and Redis connections, log files. So the server holds
fewer connections than the limit allows, leaving FD_RESERVE descriptors for the rest.
"""

from __future__ import annotations

import contextlib
import resource
from dataclasses import dataclass

# Descriptors kept out of the HTTP connections' reach: about 100 for the database pool
# (SQLAlchemy's 5 + 10 overflow), Redis, the shop APIs the in-process workers call, log and
# ledger files and the event loop's own (an idle `run` holds ~15); and 150 for connections
# accepted but not yet counted by the guard, or evicted but not yet closed (three passes of
# ACCEPT_BATCH in sync/http_limits.py).
FD_RESERVE = 256
MIN_CONNECTIONS = 32  # even under a tiny limit, serve something


@dataclass(frozen=True)
class FileLimit:
    """RLIMIT_NOFILE before and after raise_open_file_limit()."""

    soft_before: int
    soft: int
    hard: int


def raise_open_file_limit() -> FileLimit:
    """Raise the soft limit to the hard one. Linux starts most processes at soft 1024 (a
    systemd unit without LimitNOFILE=, a shell), far below the hard limit an unprivileged
    process may raise it to; a server needs the room. Left as it is when that fails."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or hard > soft):
        # an infinite hard limit is refused as a soft one (Linux caps it at fs.nr_open)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    raised, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return FileLimit(soft_before=soft, soft=raised, hard=hard)


def open_file_limit() -> int:
    """The soft RLIMIT_NOFILE now (RLIM_INFINITY when unlimited)."""
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def connection_cap(soft_limit: int, maximum: int, reserve: int = FD_RESERVE) -> int:
    """HTTP connections to hold open at most under `soft_limit` descriptors: the limit minus
    the reserve, never above `maximum` (configured), never below MIN_CONNECTIONS."""
    if soft_limit == resource.RLIM_INFINITY:
        return maximum
    return max(MIN_CONNECTIONS, min(maximum, soft_limit - reserve))
