"""Rate pacing from a leaky bucket's reported state (Shopify's `throttleStatus`).

Pure functions: given what the server last said and how long ago, how long to wait before a
request of some cost. The plan (restore rate, bucket size) always comes from the server.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ThrottleStatus:
    maximum_available: float
    currently_available: float
    restore_rate: float

    @classmethod
    def from_cost(cls, cost: Mapping[str, Any] | None) -> ThrottleStatus | None:
        """Read `extensions.cost.throttleStatus`; None when the response carried none."""
        status = (cost or {}).get("throttleStatus")
        if not isinstance(status, Mapping):
            return None
        try:
            return cls(
                maximum_available=float(status["maximumAvailable"]),
                currently_available=float(status["currentlyAvailable"]),
                restore_rate=float(status["restoreRate"]),
            )
        except (KeyError, TypeError, ValueError):
            return None


def available_after(status: ThrottleStatus, elapsed: float) -> float:
    """Points in the bucket `elapsed` seconds after the status was reported."""
    refilled = status.currently_available + max(elapsed, 0.0) * status.restore_rate
    return min(status.maximum_available, refilled)


def delay_for(cost: float, status: ThrottleStatus | None, elapsed: float) -> float:
    """Seconds to wait so a request needing `cost` points finds them in the bucket.

    A cost above the bucket's size is capped at a full bucket (the server decides then);
    with no status yet, or a server that reports no restore rate, there is nothing to pace on.
    """
    if status is None or status.restore_rate <= 0 or cost <= 0:
        return 0.0
    needed = min(cost, status.maximum_available)
    missing = needed - available_after(status, elapsed)
    return max(missing, 0.0) / status.restore_rate
