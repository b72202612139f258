"""Follow-up jobs a transaction made necessary, enqueued only after it committed."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from stock.tx import Effects


@dataclass
class Followups:
    events: list[int] = field(default_factory=list)  # inbox event ids
    # events another transaction held when we came to apply them: looked at again shortly
    held_events: list[int] = field(default_factory=list)
    pushes: set[str] = field(default_factory=set)  # channel names
    writebacks: set[int] = field(default_factory=set)  # writeback row ids
    polls: set[str] = field(default_factory=set)  # channel names
    releases: set[str] = field(default_factory=set)  # SKU codes
    payments: set[int] = field(default_factory=set)  # campaign entries with a shop call due
    refunds: set[int] = field(default_factory=set)  # campaign_money refunds to make

    @classmethod
    def of(cls, effects: Effects, channels: list[str]) -> Followups:
        """What a committed ledger transaction's effects call for."""
        return cls(
            pushes=set(channels) if effects.dirty_sku_ids else set(),
            writebacks=set(effects.writebacks),
            payments=set(effects.payments),
            refunds=set(effects.refunds),
        )

    def merge(self, other: Followups) -> None:
        self.events.extend(other.events)
        self.held_events.extend(other.held_events)
        self.pushes |= other.pushes
        self.writebacks |= other.writebacks
        self.polls |= other.polls
        self.releases |= other.releases
        self.payments |= other.payments
        self.refunds |= other.refunds


def utc_now() -> datetime:
    return datetime.now(UTC)
