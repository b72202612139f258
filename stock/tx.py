"""One ledger transaction: the session, the rules and clock it runs under, and what it did.

`LedgerTx` is the unit of work every table owner in `stock/` writes through. It opens nothing by
itself (sync.context opens and commits it) and collects the transaction's *effects* — dirty
listings, queued write-backs, SKUs whose stock changed and may need a release or a demotion — so
that callers enqueue jobs after commit without querying again what the transaction wrote.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.orm import Session

from rules import EffectiveRule, ReleaseKey, Sourced
from stock import audit


class RuleBook(Protocol):
    """What the ledger needs of the configuration (rules.Config satisfies it)."""

    @property
    def tiers(self) -> tuple[str, ...]: ...

    def rule_for(self, channel: str, sku: str) -> EffectiveRule: ...

    def release_order(self, sku: str) -> Sourced[tuple[ReleaseKey, ...]]: ...


class LedgerInputError(ValueError):
    """A request the ledger refuses (bad quantity, unknown PO or SKU); carries the subject."""

    def __init__(self, subject: str, message: str) -> None:
        super().__init__(f"{subject}: {message}")
        self.subject = subject
        self.message = message


@dataclass(frozen=True, slots=True)
class ReleasedUnits:
    """Units of one order line moved from backorder to reservation by a release."""

    backorder_id: int  # the line's first backorder row: the candidate's handle
    order_id: int
    channel: str
    order_external_id: str
    external_line_id: str
    sku: str
    qty: int
    complete: bool


@dataclass
class Effects:
    """What a transaction changed that matters after it commits, and what it still owes."""

    dirty_sku_ids: set[int] = field(default_factory=set)  # listings marked dirty
    writebacks: set[int] = field(default_factory=set)  # outbox rows queued (writeback ids)
    released: list[ReleasedUnits] = field(default_factory=list)
    oversold: dict[str, int] = field(default_factory=dict)  # sku -> units beyond on_hand
    # Owed before commit (backorders.settle runs them): stock grew, so waiting backorders may
    # be filled; stock fell, so reservations may exceed on_hand.
    release_due: set[int] = field(default_factory=set)
    demote_due: set[int] = field(default_factory=set)
    # SKUs whose backorders or incoming changed: their promise dates are planned again
    # (backorders.promising, after the settle)
    promises_due: set[int] = field(default_factory=set)
    # campaign entries whose payment on a shop has a call due (request, reminder, withdrawal)
    payments: set[int] = field(default_factory=set)
    refunds: set[int] = field(default_factory=set)  # campaign_money refunds to make on a shop

    def add_oversold(self, code: str, units: int) -> None:
        if units:
            self.oversold[code] = self.oversold.get(code, 0) + units


class LedgerTx:
    """One transaction's session, rules, channels and clock, plus its collected effects."""

    def __init__(
        self,
        session: Session,
        rules: RuleBook,
        channels: Sequence[str],
        *,
        now: datetime,
        actor: str = "cli",
        listed_channels: Sequence[str] | None = None,
    ) -> None:
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        self.session = session
        self.rules = rules
        self.channels = tuple(channels)
        # channels whose listings we push and whose orders we write back (not manual ones)
        self.listed_channels = tuple(channels if listed_channels is None else listed_channels)
        self.now = now
        self.actor = actor
        self.effects = Effects()
        # What this transaction already holds, so a batch of orders reads each thing once:
        self.sku_ids: dict[str, int] = {}  # SKU code -> id (SKUs known to exist)
        self.codes: dict[int, str] = {}  # id -> code
        # stock rows locked FOR UPDATE, held here (the session only keeps weak references)
        self.levels: dict[int, Any] = {}
        self.orders: dict[tuple[str, str], Any] = {}  # (channel, external id) -> order or None
        self.incoming: dict[int, Any] = {}  # sku id -> open PO lines (stock.offers)
        # supplier -> measured fill rate, read once when a rule has `incoming_share: auto`
        self.supplier_fills: dict[str | None, Any] | None = None
        self.writebacks: dict[int, Any] = {}  # id(order) -> its queued Writeback row
        self.stored_writebacks: dict[int, Any] = {}  # order id -> its outbox row, or None
        self.dirty_written: set[int] = set()  # SKUs whose listings were written already

    @property
    def dialect(self) -> str:
        return self.session.get_bind().dialect.name

    def audit(self, action: str, subject: str, detail: Mapping[str, Any]) -> None:
        audit.record(self.session, self.now, self.actor, action, subject, detail)

    def remember_skus(self, ids: Mapping[str, int]) -> None:
        self.sku_ids.update(ids)
        self.codes.update({sku_id: code for code, sku_id in ids.items()})
