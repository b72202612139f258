"""Bulk seeding of a migrated ledger for the benchmarks: many SKUs with stock, mapped listings,
purchase-order lines and backorders, written with multi-row INSERTs (not the ledger's
per-row API, which would take longer than what is measured).

Rows are written as the ledger itself would leave them; where the schema keeps per-SKU counters
on `stock_level` (reserved, backordered), `recount` sets them from the rows they summarise (the
same statement the counters' migration runs), so a seeded ledger is a consistent one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    any_,
    bindparam,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import InstrumentedAttribute, Session

from stock import models as m

CHUNK = 5000  # rows per INSERT statement batch and ids per IN list


def chunks(values: Sequence[Any], size: int = CHUNK) -> list[Sequence[Any]]:
    return [values[i : i + size] for i in range(0, len(values), size)]


def add_skus(
    session: Session,
    codes: Sequence[str],
    on_hand: Callable[[int], int],
    now: datetime,
) -> dict[str, int]:
    """SKUs `codes` with stock rows (on_hand(index)); returns code -> id."""
    for part in chunks(list(codes)):
        session.execute(insert(m.Sku), [{"code": code, "created_at": now} for code in part])
    ids: dict[str, int] = {}
    for part in chunks(list(codes)):
        ids.update(
            (str(code), int(sku_id))
            for code, sku_id in session.execute(
                select(m.Sku.code, m.Sku.id).where(m.Sku.code.in_(part))
            ).all()
        )
    if len(ids) != len(codes):
        raise RuntimeError(f"seeded {len(codes)} SKUs but found {len(ids)}")
    rows = [
        {"sku_id": ids[code], "on_hand": on_hand(i), "oversold": 0, "updated_at": now}
        for i, code in enumerate(codes)
    ]
    for part in chunks(rows):
        session.execute(insert(m.StockLevel), list(part))
    return ids


def add_listings(
    session: Session,
    channel: str,
    sku_ids: Mapping[str, int],
    quantity: Callable[[str], int],
    *,
    dirty: bool = False,
    now: datetime,
) -> None:
    """A mapped listing on `channel` per SKU, showing `quantity(code)` as last pushed and seen."""
    rows = [
        {
            "channel": channel,
            "sku_id": sku_id,
            "external_ids": {"inventory_item_id": f"gid://shopify/InventoryItem/{sku_id}"},
            "last_pushed": quantity(code),
            "last_seen": quantity(code),
            "pushed_at": now,
            "dirty": dirty,
            "dirty_since": now if dirty else None,
        }
        for code, sku_id in sku_ids.items()
    ]
    for part in chunks(rows):
        session.execute(insert(m.Listing), list(part))


def add_po(session: Session, ref: str, eta: date, lines: Mapping[int, int], now: datetime) -> None:
    """An open purchase order with `lines` (sku id -> ordered)."""
    po_id = session.scalar(
        insert(m.PurchaseOrder)
        .values(ref=ref, supplier="bench", eta=eta, status="open", created_at=now)
        .returning(m.PurchaseOrder.id)
    )
    rows = [
        {"po_id": po_id, "sku_id": sku_id, "ordered": qty, "received": 0}
        for sku_id, qty in lines.items()
    ]
    for part in chunks(rows):
        session.execute(insert(m.PoLine), list(part))


def among(
    session: Session, column: InstrumentedAttribute[int], ids: Sequence[int]
) -> list[ColumnElement[bool]]:
    """`column` among `ids`, one condition per statement to run: on PostgreSQL one array
    parameter (`= ANY(:ids)`: psycopg converts a query with thousands of IN parameters on the
    client, slowly), elsewhere IN lists of CHUNK."""
    ordered = sorted(ids)
    if session.get_bind().dialect.name == "postgresql":
        return [column == any_(bindparam(None, ordered, type_=ARRAY(BigInteger)))]
    return [column.in_(part) for part in chunks(ordered)]


def mark_dirty(session: Session, channel: str, sku_ids: Sequence[int], now: datetime) -> None:
    """These SKUs' listings changed (as a ledger write marks them: dirty, version bumped)."""
    for condition in among(session, m.Listing.sku_id, sku_ids):
        session.execute(
            update(m.Listing)
            .where(m.Listing.channel == channel, condition)
            .values(dirty=True, dirty_since=now, dirty_version=m.Listing.dirty_version + 1)
            .execution_options(synchronize_session=False)
        )


def mark_clean(session: Session, listing_ids: Sequence[int]) -> None:
    """What a push leaves behind: these listings are clean."""
    for condition in among(session, m.Listing.id, listing_ids):
        session.execute(
            update(m.Listing)
            .where(condition)
            .values(dirty=False, dirty_since=None)
            .execution_options(synchronize_session=False)
        )


def has_counters() -> bool:
    """Whether this schema keeps reserved/backordered counters on stock_level."""
    columns = m.StockLevel.__table__.c
    return "reserved" in columns and "backordered" in columns


def recount(session: Session) -> None:
    """Set the stock_level counters from the rows they summarise (no-op without counters)."""
    if has_counters():
        session.execute(
            text(
                "UPDATE stock_level SET "
                "reserved = COALESCE((SELECT SUM(qty) FROM reservation "
                "WHERE reservation.sku_id = stock_level.sku_id), 0), "
                "backordered = COALESCE((SELECT SUM(qty_open) FROM backorder "
                "WHERE backorder.sku_id = stock_level.sku_id), 0)"
            )
        )


def counter_mismatches(session: Session) -> list[dict[str, int]]:
    """SKUs whose counters differ from their rows (empty without counters): a self-check."""
    if not has_counters():
        return []
    reserved = (
        select(m.Reservation.sku_id, func.sum(m.Reservation.qty).label("n"))
        .group_by(m.Reservation.sku_id)
        .subquery()
    )
    backordered = (
        select(m.Backorder.sku_id, func.sum(m.Backorder.qty_open).label("n"))
        .group_by(m.Backorder.sku_id)
        .subquery()
    )
    level: Any = m.StockLevel
    rows = session.execute(
        select(
            level.sku_id,
            level.reserved,
            func.coalesce(reserved.c.n, 0),
            level.backordered,
            func.coalesce(backordered.c.n, 0),
        )
        .outerjoin(reserved, reserved.c.sku_id == level.sku_id)
        .outerjoin(backordered, backordered.c.sku_id == level.sku_id)
        .where(
            (level.reserved != func.coalesce(reserved.c.n, 0))
            | (level.backordered != func.coalesce(backordered.c.n, 0))
        )
        .limit(10)
    ).all()
    return [
        {"sku_id": int(r[0]), "reserved": int(r[1]), "reservation_rows": int(r[2]),
         "backordered": int(r[3]), "backorder_rows": int(r[4])}
        for r in rows
    ]  # fmt: skip
