"""Customer messages and webhooks (issue #17), run by the daemon every
`daemon.notify_interval_s` (30 s): new audit entries turned into messages (notify.notifier),
then the due messages sent (notify.delivery): emails over `notify.smtp`, webhooks, notes on
shop orders through the channel's connector (connectors.base.AnnotatesOrders). Nothing happens
without a `notify:` block."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

from sqlalchemy.orm import Session

from connectors.base import AnnotatesOrders, ChannelError
from notify import alerts, notifier
from notify.context import split_order
from notify.delivery import DeliveryReport, deliver_due
from notify.outbox import OpenSession
from notify.send import SendError
from stock.db import unit_of_work
from sync.failures import is_transient
from sync.jobs.followups import utc_now
from sync.jobs.promises import plan_due_promises
from sync.logs import get_logger
from sync.runtime import Runtime

log = get_logger("stocksync.jobs.notify")


@dataclass
class NotifyReport:
    enqueued: dict[str, int] = field(default_factory=dict)  # kind -> messages made
    cursor: int = 0
    delivery: DeliveryReport = field(default_factory=DeliveryReport)


def notify_tick(runtime: Runtime, now: datetime | None = None) -> NotifyReport:
    """Turn new audit entries into messages, then send what is due."""
    report = NotifyReport()
    config = runtime.config.notify
    if not config.enabled:
        return report
    moment = now or utc_now()
    plan_due_promises(runtime)  # customers are told dates that are planned
    check_alerts(runtime, moment)
    make_messages(runtime, moment, report)
    report.delivery = deliver(runtime, moment)
    return report


def check_alerts(runtime: Runtime, now: datetime) -> None:
    """Open and close the merchant's alert incidents (notify.alerts); an opened one is an
    audit entry the notifier then sends."""
    with runtime.ctx.sessions.begin() as session:
        done = alerts.run(session, now, runtime.config.notify.alerts)
    for item in done["opened"]:
        log.warning("alert_opened", **{k: v for k, v in item.items() if k != "drift"})
    for item in done["closed"]:
        log.info("alert_closed", **item)


def _sessions(runtime: Runtime) -> OpenSession:
    @contextmanager
    def open_session() -> Iterator[Session]:
        with unit_of_work(runtime.ctx.sessions) as session:
            yield session

    return open_session


def make_messages(runtime: Runtime, now: datetime, report: NotifyReport | None = None) -> int:
    """The notifier's batches; returns the messages made. Emails not made (no SMTP, no address)
    are logged once per batch."""
    report = report or NotifyReport()
    config = runtime.config.notify
    kinds = {name: channel.kind for name, channel in runtime.config.channels.items()}
    made = 0
    for batch in notifier.batches(_sessions(runtime), config, now, channel_kinds=kinds):
        report.cursor = batch.cursor
        for kind, number in batch.enqueued.items():
            report.enqueued[kind] = report.enqueued.get(kind, 0) + number
            made += number
        if batch.started:
            log.info("notify_started", cursor=batch.cursor)
        if batch.skipped:
            log.info("notify_emails_skipped", **batch.skipped, cursor=batch.cursor)
        if batch.render_failed:
            log.error("notify_template_failed", messages=batch.render_failed)
    return made


def deliver(runtime: Runtime, now: datetime) -> DeliveryReport:
    """Send the due messages; count what went out."""
    config = runtime.config.notify
    done = deliver_due(_sessions(runtime), config, now, shop_note=partial(shop_note, runtime))
    for kind, number in done.sent.items():
        runtime.metrics.notify_sent.labels(kind).inc(number)
    for message_id, error in done.failed:
        log.warning("notify_failed", message=message_id, error=error)
    if done.total_sent or done.retried:
        log.info("notify_sent", sent=done.sent, retried=done.retried, failed=len(done.failed))
    return done


def shop_note(runtime: Runtime, order: str, text: str) -> None:
    """Leave `text` on the shop order "channel/ref" (a customer note, or on Shopify a staff note
    line); SendError when the channel cannot, or refuses for good."""
    channel_name, ref = split_order(order)
    channel = runtime.channels.get(channel_name)
    if channel is None:
        raise SendError(f"channel {channel_name!r} is not a connected shop", permanent=True)
    if not isinstance(channel, AnnotatesOrders):
        raise SendError(f"channel {channel_name!r} cannot take order notes", permanent=True)
    try:
        channel.add_customer_note(ref, text)
    except ChannelError as exc:
        raise SendError(str(exc), permanent=not is_transient(exc)) from exc
