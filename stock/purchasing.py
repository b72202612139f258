"""Purchase orders (`purchase_order`, `po_line`, `po_receipt`): incoming stock; their only
writer.

A receipt books units into on_hand and makes a release due; the release runs in the same
transaction (backorders.settle), so no order placed after the goods arrived can take units
the waiting backorders were promised. A receipt beyond what was ordered is refused unless the
caller allows it. A cancelled PO's open lines stop counting as incoming (stock.offers reads
open POs only); what it had received stays booked, and it can be neither received nor edited.

For measuring suppliers (stock.supplier_stats): a PO keeps the ETA it was created with
(`original_eta`; an edit moves `eta` only), and every receipt is a `po_receipt` row per SKU
with its units, the PO's ETA when it arrived and when it was booked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy import select

from stock import counts, listings
from stock import models as m
from stock.tx import LedgerInputError, LedgerTx


@dataclass(frozen=True, slots=True)
class OverItem:
    """One SKU a receipt would book beyond its ordered quantity."""

    sku: str
    ordered: int
    received_before: int
    receiving: int

    @property
    def over(self) -> int:
        return self.received_before + self.receiving - self.ordered


class OverReceipt(LedgerInputError):
    """A receipt of more units than ordered (counting earlier receipts); nothing was booked.
    Carries every SKU it would overfill."""

    def __init__(self, ref: str, items: Sequence[OverItem]) -> None:
        details = "; ".join(
            f"{i.sku}: {i.ordered} ordered, {i.received_before} received before, "
            f"receiving {i.receiving} would be {i.over} over"
            for i in items
        )
        super().__init__(ref, f"more than ordered ({details}); nothing booked")
        self.items = tuple(items)


def add_po(
    tx: LedgerTx, ref: str, eta: date, lines: Mapping[str, int], supplier: str | None = None
) -> None:
    """Create a PO, or edit an open one: each given SKU's ordered quantity is set."""
    if not lines:
        raise LedgerInputError(ref, "a purchase order needs at least one SKU=QTY")
    for code, qty in lines.items():
        if qty < 0:
            raise LedgerInputError(ref, f"{code}: ordered quantity cannot be negative")
    sku_ids = counts.ensure_skus(tx, lines)
    po = _locked_po(tx, ref)
    if po is None:
        po = m.PurchaseOrder(
            ref=ref,
            supplier=supplier,
            eta=eta,
            original_eta=eta,
            status="open",
            created_at=tx.now,
        )
        tx.session.add(po)
        tx.session.flush()
        action = "po.add"
    else:
        if po.status != "open":
            raise LedgerInputError(ref, f"purchase order is {po.status}; it cannot be edited")
        po.eta = eta
        po.supplier = supplier or po.supplier
        action = "po.edit"
    existing = {line.sku_id: line for line in po.lines}
    for code, qty in lines.items():
        line = existing.get(sku_ids[code])
        if line is None:
            tx.session.add(m.PoLine(po_id=po.id, sku_id=sku_ids[code], ordered=qty))
        else:
            if qty < line.received:
                raise LedgerInputError(
                    ref, f"{code}: cannot order {qty}, {line.received} already received"
                )
            line.ordered = qty
    tx.session.flush()
    tx.session.refresh(po)
    tx.incoming.clear()  # open PO lines changed
    tx.effects.promises_due.update(line.sku_id for line in po.lines)  # an ETA may have moved
    listings.mark_dirty(tx, sku_ids.values())
    tx.audit(action, ref, {"eta": eta.isoformat(), "lines": dict(lines)})


def receive_po(
    tx: LedgerTx, ref: str, received: Mapping[str, int], *, allow_over: bool = False
) -> dict[str, int]:
    """Book received units into on_hand; the release they make due settles before commit.

    A SKU received beyond its ordered quantity (earlier receipts counted) is refused with
    `OverReceipt` (every such SKU at once, nothing booked) unless `allow_over`; then it is
    booked. Returns the units booked beyond the ordered quantity, per SKU (empty normally).
    """
    if not received:
        raise LedgerInputError(ref, "a receipt needs at least one SKU=QTY")
    po = _locked_po(tx, ref)
    if po is None:
        raise LedgerInputError(ref, "no such purchase order")
    if po.status == "cancelled":
        raise LedgerInputError(
            ref,
            "purchase order is cancelled; a cancelled PO cannot be received "
            "(book the goods with `stock adjust`, or record them on a new PO)",
        )
    lines = {line.sku_id: line for line in po.lines}
    by_code = {code: sku_id for sku_id, code in counts.codes_of(tx, lines).items()}
    for code, qty in received.items():
        if code not in by_code:
            raise LedgerInputError(ref, f"{code} is not on this purchase order")
        if qty <= 0:
            raise LedgerInputError(ref, f"{code}: received quantity must be positive")
    beyond = [
        OverItem(code, line.ordered, line.received, qty)
        for code, qty in received.items()
        if (line := lines[by_code[code]]).received + qty > line.ordered
    ]
    if beyond and not allow_over:
        raise OverReceipt(ref, beyond)
    # what this receipt adds beyond the ordered quantity (a line already over counts in full)
    over = {i.sku: min(i.over, i.receiving) for i in beyond}
    units = {by_code[code]: qty for code, qty in received.items()}
    rows = counts.lock(tx, units)
    for sku_id, qty in units.items():
        lines[sku_id].received += qty
        tx.session.add(
            m.PoReceipt(po_id=po.id, sku_id=sku_id, qty=qty, eta=po.eta, received_at=tx.now)
        )
    counts.receive_units(tx, rows, units)
    tx.incoming.clear()  # open PO lines changed
    tx.effects.promises_due.update(units)  # a short receipt leaves less to come
    if all(line.received >= line.ordered for line in po.lines):
        po.status = "received"
        tx.supplier_fills = None  # a closed PO: its supplier's fill rate moved
    tx.session.flush()
    detail: dict[str, object] = {"received": dict(received), "status": po.status}
    if over:
        detail["over_received"] = over
    tx.audit("po.receive", ref, detail)
    return over


def cancel_po(tx: LedgerTx, ref: str) -> dict[str, int]:
    """Cancel a purchase order: its open lines stop counting as incoming (offers drop; the
    listings are marked for a push). Received units stay booked. Cancelling a cancelled or a
    fully received PO is refused. Returns the units no longer expected, per SKU."""
    po = _locked_po(tx, ref)
    if po is None:
        raise LedgerInputError(ref, "no such purchase order")
    if po.status == "cancelled":
        raise LedgerInputError(ref, "purchase order is already cancelled")
    if po.status == "received":
        raise LedgerInputError(ref, "purchase order is fully received; nothing is left to cancel")
    codes = counts.codes_of(tx, [line.sku_id for line in po.lines])
    cancelled = {
        codes[line.sku_id]: line.ordered - line.received
        for line in po.lines
        if line.ordered > line.received
    }
    po.status = "cancelled"
    tx.session.flush()
    tx.supplier_fills = None  # a closed PO: its supplier's fill rate moved
    tx.incoming.clear()  # open PO lines changed
    tx.effects.promises_due.update(line.sku_id for line in po.lines)
    listings.mark_dirty(tx, [line.sku_id for line in po.lines])
    tx.audit(
        "po.cancel",
        ref,
        {
            "cancelled": cancelled,
            "received": {codes[line.sku_id]: line.received for line in po.lines},
        },
    )
    return cancelled


def _locked_po(tx: LedgerTx, ref: str) -> m.PurchaseOrder | None:
    """The PO, its row locked: a receipt, an edit and a cancel of one PO take turns."""
    return tx.session.scalar(
        select(m.PurchaseOrder).where(m.PurchaseOrder.ref == ref).with_for_update()
    )
