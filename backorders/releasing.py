"""Release on receipt: fill waiting backorders from sellable stock, in the ranked order.

Reads the waiting lines once, ranks them with backorders.ranking (the same path the
`stocksync backorders` listing uses), then moves units from backorder to reservation and queues
each touched order's write-back.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backorders import ranking
from stock import commitments, counts, listings, outbox
from stock import models as m
from stock.db import lock_stock_rows
from stock.tx import LedgerTx, ReleasedUnits


def release(tx: LedgerTx, sku_ids: Iterable[int]) -> list[ReleasedUnits]:
    """Fill open backorders of these SKUs from sellable stock, in the configured order."""
    ids = sorted(set(sku_ids))
    if not ids:
        return []
    rows = lock_stock_rows(tx.session, ids)
    reserved = commitments.totals(tx.session, ids)
    codes = counts.codes_of(tx, ids)
    available = {codes[s]: rows[s].on_hand - reserved[s].reserved for s in ids if s in rows}
    if all(units <= 0 for units in available.values()):
        return []
    found = tx.session.execute(
        select(m.Backorder, m.OrderLine, m.ChannelOrder)
        .join(m.OrderLine, m.OrderLine.id == m.Backorder.order_line_id)
        .join(m.ChannelOrder, m.ChannelOrder.id == m.OrderLine.order_id)
        .where(m.Backorder.sku_id.in_(ids), m.Backorder.qty_open > 0)
    ).all()
    if not found:
        return []
    per_line: dict[int, list[m.Backorder]] = defaultdict(list)
    context: dict[int, tuple[m.OrderLine, m.ChannelOrder]] = {}
    for backorder, line, order in found:
        per_line[line.id].append(backorder)
        context[line.id] = (line, order)
    waiting = [
        _waiting(line_rows, *context[line_id], codes) for line_id, line_rows in per_line.items()
    ]
    by_handle = {w.first_backorder_id: w.line_id for w in waiting}
    allocations, orders = ranking.plan(waiting, available, tx.rules)
    released: list[ReleasedUnits] = []
    for allocation in allocations:
        line_id = by_handle[allocation.backorder_id]
        line, order = context[line_id]
        commitments.fill_backorders(tx, per_line[line_id], allocation.qty)
        outbox.queue(tx, order.id, order.channel)
        commitments.reserve(tx, line, allocation.qty)
        released.append(
            ReleasedUnits(
                backorder_id=allocation.backorder_id,
                order_id=order.id,
                channel=order.channel,
                order_external_id=order.external_id,
                external_line_id=line.external_line_id,
                sku=allocation.sku,
                qty=allocation.qty,
                complete=allocation.complete,
            )
        )
        tx.audit(
            "backorder.release",
            allocation.sku,
            {
                "order": f"{order.channel}/{order.external_id}",
                "line": line.external_line_id,
                "units": allocation.qty,
                "rank_by": list(orders[allocation.sku]),
            },
        )
    tx.effects.released.extend(released)
    tx.session.flush()
    return released


def release_codes(tx: LedgerTx, codes: Iterable[str]) -> list[ReleasedUnits]:
    """Release by SKU code (what jobs carry); unknown codes are ignored."""
    ids = counts.ids_of(tx, codes).values()
    released = release(tx, ids)
    listings.mark_dirty(tx, ids)
    return released


def releasable_skus(session: Session) -> list[str]:
    """SKUs with sellable stock beside open backorders: a release is due (sweeper)."""
    reserved = (
        select(m.Reservation.sku_id, func.sum(m.Reservation.qty).label("units"))
        .group_by(m.Reservation.sku_id)
        .subquery()
    )
    waiting = select(m.Backorder.sku_id).where(m.Backorder.qty_open > 0).distinct().subquery()
    rows = session.execute(
        select(m.Sku.code)
        .join(m.StockLevel, m.StockLevel.sku_id == m.Sku.id)
        .join(waiting, waiting.c.sku_id == m.Sku.id)
        .outerjoin(reserved, reserved.c.sku_id == m.Sku.id)
        .where(m.StockLevel.on_hand - func.coalesce(reserved.c.units, 0) > 0)
        .order_by(m.Sku.code)
    ).all()
    return [str(code) for (code,) in rows]


def _waiting(
    rows: list[m.Backorder], line: m.OrderLine, order: m.ChannelOrder, codes: dict[int, str]
) -> ranking.WaitingLine:
    return ranking.WaitingLine(
        line_id=line.id,
        first_backorder_id=min(row.id for row in rows),
        sku=codes[line.sku_id],
        channel=order.channel,
        tier=order.tier,
        placed_at=order.placed_at,
        qty_open=sum(row.qty_open for row in rows),
    )


def listing(
    session: Session, rules: ranking.RankingRules, sku: str | None, include_closed: bool
) -> list[dict[str, Any]]:
    """Backorder rows in exactly the order a release would fill them now (`stocksync
    backorders`): lines ranked per SKU as the release ranks them (`rank` counts the lines that
    still wait; released ones keep their place with rank None); within a line, the rows a
    release settles first (within capacity, then oldest) first."""
    query = (
        select(m.Backorder, m.OrderLine, m.ChannelOrder, m.Sku.code)
        .join(m.OrderLine, m.OrderLine.id == m.Backorder.order_line_id)
        .join(m.ChannelOrder, m.ChannelOrder.id == m.OrderLine.order_id)
        .join(m.Sku, m.Sku.id == m.Backorder.sku_id)
    )
    if sku is not None:
        query = query.where(m.Sku.code == sku)
    if not include_closed:
        query = query.where(m.Backorder.qty_open > 0)
    per_line: dict[int, list[m.Backorder]] = defaultdict(list)
    context: dict[int, tuple[m.OrderLine, m.ChannelOrder, str]] = {}
    for backorder, line, order, code in session.execute(query).all():
        per_line[line.id].append(backorder)
        context[line.id] = (line, order, code)
    lines = []
    for line_id, rows in per_line.items():
        line, order, code = context[line_id]
        lines.append(_waiting(rows, line, order, {line.sku_id: code}))
    result: list[dict[str, Any]] = []
    ranks: dict[str, int] = defaultdict(int)  # position among the SKU's waiting lines
    for ranked_line in ranking.ranked(lines, rules):
        rank = None
        if ranked_line.qty_open > 0:
            ranks[ranked_line.sku] += 1
            rank = ranks[ranked_line.sku]
        line, order, code = context[ranked_line.line_id]
        rows = sorted(
            per_line[ranked_line.line_id], key=lambda b: (not b.accepted_within_capacity, b.id)
        )
        result += [_row(b, line, order, code, rules, rank) for b in rows]
    return result


def _row(
    backorder: m.Backorder,
    line: m.OrderLine,
    order: m.ChannelOrder,
    code: str,
    rules: ranking.RankingRules,
    rank: int | None,
) -> dict[str, Any]:
    rule = rules.rule_for(order.channel, code)
    return {
        "id": backorder.id,
        "sku": code,
        "channel": order.channel,
        "order": order.external_id,
        "line": line.external_line_id,
        "customer": order.customer_key,
        "tier": order.tier,
        "placed_at": order.placed_at.isoformat(),
        "qty_open": backorder.qty_open,
        "qty_released": backorder.qty_released,
        "beyond_capacity": not backorder.accepted_within_capacity,
        "priority": rule.priority.value,
        "partial": rule.release_partial.value,
        "release_order": list(rules.release_order(code).value),
        "rank": rank,
        "created_at": backorder.created_at.isoformat(),
    }
