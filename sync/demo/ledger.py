"""What the ledger says during and after the demo: per-SKU terms and end-of-day totals."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import func, select

from stock import commitments, inbox, offers
from stock import models as m
from sync.context import AppContext


@dataclass(frozen=True)
class SkuLedger:
    sku: str
    on_hand: int
    reserved: int
    backordered: int
    incoming: int
    oversold: int  # the ledger's own record of units shipped beyond on hand
    offered: dict[str, int]  # channel -> offered quantity
    pushed_at: dict[str, str | None]  # channel -> when the last push landed


def sku_rows(ctx: AppContext) -> list[SkuLedger]:
    """One short read; the same terms `stocksync status` and `explain` print."""
    with ctx.read() as session:
        rows = offers.status_rows(session, ctx.config, ctx.channel_names, datetime.now(UTC).date())
        pushed = {
            (channel, code): at
            for channel, code, at in session.execute(
                select(m.Listing.channel, m.Sku.code, m.Listing.pushed_at).join(
                    m.Sku, m.Sku.id == m.Listing.sku_id
                )
            ).all()
        }
    return [
        SkuLedger(
            sku=row["sku"],
            on_hand=row["on_hand"],
            reserved=row["reserved"],
            backordered=row["backordered"],
            incoming=row["incoming"],
            oversold=row["oversold"],
            offered=row["offered"],
            pushed_at={
                channel: at.isoformat() if (at := pushed.get((channel, row["sku"]))) else None
                for channel in row["offered"]
            },
        )
        for row in rows
    ]


@dataclass(frozen=True)
class LedgerTotals:
    orders: dict[str, int]  # channel -> orders recorded
    units: dict[str, dict[str, int]]  # channel -> sku -> units ordered
    received: dict[str, int]  # sku -> units received on purchase orders
    backorders_created: int  # backorder rows
    backordered_units: int  # units ever backordered
    released_units: int
    backorders_open: int
    beyond_capacity: int  # backorders accepted beyond incoming capacity (a race), flagged
    inbox_failed: int
    writebacks: dict[str, int] = field(default_factory=dict)  # status -> rows


def totals(ctx: AppContext) -> LedgerTotals:
    with ctx.read() as session:
        orders = dict(
            session.execute(
                select(m.ChannelOrder.channel, func.count()).group_by(m.ChannelOrder.channel)
            ).all()
        )
        units: dict[str, dict[str, int]] = {}
        for channel, code, qty in session.execute(
            select(m.ChannelOrder.channel, m.Sku.code, func.sum(m.OrderLine.quantity))
            .join(m.OrderLine, m.OrderLine.order_id == m.ChannelOrder.id)
            .join(m.Sku, m.Sku.id == m.OrderLine.sku_id)
            .group_by(m.ChannelOrder.channel, m.Sku.code)
        ).all():
            units.setdefault(channel, {})[code] = int(qty or 0)
        received = {
            code: int(qty or 0)
            for code, qty in session.execute(
                select(m.Sku.code, func.sum(m.PoLine.received))
                .join(m.Sku, m.Sku.id == m.PoLine.sku_id)
                .group_by(m.Sku.code)
            ).all()
        }
        created, open_units, released = session.execute(
            select(
                func.count(m.Backorder.id),
                func.coalesce(func.sum(m.Backorder.qty_open), 0),
                func.coalesce(func.sum(m.Backorder.qty_released), 0),
            )
        ).one()
        open_rows = commitments.counts(session)["open"]
        beyond = session.scalar(
            select(func.count())
            .select_from(m.Backorder)
            .where(m.Backorder.accepted_within_capacity.is_(False))
        )
        failed = inbox.counts(session)["failed"]
        writebacks = dict(
            session.execute(
                select(m.Writeback.status, func.count()).group_by(m.Writeback.status)
            ).all()
        )
    return LedgerTotals(
        orders={str(k): int(v) for k, v in orders.items()},
        units=units,
        received=received,
        backorders_created=int(created or 0),
        backordered_units=int(open_units or 0) + int(released or 0),
        released_units=int(released or 0),
        backorders_open=int(open_rows or 0),
        beyond_capacity=int(beyond or 0),
        inbox_failed=int(failed or 0),
        writebacks={str(k): int(v) for k, v in writebacks.items()},
    )


def inbox_pending(ctx: AppContext) -> int:
    """Events stored but not applied yet (failed ones are counted in `totals`)."""
    with ctx.read() as session:
        return inbox.counts(session)["pending"]
