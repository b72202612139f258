"""Orders in: verify and store a webhook; apply inbox events to the ledger."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from backorders import orders
from connectors.base import PayloadError, WebhookRejected
from stock import campaign_plans, inbox
from stock import models as m
from stock.tx import LedgerTx
from sync import campaign_pre_orders, campaign_service
from sync.failures import is_transient
from sync.jobs.followups import Followups, utc_now
from sync.logs import get_logger
from sync.mapping import to_order_input
from sync.runtime import BatchState, Runtime

log = get_logger("stocksync.jobs.inbox")

DRAIN_BATCH = 100  # later inbox events applied in the same transaction as the one asked for


@dataclass(frozen=True)
class Ingested:
    status: int  # HTTP status to answer
    outcome: str  # stored, duplicate, rejected, ping, ignored
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
    if event.ignored:
        # verified, and answered 200 so the shop does not retry it for hours; not stored
        log.info("webhook_ignored", channel=channel_name, topic=event.topic, why=event.ignored)
        return Ingested(200, "ignored", reason=event.ignored)
    event_id = store_event(
        runtime,
        channel_name,
        event.event_key,
        event.topic,
        event.body,
        awaits_fetch=channel.needs_fetch(event.topic, event.body),
    )
    if event_id is None:
        return Ingested(200, "duplicate")
    return Ingested(200, "stored", event_id)


def store_event(
    runtime: Runtime,
    channel: str,
    event_key: str,
    topic: str,
    body: bytes,
    *,
    awaits_fetch: bool = False,
) -> int | None:
    """Insert into the inbox; None when this event key was stored before (a duplicate)."""
    with runtime.ctx.sessions.begin() as session:
        return inbox.store(
            session, channel, event_key, topic, body, utc_now(), awaits_fetch=awaits_fetch
        )


def process_event(runtime: Runtime, event_id: int, *, drain: bool = True) -> Followups:
    """Apply one inbox event to the ledger, in one transaction with marking it processed.

    With `drain`, up to DRAIN_BATCH later pending events ride along in the same transaction:
    in a burst, one lock of all their SKUs, one read of their orders and one flush serve many
    orders. The jobs of the drained events find them applied (in this process's memory, or in
    the database) or still held by the batch: then `held_events` asks the caller to look again
    shortly (the batch may yet be rolled back, or its worker die), never to wait on the lock.
    If any of them is refused, the batch is rolled back and the asked-for event is applied
    alone (each event's own job records its own failure).
    """
    # Most jobs of a burst find their event applied by an earlier job's batch in this process,
    # or held by one still running: the process's memory answers them without a query.
    known = runtime.batches.state(event_id)
    if known is BatchState.APPLIED:
        return Followups()  # processing twice = once
    if known is BatchState.IN_FLIGHT:
        return Followups(held_events=[event_id])
    _fetch_if_needed(runtime, event_id)
    if drain:
        try:
            return _apply_batch(runtime, event_id, DRAIN_BATCH)
        except BatchRefused as refused:
            log.warning("batch_refused", event_id=event_id, error=repr(refused.__cause__))
    return _apply_batch(runtime, event_id, 0)


def _fetch_if_needed(runtime: Runtime, event_id: int) -> None:
    """Complete an event whose body lacks what applying needs (WooCommerce refunds without
    their lines), from the channel, before the ledger transaction: no channel call is made
    while ledger rows are locked. A failed fetch raises: retried if transient, else the event
    joins the exception queue with the channel's message."""
    with runtime.ctx.read() as session:
        found = inbox.to_fetch(session, event_id)
    if found is None:
        return
    channel_name, topic, body = found
    channel = runtime.channels.get(channel_name)
    if channel is None:
        return  # applying it reports the missing channel
    completed = channel.complete_order(topic, body)
    with runtime.ctx.sessions.begin() as session:
        inbox.record_fetched(session, event_id, completed)


class BatchRefused(Exception):
    """An event of a drained batch was refused for good; the whole batch was rolled back."""


def _apply_batch(runtime: Runtime, event_id: int, more: int) -> Followups:
    # (channel, outcome, what to log), counted and logged once committed
    applied: list[tuple[str, str, dict[str, Any] | None]] = []
    claimed_ids: list[int] = []
    committed = False
    try:
        with runtime.ctx.ledger(actor="worker") as tx:
            event = inbox.claim(tx.session, event_id)
            if event is inbox.Claim.HELD:  # by another process's batch
                return Followups(held_events=[event_id])
            if event is inbox.Claim.DONE:
                return Followups()
            events = [event, *(inbox.claim_more(tx.session, event_id, more) if more else ())]
            claimed_ids = [e.id for e in events]
            runtime.batches.begin(claimed_ids)
            try:
                applied = _apply(runtime, tx, events)
            except Exception as exc:
                if len(events) > 1 and not is_transient(exc):
                    raise BatchRefused(event_id) from exc
                raise
        committed = True
    finally:
        runtime.batches.end(claimed_ids, committed=committed)
    for channel, result, details in applied:
        runtime.metrics.events.labels(channel, result).inc()
        if details is not None:
            log.info("order_applied", **details)
    return Followups.of(tx.effects, list(runtime.channels))


def _apply(
    runtime: Runtime, tx: LedgerTx, events: list[m.InboxEvent]
) -> list[tuple[str, str, dict[str, Any] | None]]:
    plans = _campaign_plans(runtime, tx, events)
    parsed = [(event, _parse(runtime, event, plans.get(event.channel))) for event in events]
    orders.prepare(tx, [order for _event, order in parsed if order is not None])
    applied: list[tuple[str, str, dict[str, Any] | None]] = []
    for event, order in parsed:
        if order is None:
            applied.append((event.channel, "failed", None))
            continue
        if order.campaign_deposit is not None and order.campaign_deposit.pre_order:
            # a checkout through a campaign's selling plan: a sign-up, paid in full later
            order = campaign_pre_orders.apply(tx, runtime.config, order)
        elif order.campaign_deposit is not None and order.status == "cancelled":
            # the deposit was cancelled or refunded on the shop: the entry ends, and nothing
            # is refunded again by stocksync
            campaign_service.deposit_cancelled(tx, order)
        elif order.campaign_deposit is not None and order.status == "open":
            # a deposit paid on the shop is a sign-up (refused: the event joins the exception
            # queue with the reason, the deposit visible there, never lost)
            entry = campaign_service.deposit_sign_up(tx, runtime.config, order)
            log.info("campaign_deposit", channel=event.channel, order=order.external_id,
                     entry=entry.id, status=entry.status)  # fmt: skip
        if order.payment_proof and order.status == "open":
            # it pays for a campaign allocation: the entry is confirmed first, so the order's
            # reservation takes the unit set aside for it
            paid = campaign_service.paid_on_shop(tx, runtime.config, order)
            if paid != "repeated":
                log.info("campaign_paid", channel=event.channel, order=order.external_id,
                         result=paid)  # fmt: skip
        outcome = orders.record_order(tx, order)
        inbox.mark_applied(event, tx.now)
        result = "applied" if outcome.applied else "repeated" if outcome.repeated else "stale"
        applied.append((event.channel, result, _applied_line(event, order, outcome)))
    return applied


def _applied_line(
    event: m.InboxEvent, order: orders.OrderInput, outcome: orders.Outcome
) -> dict[str, Any] | None:
    """The `order_applied` INFO line of an event that changed the ledger (None otherwise)."""
    if not outcome.applied or outcome.repeated:
        return None
    return {
        "channel": event.channel,
        "order": order.external_id,
        "event_id": event.id,
        "status": str(order.status),
        "skus": len({line.sku for line in order.lines}),
        "units": sum(line.quantity for line in order.lines),
        "reserved": sum(outcome.reserved.values()),
        "backordered": sum(outcome.backordered.values()),
        "beyond_capacity": sum(outcome.beyond_capacity.values()),
    }


def _campaign_plans(
    runtime: Runtime, tx: LedgerTx, events: list[m.InboxEvent]
) -> dict[str, dict[str, str]]:
    """The batch's channels' campaign selling plans (plan id -> campaign), read only where a
    campaign takes payment terms."""
    if not any(c.payment for c in runtime.config.campaigns.values()):
        return {}
    return campaign_plans.by_plan(tx.session, {event.channel for event in events})


def _parse(
    runtime: Runtime, event: m.InboxEvent, plans: dict[str, str] | None = None
) -> orders.OrderInput | None:
    """The ledger input of an event; None when it cannot be understood (then it is marked
    failed: the visible exception queue, `stocksync inbox list --failed`)."""
    inbox.begin_attempt(event)
    channel = runtime.channels.get(event.channel)
    if channel is None:
        inbox.mark_failed(event, f"channel {event.channel!r} is no longer configured")
        return None
    try:
        body = inbox.body_to_apply(event)
        return to_order_input(
            channel.parse_order(event.topic, body), event.channel, runtime.config, plans
        )
    except PayloadError as exc:
        inbox.mark_failed(event, str(exc))
        log.warning("event_unparseable", event_id=event.id, error=str(exc))
        return None


def reset_event(runtime: Runtime, event_id: int) -> None:
    """Give a failed event a fresh start (operator's retry after a fix)."""
    with runtime.ctx.sessions.begin() as session:
        inbox.reset(session, event_id)


def record_event_failure(runtime: Runtime, event_id: int, error: str, bounces: int = 0) -> None:
    """A failure that retrying will not fix: the event joins the visible exception queue.
    (`bounces` is the job's look-again count, passed along with its arguments.)"""
    with runtime.ctx.sessions.begin() as session:
        inbox.record_failure(session, event_id, error)
