"""Channel pools (`pool_share`, `pool_move`): the only writer; what offers read of them.

A pooled SKU's channel is offered `allotted - sold` (capped by the formula's own number), where
`sold` is the channel's order lines' live and shipped units of the SKU. The plan of
stock.pool_policy is applied here, in the caller's ledger transaction (the SKU's stock row
locked): grants change an allotment at once; a move lowers the donor at once and is given to the
recipient by `complete_move`, once the donor's shop shows its lower number.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from stock import models as m
from stock.pool_policy import Grant, Move
from stock.tx import LedgerTx


@dataclass(frozen=True, slots=True)
class Share:
    channel: str
    allotted: int
    sold: int

    @property
    def remaining(self) -> int:
        return self.allotted - self.sold


def sold(session: Session, sku_ids: Collection[int] | None) -> dict[int, dict[str, int]]:
    """Units sold per SKU and channel: the lines' quantity less what was cancelled."""
    query = (
        select(
            m.OrderLine.sku_id,
            m.ChannelOrder.channel,
            func.sum(m.OrderLine.quantity - m.OrderLine.cancelled),
        )
        .join(m.ChannelOrder, m.ChannelOrder.id == m.OrderLine.order_id)
        .group_by(m.OrderLine.sku_id, m.ChannelOrder.channel)
    )
    if sku_ids is not None:
        query = query.where(m.OrderLine.sku_id.in_(sorted(sku_ids)))
    found: dict[int, dict[str, int]] = defaultdict(dict)
    for sku_id, channel, units in session.execute(query).all():
        found[int(sku_id)][str(channel)] = int(units or 0)
    return found


def shares(session: Session, sku_ids: Collection[int] | None) -> dict[int, tuple[Share, ...]]:
    """The pooled SKUs' shares (SKUs without a pool are absent), channel order."""
    query = select(m.PoolShare.sku_id, m.PoolShare.channel, m.PoolShare.allotted)
    if sku_ids is not None:
        query = query.where(m.PoolShare.sku_id.in_(sorted(sku_ids)))
    rows = session.execute(query.order_by(m.PoolShare.sku_id, m.PoolShare.channel)).all()
    if not rows:
        return {}
    units = sold(session, {int(r[0]) for r in rows})
    found: dict[int, list[Share]] = defaultdict(list)
    for sku_id, channel, allotted in rows:
        found[int(sku_id)].append(
            Share(str(channel), int(allotted), units.get(int(sku_id), {}).get(str(channel), 0))
        )
    return {sku_id: tuple(items) for sku_id, items in found.items()}


@dataclass(frozen=True, slots=True)
class RecentSales:
    units: int
    last_at: datetime  # the newest order of them


def recent_sales(session: Session, sku_id: int, since: datetime) -> dict[str, RecentSales]:
    """Units of the SKU ordered per channel since `since` (the sell rate's window)."""
    rows = session.execute(
        select(
            m.ChannelOrder.channel,
            func.sum(m.OrderLine.quantity),
            func.max(m.ChannelOrder.placed_at),
        )
        .join(m.ChannelOrder, m.ChannelOrder.id == m.OrderLine.order_id)
        .where(m.OrderLine.sku_id == sku_id, m.ChannelOrder.placed_at >= since)
        .group_by(m.ChannelOrder.channel)
    ).all()
    return {
        str(channel): RecentSales(int(units or 0), last)
        for channel, units, last in rows
        if last is not None
    }


@dataclass(frozen=True, slots=True)
class OpenMove:
    move_id: int
    source: str
    target: str
    units: int
    created_at: datetime


def open_moves(session: Session, sku_id: int) -> list[OpenMove]:
    rows = session.scalars(
        select(m.PoolMove)
        .where(m.PoolMove.sku_id == sku_id, m.PoolMove.status == "shrinking")
        .order_by(m.PoolMove.id)
    ).all()
    return [OpenMove(r.id, r.from_channel, r.to_channel, r.units, r.created_at) for r in rows]


def start(tx: LedgerTx, sku_id: int, code: str, allotments: Mapping[str, int], why: str) -> None:
    """The pool's first allotments: `allotments` units each may sell from now on (what each
    sold before is added, since `sold` counts every line)."""
    before = sold(tx.session, [sku_id]).get(sku_id, {})
    for channel, units in sorted(allotments.items()):
        tx.session.add(
            m.PoolShare(
                sku_id=sku_id,
                channel=channel,
                allotted=units + before.get(channel, 0),
                updated_at=tx.now,
            )
        )
    tx.audit("pool.start", code, {"allotments": dict(allotments), "why": why})


def add_channels(tx: LedgerTx, sku_id: int, channels: Collection[str]) -> None:
    """Channels that joined the pool later start with nothing left to sell."""
    before = sold(tx.session, [sku_id]).get(sku_id, {})
    for channel in sorted(channels):
        tx.session.add(
            m.PoolShare(
                sku_id=sku_id, channel=channel, allotted=before.get(channel, 0), updated_at=tx.now
            )
        )


def _change(tx: LedgerTx, sku_id: int, channel: str, units: int) -> None:
    tx.session.execute(
        update(m.PoolShare)
        .where(m.PoolShare.sku_id == sku_id, m.PoolShare.channel == channel)
        .values(allotted=m.PoolShare.allotted + units, updated_at=tx.now)
        .execution_options(synchronize_session=False)
    )


def grant(tx: LedgerTx, sku_id: int, code: str, item: Grant) -> None:
    _change(tx, sku_id, item.channel, item.units)
    if item.covers_sold:
        tx.audit("pool.cover_sold", code, {"channel": item.channel, "units": item.units})
        return
    source, target = (
        ("unallocated", item.channel) if item.units > 0 else (item.channel, "unallocated")
    )
    tx.audit(
        "pool.move",
        code,
        {"from": source, "to": target, "units": abs(item.units), "why": item.why},
    )


def move(tx: LedgerTx, sku_id: int, code: str, item: Move) -> None:
    """Take the units from the donor now; they wait `shrinking` until its shop shows less."""
    _change(tx, sku_id, item.source, -item.units)
    tx.session.add(
        m.PoolMove(
            sku_id=sku_id,
            from_channel=item.source,
            to_channel=item.target,
            units=item.units,
            status="shrinking",
            why=item.why,
            created_at=tx.now,
        )
    )
    tx.audit(
        "pool.move",
        code,
        {"from": item.source, "to": item.target, "units": item.units, "why": item.why,
         "state": "shrinking"},
    )  # fmt: skip


def complete_move(
    tx: LedgerTx, sku_id: int, code: str, item: OpenMove, donor_remaining: int
) -> int:
    """The donor's shop shows its lower number: give the units to the recipient, less what the
    donor sold beyond its allotment meanwhile (those go back to the donor, so it has none
    left). Returns the units given."""
    deficit = min(max(-donor_remaining, 0), item.units)
    given = item.units - deficit
    if deficit:
        _change(tx, sku_id, item.source, deficit)
    if given:
        _change(tx, sku_id, item.target, given)
    tx.session.execute(
        update(m.PoolMove)
        .where(m.PoolMove.id == item.move_id)
        .values(status="done", units_given=given, done_at=tx.now)
        .execution_options(synchronize_session=False)
    )
    tx.audit(
        "pool.move",
        code,
        {"from": item.source, "to": item.target, "units": given, "state": "given",
         "sold_by_donor_meanwhile": deficit, "move": item.move_id},
    )  # fmt: skip
    return given


def absorb_sold(tx: LedgerTx, sku_id: int, code: str, donor: str, deficit: int) -> int:
    """The donor sold units its open moves took away before its shop showed less: those units
    were sold, so they leave the moves now (newest move first) and the donor's allotment covers
    them; counted once, not as sold and as still on their way. Returns the units absorbed."""
    absorbed = 0
    for item in reversed(open_moves(tx.session, sku_id)):
        if item.source != donor or absorbed >= deficit:
            continue
        take = min(deficit - absorbed, item.units)
        values: dict[str, object] = (
            {"status": "done", "units_given": 0, "done_at": tx.now}
            if take == item.units
            else {"units": item.units - take}
        )
        tx.session.execute(
            update(m.PoolMove)
            .where(m.PoolMove.id == item.move_id)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        absorbed += take
    if absorbed:
        _change(tx, sku_id, donor, absorbed)
        tx.audit(
            "pool.move",
            code,
            {"from": donor, "units": absorbed, "state": "sold by the donor before its shop "
             "showed less: taken out of its moves"},
        )  # fmt: skip
    return absorbed
