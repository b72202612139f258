"""The reads of the backorder report (read only; the figures are backorders/report.py's).

A fixed handful of statements whatever the history, none per row:
1. the backorder rows created since `since` and every open one, summed per (SKU, channel,
   creation time, capacity flag) — rows of one transaction share their creation time;
2. the `backorder.release` audit entries since `since` (`ix_audit_entry_action`: action first);
3. the released rows of the order lines those entries name (each order by its unique
   (channel, external_id), BULK_CHUNK orders a statement);
4. only for lines with more than one released row: their earlier release entries, by
   (action, SKU) — `ix_audit_entry_action` again — so the replay of such a line starts right.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session

from backorders.report import (
    RELEASE_ACTION,
    BackorderGroup,
    ReleasedRow,
    ReleaseEntry,
    summarise,
)
from stock import models as m
from stock.commitments import BULK_CHUNK


def report(session: Session, since: datetime, now: datetime) -> dict[str, Any]:
    """`stocksync report backorders`: the figures of backorders/report.py."""
    releases = release_entries(session, since)
    rows = released_rows(session, {(e.order, e.line) for e in releases})
    shared = _lines_with_many_rows(rows)
    if shared:
        releases += earlier_release_entries(session, since, shared, {
            (e.order, e.line): e.sku for e in releases})  # fmt: skip
    return summarise(groups(session, since), releases, rows, since, now)


def groups(session: Session, since: datetime) -> list[BackorderGroup]:
    """The backorder rows created since `since` and every open one, summed per SKU, channel,
    creation time and capacity flag: one statement."""
    b, line, order = m.Backorder, m.OrderLine, m.ChannelOrder
    keys = (m.Sku.code, order.channel, b.created_at, b.accepted_within_capacity)
    query = (
        select(
            *keys,
            func.count(b.id),
            func.sum(case((b.qty_open > 0, 1), else_=0)),
            func.sum(case((and_(b.qty_open == 0, b.qty_released == 0), 1), else_=0)),
            func.sum(b.qty_open),
            func.sum(b.qty_released),
        )
        .join(line, line.id == b.order_line_id)
        .join(order, order.id == line.order_id)
        .join(m.Sku, m.Sku.id == b.sku_id)
        .where(or_(b.created_at >= since, b.qty_open > 0))
        .group_by(*keys)
    )
    return [
        BackorderGroup(str(code), str(channel), created, bool(within), int(n), int(waiting),
                       int(cancelled), int(qty_open or 0), int(released or 0))
        for code, channel, created, within, n, waiting, cancelled, qty_open, released
        in session.execute(query)
    ]  # fmt: skip


def release_entries(session: Session, since: datetime) -> list[ReleaseEntry]:
    e = m.AuditEntry
    query = select(e.id, e.at, e.subject, e.detail).where(e.action == RELEASE_ACTION, e.at >= since)
    return [_entry(*found) for found in session.execute(query)]


def earlier_release_entries(
    session: Session,
    since: datetime,
    lines: set[tuple[str, str]],
    sku_of: Mapping[tuple[str, str], str],
) -> list[ReleaseEntry]:
    """The release entries before `since` of these (order, line) keys, read by their SKUs."""
    e = m.AuditEntry
    skus = sorted({sku_of[key] for key in lines})
    found: list[ReleaseEntry] = []
    for chunk in _chunks(skus):
        query = select(e.id, e.at, e.subject, e.detail).where(
            e.action == RELEASE_ACTION, e.subject.in_(chunk), e.at < since
        )
        found += [
            entry
            for entry in (_entry(*row) for row in session.execute(query))
            if (entry.order, entry.line) in lines
        ]
    return found


def released_rows(session: Session, lines: set[tuple[str, str]]) -> list[ReleasedRow]:
    """The backorder rows with released units of these (order "channel/external id", external
    line id) keys: one statement per BULK_CHUNK orders, each order found by its unique
    (channel, external_id)."""
    orders = sorted({tuple(name.partition("/")[::2]) for name, _line in lines})
    b, line, order = m.Backorder, m.OrderLine, m.ChannelOrder
    found: list[ReleasedRow] = []
    for start in range(0, len(orders), BULK_CHUNK):
        per_channel: dict[str, list[str]] = defaultdict(list)
        for channel, external_id in orders[start : start + BULK_CHUNK]:
            per_channel[channel].append(external_id)
        query = (
            select(
                b.id,
                order.channel,
                order.external_id,
                line.external_line_id,
                b.created_at,
                b.accepted_within_capacity,
                b.qty_released,
            )
            .join(line, line.id == b.order_line_id)
            .join(order, order.id == line.order_id)
            .where(
                or_(*(and_(order.channel == channel, order.external_id.in_(ids))
                      for channel, ids in sorted(per_channel.items()))),
                b.qty_released > 0,
            )
        )  # fmt: skip
        for row_id, channel, external_id, line_id, created, within, released in session.execute(
            query
        ):
            key = (f"{channel}/{external_id}", str(line_id))
            if key in lines:
                found.append(ReleasedRow(int(row_id), *key, created, bool(within), int(released)))
    return found


def _lines_with_many_rows(rows: list[ReleasedRow]) -> set[tuple[str, str]]:
    count: dict[tuple[str, str], int] = defaultdict(int)
    for row in rows:
        count[(row.order, row.line)] += 1
    return {key for key, n in count.items() if n > 1}


def _entry(entry_id: int, at: datetime, subject: str, detail: Any) -> ReleaseEntry:
    detail = detail or {}
    return ReleaseEntry(
        int(entry_id), at, str(subject), str(detail.get("order", "")),
        str(detail.get("line", "")), int(detail.get("units", 0)),
    )  # fmt: skip


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), BULK_CHUNK):
        yield items[start : start + BULK_CHUNK]
