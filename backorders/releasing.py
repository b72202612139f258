"""Release on receipt: fill waiting backorders from sellable stock, in the ranked order.

Reads the waiting lines once, ranks them with backorders.ranking (the same path the
`stocksync backorders` listing uses), then moves units from backorder to reservation and queues
each touched order's write-back.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backorders import ranking
from stock import audit, commitments, counts, listings, outbox
from stock import models as m
from stock.tx import LedgerTx, ReleasedUnits


def release(tx: LedgerTx, sku_ids: Iterable[int]) -> list[ReleasedUnits]:
    """Fill open backorders of these SKUs from sellable stock, in the configured order.

    Set-based: one read of the waiting rows, the pure ranking, then a few bulk statements
    (stock.commitments.fill_lines, stock.outbox.queue_orders, stock.audit.record_many),
    whatever the number of backorders.
    """
    ids = sorted(set(sku_ids))
    if not ids:
        return []
    levels = counts.lock(tx, ids)
    codes = counts.codes_of(tx, ids)
    available = {codes[s]: levels[s].on_hand - levels[s].reserved for s in ids}
    if all(units <= 0 for units in available.values()):
        return []
    context = _Context()
    rows, lines = _waiting_rows(tx, ids, codes, context)
    if not rows:
        return []
    allocations, orders = ranking.plan(list(lines.values()), available, tx.rules)
    if not allocations:
        return []
    fills: dict[int, int] = {}
    released: list[ReleasedUnits] = []
    entries: list[tuple[str, str, dict[str, Any]]] = []
    for allocation in allocations:
        line_id = lines[allocation.backorder_id].line_id
        order_id, channel, external_id, external_line = context.lines[line_id]
        fills[line_id] = allocation.qty
        released.append(
            ReleasedUnits(
                backorder_id=allocation.backorder_id,
                order_id=order_id,
                channel=channel,
                order_external_id=external_id,
                external_line_id=external_line,
                sku=allocation.sku,
                qty=allocation.qty,
                complete=allocation.complete,
            )
        )
        entries.append(
            (
                "backorder.release",
                allocation.sku,
                {
                    "order": f"{channel}/{external_id}",
                    "line": external_line,
                    "units": allocation.qty,
                    "rank_by": list(orders[allocation.sku]),
                },
            )
        )
    commitments.fill_lines(tx, fills, rows, context.reservations)
    outbox.queue_orders(tx, {r.order_id: r.channel for r in released}, context.writebacks)
    audit.record_many(tx.session, tx.now, tx.actor, entries)
    tx.effects.released.extend(released)
    return released


@dataclass
class _Context:
    """What the writes of a release need to know of the waiting lines, read with them."""

    lines: dict[int, tuple[int, str, str, str]] = field(default_factory=dict)  # order, names
    reservations: dict[int, tuple[int, int]] = field(default_factory=dict)  # line -> (id, qty)
    writebacks: dict[int, tuple[int, int]] = field(default_factory=dict)  # order -> (id, ver)


def _waiting_rows(
    tx: LedgerTx, sku_ids: list[int], codes: dict[int, str], context: _Context
) -> tuple[dict[int, list[commitments.OpenRow]], dict[int, ranking.WaitingLine]]:
    """The open backorder rows of these SKUs per line, and one candidate per line (keyed by
    its handle, the line's first row id); fills `context` from the same read."""
    found = tx.session.execute(
        select(
            m.Backorder.id,
            m.Backorder.order_line_id,
            m.Backorder.sku_id,
            m.Backorder.qty_open,
            m.Backorder.qty_released,
            m.Backorder.accepted_within_capacity,
            m.ChannelOrder.channel,
            m.ChannelOrder.tier,
            m.ChannelOrder.placed_at,
            m.ChannelOrder.id,
            m.ChannelOrder.external_id,
            m.OrderLine.external_line_id,
            m.Reservation.id,
            m.Reservation.qty,
            m.Writeback.id,
            m.Writeback.version,
        )
        .join(m.OrderLine, m.OrderLine.id == m.Backorder.order_line_id)
        .join(m.ChannelOrder, m.ChannelOrder.id == m.OrderLine.order_id)
        .outerjoin(m.Reservation, m.Reservation.order_line_id == m.OrderLine.id)
        .outerjoin(m.Writeback, m.Writeback.order_id == m.ChannelOrder.id)
        .where(m.Backorder.sku_id.in_(sku_ids), m.Backorder.qty_open > 0)
    ).all()
    rows: dict[int, list[commitments.OpenRow]] = defaultdict(list)
    about: dict[int, tuple[str, str | None, datetime]] = {}
    for (
        row_id, line_id, sku_id, qty_open, qty_released, within, channel, tier, placed,
        order_id, external_id, external_line, reservation_id, reserved, outbox_id, version,
    ) in found:  # fmt: skip
        rows[line_id].append(
            commitments.OpenRow(row_id, line_id, sku_id, qty_open, qty_released, within)
        )
        about[line_id] = (channel, tier, placed)
        context.lines[line_id] = (order_id, channel, external_id, external_line)
        if reservation_id is not None:
            context.reservations[line_id] = (reservation_id, reserved)
        if outbox_id is not None:
            context.writebacks[order_id] = (outbox_id, version)
    lines: dict[int, ranking.WaitingLine] = {}
    for line_id, line_rows in rows.items():
        channel, tier, placed = about[line_id]
        waiting = _waiting_line(
            line_id,
            [(row.id, row.qty_open) for row in line_rows],
            codes[line_rows[0].sku_id],
            channel,
            tier,
            placed,
        )
        lines[waiting.first_backorder_id] = waiting
    return rows, lines


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


def _waiting_line(
    line_id: int,
    rows: Sequence[tuple[int, int]],
    sku: str,
    channel: str,
    tier: str | None,
    placed_at: datetime,
) -> ranking.WaitingLine:
    """One candidate per line from its backorder rows (id, units open). The handle, which also
    breaks ties, is the line's first OPEN row, for the release and the listing alike (the
    listing with `--all` also reads rows released before)."""
    open_ids = [row_id for row_id, units in rows if units > 0]
    return ranking.WaitingLine(
        line_id=line_id,
        first_backorder_id=min(open_ids or [row_id for row_id, _units in rows]),
        sku=sku,
        channel=channel,
        tier=tier,
        placed_at=placed_at,
        qty_open=sum(units for _row_id, units in rows),
    )


def listing(
    session: Session, rules: ranking.RankingRules, sku: str | None, include_closed: bool
) -> list[dict[str, Any]]:
    """Every backorder row (of one SKU, or all) in exactly the order a release would fill them
    now; see `listing_page`."""
    return listing_page(session, rules, sku, include_closed)[0]


def listing_page(
    session: Session,
    rules: ranking.RankingRules,
    sku: str | None,
    include_closed: bool,
    *,
    limit: int | None = None,
    after_sku: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Backorder rows in exactly the order a release would fill them now (`stocksync
    backorders`): lines ranked per SKU as the release ranks them (`rank` counts the lines that
    still wait; released ones keep their place with rank None); within a line, the rows a
    release settles first (within capacity, then oldest) first.

    A page holds whole SKUs, in code order after `after_sku`: as many as fit in `limit` rows
    (at least one, however many rows it has), so each SKU is ranked on its page alone. Returns
    the rows and the last SKU of the page when more SKUs follow (the next page's `after_sku`).
    """
    skus = select(m.Sku.id, m.Sku.code, func.count()).join(
        m.Backorder, m.Backorder.sku_id == m.Sku.id
    )
    if sku is not None:
        skus = skus.where(m.Sku.code == sku)
    if not include_closed:
        skus = skus.where(m.Backorder.qty_open > 0)
    if after_sku is not None:
        skus = skus.where(m.Sku.code > after_sku)
    skus = skus.group_by(m.Sku.id, m.Sku.code).order_by(m.Sku.code)
    if limit is not None:
        skus = skus.limit(limit + 1)  # every SKU listed has a row: one more tells if more follow
    page: list[int] = []
    next_after: str | None = None
    taken = 0
    for sku_id, code, count in session.execute(skus).all():
        if limit is not None and page and taken + count > limit:
            break
        page.append(int(sku_id))
        taken += int(count)
        next_after = str(code)
    else:
        next_after = None  # nothing left after the page
    if not page:
        return [], None
    return ranked_rows(session, rules, page, include_closed), next_after


def ranked_rows(
    session: Session, rules: ranking.RankingRules, sku_ids: Sequence[int], include_closed: bool
) -> list[dict[str, Any]]:
    """The backorder rows of these SKUs in release order per SKU (two queries in all)."""
    page = list(sku_ids)
    query = (
        select(m.Backorder, m.OrderLine, m.ChannelOrder, m.Sku.code)
        .join(m.OrderLine, m.OrderLine.id == m.Backorder.order_line_id)
        .join(m.ChannelOrder, m.ChannelOrder.id == m.OrderLine.order_id)
        .join(m.Sku, m.Sku.id == m.Backorder.sku_id)
        .where(m.Backorder.sku_id.in_(page))
    )
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
        lines.append(
            _waiting_line(
                line.id,
                [(row.id, row.qty_open) for row in rows],
                code,
                order.channel,
                order.tier,
                order.placed_at,
            )
        )
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
        # when it should be filled (the ETA of the PO line that fills it; None: unknown), and
        # the date first promised when a re-plan moved it later
        "promised_on": _iso(backorder.promised_on),
        "promise_moved_from": _iso(backorder.promise_moved_from),
    }


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None
