"""A log line per key at most once per interval, with how many were held back since.

A client can make the daemon fail a request as often as it likes (forged webhooks, a socket
flood): one log line per failure would let it fill the disk and bury everything else. The
counters in /metrics count every one; the log keeps a sample and says how many it skipped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

LOG_EVERY_S = 60.0  # after the first line for a key, at most one more per this many seconds


@dataclass
class Throttle:
    """`allow(key)` answers whether to log now. Keys must come from a small fixed set (a
    channel label and a reason code): each one is remembered for the life of the process.

    Not locked: every caller runs on the HTTP server's event loop thread.
    """

    interval_s: float = LOG_EVERY_S
    clock: Callable[[], float] = time.monotonic
    _last: dict[Hashable, float] = field(default_factory=dict, init=False)
    _held_back: dict[Hashable, int] = field(default_factory=dict, init=False)

    def allow(self, key: Hashable) -> int | None:
        """None: stay quiet (the occurrence is counted); else log now, and the number returned
        is how many occurrences of `key` were held back since its last line."""
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval_s:
            self._held_back[key] = self._held_back.get(key, 0) + 1
            return None
        self._last[key] = now
        return self._held_back.pop(key, 0)
