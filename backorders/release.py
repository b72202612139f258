"""Release policy: rank open backorders by the configured keys and fill greedily (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from rules import ReleaseKey


@dataclass(frozen=True, slots=True)
class OpenBackorder:
    backorder_id: int
    sku: str
    qty_open: int
    channel_priority: int  # lower goes first
    tier_rank: int  # position in the configured tiers; unknown tiers rank after all known ones
    placed_at: datetime
    partial_allowed: bool


@dataclass(frozen=True, slots=True)
class Allocation:
    backorder_id: int
    sku: str
    qty: int
    complete: bool  # the backorder is fully released


def rank_key(
    backorder: OpenBackorder, order: Sequence[ReleaseKey]
) -> tuple[int | float | datetime, ...]:
    values: dict[str, int | float | datetime] = {
        "priority": backorder.channel_priority,
        "tier": backorder.tier_rank,
        "placed_at": backorder.placed_at,
    }
    # the backorder id breaks every tie, so the ranking is total and repeatable
    return (*(values[key] for key in order), backorder.backorder_id)


def plan_release(
    backorders: Sequence[OpenBackorder],
    available: Mapping[str, int],
    order: Sequence[ReleaseKey],
) -> list[Allocation]:
    """Allocate available units per SKU to backorders, best ranked first.

    A backorder whose rule forbids partial fills is filled whole or skipped (and a later, smaller
    one may still be filled). Never allocates more than `available` of a SKU.
    """
    left = {sku: max(units, 0) for sku, units in available.items()}
    plan: list[Allocation] = []
    for backorder in sorted(backorders, key=lambda b: rank_key(b, order)):
        units = left.get(backorder.sku, 0)
        if units <= 0 or backorder.qty_open <= 0:
            continue
        if units >= backorder.qty_open:
            take = backorder.qty_open
        elif backorder.partial_allowed:
            take = units
        else:
            continue
        left[backorder.sku] = units - take
        plan.append(
            Allocation(backorder.backorder_id, backorder.sku, take, take == backorder.qty_open)
        )
    return plan
