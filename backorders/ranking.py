"""Who is served first: waiting order lines ranked for release (pure; no I/O, no clock).

One path builds the candidates and their order, used by the release itself and by the
`stocksync backorders` listing, so the listing shows exactly the order a release fills.
A candidate is an order *line* (its backorder rows together): `partial: false` speaks of the
line. Each SKU is ranked in the one order its rules give (rules.Config.release_order).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from backorders.release import Allocation, OpenBackorder, plan_release, rank_key
from rules import EffectiveRule, ReleaseKey, Sourced


class RankingRules(Protocol):
    @property
    def tiers(self) -> tuple[str, ...]: ...

    def rule_for(self, channel: str, sku: str) -> EffectiveRule: ...

    def release_order(self, sku: str) -> Sourced[tuple[ReleaseKey, ...]]: ...


@dataclass(frozen=True, slots=True)
class WaitingLine:
    """An order line with open backorders, as the ledger holds it."""

    line_id: int
    first_backorder_id: int  # the candidate's handle, and the last tie-breaker
    sku: str
    channel: str
    tier: str | None
    placed_at: datetime
    qty_open: int


def tier_rank(tier: str | None, tiers: Sequence[str]) -> int:
    """Position in the configured tiers; no tier or an unknown one ranks after all known."""
    return tiers.index(tier) if tier in tiers else len(tiers)


def candidate(line: WaitingLine, rules: RankingRules) -> OpenBackorder:
    rule = rules.rule_for(line.channel, line.sku)
    return OpenBackorder(
        backorder_id=line.first_backorder_id,
        sku=line.sku,
        qty_open=line.qty_open,
        channel_priority=rule.priority.value,
        tier_rank=tier_rank(line.tier, rules.tiers),
        placed_at=line.placed_at,
        partial_allowed=rule.release_partial.value,
    )


def ranked(lines: Sequence[WaitingLine], rules: RankingRules) -> list[WaitingLine]:
    """The lines in release order: by SKU, then by the SKU's release order."""
    orders: dict[str, tuple[ReleaseKey, ...]] = {}

    def key(line: WaitingLine) -> tuple[object, ...]:
        if line.sku not in orders:
            orders[line.sku] = rules.release_order(line.sku).value
        return (line.sku, *rank_key(candidate(line, rules), orders[line.sku]))

    return sorted(lines, key=key)


def plan(
    lines: Sequence[WaitingLine], available: Mapping[str, int], rules: RankingRules
) -> tuple[list[Allocation], dict[str, tuple[ReleaseKey, ...]]]:
    """Units to release per line (by candidate handle), and the order each SKU was ranked by."""
    by_sku: dict[str, list[OpenBackorder]] = defaultdict(list)
    for line in lines:
        by_sku[line.sku].append(candidate(line, rules))
    allocations: list[Allocation] = []
    orders: dict[str, tuple[ReleaseKey, ...]] = {}
    for sku in sorted(by_sku):
        orders[sku] = rules.release_order(sku).value
        allocations += plan_release(by_sku[sku], {sku: available.get(sku, 0)}, orders[sku])
    return allocations, orders
