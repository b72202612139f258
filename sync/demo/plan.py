"""What the demo sets up and what its customers do: plain values, no I/O, no clock reads."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# Small stock so the shop sells out and backorders happen within a short demo.
CATALOG: dict[str, int] = {"DEMO-1": 6, "DEMO-2": 8, "DEMO-3": 10, "DEMO-4": 12, "DEMO-5": 15}
PO_REF = "PO-1"  # due in a few days; received halfway through the demo
PO_ETA_DAYS = 3
PO_LINES: dict[str, int] = dict.fromkeys(CATALOG, 8)
# The next PO stays open: what it brings still backs sales after PO-1 is in, so two shops
# selling the last units at once (before a push lands) end as a flagged backorder, not a loss.
NEXT_PO_REF = "PO-2"
NEXT_PO_ETA_DAYS = 10
NEXT_PO_LINES: dict[str, int] = dict.fromkeys(CATALOG, 6)
CHANNELS: tuple[str, ...] = ("shop", "woo")  # names of the two sandboxes in the demo config
RATE_PER_S = 5.0  # checkouts per second across both shops: "a few", enough to sell out
QUANTITY_WEIGHTS: dict[int, int] = {1: 6, 2: 3, 3: 1}  # most customers buy one
CUSTOMERS = 12


@dataclass(frozen=True)
class Checkout:
    """One customer's storefront purchase, `at` seconds after the traffic starts."""

    at: float
    channel: str
    sku: str
    quantity: int
    email: str


def plan_traffic(
    seed: int,
    duration: float,
    *,
    rate: float = RATE_PER_S,
    skus: Sequence[str] = tuple(CATALOG),
    channels: Sequence[str] = CHANNELS,
    quantities: Mapping[int, int] = QUANTITY_WEIGHTS,
) -> list[Checkout]:
    """Poisson arrivals at `rate` per second over [0, duration); the same seed, the same day."""
    if rate <= 0:
        raise ValueError(f"rate must be positive, got {rate}")
    if not skus or not channels or not quantities:
        raise ValueError("traffic needs at least one SKU, channel and quantity")
    rng = random.Random(seed)
    sizes, weights = list(quantities), list(quantities.values())
    plan: list[Checkout] = []
    at = rng.expovariate(rate)
    while at < duration:
        plan.append(
            Checkout(
                at=round(at, 3),
                channel=rng.choice(list(channels)),
                sku=rng.choice(list(skus)),
                quantity=rng.choices(sizes, weights)[0],
                email=f"customer{rng.randrange(CUSTOMERS) + 1}@example.com",
            )
        )
        at += rng.expovariate(rate)
    return plan


@dataclass(frozen=True)
class Timeline:
    """Offsets in seconds from the demo's start (monotonic clock)."""

    traffic_start: float
    receipt_at: float
    traffic_end: float
    settled_by: float  # the last webhooks, events and pushes should have landed by then


MIN_TRAFFIC_S = 2.0
SETTLE_S = 2.0  # left at the end for the last webhooks, events and pushes to land
MIN_SETTLE_S = 1.0
SETTLE_GRACE_S = 3.0  # settling ends as soon as the shops show the ledger's numbers


def timeline(duration: float, setup_took: float) -> Timeline:
    """Traffic fills what setup left of `duration`, minus a settle time; the PO arrives halfway."""
    start = setup_took
    end = max(duration - SETTLE_S, start + MIN_TRAFFIC_S)
    # a slow start means a loaded machine: give the last pushes as long to land
    settled_by = max(duration, end + MIN_SETTLE_S) + max(SETTLE_GRACE_S, setup_took)
    return Timeline(start, start + (end - start) / 2, end, settled_by)


def percentile(values: Sequence[float], pct: float) -> float | None:
    """Nearest-rank percentile (pct in 0..100); None for no values."""
    if not values:
        return None
    if not 0 <= pct <= 100:
        raise ValueError(f"percentile must be within 0..100, got {pct}")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))  # ceil without floats drifting
    return ordered[int(rank) - 1]
