"""Deliver due messages: claim them (one transaction), send each with no row locked, record
each outcome (a transaction per message): sent, due again after the backoff, or failed for
good after `notify.max_attempts` (or at once when trying again cannot help).

Shop notes go through a callable the caller gives (the composition root knows the channels);
without one, or when it says the channel cannot take notes, the message fails with that reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from notify import outbox
from notify.outbox import Message, OpenSession
from notify.send import SendError, SmtpSender, post_webhook
from rules.notify_model import NotifyConfig

CLAIM_BATCH = 100

# (order "channel/ref", text) -> None; raises SendError (or anything: retried)
ShopNote = Callable[[str, str], None]


@dataclass
class DeliveryReport:
    sent: dict[str, int] = field(default_factory=dict)  # kind -> messages
    retried: int = 0
    failed: list[tuple[int, str]] = field(default_factory=list)  # (id, error) failed for good

    def add_sent(self, kind: str) -> None:
        self.sent[kind] = self.sent.get(kind, 0) + 1

    @property
    def total_sent(self) -> int:
        return sum(self.sent.values())


def deliver_due(
    open_session: OpenSession,
    config: NotifyConfig,
    now: datetime,
    *,
    shop_note: ShopNote | None = None,
    limit: int = CLAIM_BATCH,
) -> DeliveryReport:
    """Send the messages due by `now` (at most `limit`)."""
    with open_session() as session:
        claimed = outbox.claim_due(session, now, limit)
    report = DeliveryReport()
    emails = [msg for msg in claimed if msg.kind == "email"]
    others = [msg for msg in claimed if msg.kind != "email"]
    for message, error in _send_emails(config, emails, now):
        _record(open_session, config, message, error, now, report)
    for message in others:
        _record(open_session, config, message, _send_other(config, message, shop_note), now,
                report)  # fmt: skip
    return report


def _send_emails(
    config: NotifyConfig, messages: list[Message], now: datetime
) -> Iterator[tuple[Message, SendError | None]]:
    if not messages:
        return
    if config.smtp is None:
        for message in messages:
            yield message, SendError("notify.smtp is not configured")
        return
    with SmtpSender(config.smtp) as smtp:
        for message in messages:
            try:
                smtp.send(message, now)
            except SendError as exc:
                yield message, exc
                continue
            yield message, None


def _send_other(
    config: NotifyConfig, message: Message, shop_note: ShopNote | None
) -> SendError | None:
    try:
        if message.kind == "webhook":
            hook = config.webhook(message.target)
            if hook is None:
                raise SendError("no webhook with this url is configured", permanent=True)
            post_webhook(message, hook.secret.get_secret_value(), hook.timeout_s)
        elif message.kind == "shop_note":
            if shop_note is None:
                raise SendError("shop notes cannot be sent from here", permanent=True)
            shop_note(message.target, message.body)
        else:
            raise SendError(f"unknown kind {message.kind!r}", permanent=True)
    except SendError as exc:
        return exc
    except Exception as exc:  # a connector's error: counted as an attempt, retried
        return SendError(f"{type(exc).__name__}: {exc}")
    return None


def _record(
    open_session: OpenSession,
    config: NotifyConfig,
    message: Message,
    error: SendError | None,
    now: datetime,
    report: DeliveryReport,
) -> None:
    with open_session() as session:
        if error is None:
            if outbox.record_sent(session, message, now):
                report.add_sent(message.kind)
            return
        state = outbox.record_failure(
            session, message, now, str(error), max_attempts=config.max_attempts,
            first_s=config.backoff_s, max_s=config.backoff_max_s, permanent=error.permanent,
        )  # fmt: skip
    if state == "failed":
        report.failed.append((message.id, str(error)))
    elif state == "pending":
        report.retried += 1
