"""SKUs and stock on hand (`sku`, `stock_level`): their only writer.

A count that raises on_hand makes a release due; one that lowers it makes a demotion due
(reservations beyond on_hand wait for stock again). Both are settled before the transaction
commits (backorders.settle), so waiting backorders are never overtaken by a later order.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from stock import listings
from stock import models as m
from stock.db import lock_stock_rows
from stock.tx import LedgerInputError, LedgerTx


def ensure_skus(tx: LedgerTx, codes: Iterable[str]) -> dict[str, int]:
    """SKU code -> id, creating missing SKUs (and their zero stock row) race-free."""
    wanted = sorted(set(codes))
    if not wanted:
        return {}
    for code in wanted:
        if not code or len(code) > 255:
            raise LedgerInputError(code or "(empty)", "a SKU code must be 1-255 characters")
    known = ids_of(tx, wanted)
    if len(known) == len(wanted):
        return known  # the common case: no insert, no conflict handling
    insert = pg_insert if tx.dialect == "postgresql" else sqlite_insert
    rows = [{"code": code, "created_at": tx.now} for code in wanted]
    tx.session.execute(insert(m.Sku).values(rows).on_conflict_do_nothing(index_elements=["code"]))
    ids = ids_of(tx, wanted)
    stock_rows = [
        {"sku_id": sku_id, "on_hand": 0, "oversold": 0, "updated_at": tx.now}
        for sku_id in ids.values()
    ]
    tx.session.execute(
        insert(m.StockLevel).values(stock_rows).on_conflict_do_nothing(index_elements=["sku_id"])
    )
    return ids


def ids_of(tx: LedgerTx, codes: Iterable[str]) -> dict[str, int]:
    """SKU code -> id for the codes that exist; unknown codes are left out."""
    wanted = sorted(set(codes))
    if not wanted:
        return {}
    found = tx.session.execute(select(m.Sku.code, m.Sku.id).where(m.Sku.code.in_(wanted)))
    return {str(code): int(sku_id) for code, sku_id in found.all()}


def codes_of(tx: LedgerTx, sku_ids: Iterable[int]) -> dict[int, str]:
    ids = sorted(set(sku_ids))
    if not ids:
        return {}
    found = tx.session.execute(select(m.Sku.id, m.Sku.code).where(m.Sku.id.in_(ids)))
    return {int(sku_id): str(code) for sku_id, code in found.all()}


def sku_id(tx: LedgerTx, code: str) -> int:
    found = tx.session.scalar(select(m.Sku.id).where(m.Sku.code == code))
    if found is None:
        raise LedgerInputError(code, "unknown SKU")
    return int(found)


def set_stock(tx: LedgerTx, code: str, on_hand: int, reason: str | None = None) -> int:
    """Count stock: on_hand becomes `on_hand`. Returns the new on_hand."""
    if on_hand < 0:
        raise LedgerInputError(code, f"on hand cannot be negative, got {on_hand}")
    sku = ensure_skus(tx, [code])[code]
    row = lock_stock_rows(tx.session, [sku])[sku]
    return _change_on_hand(tx, code, row, on_hand - row.on_hand, "stock.set", reason)


def adjust_stock(tx: LedgerTx, code: str, delta: int, reason: str | None = None) -> int:
    """Add `delta` (may be negative) to on_hand. Returns the new on_hand."""
    sku = ensure_skus(tx, [code])[code]
    row = lock_stock_rows(tx.session, [sku])[sku]
    if row.on_hand + delta < 0:
        raise LedgerInputError(
            code, f"adjusting {row.on_hand} by {delta} would leave {row.on_hand + delta}"
        )
    return _change_on_hand(tx, code, row, delta, "stock.adjust", reason)


def _change_on_hand(
    tx: LedgerTx, code: str, row: m.StockLevel, delta: int, action: str, reason: str | None
) -> int:
    before = row.on_hand
    row.on_hand = before + delta
    row.updated_at = tx.now
    tx.audit(action, code, {"before": before, "after": row.on_hand, "reason": reason})
    _note_change(tx, row.sku_id, delta)
    listings.mark_dirty(tx, [row.sku_id])
    return row.on_hand


def receive_units(tx: LedgerTx, rows: dict[int, m.StockLevel], units: dict[int, int]) -> None:
    """Goods arrived: add units to on_hand of rows the caller has locked."""
    for sku, qty in units.items():
        rows[sku].on_hand += qty
        rows[sku].updated_at = tx.now
        _note_change(tx, sku, qty)
    listings.mark_dirty(tx, units)


def ship_units(tx: LedgerTx, sku: int, code: str, units: int) -> None:
    """Units left the warehouse; what on_hand cannot cover is recorded as oversold."""
    if units <= 0:
        return
    row = lock_stock_rows(tx.session, [sku])[sku]
    short = max(units - row.on_hand, 0)
    row.on_hand = max(row.on_hand - units, 0)
    row.oversold += short
    row.updated_at = tx.now
    if short:
        tx.effects.add_oversold(code, short)
        tx.audit("stock.oversell", code, {"shipped_beyond_on_hand": short})
    # it may have shipped from unreserved units: on_hand may now be below what others reserve
    tx.effects.demote_due.add(sku)


def _note_change(tx: LedgerTx, sku: int, delta: int) -> None:
    if delta > 0:
        tx.effects.release_due.add(sku)
    elif delta < 0:
        tx.effects.demote_due.add(sku)
