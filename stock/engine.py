"""The offered quantity (DESIGN §3): pure arithmetic over plain values, every term kept."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta


@dataclass(frozen=True, slots=True)
class SupplierFill:
    """A supplier's measured fill rate (stock.supplier_stats): units received / units ordered
    over its last `pos` closed POs; `rate` None while it has too few closed POs to trust."""

    supplier: str | None
    rate: float | None
    pos: int


@dataclass(frozen=True, slots=True)
class IncomingLine:
    ordered: int
    received: int
    eta: date
    supplier: str | None = None
    # the supplier's measured fill, attached when some rule has `incoming_share: auto`
    fill: SupplierFill | None = None


@dataclass(frozen=True, slots=True)
class OfferInputs:
    on_hand: int
    reserved: int
    backordered: int  # open backorder units of the SKU, every channel
    incoming_open: int  # open PO units with eta inside this rule's horizon
    safety_buffer: int
    cap: int | None
    backorders_enabled: bool
    incoming_share: float  # under `incoming_share: auto`: incoming_shared / incoming_open
    campaign_hold: int = 0  # units set aside for campaigns (not confirmed yet): never offered
    # `incoming_share: auto`: Σ open units x their line's share (auto_shared); None: a number
    incoming_shared: float | None = None


@dataclass(frozen=True, slots=True)
class PoolTerms:
    """A pooled SKU's channel: its allotment, what it sold of it, and the pool's reserve."""

    allotted: int
    sold: int
    reserve: int

    @property
    def remaining(self) -> int:
        return max(self.allotted - self.sold, 0)


@dataclass(frozen=True, slots=True)
class OfferBreakdown:
    inputs: OfferInputs
    sellable_now: int
    incoming_capacity: int  # may be negative: backorders already exceed the share
    offered: int
    pool: PoolTerms | None = None  # set for a pooled SKU: offered is at most what is left

    def as_dict(self) -> dict[str, int | float | bool | None]:
        i = self.inputs
        return {
            "on_hand": i.on_hand,
            "reserved": i.reserved,
            "sellable_now": self.sellable_now,
            "incoming_open": i.incoming_open,
            "incoming_share": i.incoming_share,
            **(
                {"incoming_shared": round(i.incoming_shared, 4)}
                if i.incoming_shared is not None
                else {}
            ),
            "backorders_enabled": i.backorders_enabled,
            "backordered": i.backordered,
            "incoming_capacity": self.incoming_capacity,
            "safety_buffer": i.safety_buffer,
            "cap": i.cap,
            **({"campaign_hold": i.campaign_hold} if i.campaign_hold else {}),
            **(
                {
                    "pool_allotted": self.pool.allotted,
                    "pool_sold": self.pool.sold,
                    "pool_remaining": self.pool.remaining,
                    "pool_reserve": self.pool.reserve,
                }
                if self.pool is not None
                else {}
            ),
            "offered": self.offered,
        }


def incoming_open(lines: Iterable[IncomingLine], today: date, horizon_days: int) -> int:
    """Units still to arrive on open PO lines due within the horizon (late lines count too)."""
    last_day = today + timedelta(days=horizon_days)
    return sum(max(line.ordered - line.received, 0) for line in lines if line.eta <= last_day)


def auto_share(fill: SupplierFill | None, floor: float, cap: float) -> float:
    """One PO line's share under `incoming_share: auto`: its supplier's measured fill rate,
    bounded to [floor, cap]; the floor while the supplier has too little history (or no
    supplier's rate was read). Should floor exceed cap (set in different rule blocks), the
    cap wins: the lower bound is the safe one."""
    rate = floor if fill is None or fill.rate is None else fill.rate
    return min(max(rate, floor), cap)


def auto_shared(
    lines: Iterable[IncomingLine], today: date, horizon_days: int, floor: float, cap: float
) -> float:
    """Σ over open PO lines due within the horizon of open units x that line's auto share:
    per line (a SKU's POs may come from several suppliers), summed, floored once later."""
    last_day = today + timedelta(days=horizon_days)
    return sum(
        max(line.ordered - line.received, 0) * auto_share(line.fill, floor, cap)
        for line in lines
        if line.eta <= last_day
    )


def incoming_capacity(inputs: OfferInputs) -> int:
    if not inputs.backorders_enabled:
        return 0
    units = (
        inputs.incoming_open * inputs.incoming_share
        if inputs.incoming_shared is None
        else inputs.incoming_shared
    )
    # floor with a tolerance: 0.75 * 4 must be 3, not 2 through float error
    shared = math.floor(units + 1e-9)
    return shared - inputs.backordered


def compute_offer(inputs: OfferInputs, pool: PoolTerms | None = None) -> OfferBreakdown:
    sellable_now = inputs.on_hand - inputs.reserved
    capacity = incoming_capacity(inputs)
    raw = sellable_now + max(capacity, 0) - inputs.safety_buffer - inputs.campaign_hold
    offered = max(raw, 0)
    if inputs.cap is not None:
        offered = min(offered, inputs.cap)
    if pool is not None:
        offered = min(offered, pool.remaining)
    return OfferBreakdown(inputs, sellable_now, capacity, offered, pool)
