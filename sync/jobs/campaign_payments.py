"""The shop calls of campaign payments (issue #15): make the payment request of an allocation
(Shopify draft order + invoice, WooCommerce pending order + its link), send the reminder,
take the request back when the allocation ended unpaid.

One job per entry, driven by the entry's `pay_state` (stock.campaigns): claimed in one ledger
transaction, the shop called with no ledger row locked, the outcome recorded in another. A
claim older than the lease belongs to a job that died; the campaign tick hands such entries out
again. A paid request comes back as the shop's order (sync.jobs.inbox -> paid_on_shop).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from connectors.base import PAYMENT_ATTRIBUTE, ChannelError, PaymentRequest, TakesPayments
from stock import campaigns, counts, listings
from stock.campaigns import EntryRow
from sync import campaign_pre_orders, campaign_service
from sync.failures import is_transient
from sync.jobs.followups import Followups
from sync.logs import get_logger
from sync.runtime import Runtime

log = get_logger("stocksync.jobs.campaign_payments")

# Shopify keeps the draft's units reserved this long past the customer's deadline, so the shop
# never hands them back before stocksync has taken the draft back and pushed the offer again
RESERVE_GRACE = timedelta(hours=1)


def payment_request(
    entry: EntryRow, *, reminder: bool = False, deposit_order: str | None = None
) -> PaymentRequest:
    deadline = entry.expires_at
    if deadline is None:
        raise ValueError(f"entry {entry.id} has no deadline: it is not allocated")
    units = f"{entry.qty} x {entry.sku}"
    if entry.terms:
        units += f" (left to pay: {entry.terms['balance']} {entry.terms['currency']})"
    message = (
        f"Reminder: {units} from {entry.campaign} is still yours until {deadline.isoformat()}."
        if reminder
        else f"{units} from {entry.campaign} is yours: pay before {deadline.isoformat()}, "
        "after that it goes to the next person in line."
    )
    return PaymentRequest(
        key=f"{entry.campaign}-{entry.id}",
        email=entry.email,
        sku=entry.sku,
        quantity=entry.qty,
        pay_by=deadline,
        reserve_until=deadline + RESERVE_GRACE,
        attributes={PAYMENT_ATTRIBUTE: campaign_service.payment_proof(entry)},
        message=message,
        amount=Decimal(str(entry.terms["balance"])) if entry.terms else None,
        deposit_order=deposit_order,
        currency=str(entry.terms["currency"]) if entry.terms else None,
    )


def settle_payment(runtime: Runtime, entry_id: int) -> Followups:
    """Make the shop call the entry's payment state asks for, and record what it did."""
    with runtime.ctx.ledger(actor="campaigns") as tx:
        entry = campaigns.claim_payment(tx, entry_id, campaign_service.PAYMENT_CALL_LEASE)
        # a Shopify pre-order: the shop charges the balance on it (its vaulted card)
        pre_order = campaign_pre_orders.deposit_order(tx, entry) if entry else None
    if entry is None:
        return Followups()  # nothing due, or another job is making the call
    channel = runtime.channels.get(entry.pay_channel or "")
    if not isinstance(channel, TakesPayments):
        return _record(
            runtime, entry, "failed", f"channel {entry.pay_channel!r} cannot take payments",
            pay_error=f"channel {entry.pay_channel!r} is not a configured shop",
        )  # fmt: skip
    try:
        if entry.pay_state == "requested":
            link = channel.request_payment(payment_request(entry, deposit_order=pre_order))
            if link.paid and pre_order is not None:
                return _record(runtime, entry, "paid", "balance charged on the shop",
                               pay_ref=link.ref, pay_error=None, pre_order=pre_order)  # fmt: skip
            return _record(runtime, entry, "open", "payment link sent", pay_ref=link.ref,
                           pay_url=link.url, pay_error=None)  # fmt: skip
        if entry.pay_state == "reminding":
            if entry.pay_ref is not None:
                wanted = payment_request(entry, reminder=True, deposit_order=pre_order)
                channel.remind_payment(entry.pay_ref, wanted)
            return _record(runtime, entry, "open", "reminder sent")
        # withdrawing
        if entry.pay_ref is None:
            return _record(runtime, entry, "withdrawn", "no request was made on the shop")
        if channel.withdraw_payment(entry.pay_ref):
            return _record(runtime, entry, "withdrawn", "payment request taken back")
        return _record(
            runtime, entry, "paid", "paid on the shop before it could be taken back: the "
            "order comes in like any order",
        )  # fmt: skip
    except Exception as exc:
        if is_transient(exc):
            _release(runtime, entry.id)  # the retry (or the next tick) makes the call again
            raise
        if not isinstance(exc, ChannelError):
            _release(runtime, entry.id)
            raise
        log.warning("campaign_payment_failed", entry=entry.id, state=entry.pay_state,
                    error=str(exc))  # fmt: skip
        return _record(runtime, entry, "failed", f"the shop refused: {exc.message}",
                       pay_error=str(exc))  # fmt: skip


def _record(
    runtime: Runtime,
    entry: EntryRow,
    pay_state: str,
    why: str,
    *,
    pre_order: str | None = None,
    **values: object,
) -> Followups:
    with runtime.ctx.ledger(actor="campaigns") as tx:
        row = campaigns.record_payment(tx, entry.id, pay_state, why, **values)
        if pre_order is not None and entry.pay_channel:
            # charged: confirmed, and the pre-order's line takes the unit set aside
            row = campaign_pre_orders.balance_charged(
                tx, runtime.config, entry.id, entry.pay_channel, pre_order
            )
        if pay_state in ("open", "withdrawn"):
            # the shop's own reservation moved its available count (a Shopify draft reserves
            # units, deleting it returns them): push the offer again
            listings.mark_dirty(tx, counts.ensure_skus(tx, {entry.sku}).values())
    log.info("campaign_payment", entry=entry.id, channel=entry.channel, payment=row.pay_state,
             why=why)  # fmt: skip
    return Followups.of(tx.effects, list(runtime.channels))


def _release(runtime: Runtime, entry_id: int) -> None:
    with runtime.ctx.ledger(actor="campaigns") as tx:
        campaigns.release_payment_claim(tx, entry_id)
