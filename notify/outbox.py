"""The message outbox (`notify_message`): the only writer. A message is enqueued in the
transaction of the change it tells about, under a key unique per event and target, so it is
never lost and never sent twice; senders claim due messages, and record each attempt.

States: `pending` (due at `next_attempt_at`; `claimed_at` set while a sender holds it), `sent`,
`failed` (for good: the last attempt failed, or it cannot be sent at all; `last_error` says
why; `stocksync notify retry` makes it pending again). A claim older than the lease belonged to
a sender that died: the message is claimed again (it may then go out twice, the one case it can:
an SMTP server or a webhook receiver that took it before the sender died; webhooks carry a
delivery id for that).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from stock import models as m

KINDS = ("email", "shop_note", "webhook")
STATES = ("pending", "sent", "failed")
CLAIM_LEASE = timedelta(minutes=10)  # longer than any send's timeout

# a transaction: a session that commits when the block ends (rolls back on an exception)
OpenSession = Callable[[], AbstractContextManager[Session]]


def enqueue(
    session: Session,
    *,
    key: str,
    event: str,
    kind: str,
    target: str,
    body: str,
    now: datetime,
    subject: str | None = None,
    language: str | None = None,
    payload: dict[str, Any] | None = None,
    failed_because: str | None = None,
) -> bool:
    """Add one pending message, due now. False: a message with this key exists (it is never
    made twice, whatever its state). `failed_because`: it cannot be sent as it is (its
    template failed): stored `failed` with that error, for a person to see and retry."""
    if kind not in KINDS:
        raise ValueError(f"unknown message kind {kind!r}; one of {', '.join(KINDS)}")
    if session.scalar(select(m.NotifyMessage.id).where(m.NotifyMessage.key == key)) is not None:
        return False
    session.add(
        m.NotifyMessage(
            key=key, event=event, kind=kind, target=target, language=language,
            subject=subject, body=body, payload=payload or {},
            state="failed" if failed_because else "pending", attempts=0,
            next_attempt_at=now, created_at=now, last_error=failed_because,
        )
    )  # fmt: skip
    session.flush()
    return True


@dataclass(frozen=True)
class Message:
    """A message as senders and listings see it (no ORM object outlives its session)."""

    id: int
    key: str
    event: str
    kind: str
    target: str
    language: str | None
    subject: str | None
    body: str
    payload: dict[str, Any]
    state: str
    attempts: int
    next_attempt_at: datetime
    claimed_at: datetime | None
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "id": self.id, "key": self.key, "event": self.event, "kind": self.kind,
            "target": self.target, "language": self.language, "subject": self.subject,
            "state": self.state, "attempts": self.attempts,
            "next_attempt_at": iso(self.next_attempt_at) if self.state == "pending" else None,
            "last_error": self.last_error, "created_at": iso(self.created_at),
            "sent_at": iso(self.sent_at),
        }  # fmt: skip


def _message(row: m.NotifyMessage) -> Message:
    return Message(
        row.id, row.key, row.event, row.kind, row.target, row.language, row.subject, row.body,
        dict(row.payload or {}), row.state, row.attempts, row.next_attempt_at, row.claimed_at,
        row.last_error, row.created_at, row.sent_at,
    )  # fmt: skip


def retry_delay(attempts: int, first_s: float, max_s: float) -> timedelta:
    """How long after the `attempts`-th failed attempt the next one is due: `first_s`,
    doubling each time, at most `max_s` (30 s, 1 min, 2 min, ... 1 h by default)."""
    exponent = min(max(attempts - 1, 0), 32)
    return timedelta(seconds=min(first_s * 2**exponent, max_s))


def claim_due(
    session: Session, now: datetime, limit: int, lease: timedelta = CLAIM_LEASE
) -> list[Message]:
    """Pending messages due by `now` that no live sender holds, oldest first, claimed at
    `now`. PostgreSQL: rows other senders are claiming are skipped (SKIP LOCKED); SQLite has
    one writer at a time."""
    rows = session.scalars(
        select(m.NotifyMessage)
        .where(
            m.NotifyMessage.state == "pending",
            m.NotifyMessage.next_attempt_at <= now,
            or_(m.NotifyMessage.claimed_at.is_(None), m.NotifyMessage.claimed_at < now - lease),
        )
        .order_by(m.NotifyMessage.next_attempt_at, m.NotifyMessage.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    for row in rows:
        row.claimed_at = now
    session.flush()
    return [_message(row) for row in rows]


def _held(session: Session, message: Message) -> m.NotifyMessage | None:
    """The row, if this claim still holds it (a sender whose lease ran out has lost it)."""
    row = session.get(m.NotifyMessage, message.id, with_for_update=True)
    if row is None or row.state != "pending" or row.claimed_at != message.claimed_at:
        return None
    return row


def record_sent(session: Session, message: Message, now: datetime) -> bool:
    """The message went out. False: the claim had run out (another sender has it)."""
    row = _held(session, message)
    if row is None:
        return False
    row.state = "sent"
    row.attempts += 1
    row.sent_at = now
    row.claimed_at = None
    row.last_error = None
    return True


def record_failure(
    session: Session,
    message: Message,
    now: datetime,
    error: str,
    *,
    max_attempts: int,
    first_s: float,
    max_s: float,
    permanent: bool = False,
) -> str | None:
    """An attempt failed: due again after the backoff, or `failed` after the last attempt
    (or at once when `permanent`). Returns the new state; None when the claim had run out."""
    row = _held(session, message)
    if row is None:
        return None
    row.attempts += 1
    row.claimed_at = None
    row.last_error = error[:2000]
    if permanent or row.attempts >= max_attempts:
        row.state = "failed"
    else:
        row.next_attempt_at = now + retry_delay(row.attempts, first_s, max_s)
    return row.state


def retry(
    session: Session,
    now: datetime,
    ids: Sequence[int] = (),
    *,
    all_failed: bool = False,
    rendered: dict[int, tuple[str | None, str]] | None = None,
) -> list[int]:
    """Failed messages (these ids, or every failed one) pending again, due now, with a fresh
    count of attempts. `rendered`: id -> (subject, body) rendered again. Returns the ids."""
    query = select(m.NotifyMessage.id).where(m.NotifyMessage.state == "failed")
    if not all_failed:
        query = query.where(m.NotifyMessage.id.in_(sorted(set(ids))))
    found = sorted(int(i) for i in session.scalars(query))
    for message_id in found:
        values: dict[str, Any] = {}
        if rendered and message_id in rendered:
            values["subject"], values["body"] = rendered[message_id]
        session.execute(
            update(m.NotifyMessage)
            .where(m.NotifyMessage.id == message_id, m.NotifyMessage.state == "failed")
            .values(state="pending", attempts=0, next_attempt_at=now, claimed_at=None, **values)
            .execution_options(synchronize_session=False)
        )
    return found


def get(session: Session, ids: Sequence[int]) -> list[Message]:
    rows = session.scalars(
        select(m.NotifyMessage).where(m.NotifyMessage.id.in_(sorted(set(ids))))
    ).all()
    return sorted((_message(row) for row in rows), key=lambda msg: msg.id)


def listing(
    session: Session, *, failed_only: bool = False, limit: int = 50, state: str | None = None
) -> list[Message]:
    """Messages newest first (only failed ones with `failed_only`)."""
    query = select(m.NotifyMessage).order_by(m.NotifyMessage.id.desc()).limit(limit)
    if failed_only:
        state = "failed"
    if state is not None:
        query = query.where(m.NotifyMessage.state == state)
    return [_message(row) for row in session.scalars(query)]


def counts(session: Session, states: Sequence[str] = STATES) -> dict[str, dict[str, int]]:
    """state -> kind -> messages, of these states (each state and kind there, zeros too)."""
    found = {state: dict.fromkeys(KINDS, 0) for state in states}
    rows = session.execute(
        select(m.NotifyMessage.state, m.NotifyMessage.kind, func.count())
        .where(m.NotifyMessage.state.in_(list(states)))
        .group_by(m.NotifyMessage.state, m.NotifyMessage.kind)
    ).all()
    for state, kind, number in rows:
        found.setdefault(str(state), {})[str(kind)] = int(number)
    return found
