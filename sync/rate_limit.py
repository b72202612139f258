"""A per-client request budget (a sliding window in memory, per process): the public sign-up
form must not let one address flood the waitlist."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class RateLimit:
    """At most `limit` requests per `window_s` seconds per key; `allow` answers and counts."""

    MAX_KEYS = 100_000  # beyond this many clients, the oldest are forgotten

    def __init__(
        self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        now = self._clock()
        with self._lock:
            times = self._seen.pop(key, None) or deque()
            while times and times[0] <= now - self.window_s:
                times.popleft()
            allowed = len(times) < self.limit
            if allowed:
                times.append(now)
            self._seen[key] = times  # most recent last: the oldest keys are first to go
            while len(self._seen) > self.MAX_KEYS:
                self._seen.pop(next(iter(self._seen)))
            return allowed

    def retry_after(self, key: str) -> float:
        with self._lock:
            times = self._seen.get(key)
            if not times:
                return 0.0
            return max(times[0] + self.window_s - self._clock(), 0.0)
