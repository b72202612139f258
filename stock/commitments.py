"""Reservations and backorders of order lines (`reservation`, `backorder`): their only writer.

A line's *live* units are what it still commits: reserved (held from on_hand) plus open
backorders (promised against incoming). Every change here keeps the SKU's counters on its stock
row (`stock_level.reserved`, `.backordered`) equal to the rows, in the same transaction, and
queues a write-back of the order when what it waits for changed (stock.outbox). Rows are reached
through the line (`line.reservation`, `line.backorders`), so a new order's rows need no query.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy import case, func, insert, select, update
from sqlalchemy.orm import Session

from stock import models as m
from stock import outbox
from stock.tx import LedgerTx


def level(tx: LedgerTx, sku_id: int) -> m.StockLevel:
    """The SKU's stock row; the caller locked it, so it is in the session already."""
    found: m.StockLevel | None = tx.levels.get(sku_id)
    if found is None:
        raise LookupError(f"sku {sku_id}: its stock row is not locked by this transaction")
    return found


def reserved_units(line: m.OrderLine) -> int:
    return line.reservation.qty if line.reservation is not None else 0


def open_rows(line: m.OrderLine) -> list[m.Backorder]:
    return [row for row in line.backorders if row.qty_open > 0]


def live_units(line: m.OrderLine) -> int:
    """Reserved + open backordered units of a line."""
    return reserved_units(line) + sum(row.qty_open for row in line.backorders)


def reserve(tx: LedgerTx, line: m.OrderLine, qty: int) -> None:
    if qty <= 0:
        return
    if line.reservation is None:
        line.reservation = m.Reservation(sku_id=line.sku_id, qty=qty)
    else:
        line.reservation.qty += qty
    level(tx, line.sku_id).reserved += qty


def unreserve(tx: LedgerTx, line: m.OrderLine, qty: int) -> None:
    found = line.reservation
    if found is None or qty <= 0:
        return
    taken = min(qty, found.qty)
    if taken == found.qty:
        line.reservation = None  # delete-orphan: the row goes at flush
    else:
        found.qty -= taken
    level(tx, line.sku_id).reserved -= taken


def backorder(tx: LedgerTx, line: m.OrderLine, qty: int, *, within_capacity: bool) -> None:
    """Promise `qty` units of the line against incoming stock."""
    if qty <= 0:
        return
    line.backorders.append(
        m.Backorder(
            sku_id=line.sku_id,
            qty_open=qty,
            qty_released=0,
            accepted_within_capacity=within_capacity,
            created_at=tx.now,
        )
    )
    level(tx, line.sku_id).backordered += qty
    tx.effects.promises_due.add(line.sku_id)
    outbox.queue(tx, line.order)


def cancel_units(tx: LedgerTx, line: m.OrderLine, units: int) -> None:
    """Drop `units` live units of a line: open backorders first (newest first), then reserved."""
    left = units
    counters = level(tx, line.sku_id)
    for row in sorted(open_rows(line), key=_newest_first):
        if left == 0:
            break
        take = min(left, row.qty_open)
        row.qty_open -= take
        counters.backordered -= take
        tx.effects.promises_due.add(line.sku_id)
        left -= take
        outbox.queue(tx, line.order)
    if left:
        if reserved_units(line) < left:
            raise AssertionError(f"line {line.id}: cannot cancel {units} live units")
        unreserve(tx, line, left)


def close_backorders(tx: LedgerTx, line: m.OrderLine) -> None:
    """The line shipped anyway (the merchant had units we did not know of): nothing waits."""
    rows = open_rows(line)
    for row in rows:
        level(tx, line.sku_id).backordered -= row.qty_open
        tx.effects.promises_due.add(line.sku_id)
        row.qty_open = 0
    if rows:
        outbox.queue(tx, line.order)


@dataclass(frozen=True)
class OpenRow:
    """An open backorder row, as a set-based release reads it."""

    id: int
    line_id: int
    sku_id: int
    qty_open: int
    qty_released: int
    within_capacity: bool


def fill_lines(
    tx: LedgerTx,
    fills: Mapping[int, int],
    rows: Mapping[int, Sequence[OpenRow]],
    existing: Mapping[int, tuple[int, int]],
) -> None:
    """Release units of many lines at once (line id -> units), set-based: one bulk UPDATE of
    the backorder rows (within-capacity promises settled first), one of the reservations that
    exist (`existing`: line id -> (reservation id, qty), as the caller read them), one INSERT
    of new ones, and the counters. For thousands of lines after a receipt."""
    if not fills:
        return
    tx.session.flush()  # the rows below are written around the session: nothing may be pending
    updates: list[dict[str, int]] = []
    per_sku: dict[int, int] = defaultdict(int)
    for line_id, units in fills.items():
        left = units
        for row in sorted(rows[line_id], key=lambda r: (not r.within_capacity, r.id)):
            take = min(left, row.qty_open)
            if take:
                updates.append(
                    {"id": row.id, "qty_open": row.qty_open - take,
                     "qty_released": row.qty_released + take}
                )  # fmt: skip
                left -= take
        per_sku[rows[line_id][0].sku_id] += units - left
    sku_of = {line_id: line_rows[0].sku_id for line_id, line_rows in rows.items()}
    grown = [
        {"id": existing[line_id][0], "qty": existing[line_id][1] + units}
        for line_id, units in fills.items()
        if line_id in existing
    ]
    new = [
        {"order_line_id": line_id, "sku_id": sku_of[line_id], "qty": units}
        for line_id, units in fills.items()
        if line_id not in existing
    ]
    if updates:
        tx.session.execute(update(m.Backorder), updates)
    if grown:
        tx.session.execute(update(m.Reservation), grown)
    if new:
        tx.session.execute(insert(m.Reservation), new)
    # what the session held of these rows is stale now
    tx.session.expire_all()
    for sku_id, units in per_sku.items():
        counters = level(tx, sku_id)
        counters.backordered -= units
        counters.reserved += units
        tx.effects.promises_due.add(sku_id)


BULK_CHUNK = 5000  # rows per IN list (bound-parameter limits)


def _newest_first(row: m.Backorder) -> tuple[bool, int]:
    return (row.id is not None, -(row.id or 0))  # rows not flushed yet are the newest


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
        unreserve(tx, line, take)
        backorder(tx, line, take, within_capacity=False)
        excess -= take
        moved += take
    return moved


@dataclass(frozen=True)
class Cover:
    """What can still fill a SKU's open backorders."""

    backordered: int  # open backorder units (the SKU's counter)
    incoming: int  # units still to arrive on open purchase orders, whatever their eta
    sellable: int  # on hand beyond the reservations (0 when none)

    @property
    def units(self) -> int:
        return self.incoming + self.sellable

    @property
    def at_risk(self) -> int:
        """Backordered units nothing known will fill (a PO was cancelled or cut, or the
        channel sold beyond what is coming)."""
        return max(self.backordered - self.units, 0)


def cover(session: Session, codes: Iterable[str] | None = None) -> dict[str, Cover]:
    """SKU code -> Cover, for the SKUs with open backorders (of `codes`, or all).

    Backorders are promised against incoming units; when a purchase order is cancelled (or cut)
    the open backorders of a SKU may exceed what the remaining open POs and the sellable stock
    bring: those units are *at risk*. Which backorders hold them is the release order's tail
    (backorders.settle.mark_at_risk); this count needs no rules (the /metrics gauge).
    """
    open_po = (
        select(
            m.PoLine.sku_id.label("sku_id"),
            func.sum(m.PoLine.ordered - m.PoLine.received).label("units"),
        )
        .join(m.PurchaseOrder, m.PurchaseOrder.id == m.PoLine.po_id)
        .where(m.PurchaseOrder.status == "open", m.PoLine.ordered > m.PoLine.received)
        .group_by(m.PoLine.sku_id)
        .subquery()
    )
    query = (
        select(
            m.Sku.code,
            m.StockLevel.backordered,
            m.StockLevel.on_hand - m.StockLevel.reserved,
            func.coalesce(open_po.c.units, 0),
        )
        .join(m.StockLevel, m.StockLevel.sku_id == m.Sku.id)
        .outerjoin(open_po, open_po.c.sku_id == m.Sku.id)
        .where(m.StockLevel.backordered > 0)
    )
    wanted = None if codes is None else sorted(set(codes))
    parts = (
        [query]
        if wanted is None
        else [
            query.where(m.Sku.code.in_(wanted[start : start + BULK_CHUNK]))
            for start in range(0, len(wanted), BULK_CHUNK)
        ]
    )
    found: dict[str, Cover] = {}
    for part in parts:
        for code, backordered, sellable, incoming in session.execute(part).all():
            found[str(code)] = Cover(int(backordered), int(incoming), max(int(sellable), 0))
    return found


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
    """Open backorder rows, those accepted beyond capacity, and those whose promised date moved
    later than first promised (status and gauges)."""
    open_rows, beyond, moved = session.execute(
        select(
            func.count(),
            func.coalesce(
                func.sum(case((m.Backorder.accepted_within_capacity.is_(False), 1), else_=0)), 0
            ),
            func.coalesce(
                func.sum(case((m.Backorder.promise_moved_from.is_not(None), 1), else_=0)), 0
            ),
        )
        .select_from(m.Backorder)
        .where(m.Backorder.qty_open > 0)
    ).one()
    return {
        "open": int(open_rows or 0),
        "beyond_capacity": int(beyond or 0),
        "promise_moved": int(moved or 0),
    }


def counter_drift(session: Session) -> dict[int, tuple[int, int, int, int]]:
    """SKUs whose counters differ from the rows they summarise:
    sku id -> (reserved counter, Σ reservations, backordered counter, Σ open backorders).
    Empty on a healthy ledger; the property tests and `stocksync status` check it."""
    sums = totals(session)
    drift: dict[int, tuple[int, int, int, int]] = {}
    for sku_id, reserved, backordered in session.execute(
        select(m.StockLevel.sku_id, m.StockLevel.reserved, m.StockLevel.backordered)
    ).all():
        rows = sums.get(int(sku_id), SkuTotals(0, 0))
        if (reserved, backordered) != (rows.reserved, rows.backordered):
            drift[int(sku_id)] = (reserved, rows.reserved, backordered, rows.backordered)
    return drift


def promise(tx: LedgerTx, row: m.Backorder, promised: date | None, *, later: bool) -> None:
    """The date the backorder is promised now (issue #17; None: unknown). `later`: it moved
    later than before, so it is flagged with the date it moved from (kept while it stays
    later than the first promise); back on or before that date, the flag clears."""
    was = row.promised_on
    row.promised_on = promised
    row.promise_planned_at = tx.now
    if later and row.promise_moved_from is None:
        row.promise_moved_from = was
        row.promise_moved_at = tx.now
    first = row.promise_moved_from
    if first is not None and promised is not None and promised <= first:
        row.promise_moved_from = None
        row.promise_moved_at = None
