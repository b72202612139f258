"""Per-channel daemon state (`channel_state`): push lease, poll watermark, last error, the last
time the channel's quantities moved by themselves, the hold on calls after an auth error. Its
only writer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

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
    """The channel's last error; while an auth hold stands, its error stays (it says why)."""
    session.execute(
        update(m.ChannelState)
        .where(m.ChannelState.channel == channel, m.ChannelState.held_until.is_(None))
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


# ------------------------------------------------------------------ auth holds
AUTH_HOLD_FIRST_S = 30.0  # the first hold after a refusal; each refusal in a row doubles it
AUTH_HOLD_MAX_S = 900.0


def auth_hold_seconds(failures: int) -> float:
    """How long calls wait after the `failures`-th refusal in a row: 30 s doubling to 15 min."""
    return min(AUTH_HOLD_FIRST_S * 2.0 ** max(failures - 1, 0), AUTH_HOLD_MAX_S)


@dataclass(frozen=True)
class AuthHold:
    channel: str
    until: datetime
    failures: int  # refusals in a row
    error: str


def describe_hold(hold: AuthHold, now: datetime) -> str:
    """`auth error (3 refusals in a row), calls held until ...: <the channel's message>`."""
    until = hold.until.isoformat(timespec="seconds").replace("+00:00", "Z")
    when = (
        f"calls held until {until}" if hold.until > now else f"the next call tries again ({until})"
    )
    refusals = f"{hold.failures} refusal{'s' if hold.failures != 1 else ''} in a row"
    return f"auth error ({refusals}), {when}: {hold.error}"


def auth_holds(session: Session, channel: str | None = None) -> dict[str, AuthHold]:
    """The channels held after an auth error (expired holds included: they end only when a
    call succeeds)."""
    query = select(
        m.ChannelState.channel,
        m.ChannelState.held_until,
        m.ChannelState.auth_failures,
        m.ChannelState.last_error,
    ).where(m.ChannelState.held_until.is_not(None))
    if channel is not None:
        query = query.where(m.ChannelState.channel == channel)
    return {
        str(name): AuthHold(str(name), until, int(failures or 0), str(error or ""))
        for name, until, failures, error in session.execute(query).all()
        if until is not None
    }


def hold_for_auth(
    session: Session, channel: str, error: str, now: datetime, *, trial: bool = False
) -> AuthHold:
    """The channel refused our credentials: hold its calls, twice as long as the last time.
    A refusal of a call made before a hold that now stands (not its `trial`) leaves it be:
    calls running side by side are refused together, that is one refusal, not several."""
    ensure(session, channel)
    row = session.execute(
        select(
            m.ChannelState.held_until, m.ChannelState.auth_failures, m.ChannelState.last_error
        ).where(m.ChannelState.channel == channel)
    ).one()
    if not trial and row.held_until is not None and row.held_until > now:
        return AuthHold(channel, row.held_until, int(row.auth_failures), str(row.last_error or ""))
    failures = int(row.auth_failures or 0) + 1
    until = now + timedelta(seconds=auth_hold_seconds(failures))
    session.execute(
        update(m.ChannelState)
        .where(m.ChannelState.channel == channel)
        .values(held_until=until, auth_failures=failures, last_error=error[:2000])
    )
    return AuthHold(channel, until, failures, error[:2000])


def claim_trial(session: Session, channel: str, now: datetime) -> str:
    """Whether a job may call the channel: "open" (no hold), "held", or "trial": the hold has
    run out and this job makes the one call that tries again (the hold is moved on by the next
    hold's length first, so every other job keeps waiting, in any process)."""
    row = session.execute(
        select(m.ChannelState.held_until, m.ChannelState.auth_failures).where(
            m.ChannelState.channel == channel
        )
    ).first()
    if row is None or row.held_until is None:
        return "open"
    if row.held_until > now:
        return "held"
    claimed = session.execute(
        update(m.ChannelState)
        .where(m.ChannelState.channel == channel, m.ChannelState.held_until == row.held_until)
        .values(held_until=now + timedelta(seconds=auth_hold_seconds(int(row.auth_failures) + 1)))
    )
    return "trial" if claimed.rowcount else "held"  # type: ignore[attr-defined]


def clear_auth_hold(session: Session, channel: str) -> AuthHold | None:
    """A call succeeded: the channel takes calls again. The hold it had, if any."""
    held = auth_holds(session, channel).get(channel)
    if held is None:
        return None
    session.execute(
        update(m.ChannelState)
        .where(m.ChannelState.channel == channel)
        .values(held_until=None, auth_failures=0, last_error=None)
    )
    return held


def mark_adopted(session: Session, channel: str, now: datetime) -> None:
    """`stocksync adopt` took the channel's quantities as on hand: from now on a lower number
    is pushed to it for any SKU (docs/onboarding.md)."""
    ensure(session, channel)
    session.execute(
        update(m.ChannelState).where(m.ChannelState.channel == channel).values(adopted_at=now)
    )


def adopted(session: Session) -> dict[str, datetime]:
    """When each adopted channel was adopted."""
    rows = session.execute(
        select(m.ChannelState.channel, m.ChannelState.adopted_at).where(
            m.ChannelState.adopted_at.is_not(None)
        )
    ).all()
    return {str(channel): at for channel, at in rows if at is not None}
