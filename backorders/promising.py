"""Promise dates on the ledger (issue #17): the SKUs whose backorders or incoming changed have
their waiting backorders' dates planned again (backorders.promises). A date that moved is an
audit entry (`backorder.promise_moved`, which the customer is told of); one that moved later is
flagged until it comes back.

Planning a SKU reads all its waiting backorders, so it is done in the changing transaction only
while the SKU has few (IN_TX_UNITS); a SKU with more (a drop with thousands waiting) is marked
`promises_due` and planned after commit, once per pass however many orders came meanwhile
(`plan_due`: the sweeper and the notifier run it, the notifier before it tells anyone).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date
from typing import Any

from sqlalchemy import select

from backorders import releasing
from backorders.promises import Incoming, moved, promise_dates
from stock import commitments, counts, offers
from stock import models as m
from stock.tx import LedgerTx

IN_TX_UNITS = 200  # open backordered units above which a SKU is planned after commit
DUE_PER_PASS = 500  # SKUs one `plan_due` pass plans


def replan(tx: LedgerTx) -> list[dict[str, Any]]:
    """Before commit: plan the SKUs marked due that have few backorders, mark the others for
    after commit. Returns the promises that moved."""
    due = sorted(tx.effects.promises_due)
    tx.effects.promises_due.clear()
    if not due:
        return []
    waiting = _backordered(tx, due)
    later = [sku_id for sku_id in due if waiting.get(sku_id, 0) > IN_TX_UNITS]
    counts.mark_promises_due(tx, later)  # planned once after commit, not per order
    return plan(tx, [sku_id for sku_id in due if sku_id not in set(later)])


def _backordered(tx: LedgerTx, sku_ids: list[int]) -> dict[int, int]:
    """Open backordered units per SKU: the transaction's locked rows, else read."""
    found = {sku_id: tx.levels[sku_id].backordered for sku_id in sku_ids if sku_id in tx.levels}
    unread = [sku_id for sku_id in sku_ids if sku_id not in found]
    if unread:
        found.update(
            (int(sku_id), int(units))
            for sku_id, units in tx.session.execute(
                select(m.StockLevel.sku_id, m.StockLevel.backordered).where(
                    m.StockLevel.sku_id.in_(unread)
                )
            ).all()
        )
    return found


def plan(tx: LedgerTx, sku_ids: Collection[int]) -> list[dict[str, Any]]:
    """Plan these SKUs' promise dates now (their rows locked or not: a reader's snapshot)."""
    due = sorted(set(sku_ids))
    if not due:
        return []
    offers.read_incoming(tx, due)
    codes = counts.codes_of(tx, due)
    changes: list[dict[str, Any]] = []
    by_sku: dict[str, list[dict[str, Any]]] = {}
    for row in releasing.ranked_rows(tx.session, tx.rules, due, include_closed=False):
        by_sku.setdefault(row["sku"], []).append(row)  # each SKU's rows in release order
    for sku_id in due:
        rows = by_sku.get(codes[sku_id], [])
        incoming = [
            Incoming(line.eta, line.ordered - line.received) for _ref, line in tx.incoming[sku_id]
        ]
        dates = promise_dates([int(row["qty_open"]) for row in rows], incoming)
        for row, promised in zip(rows, dates, strict=True):
            backorder = tx.session.get(m.Backorder, row["id"])
            if backorder is not None:
                change = _promise(tx, backorder, promised, row)
                if change is not None:
                    changes.append(change)
    return changes


def due_skus(tx: LedgerTx, limit: int = DUE_PER_PASS) -> list[int]:
    return [
        int(sku_id)
        for sku_id in tx.session.scalars(
            select(m.StockLevel.sku_id)
            .where(m.StockLevel.promises_due.is_(True))
            .order_by(m.StockLevel.sku_id)
            .limit(limit)
        )
    ]


def plan_marked(tx: LedgerTx, sku_ids: Collection[int]) -> list[dict[str, Any]]:
    """After commit: plan SKUs marked `promises_due` (locked first, so no order of theirs is
    being recorded meanwhile), and clear the mark."""
    marked = counts.take_promises_due(tx, sku_ids)
    return plan(tx, marked) if marked else []


def _promise(
    tx: LedgerTx, backorder: m.Backorder, promised: date | None, row: dict[str, Any]
) -> dict[str, Any] | None:
    was, first = backorder.promised_on, backorder.promise_planned_at is None
    direction = None if first else moved(was, promised)
    commitments.promise(tx, backorder, promised, later=direction == "later")
    if direction is None:
        return None  # the same date, or its first: told with the backorder
    change = {
        "backorder": backorder.id, "order": f"{row['channel']}/{row['order']}",
        "line": row["line"], "units": row["qty_open"],
        "from": was.isoformat() if was else None,
        "to": promised.isoformat() if promised else None, "direction": direction,
    }  # fmt: skip
    tx.audit("backorder.promise_moved", row["sku"], change)
    return change
