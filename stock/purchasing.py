"""Purchase orders (`purchase_order`, `po_line`): incoming stock; their only writer.

A receipt books units into on_hand and makes a release due; the release runs in the same
transaction (backorders.settle), so no order placed after the goods arrived can take units
the waiting backorders were promised.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from sqlalchemy import select

from stock import counts, listings
from stock import models as m
from stock.tx import LedgerInputError, LedgerTx


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
    po = tx.session.scalar(select(m.PurchaseOrder).where(m.PurchaseOrder.ref == ref))
    if po is None:
        po = m.PurchaseOrder(ref=ref, supplier=supplier, eta=eta, status="open", created_at=tx.now)
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
    listings.mark_dirty(tx, sku_ids.values())
    tx.audit(action, ref, {"eta": eta.isoformat(), "lines": dict(lines)})


def receive_po(tx: LedgerTx, ref: str, received: Mapping[str, int]) -> None:
    """Book received units into on_hand; the release they make due settles before commit."""
    if not received:
        raise LedgerInputError(ref, "a receipt needs at least one SKU=QTY")
    po = tx.session.scalar(select(m.PurchaseOrder).where(m.PurchaseOrder.ref == ref))
    if po is None:
        raise LedgerInputError(ref, "no such purchase order")
    if po.status == "cancelled":
        raise LedgerInputError(ref, "purchase order is cancelled")
    lines = {line.sku_id: line for line in po.lines}
    by_code = {code: sku_id for sku_id, code in counts.codes_of(tx, lines).items()}
    for code, qty in received.items():
        if code not in by_code:
            raise LedgerInputError(ref, f"{code} is not on this purchase order")
        if qty <= 0:
            raise LedgerInputError(ref, f"{code}: received quantity must be positive")
    units = {by_code[code]: qty for code, qty in received.items()}
    rows = counts.lock(tx, units)
    for sku_id, qty in units.items():
        lines[sku_id].received += qty
    counts.receive_units(tx, rows, units)
    tx.incoming.clear()  # open PO lines changed
    if all(line.received >= line.ordered for line in po.lines):
        po.status = "received"
    tx.session.flush()
    tx.audit("po.receive", ref, {"received": dict(received), "status": po.status})
