"""Campaign selling plans on the Shopify channels (issue #16), kept in step by the campaign tick.

A campaign with a deposit (or paid in full at checkout) sells on Shopify through a pre-order
selling plan stocksync owns (merchant code `stocksync-<campaign>`): made when sign-up opens,
made again when the campaign's terms or SKUs change (a digest of the plan as made), taken down
when sign-up closes. The shop is called with no ledger row locked; a refusal is recorded on the
plan (`campaign show`) and tried again at the next tick."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from decimal import Decimal

from connectors.base import ChannelError
from connectors.shopify_deposits import PlanSpec, SellsPreOrders
from connectors.shopify_orders import gid_tail
from rules.campaign_model import Campaign
from rules.money import text
from stock import campaign_plans, payment_terms
from sync.failures import is_transient
from sync.logs import get_logger
from sync.runtime import Runtime

log = get_logger("stocksync.jobs.campaign_plans")

CODE_PREFIX = "stocksync-"
PLAN_LEASE = timedelta(minutes=2)  # a sync claimed longer ago belongs to a tick that died


def plan_spec(campaign: Campaign, now: datetime) -> PlanSpec | None:
    """The plan the campaign wants on a Shopify channel now; None: none (no payment terms, or
    sign-up is not open). `mode: none` is a pre-order that charges nothing at checkout: the
    card is only saved (Shopify's authorisation-only pre-order), charged at allocation."""
    terms = campaign.payment
    if terms is None or not campaign.opens <= now < campaign.closes:
        return None
    due_hours = terms.balance_due_hours or campaign.window_hours
    first_sku, _units = campaign.skus[0]
    agreed = payment_terms.accepted(terms, first_sku, 1, campaign.window_hours, now)
    percent: Decimal | None = payment_terms.HUNDRED
    per_unit: Decimal | None = None
    balance_by: datetime | None = None
    later = f"within {due_hours:g} hours of a unit being allocated to you"
    if terms.mode == "full":
        now_words = "Pre-order: you pay the full price today."
    elif terms.mode == "none":
        now_words = (
            f"Pre-order: nothing to pay today. Your card is saved and charged the price {later}; "
            "if no unit is allocated to you, it is never charged."
        )
        percent = payment_terms.ZERO
    else:
        share = (
            f"{terms.deposit_percent.normalize():f}% of the price"
            if terms.deposit_percent is not None
            else f"{text(terms.deposit_amount or payment_terms.ZERO, terms.currency)} a unit"
        )
        now_words = (
            f"Pre-order: you pay a deposit of {share} today; the rest is charged {later}. "
            "Until then your deposit is refundable in full."
        )
        percent, per_unit = terms.deposit_percent, terms.deposit_amount
    if terms.mode != "full":
        last_allocation = terms.refund_unallocated_after or campaign.closes
        balance_by = last_allocation + timedelta(hours=due_hours)
    # the rules after the sums: no unit by a date, a missed deadline, a cancellation
    rules = [
        w for w in payment_terms.in_words(agreed)[1:] if not w.startswith(("Today", "You pay"))
    ]
    return PlanSpec(
        code=CODE_PREFIX + campaign.name,
        name=f"Pre-order ({campaign.name})",
        description=" ".join([now_words, *rules])[:1000],
        deposit_percent=percent,
        deposit_per_unit=per_unit,
        balance_by=balance_by,
        skus=tuple(code for code, _units in campaign.skus),
    )


def spec_digest(spec: PlanSpec | None) -> str | None:
    if spec is None:
        return None
    return hashlib.sha256(repr(spec).encode("utf-8")).hexdigest()


def sync_plans(runtime: Runtime, campaign: Campaign) -> None:
    """Make each Shopify channel's plan match what the campaign wants now (nothing when it
    matches the plan made last)."""
    for name in campaign.channels:
        channel = runtime.channels.get(name)
        if not isinstance(channel, SellsPreOrders):
            continue  # WooCommerce signs up through a deposit product; manual by hand
        with runtime.ctx.ledger(actor="campaigns") as tx:
            spec = plan_spec(campaign, tx.now)
            made = campaign_plans.current(tx.session, campaign.name, name)
        digest = spec_digest(spec)
        if (made is None and spec is None) or (made is not None and made.digest == digest):
            continue
        with runtime.ctx.ledger(actor="campaigns") as tx:
            if not campaign_plans.claim(tx, campaign.name, name, PLAN_LEASE):
                continue  # another tick is making it
        try:
            if spec is not None:
                ref = channel.ensure_selling_plan(spec)
                _record(runtime, campaign.name, name, digest, ref.group_id, gid_tail(ref.plan_id))
            elif made is not None and made.group_ref is not None:
                channel.remove_selling_plan(CODE_PREFIX + campaign.name)
                _record(runtime, campaign.name, name, None, None, None)
            else:
                _record(runtime, campaign.name, name, None, None, None)  # nothing to take down
        except Exception as exc:
            if is_transient(exc) or not isinstance(exc, ChannelError):
                with runtime.ctx.ledger(actor="campaigns") as tx:
                    campaign_plans.release(tx, campaign.name, name)
                log.warning("campaign_plan_retry", campaign=campaign.name, channel=name,
                            error=repr(exc))  # fmt: skip
                continue  # the next tick tries again
            log.warning("campaign_plan_refused", campaign=campaign.name, channel=name,
                        error=str(exc))  # fmt: skip
            with runtime.ctx.ledger(actor="campaigns") as tx:
                campaign_plans.record(tx, campaign.name, name, digest=None, error=str(exc))


def _record(
    runtime: Runtime,
    campaign: str,
    channel: str,
    digest: str | None,
    group_ref: str | None,
    plan_ref: str | None,
) -> None:
    with runtime.ctx.ledger(actor="campaigns") as tx:
        campaign_plans.record(
            tx, campaign, channel, digest=digest, group_ref=group_ref, plan_ref=plan_ref
        )
    log.info("campaign_plan", campaign=campaign, channel=channel, group=group_ref, plan=plan_ref)
