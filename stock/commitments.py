"""Reservations and backorders of order lines (`reservation`, `backorder`): their only writer.

A line's *live* units are what it still commits: reserved (held from on_hand) plus open
backorders (promised against incoming). Every change here that alters what an order waits for
queues a write-back of that order to its channel (stock.outbox).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from stock import models as m
from stock import outbox
from stock.tx import LedgerTx


def reservation(tx: LedgerTx, order_line_id: int) -> m.Reservation | None:
    return tx.session.scalar(
        select(m.Reservation).where(m.Reservation.order_line_id == order_line_id)
    )


def reserved_units(tx: LedgerTx, order_line_id: int) -> int:
    found = reservation(tx, order_line_id)
    return found.qty if found else 0


def live_units(tx: LedgerTx, order_line_id: int) -> int:
    """Reserved + open backordered units of a line."""
    backordered = tx.session.scalar(
        select(func.coalesce(func.sum(m.Backorder.qty_open), 0)).where(
            m.Backorder.order_line_id == order_line_id
        )
    )
    return reserved_units(tx, order_line_id) + int(backordered or 0)


def reserve(tx: LedgerTx, line: m.OrderLine, qty: int) -> None:
    if qty <= 0:
        return
    found = reservation(tx, line.id)
    if found is None:
        tx.session.add(m.Reservation(order_line_id=line.id, sku_id=line.sku_id, qty=qty))
    else:
        found.qty += qty
    tx.session.flush()


def unreserve(tx: LedgerTx, found: m.Reservation, qty: int) -> None:
    if qty >= found.qty:
        tx.session.delete(found)
    else:
        found.qty -= qty
    tx.session.flush()


def backorder(tx: LedgerTx, line: m.OrderLine, qty: int, *, within_capacity: bool) -> None:
    """Promise `qty` units of the line against incoming stock."""
    outbox.queue_for_line(tx, line.id)
    tx.session.add(
        m.Backorder(
            order_line_id=line.id,
            sku_id=line.sku_id,
            qty_open=qty,
            qty_released=0,
            accepted_within_capacity=within_capacity,
            created_at=tx.now,
        )
    )
    tx.session.flush()


def cancel_units(tx: LedgerTx, line: m.OrderLine, units: int) -> None:
    """Drop `units` live units of a line: open backorders first (newest first), then reserved."""
    left = units
    for row in tx.session.scalars(
        select(m.Backorder)
        .where(m.Backorder.order_line_id == line.id, m.Backorder.qty_open > 0)
        .order_by(m.Backorder.id.desc())
    ):
        if left == 0:
            break
        take = min(left, row.qty_open)
        row.qty_open -= take
        left -= take
        outbox.queue_for_line(tx, line.id)
    if left:
        found = reservation(tx, line.id)
        if found is None or found.qty < left:
            raise AssertionError(f"line {line.id}: cannot cancel {units} live units")
        unreserve(tx, found, left)
    tx.session.flush()


def close_backorders(tx: LedgerTx, line: m.OrderLine) -> None:
    """The line shipped anyway (the merchant had units we did not know of): nothing waits."""
    rows = tx.session.scalars(
        select(m.Backorder).where(m.Backorder.order_line_id == line.id, m.Backorder.qty_open > 0)
    ).all()
    for row in rows:
        row.qty_open = 0
    if rows:
        outbox.queue_for_line(tx, line.id)


def fill_backorders(tx: LedgerTx, rows: Iterable[m.Backorder], units: int) -> None:
    """Release `units` over a line's backorder rows: promises made within capacity are
    settled first, then the flagged ones."""
    left = units
    for row in sorted(rows, key=lambda b: (not b.accepted_within_capacity, b.id)):
        take = min(left, row.qty_open)
        row.qty_open -= take
        row.qty_released += take
        left -= take


def demote_newest(tx: LedgerTx, sku_id: int, excess: int) -> int:
    """Move the newest reservations of a SKU back to backorder, up to `excess` units.

    A count below what is reserved: the orders placed last wait for stock again (flagged
    beyond capacity). Returns the units moved.
    """
    rows = tx.session.execute(
        select(m.Reservation, m.OrderLine)
        .join(m.OrderLine, m.OrderLine.id == m.Reservation.order_line_id)
        .join(m.ChannelOrder, m.ChannelOrder.id == m.OrderLine.order_id)
        .where(m.Reservation.sku_id == sku_id)
        .order_by(m.ChannelOrder.placed_at.desc(), m.Reservation.id.desc())
    ).all()
    moved = 0
    for found, line in rows:
        if excess <= 0:
            break
        take = min(excess, found.qty)
        unreserve(tx, found, take)
        backorder(tx, line, take, within_capacity=False)
        excess -= take
        moved += take
    return moved


@dataclass(frozen=True)
class SkuTotals:
    reserved: int
    backordered: int


def totals(session: Session, sku_ids: Iterable[int] | None = None) -> dict[int, SkuTotals]:
    """Reserved and open backordered units per SKU, for many SKUs in two grouped reads."""
    ids = None if sku_ids is None else sorted(set(sku_ids))
    reserved_q = select(m.Reservation.sku_id, func.sum(m.Reservation.qty)).group_by(
        m.Reservation.sku_id
    )
    backordered_q = (
        select(m.Backorder.sku_id, func.sum(m.Backorder.qty_open))
        .where(m.Backorder.qty_open > 0)
        .group_by(m.Backorder.sku_id)
    )
    if ids is not None:
        reserved_q = reserved_q.where(m.Reservation.sku_id.in_(ids))
        backordered_q = backordered_q.where(m.Backorder.sku_id.in_(ids))
    reserved = {int(s): int(u or 0) for s, u in session.execute(reserved_q).all()}
    backordered = {int(s): int(u or 0) for s, u in session.execute(backordered_q).all()}
    keys = set(reserved) | set(backordered) if ids is None else set(ids)
    return {s: SkuTotals(reserved.get(s, 0), backordered.get(s, 0)) for s in keys}


@dataclass(frozen=True)
class LineUnits:
    reserved: int
    backordered: int


def units_by_line(session: Session, line_ids: Iterable[int]) -> dict[int, LineUnits]:
    """Reserved and open backordered units per order line."""
    ids = sorted(set(line_ids))
    if not ids:
        return {}
    reserved = dict(
        session.execute(
            select(m.Reservation.order_line_id, m.Reservation.qty).where(
                m.Reservation.order_line_id.in_(ids)
            )
        ).all()
    )
    backordered = dict(
        session.execute(
            select(m.Backorder.order_line_id, func.sum(m.Backorder.qty_open))
            .where(m.Backorder.order_line_id.in_(ids))
            .group_by(m.Backorder.order_line_id)
        ).all()
    )
    return {i: LineUnits(int(reserved.get(i) or 0), int(backordered.get(i) or 0)) for i in ids}


def counts(session: Session) -> Mapping[str, int]:
    """Open backorder rows, and those accepted beyond capacity (status and gauges)."""
    open_rows, beyond = session.execute(
        select(
            func.count(),
            func.coalesce(
                func.sum(case((m.Backorder.accepted_within_capacity.is_(False), 1), else_=0)), 0
            ),
        )
        .select_from(m.Backorder)
        .where(m.Backorder.qty_open > 0)
    ).one()
    return {"open": int(open_rows or 0), "beyond_capacity": int(beyond or 0)}
