"""Orders in: verify and store a webhook; apply inbox events to the ledger."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from backorders import orders
from connectors.base import PayloadError, WebhookRejected
from stock import inbox
from stock import models as m
from stock.tx import LedgerTx
from sync.failures import is_transient
from sync.jobs.followups import Followups, utc_now
from sync.logs import get_logger
from sync.mapping import to_order_input
from sync.runtime import Runtime

log = get_logger("stocksync.jobs.inbox")

DRAIN_BATCH = 25  # later inbox events applied in the same transaction as the one asked for


@dataclass(frozen=True)
class Ingested:
    status: int  # HTTP status to answer
    outcome: str  # stored, duplicate, rejected, ping
    event_id: int | None = None
    reason: str = ""


def ingest_webhook(
    runtime: Runtime, channel_name: str, headers: Mapping[str, str], body: bytes
) -> Ingested:
    """Verify, store in the inbox, commit. No channel I/O: the channel waits for our 200."""
    channel = runtime.channels.get(channel_name)
    if channel is None:
        return Ingested(404, "rejected", reason=f"no connected channel {channel_name!r}")
    try:
        event = channel.verify_webhook(headers, body)
    except WebhookRejected as exc:
        return Ingested(exc.status, "rejected", reason=exc.reason)
    if event is None:
        return Ingested(200, "ping")
    event_id = store_event(runtime, channel_name, event.event_key, event.topic, event.body)
    if event_id is None:
        return Ingested(200, "duplicate")
    return Ingested(200, "stored", event_id)


def store_event(
    runtime: Runtime, channel: str, event_key: str, topic: str, body: bytes
) -> int | None:
    """Insert into the inbox; None when this event key was stored before (a duplicate)."""
    with runtime.ctx.sessions.begin() as session:
        return inbox.store(session, channel, event_key, topic, body, utc_now())


def process_event(runtime: Runtime, event_id: int, *, drain: bool = True) -> Followups:
    """Apply one inbox event to the ledger, in one transaction with marking it processed.

    With `drain`, up to DRAIN_BATCH later pending events ride along in the same transaction
    (each in a savepoint): in a burst, one lock and one commit serve many orders, and the jobs
    of the drained events find them done.
    """
    with runtime.ctx.ledger(actor="worker") as tx:
        event = inbox.claim(tx.session, event_id)
        if event is None:
            return Followups()  # processing twice = once
        _apply_event(runtime, tx, event)
        if drain:
            for other in inbox.claim_more(tx.session, event_id, DRAIN_BATCH):
                try:
                    with tx.session.begin_nested():
                        _apply_event(runtime, tx, other)
                except Exception as exc:
                    if is_transient(exc):
                        raise
                    # its own job applies it alone and records the failure there
                    log.warning("drain_skipped", event_id=other.id, error=repr(exc))
    return Followups.of(tx.effects, list(runtime.channels))


def _apply_event(runtime: Runtime, tx: LedgerTx, event: m.InboxEvent) -> None:
    channel = runtime.channels.get(event.channel)
    inbox.begin_attempt(event)
    if channel is None:
        inbox.mark_failed(event, f"channel {event.channel!r} is no longer configured")
        runtime.metrics.events.labels(event.channel, "failed").inc()
        return
    try:
        order = channel.parse_order(event.topic, event.body)
    except PayloadError as exc:
        # permanent: keep it visible in the exception queue (status, `stocksync inbox`)
        inbox.mark_failed(event, str(exc))
        runtime.metrics.events.labels(event.channel, "failed").inc()
        log.warning("event_unparseable", event_id=event.id, error=str(exc))
        return
    outcome = orders.record_order(tx, to_order_input(order, event.channel))
    inbox.mark_applied(event, tx.now)
    runtime.metrics.events.labels(event.channel, "applied" if outcome.applied else "stale").inc()


def reset_event(runtime: Runtime, event_id: int) -> None:
    """Give a failed event a fresh start (operator's retry after a fix)."""
    with runtime.ctx.sessions.begin() as session:
        inbox.reset(session, event_id)


def record_event_failure(runtime: Runtime, event_id: int, error: str) -> None:
    """A failure that retrying will not fix: the event joins the visible exception queue."""
    with runtime.ctx.sessions.begin() as session:
        inbox.record_failure(session, event_id, error)
