"""Suppliers measured (issue #17): pure figures over purchase-order rows, no I/O.

stock.suppliers reads the rows; `stocksync suppliers` shows the figures and
`incoming_share: auto` takes the fill rate. Per supplier (POs without one together, as
"(none)"), over its **last N closed POs** — status `received` or `cancelled`, newest first by
creation (created_at, then id); open POs are still running and are only counted:

- `pos`: closed POs measured (at most N); `open_pos`: its POs still open.
- `fill_rate` = units received / units ordered over the measured POs. A cancelled PO's
  missing units count as not filled; units received beyond a line's ordered quantity count
  only up to it (a fill rate is at most 1). None when nothing was ordered.
- `on_time_pct`: of the measured POs with at least one recorded receipt (`po_receipt`, from
  migration 0014 on), the percentage whose every receipt arrived on or before the PO's
  **original** ETA (the supplier's first promise: moving the ETA later does not make a PO on
  time). A receipt's day is its UTC date. None when no measured PO has a receipt.
- `mean_delay_days`: the signed, unit-weighted mean of (receipt day - original ETA) in days
  over the receipts of the measured POs: negative = early on average, 0 = on the day.
- `mean_lead_days`: the unit-weighted mean of (received_at - PO created_at) in days over
  the same receipts: how long a unit took from order to arrival.

`fill_rates` gives `incoming_share: auto` the same fill rate, trusted only from MIN_POS
measured POs on (fewer: `rate` None, and the rule's floor applies — stock.engine.auto_share).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from stock.engine import SupplierFill

NONE = "(none)"  # how POs without a supplier are shown
DEFAULT_LAST = 10  # POs measured per supplier (`stocksync suppliers --last`, auto share)
MIN_POS = 3  # measured POs before `incoming_share: auto` trusts a supplier's fill rate
CLOSED = ("received", "cancelled")
_DAY = 86400.0


@dataclass(frozen=True, slots=True)
class PoRow:
    """One purchase order with its lines summed."""

    id: int
    ref: str
    supplier: str | None
    status: str
    created_at: datetime
    original_eta: date  # the supplier's first ETA (the current one for rows that lack it)
    ordered: int = 0  # Σ ordered over its lines
    filled: int = 0  # Σ min(received, ordered) over its lines


@dataclass(frozen=True, slots=True)
class ReceiptRow:
    """One receipt of units on a PO (`po_receipt`)."""

    po_id: int
    qty: int
    received_at: datetime


@dataclass(frozen=True, slots=True)
class SupplierStats:
    supplier: str  # NONE for POs without a supplier
    pos: int
    open_pos: int
    delivered_pos: int  # measured POs with a recorded receipt: what on_time_pct is over
    on_time_pos: int
    on_time_pct: float | None
    mean_delay_days: float | None
    units_ordered: int
    units_filled: int
    fill_rate: float | None
    mean_lead_days: float | None
    refs: tuple[str, ...]  # the measured POs, newest first

    def as_dict(self) -> dict[str, Any]:
        return {
            "supplier": self.supplier,
            "pos": self.pos,
            "open_pos": self.open_pos,
            "delivered_pos": self.delivered_pos,
            "on_time_pos": self.on_time_pos,
            "on_time_pct": self.on_time_pct,
            "mean_delay_days": self.mean_delay_days,
            "units_ordered": self.units_ordered,
            "units_filled": self.units_filled,
            "fill_rate": self.fill_rate,
            "mean_lead_days": self.mean_lead_days,
            "refs": list(self.refs),
        }


def measured(rows: Iterable[PoRow], last: int = DEFAULT_LAST) -> dict[str | None, list[PoRow]]:
    """Each supplier's last `last` closed POs, newest first."""
    if last < 1:
        raise ValueError(f"last must be at least 1, got {last}")
    found: dict[str | None, list[PoRow]] = defaultdict(list)
    for row in rows:
        if row.status in CLOSED:
            found[row.supplier].append(row)
    return {
        supplier: sorted(pos, key=lambda r: (r.created_at, r.id), reverse=True)[:last]
        for supplier, pos in found.items()
    }


def fill_rate(pos: Iterable[PoRow]) -> float | None:
    ordered = filled = 0
    for row in pos:
        ordered += row.ordered
        filled += row.filled
    return filled / ordered if ordered else None


def supplier_fill(
    supplier: str | None, pos: int, ordered: int, filled: int, min_pos: int = MIN_POS
) -> SupplierFill:
    """The fill rate `incoming_share: auto` takes from a supplier's `pos` measured POs and
    their units: None below `min_pos` POs (or with nothing ordered)."""
    rate = filled / ordered if ordered and pos >= min_pos else None
    return SupplierFill(supplier, rate, pos)


def fill_rates(
    rows: Iterable[PoRow], last: int = DEFAULT_LAST, min_pos: int = MIN_POS
) -> dict[str | None, SupplierFill]:
    """Each supplier's fill rate over its last `last` closed POs, for `incoming_share: auto`;
    `rate` None below `min_pos` measured POs."""
    return {
        supplier: supplier_fill(
            supplier,
            len(pos),
            sum(row.ordered for row in pos),
            sum(row.filled for row in pos),
            min_pos,
        )
        for supplier, pos in measured(rows, last).items()
    }


def supplier_stats(
    rows: Iterable[PoRow],
    receipts: Iterable[ReceiptRow],
    last: int = DEFAULT_LAST,
    *,
    open_pos: Mapping[str | None, int] | None = None,
) -> list[SupplierStats]:
    """Figures per supplier (name order, "(none)" last) over its last `last` closed POs.
    `rows`: POs (open ones are counted, unless `open_pos` gives the counts per supplier);
    `receipts`: receipts of any POs (those of POs not measured are left out)."""
    rows = list(rows)
    if open_pos is None:
        counted: dict[str | None, int] = defaultdict(int)
        for row in rows:
            if row.status not in CLOSED:
                counted[row.supplier] += 1
        open_pos = counted
    windows = measured(rows, last)
    by_po: dict[int, list[ReceiptRow]] = defaultdict(list)
    for receipt in receipts:
        by_po[receipt.po_id].append(receipt)
    suppliers = sorted(set(open_pos) | set(windows), key=lambda s: (s is None, s or ""))
    return [
        _stats(supplier, windows.get(supplier, []), by_po, open_pos.get(supplier, 0))
        for supplier in suppliers
    ]


def _stats(
    supplier: str | None,
    pos: list[PoRow],
    by_po: Mapping[int, list[ReceiptRow]],
    open_count: int,
) -> SupplierStats:
    delivered = on_time = units = 0
    delay = lead = 0.0
    for po in pos:
        receipts = by_po.get(po.id, [])
        if not receipts:
            continue
        delivered += 1
        days = [(_day(r.received_at) - po.original_eta).days for r in receipts]
        on_time += max(days) <= 0
        for receipt, late in zip(receipts, days, strict=True):
            units += receipt.qty
            delay += receipt.qty * late
            lead += receipt.qty * (receipt.received_at - po.created_at).total_seconds() / _DAY
    rate = fill_rate(pos)
    return SupplierStats(
        supplier=NONE if supplier is None else supplier,
        pos=len(pos),
        open_pos=open_count,
        delivered_pos=delivered,
        on_time_pos=on_time,
        on_time_pct=round(100 * on_time / delivered, 1) if delivered else None,
        mean_delay_days=round(delay / units, 2) if units else None,
        units_ordered=sum(po.ordered for po in pos),
        units_filled=sum(po.filled for po in pos),
        fill_rate=round(rate, 4) if rate is not None else None,
        mean_lead_days=round(lead / units, 2) if units else None,
        refs=tuple(po.ref for po in pos),
    )


def _day(at: datetime) -> date:
    return at.astimezone(UTC).date()
