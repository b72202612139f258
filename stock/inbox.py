"""The inbox (`inbox_event`): every webhook and polled order, stored before it is applied.

Its only writer. An event is *pending* until applied (`processed_at`) or *failed* (`error`, the
visible exception queue an operator retries after a fix); nothing received is dropped.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from stock import models as m
from stock.db import upsert_insert


def pending() -> ColumnElement[bool]:
    """Waiting to be applied: not processed, not failed."""
    return m.InboxEvent.processed_at.is_(None) & m.InboxEvent.error.is_(None)


def failed() -> ColumnElement[bool]:
    """In the exception queue: not processed, with an error."""
    return m.InboxEvent.processed_at.is_(None) & m.InboxEvent.error.is_not(None)


def store(
    session: Session,
    channel: str,
    event_key: str,
    topic: str,
    body: bytes,
    now: datetime,
    *,
    awaits_fetch: bool = False,
) -> int | None:
    """Insert an event; None when this event key was stored before (a duplicate)."""
    insert = upsert_insert(session)
    stmt = (
        insert(m.InboxEvent)
        .values(
            channel=channel,
            event_key=event_key[:255],
            topic=topic[:128],
            body=body,
            received_at=now,
            attempts=0,
            awaits_fetch=awaits_fetch,
        )
        .on_conflict_do_nothing(index_elements=["channel", "event_key"])
        .returning(m.InboxEvent.id)
    )
    found = session.scalar(stmt)
    return int(found) if found is not None else None


def store_many(
    session: Session, channel: str, events: Sequence[tuple[str, str, bytes, bool]], now: datetime
) -> list[int]:
    """Insert (event_key, topic, body, awaits_fetch) events in one statement; the ids of those
    not stored before (duplicates are skipped, as by `store`)."""
    if not events:
        return []
    insert = upsert_insert(session)
    rows = [
        {
            "channel": channel,
            "event_key": key[:255],
            "topic": topic[:128],
            "body": body,
            "received_at": now,
            "attempts": 0,
            "awaits_fetch": awaits_fetch,
        }
        for key, topic, body, awaits_fetch in events
    ]
    stmt = (
        insert(m.InboxEvent)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["channel", "event_key"])
        .returning(m.InboxEvent.id)
    )
    return sorted(int(found) for found in session.scalars(stmt))


class Claim(enum.Enum):
    DONE = "done"  # gone or applied already: nothing to do
    HELD = "held"  # another transaction holds it (applying it in its batch): look again later


def claim(session: Session, event_id: int) -> m.InboxEvent | Claim:
    """Lock an event for applying, without waiting: a held event is being applied by another
    transaction's batch, and waiting for it would only hold a worker thread idle."""
    event = session.scalars(
        select(m.InboxEvent)
        .where(m.InboxEvent.id == event_id)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    ).first()
    if event is None:
        row = session.execute(
            select(m.InboxEvent.processed_at).where(m.InboxEvent.id == event_id)
        ).first()
        return Claim.HELD if row is not None and row.processed_at is None else Claim.DONE
    if event.processed_at is not None:
        return Claim.DONE
    return event


def claim_more(session: Session, besides: int, limit: int) -> Sequence[m.InboxEvent]:
    """Other pending events, oldest first, that no other transaction holds (and none that
    waits for its fetch: its own job fetches it first)."""
    return session.scalars(
        select(m.InboxEvent)
        .where(
            pending(),
            m.InboxEvent.id != besides,
            m.InboxEvent.awaits_fetch.is_(False) | m.InboxEvent.fetched_body.is_not(None),
        )
        .order_by(m.InboxEvent.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()


def to_fetch(session: Session, event_id: int) -> tuple[str, str, bytes] | None:
    """(channel, topic, body) of a pending event that waits for its fetch; else None."""
    row = session.execute(
        select(m.InboxEvent.channel, m.InboxEvent.topic, m.InboxEvent.body).where(
            m.InboxEvent.id == event_id,
            pending(),
            m.InboxEvent.awaits_fetch.is_(True),
            m.InboxEvent.fetched_body.is_(None),
        )
    ).first()
    return (row.channel, row.topic, row.body) if row is not None else None


def record_fetched(session: Session, event_id: int, body: bytes) -> None:
    event = session.get(m.InboxEvent, event_id)
    if event is not None and event.fetched_body is None:
        event.fetched_body = body


def body_to_apply(event: m.InboxEvent) -> bytes:
    """The body as completed by its fetch, or as it arrived."""
    return event.fetched_body if event.fetched_body is not None else event.body


def begin_attempt(event: m.InboxEvent) -> None:
    event.attempts += 1


def mark_applied(event: m.InboxEvent, now: datetime) -> None:
    event.processed_at = now
    event.error = None


def mark_failed(event: m.InboxEvent, error: str) -> None:
    event.error = error[:2000]


def record_failure(session: Session, event_id: int, error: str) -> None:
    """A failure that retrying will not fix: the event joins the visible exception queue."""
    event = session.get(m.InboxEvent, event_id)
    if event is not None and event.processed_at is None:
        event.error = error[:2000]
        event.attempts += 1


def reset(session: Session, event_id: int) -> None:
    """Give a failed event a fresh start (an operator's retry after a fix)."""
    event = session.get(m.InboxEvent, event_id)
    if event is not None and event.processed_at is None:
        event.error = None
        event.attempts = 0


def pending_before(session: Session, cutoff: datetime, limit: int) -> list[int]:
    return list(
        session.scalars(
            select(m.InboxEvent.id)
            .where(pending(), m.InboxEvent.received_at < cutoff)
            .order_by(m.InboxEvent.id)
            .limit(limit)
        )
    )


def waiting(session: Session, channel: str) -> int:
    """Pending events of one channel."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(m.InboxEvent)
            .where(m.InboxEvent.channel == channel, pending())
        )
        or 0
    )


def counts(session: Session) -> dict[str, int]:
    """Pending and failed events (status and gauges)."""

    def count(condition: ColumnElement[bool]) -> int:
        return int(
            session.scalar(select(func.count()).select_from(m.InboxEvent).where(condition)) or 0
        )

    return {"pending": count(pending()), "failed": count(failed())}


def listing(
    session: Session,
    *,
    failed_only: bool = False,
    limit: int = 50,
    event_ids: list[int] | None = None,
) -> list[dict[str, Any]]:
    """Newest first, in the shape `stocksync inbox list --json` documents."""
    query = select(m.InboxEvent).order_by(m.InboxEvent.id.desc()).limit(limit)
    if failed_only:
        query = query.where(failed())
    if event_ids is not None:
        query = query.where(m.InboxEvent.id.in_(event_ids))
    return [
        {
            "id": event.id,
            "channel": event.channel,
            "topic": event.topic,
            "event_key": event.event_key,
            "received_at": event.received_at.isoformat(),
            "processed_at": event.processed_at.isoformat() if event.processed_at else None,
            "attempts": event.attempts,
            "error": event.error,
        }
        for event in session.scalars(query)
    ]


def failed_ids(session: Session) -> list[int]:
    return list(session.scalars(select(m.InboxEvent.id).where(failed()).order_by(m.InboxEvent.id)))


def processed_of(session: Session, event_ids: list[int]) -> dict[int, datetime | None]:
    """When each of these events was applied (None: not yet); unknown ids are left out."""
    rows = session.execute(
        select(m.InboxEvent.id, m.InboxEvent.processed_at).where(m.InboxEvent.id.in_(event_ids))
    ).all()
    return {int(event_id): processed for event_id, processed in rows}
