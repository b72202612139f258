"""Quantity writes in flight (`push_in_flight`): the only writer.

A channel whose stock writes are absolute (WooCommerce: `stock_quantity = 7`, no compare-and-set)
can apply a write after a newer one: an attempt that timed out on our side, or one a killed
worker sent, still reaches the shop. Each write is recorded before the call and deleted when the
channel answers; what is left was never answered and may yet land until `settle_by`. After that
the listing is read again, and pushed again if it shows something else (sync/jobs/push.py).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from stock import models as m


def record_sent(
    session: Session,
    channel: str,
    attempt: str,
    writes: Sequence[tuple[int, int]],
    now: datetime,
    settle_by: datetime,
) -> None:
    """Writes about to be sent: (listing id, quantity) each, under one attempt id."""
    if not writes:
        return
    session.execute(
        insert(m.PushInFlight),
        [
            {
                "channel": channel,
                "listing_id": listing_id,
                "attempt": attempt,
                "quantity": quantity,
                "sent_at": now,
                "settle_by": settle_by,
            }
            for listing_id, quantity in writes
        ],
    )


def answered(session: Session, attempt: str) -> None:
    """The channel answered the attempt: none of its writes can land later."""
    session.execute(delete(m.PushInFlight).where(m.PushInFlight.attempt == attempt))


@dataclass(frozen=True)
class Unsettled:
    """A listing with writes never answered whose window has passed: read it again."""

    listing_id: int
    sku_id: int
    sku: str
    last_pushed: int | None
    latest_quantity: int  # the newest unanswered write's quantity, for the log


def due(session: Session, channel: str, now: datetime, limit: int) -> list[Unsettled]:
    """Listings of the channel with an unanswered write past its window, oldest first."""
    newest = (
        select(
            m.PushInFlight.listing_id,
            func.max(m.PushInFlight.id).label("newest_id"),
            func.max(m.PushInFlight.settle_by).label("settle_by"),
        )
        .where(m.PushInFlight.channel == channel)
        .group_by(m.PushInFlight.listing_id)
        .subquery()
    )
    rows = session.execute(
        select(
            m.Listing.id,
            m.Listing.sku_id,
            m.Sku.code,
            m.Listing.last_pushed,
            m.PushInFlight.quantity,
        )
        .join(newest, newest.c.listing_id == m.Listing.id)
        .join(m.PushInFlight, m.PushInFlight.id == newest.c.newest_id)
        .join(m.Sku, m.Sku.id == m.Listing.sku_id)
        # every write of the listing must be past its window: a later one may still land
        .where(newest.c.settle_by <= now)
        .order_by(newest.c.settle_by, m.Listing.id)
        .limit(limit)
    ).all()
    return [Unsettled(int(r[0]), int(r[1]), str(r[2]), r[3], int(r[4])) for r in rows]


def forget(session: Session, listing_ids: Collection[int], now: datetime) -> None:
    """The listings were read after these writes' windows: those writes can no longer land."""
    if not listing_ids:
        return
    session.execute(
        delete(m.PushInFlight).where(
            m.PushInFlight.listing_id.in_(sorted(listing_ids)), m.PushInFlight.settle_by <= now
        )
    )


def channels_due(session: Session, now: datetime) -> set[str]:
    """Channels with an unanswered write past its window (the sweeper asks for their push)."""
    return set(
        session.scalars(
            select(m.PushInFlight.channel).where(m.PushInFlight.settle_by <= now).distinct()
        )
    )


def unanswered_counts(session: Session) -> dict[str, int]:
    """Unanswered writes per channel (in their window or waiting to be read again)."""
    rows = session.execute(
        select(m.PushInFlight.channel, func.count()).group_by(m.PushInFlight.channel)
    ).all()
    return {str(channel): int(count) for channel, count in rows}
