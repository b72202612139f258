"""Per-channel daemon state (`channel_state`): push lease, poll watermark, last error, the last
time the channel's quantities moved by themselves. Its only writer."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from stock import models as m
from stock.db import upsert_insert


def ensure(session: Session, channel: str) -> None:
    insert = upsert_insert(session)
    stmt = insert(m.ChannelState).values(channel=channel)
    session.execute(stmt.on_conflict_do_nothing(index_elements=["channel"]))


def get(session: Session, channel: str) -> m.ChannelState | None:
    return session.get(m.ChannelState, channel)


def take_lease(session: Session, channel: str, owner: str, now: datetime, until: datetime) -> bool:
    """Take the push lease if it is free, expired, or ours already."""
    if get(session, channel) is None:
        ensure(session, channel)  # only when missing: the insert would wait on the row's writers
    taken = session.execute(
        update(m.ChannelState)
        .where(
            m.ChannelState.channel == channel,
            (m.ChannelState.push_lease_until.is_(None))
            | (m.ChannelState.push_lease_until < now)
            | (m.ChannelState.push_lease_owner == owner),
        )
        .values(push_lease_owner=owner, push_lease_until=until)
    )
    return bool(taken.rowcount)  # type: ignore[attr-defined]


def lease_holder(session: Session, channel: str) -> str | None:
    return session.scalar(
        select(m.ChannelState.push_lease_owner).where(m.ChannelState.channel == channel)
    )


def steal_lease(
    session: Session, channel: str, dead_owner: str | None, owner: str, until: datetime
) -> bool:
    stolen = session.execute(
        update(m.ChannelState)
        .where(m.ChannelState.channel == channel, m.ChannelState.push_lease_owner == dead_owner)
        .values(push_lease_owner=owner, push_lease_until=until)
    )
    return bool(stolen.rowcount)  # type: ignore[attr-defined]


def release_lease(session: Session, channel: str, owner: str) -> None:
    session.execute(
        update(m.ChannelState)
        .where(m.ChannelState.channel == channel, m.ChannelState.push_lease_owner == owner)
        .values(push_lease_owner=None, push_lease_until=None)
    )


def note_moved(session: Session, channel: str, now: datetime) -> None:
    session.execute(
        update(m.ChannelState).where(m.ChannelState.channel == channel).values(moved_at=now)
    )


def last_polls(session: Session) -> dict[str, datetime]:
    """When each channel's last finished poll started (what it pulled covers up to then)."""
    rows = session.execute(
        select(m.ChannelState.channel, m.ChannelState.last_poll_at).where(
            m.ChannelState.last_poll_at.is_not(None)
        )
    ).all()
    return {str(channel): at for channel, at in rows if at is not None}


def note_error(session: Session, channel: str, error: str) -> None:
    session.execute(
        update(m.ChannelState)
        .where(m.ChannelState.channel == channel)
        .values(last_error=error[:2000])
    )


def record_poll(
    session: Session, channel: str, watermark: datetime | None, started: datetime
) -> None:
    ensure(session, channel)
    session.execute(
        update(m.ChannelState)
        .where(m.ChannelState.channel == channel)
        .values(poll_watermark=watermark, last_poll_at=started)
    )
