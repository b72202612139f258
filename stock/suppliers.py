"""Suppliers' purchase-order history read for stock.supplier_stats (read only; issue #17).

A fixed number of statements whatever the number of POs or suppliers: each supplier's last N
closed POs are picked in SQL (a window function over `purchase_order`, with their `po_line`
rows summed in the same statement); the receipts of those POs are one more read, the open
POs per supplier one more.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Subquery, case, func, select
from sqlalchemy.orm import Session

from stock import models as m
from stock.engine import SupplierFill
from stock.supplier_stats import (
    CLOSED,
    DEFAULT_LAST,
    MIN_POS,
    PoRow,
    ReceiptRow,
    SupplierStats,
    supplier_fill,
    supplier_stats,
)


def _ranked(last: int, *columns: Any) -> Subquery:
    """Each supplier's last `last` closed POs (newest first by created_at, then id): their id,
    supplier and `columns`."""
    po = m.PurchaseOrder
    rank = (
        func.row_number()
        .over(partition_by=po.supplier, order_by=(po.created_at.desc(), po.id.desc()))
        .label("rank")
    )
    ranked = (
        select(po.id, po.supplier, *columns, rank).where(po.status.in_(CLOSED)).subquery("ranked")
    )
    return select(ranked).where(ranked.c.rank <= last).subquery("recent")


def _recent_closed(last: int) -> Subquery:
    po = m.PurchaseOrder
    original_eta = func.coalesce(po.original_eta, po.eta).label("original_eta")
    return _ranked(last, po.ref, po.status, po.created_at, original_eta)


# units of a line that count as filled: what was received, up to what was ordered
_FILLED = case((m.PoLine.received > m.PoLine.ordered, m.PoLine.ordered), else_=m.PoLine.received)


def recent_closed(session: Session, last: int = DEFAULT_LAST) -> list[PoRow]:
    """Each supplier's last `last` closed POs, their lines summed: one statement."""
    recent = _recent_closed(last)
    line = m.PoLine
    columns = (
        recent.c.id,
        recent.c.ref,
        recent.c.supplier,
        recent.c.status,
        recent.c.created_at,
        recent.c.original_eta,
    )
    query = (
        select(
            *columns,
            func.coalesce(func.sum(line.ordered), 0),
            func.coalesce(func.sum(_FILLED), 0),
        )
        .outerjoin(line, line.po_id == recent.c.id)
        .group_by(*columns)
    )
    return [
        PoRow(int(po_id), ref, supplier, status, created_at, eta, int(ordered), int(got))
        for po_id, ref, supplier, status, created_at, eta, ordered, got in session.execute(query)
    ]


def read_fill_rates(
    session: Session, last: int = DEFAULT_LAST, min_pos: int = MIN_POS
) -> dict[str | None, SupplierFill]:
    """Every supplier's measured fill rate, for `incoming_share: auto` (as
    `supplier_stats.fill_rates` over `recent_closed`, summed in SQL: a row per supplier):
    one statement."""
    recent = _ranked(last)
    line = m.PoLine
    query = (
        select(
            recent.c.supplier,
            func.count(func.distinct(recent.c.id)),
            func.coalesce(func.sum(line.ordered), 0),
            func.coalesce(func.sum(_FILLED), 0),
        )
        .outerjoin(line, line.po_id == recent.c.id)
        .group_by(recent.c.supplier)
    )
    return {
        supplier: supplier_fill(supplier, int(pos), int(ordered), int(filled), min_pos)
        for supplier, pos, ordered, filled in session.execute(query)
    }


def read_stats(session: Session, last: int = DEFAULT_LAST) -> list[SupplierStats]:
    """Figures per supplier over its last `last` closed POs: three statements."""
    rows = recent_closed(session, last)
    recent = _recent_closed(last)
    receipt = m.PoReceipt
    receipts = [
        ReceiptRow(int(po_id), int(qty), received_at)
        for po_id, qty, received_at in session.execute(
            select(receipt.po_id, receipt.qty, receipt.received_at).join(
                recent, recent.c.id == receipt.po_id
            )
        ).all()
    ]
    po = m.PurchaseOrder
    open_pos = {
        supplier: int(count)
        for supplier, count in session.execute(
            select(po.supplier, func.count()).where(po.status == "open").group_by(po.supplier)
        ).all()
    }
    return supplier_stats(rows, receipts, last, open_pos=open_pos)
