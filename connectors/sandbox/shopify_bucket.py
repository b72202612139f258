"""Shopify's cost-based leaky bucket: a request needs its requested cost in the bucket, which
refills continuously at the restore rate up to the maximum."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


class CostBucket:
    def __init__(
        self,
        restore_rate: float = 100.0,
        maximum: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.restore_rate = float(restore_rate)
        # Shopify's buckets hold 20 seconds of restore (1000 at 50/s, 2000 at 100/s)
        self.maximum = float(maximum if maximum is not None else restore_rate * 20)
        self._clock = clock
        self._available = self.maximum
        self._at = clock()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._available = min(self.maximum, self._available + (now - self._at) * self.restore_rate)
        self._at = now

    def take(self, cost: int) -> tuple[bool, dict[str, float]]:
        """Take `cost` points if the bucket holds them; the status is what Shopify reports."""
        with self._lock:
            self._refill()
            ok = self._available >= cost
            if ok:
                self._available -= cost
            return ok, self._status()

    def refund(self, points: int) -> None:
        """Return points charged up front but not used (Shopify bills the actual cost)."""
        with self._lock:
            self._refill()
            self._available = min(self.maximum, self._available + max(points, 0))

    def configure(self, values: dict[str, Any]) -> dict[str, float]:
        with self._lock:
            self._refill()
            if "restore_rate" in values:
                self.restore_rate = _positive(values, "restore_rate")
            if "maximum" in values:
                self.maximum = _positive(values, "maximum")
                self._available = min(self._available, self.maximum)
            if "available" in values:
                self._available = min(max(float(values["available"]), 0.0), self.maximum)
            return self._status()

    def status(self) -> dict[str, float]:
        with self._lock:
            self._refill()
            return self._status()

    def _status(self) -> dict[str, float]:
        return {
            "maximumAvailable": self.maximum,
            "currentlyAvailable": float(int(self._available)),
            "restoreRate": self.restore_rate,
        }


def _positive(values: dict[str, Any], key: str) -> float:
    value = values[key]
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{key} must be a positive number, got {value!r}")
    return float(value)


def actual_cost(data: Any) -> int:
    """The cost of what a query returned: 1 per object, 2 per connection (Shopify's actual cost
    counts the nodes that came back, not the page size that was asked for)."""
    if isinstance(data, list):
        return sum(actual_cost(item) for item in data)
    if not isinstance(data, dict):
        return 0
    is_connection = "nodes" in data or "edges" in data
    own = 2 if is_connection else 1
    return own + sum(actual_cost(v) for k, v in data.items() if k != "pageInfo")
