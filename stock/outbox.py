"""The write-back outbox (`writeback`, and `channel_order.backorder_hold`): their only writer.

A ledger change to what an order waits for queues its write-back in the same transaction (a
crash between the change and the channel call loses nothing). A job then brings the channel's
hold to the ledger's open backorders, recording around the call what the channel holds:

- `backorder_hold` maps external line id -> units held on the channel. Before a job talks to
  the channel it writes the UNSURE mark (key "?", value: epoch seconds): until the job records
  the result, what the channel holds is unknown (a killed job may have placed or lifted a hold).
- A row is `pending` until a job finishes it at the version it read (`done`), or `failed` for
  good (a permanent error, visible in `status`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from stock import models as m
from stock.tx import LedgerTx

UNSURE = "?"  # key in backorder_hold: a job died mid-call; its value is when (epoch seconds)
# A call sent by a job that then died may still land after the next job's lift: a write-back
# that found such a mark repeats (via the sweeper) until this long after the mark.
IN_FLIGHT_GRACE_S = 5
# The sweeper compares recently finished write-backs with the ledger over this window.
HOLD_CHECK_WINDOW = timedelta(minutes=10)


class WritebackStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


def merge_holds(*holds: Mapping[str, int]) -> dict[str, int]:
    """The union of holds, the larger count per line; the UNSURE mark is not a line."""
    merged: dict[str, int] = {}
    for hold in holds:
        for line, units in hold.items():
            if line != UNSURE:
                merged[line] = max(merged.get(line, 0), units)
    return merged


# ------------------------------------------------------------------ queueing (ledger side)
def queue(tx: LedgerTx, order: m.ChannelOrder) -> None:
    """The order's backorder state changed: queue a write-back to its channel."""
    if order.channel not in tx.listed_channels or id(order) in tx.writebacks:
        return
    row = None
    if order.id is not None:
        if order.id not in tx.stored_writebacks:
            preload(tx, [order.id])
        row = tx.stored_writebacks[order.id]
    if row is None:
        row = m.Writeback(
            order=order,
            channel=order.channel,
            status=WritebackStatus.PENDING,
            version=1,
            attempts=0,
            updated_at=tx.now,
        )
        tx.session.add(row)
    else:
        row.status = WritebackStatus.PENDING
        row.version += 1
        row.attempts = 0
        row.error = None
        row.updated_at = tx.now
    tx.writebacks[id(order)] = row


def queue_orders(
    tx: LedgerTx, orders: Mapping[int, str], stored: Mapping[int, tuple[int, int]]
) -> None:
    """Queue write-backs of many orders (order id -> channel) at once, set-based: one bulk
    UPDATE of the rows that exist (`stored`: order id -> (row id, version), as the caller read
    them with the orders), one INSERT of the new ones (a release touches thousands)."""
    wanted = {order_id: ch for order_id, ch in orders.items() if ch in tx.listed_channels}
    if not wanted:
        return
    tx.session.flush()
    ids = sorted(wanted)
    bumped = [
        {"id": row_id, "status": WritebackStatus.PENDING, "version": version + 1, "attempts": 0,
         "error": None, "updated_at": tx.now}
        for order_id, (row_id, version) in stored.items()
        if order_id in wanted
    ]  # fmt: skip
    new = [
        {"order_id": order_id, "channel": wanted[order_id], "status": WritebackStatus.PENDING,
         "version": 1, "attempts": 0, "updated_at": tx.now}
        for order_id in ids
        if order_id not in stored
    ]  # fmt: skip
    if bumped:
        tx.session.execute(update(m.Writeback), bumped)
    if new:
        tx.effects.writebacks.update(
            tx.session.scalars(insert(m.Writeback).returning(m.Writeback.id), new)
        )
    tx.effects.writebacks.update(row_id for o, (row_id, _v) in stored.items() if o in wanted)
    for order_id in ids:
        tx.stored_writebacks.pop(order_id, None)  # re-read if queued again in this transaction
    tx.session.expire_all()


def preload(tx: LedgerTx, order_ids: Iterable[int]) -> None:
    """Read the outbox rows of these orders at once (a release touches thousands)."""
    wanted = sorted({i for i in order_ids if i not in tx.stored_writebacks})
    # nothing of these orders' outbox is pending in the session (queued rows are in
    # tx.writebacks), so the stored rows are the ones: read them without flushing the batch
    with tx.session.no_autoflush:
        for start in range(0, len(wanted), 5000):
            chunk = wanted[start : start + 5000]
            tx.stored_writebacks.update(dict.fromkeys(chunk))
            for row in tx.session.scalars(
                select(m.Writeback).where(m.Writeback.order_id.in_(chunk))
            ):
                tx.stored_writebacks[row.order_id] = row


def desired_hold(session: Session, order_id: int) -> dict[str, int]:
    """The hold the channel should show: open backordered units per external line id."""
    rows = session.execute(
        select(m.OrderLine.external_line_id, func.sum(m.Backorder.qty_open))
        .join(m.Backorder, m.Backorder.order_line_id == m.OrderLine.id)
        .where(m.OrderLine.order_id == order_id, m.Backorder.qty_open > 0)
        .group_by(m.OrderLine.external_line_id)
    ).all()
    return {str(line): int(units) for line, units in rows if units}


def expected_on(session: Session, order_id: int) -> date | None:
    """When the order's waiting units should all be in: the latest date its open backorders
    were promised (issue #17); None when nothing waits or a unit has no date."""
    dates = [
        day
        for (day,) in session.execute(
            select(m.Backorder.promised_on)
            .join(m.OrderLine, m.OrderLine.id == m.Backorder.order_line_id)
            .where(m.OrderLine.order_id == order_id, m.Backorder.qty_open > 0)
        ).all()
    ]
    if not dates or any(day is None for day in dates):
        return None
    return max(day for day in dates if day is not None)


def ever_backordered(session: Session, order_id: int) -> bool:
    """Did any line of this order ever wait for stock?"""
    return bool(
        session.scalar(
            select(func.count())
            .select_from(m.Backorder)
            .join(m.OrderLine, m.OrderLine.id == m.Backorder.order_line_id)
            .where(m.OrderLine.order_id == order_id)
        )
    )


# ------------------------------------------------------------------ the job's side
@dataclass(frozen=True)
class WritebackTask:
    """What one write-back job must do, read in one transaction."""

    writeback_id: int
    version: int
    channel: str
    order_id: int
    external_id: str
    order_open: bool
    recorded: dict[str, int]  # backorder_hold as stored, UNSURE mark included
    desired: dict[str, int]  # what the channel should hold: the open backorders
    ever_backordered: bool
    expected_on: date | None = None  # when the waiting units should all be in (the promise)

    @property
    def held(self) -> dict[str, int]:
        return merge_holds(self.recorded)

    @property
    def unsure(self) -> bool:
        return UNSURE in self.recorded


def order_of(session: Session, writeback_id: int) -> int | None:
    row = session.get(m.Writeback, writeback_id)
    return row.order_id if row is not None else None


def pending_task(session: Session, writeback_id: int) -> WritebackTask | None:
    """The pending write-back's task; None when there is nothing (left) to do."""
    row = session.get(m.Writeback, writeback_id)
    if row is None or row.status != WritebackStatus.PENDING:
        return None
    order = session.get(m.ChannelOrder, row.order_id)
    if order is None:
        raise LookupError(f"writeback {writeback_id}: order {row.order_id} is gone")
    order_open = order.status == "open"
    return WritebackTask(
        writeback_id=row.id,
        version=row.version,
        channel=row.channel,
        order_id=order.id,
        external_id=order.external_id,
        order_open=order_open,
        recorded=dict(order.backorder_hold or {}),
        desired=desired_hold(session, order.id) if order_open else {},
        ever_backordered=ever_backordered(session, order.id),
        expected_on=expected_on(session, order.id) if order_open else None,
    )


def write_ahead(
    session: Session, order_id: int, held: Mapping[str, int], desired: Mapping[str, int]
) -> dict[str, int]:
    """Before talking to the channel, record that what it holds is unknown (up to these lines),
    so that if this process dies mid-call the next job lifts whatever it may have left."""
    order = session.get(m.ChannelOrder, order_id, with_for_update=True)
    if order is None:
        raise LookupError(f"order {order_id} is gone")
    ahead = {**merge_holds(order.backorder_hold or {}, held, desired), UNSURE: int(time.time())}
    order.backorder_hold = ahead
    return ahead


def finish(
    session: Session,
    task: WritebackTask,
    read_hold: Mapping[str, int],
    new_hold: Mapping[str, int],
    now: datetime,
    *,
    talked: bool = False,
    error: str = "",
    linger_mark: int | None = None,
) -> bool:
    """Record what the channel now holds; True when the order must be written back again.

    Two jobs of one order can overlap (one per ledger change, plus the sweeper's): a job that
    read an older version, or whose view of the channel's hold was replaced by another job while
    it ran, may have left the channel out of date (a hold placed after its release), so the row
    stays pending and goes again, until a pass sees no concurrent change.
    """
    row = session.get(m.Writeback, task.writeback_id, with_for_update=True)
    if row is None:
        return False
    order = session.get(m.ChannelOrder, row.order_id, with_for_update=True)
    current = dict(order.backorder_hold or {}) if order is not None else {}
    raced = current != dict(read_hold)
    if order is not None and not raced:
        order.backorder_hold = dict(new_hold) or None
        if linger_mark is not None:
            # a dead job's call may still land: keep the mark, and every line that may be
            # held, so a later pass lifts them again
            order.backorder_hold = {**merge_holds(read_hold, new_hold), UNSURE: linger_mark}
    elif order is not None and talked:
        # another job talked to the channel meanwhile: which call landed last is unknown
        order.backorder_hold = {**merge_holds(current, new_hold), UNSURE: 1}
    again = False
    if error:
        row.status = WritebackStatus.FAILED
        row.error = error
    elif linger_mark is not None and not raced:
        row.status = WritebackStatus.PENDING  # the sweeper runs it again once the grace passed
    elif row.version == task.version and not raced:
        row.status = WritebackStatus.DONE
        row.done_at = now
        row.error = None
    else:
        row.status = WritebackStatus.PENDING
        again = True
    row.updated_at = now
    return again


def record_failure(
    session: Session, writeback_id: int, error: str, now: datetime, *, permanent: bool
) -> None:
    """Count a failed attempt; a permanent failure stops retries and shows in `status`."""
    row = session.get(m.Writeback, writeback_id)
    if row is not None:
        row.attempts += 1
        row.error = error[:2000]
        row.updated_at = now
        if permanent:
            row.status = WritebackStatus.FAILED


# ------------------------------------------------------------------ the sweeper's side
def pending_before(session: Session, cutoff: datetime) -> set[int]:
    return set(
        session.scalars(
            select(m.Writeback.id).where(
                m.Writeback.status == WritebackStatus.PENDING, m.Writeback.updated_at < cutoff
            )
        )
    )


def requeue_stale_holds(session: Session, cutoff: datetime) -> set[int]:
    """Recently finished write-backs whose recorded hold no longer matches the ledger's open
    backorders (a change that did not reach the outbox): set pending again, to be redone."""
    rows = session.execute(
        select(m.Writeback, m.ChannelOrder)
        .join(m.ChannelOrder, m.ChannelOrder.id == m.Writeback.order_id)
        .where(
            m.Writeback.status == WritebackStatus.DONE,
            m.Writeback.done_at < cutoff,
            m.Writeback.done_at > cutoff - HOLD_CHECK_WINDOW,
        )
    ).all()
    stale: set[int] = set()
    for row, order in rows:
        want = desired_hold(session, order.id) if order.status == "open" else {}
        if merge_holds(order.backorder_hold or {}) != want:
            row.status = WritebackStatus.PENDING
            row.version += 1
            stale.add(row.id)
    return stale
