"""Split an order's lines into what stock covers now and what waits for incoming (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LineDemand:
    key: str  # the caller's handle for the line
    sku: str
    quantity: int


@dataclass(frozen=True, slots=True)
class Availability:
    sellable_now: int  # on_hand - reserved; may be negative after a stock count went down
    backorder_capacity: int  # incoming units this channel may still promise; 0 when disabled


@dataclass(frozen=True, slots=True)
class LineSplit:
    key: str
    sku: str
    reserve: int
    backorder_within: int  # promised against incoming inside the channel's capacity
    backorder_beyond: int  # the channel sold more than we offered: kept and flagged

    @property
    def backordered(self) -> int:
        return self.backorder_within + self.backorder_beyond


def split_lines(
    lines: Sequence[LineDemand], availability: Mapping[str, Availability]
) -> list[LineSplit]:
    """Reserve from sellable stock, backorder the rest; lines draw on shared SKUs in order.

    Every unit of demand lands somewhere: reserve + backorder_within + backorder_beyond equals
    the line quantity, whatever the availability says.
    """
    sellable = {sku: max(a.sellable_now, 0) for sku, a in availability.items()}
    capacity = {sku: max(a.backorder_capacity, 0) for sku, a in availability.items()}
    result: list[LineSplit] = []
    for line in lines:
        if line.quantity < 0:
            raise ValueError(f"line {line.key}: quantity {line.quantity} is negative")
        reserve = min(line.quantity, sellable.get(line.sku, 0))
        sellable[line.sku] = sellable.get(line.sku, 0) - reserve
        rest = line.quantity - reserve
        within = min(rest, capacity.get(line.sku, 0))
        capacity[line.sku] = capacity.get(line.sku, 0) - within
        result.append(LineSplit(line.key, line.sku, reserve, within, rest - within))
    return result
