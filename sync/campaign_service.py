"""Campaign workflows (issue #15): sign up, review, allocate a wave, run what is due, confirm.

Each runs in one ledger transaction, the campaign's state row locked first (one wave or tick at
a time), then its SKUs' stock rows. The plain decisions (identities, review, who gets a unit)
are stock.identity and stock.campaign_policy; the rows are stock.campaigns'.
"""

from __future__ import annotations

import random
import secrets
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from backorders.orders import OrderInput
from rules import Config
from rules import money as rules_money
from rules.campaign_model import Campaign
from stock import (
    campaign_money,
    campaign_plans,
    campaign_policy,
    campaigns,
    counts,
    listings,
    offers,
    payment_terms,
)
from stock.campaigns import EntryRow, NewEntry
from stock.tx import LedgerInputError, LedgerTx


def campaign_of(config: Config, name: str) -> Campaign:
    try:
        return config.campaign(name)
    except KeyError as exc:
        raise LedgerInputError(name, str(exc.args[0])) from None


@dataclass(frozen=True)
class SignUp:
    email: str
    sku: str
    qty: int = 1
    phone: str | None = None
    country: str | None = None
    address: str | None = None
    tier: str | None = None
    channel: str | None = None  # where they will pay; the campaign's first channel when None
    accept_terms: bool = False  # the customer accepted the campaign's payment terms
    # a deposit paid at sign-up: (channel, order reference) where it was paid
    deposit_paid: tuple[str, str] | None = None
    placed_at: datetime | None = None  # when they signed up, if not now (a paid deposit order)


def sign_up(tx: LedgerTx, config: Config, name: str, form: SignUp) -> EntryRow:
    """A new waitlist entry: `waiting`, or `review` when it is over the per-customer limit or
    shares an identity with another entry (never dropped, never allocated silently)."""
    campaign = campaign_of(config, name)
    if form.deposit_paid is not None:
        earlier = campaign_money.by_key(tx.session, deposit_key(form.deposit_paid))
        if earlier is not None:  # this deposit made its entry already (a webhook and a poll)
            return campaigns.entry(tx.session, earlier.entry_id)
    if not campaign.opens <= (form.placed_at or tx.now) < campaign.closes:
        raise LedgerInputError(
            name,
            f"sign-up is open from {campaign.opens.isoformat()} to {campaign.closes.isoformat()}",
        )
    if not campaign.units(form.sku):
        known = ", ".join(code for code, _units in campaign.skus)
        raise LedgerInputError(form.sku, f"is not in campaign {name} (its SKUs: {known})")
    if form.qty < 1:
        raise LedgerInputError(form.sku, f"quantity must be at least 1, got {form.qty}")
    if form.tier is not None and form.tier not in config.tiers:
        raise LedgerInputError(form.tier, f"unknown tier; tiers: {', '.join(config.tiers)}")
    if form.channel is not None and form.channel not in campaign.channels:
        raise LedgerInputError(
            form.channel, f"is not a channel of campaign {name} ({', '.join(campaign.channels)})"
        )
    from stock.identity import IdentityError, identity_keys, normalize_email  # phonenumbers

    try:
        normalize_email(form.email)  # every entry needs a valid email: it is how we reach them
        # the keys that make two entries one customer: the campaign's `limits.identity`
        keys = identity_keys(form.email, form.phone, form.address, form.country, campaign.identity)
    except IdentityError as exc:
        raise LedgerInputError(exc.field, exc.message) from None
    sku_id = counts.ensure_skus(tx, {form.sku})[form.sku]
    state = campaigns.lock_state(tx, name)  # sign-ups of one campaign one at a time
    if campaign.method == "lottery" and state.seed is None:
        # drawn before any wave and kept (`campaign show`): a dry run and the wave draw alike,
        # and nobody can pick a seed after seeing the entries
        state.seed = random.SystemRandom().randrange(2**62)
    agreed = _accepted_terms(tx, campaign, form)
    others = [_policy_entry(e) for e in campaigns.sharing_entries(tx.session, name, keys)]
    candidate = campaign_policy.Entry(0, form.sku, form.qty, tx.now, form.tier, keys)
    reason = campaign_policy.needs_review(candidate, others, campaign.per_customer)
    entry = campaigns.add(
        tx,
        name,
        form.sku,
        NewEntry(
            sku_id, form.qty, form.email.strip(), form.phone, form.country, form.address,
            form.tier, keys, reason, form.channel or (form.deposit_paid or (None,))[0], agreed,
        ),
    )  # fmt: skip
    if agreed is not None and form.deposit_paid is not None:
        # (0.00 where the checkout only saved the card: the order still made the entry)
        channel, order_ref = form.deposit_paid
        campaign_money.record_paid(
            tx, entry.id, name, "deposit", Decimal(agreed["deposit"]), str(agreed["currency"]),
            channel=channel, order_ref=order_ref, key=deposit_key(form.deposit_paid),
        )  # fmt: skip
    return entry


def deposit_sign_up(tx: LedgerTx, config: Config, order: OrderInput) -> EntryRow:
    """A deposit order paid on a shop is a sign-up: its campaign and variant from the order's
    meta, its customer's email, the terms accepted at checkout; the same order again (a
    webhook and a poll) finds the entry it made. Refused with the reason otherwise."""
    deposit = order.campaign_deposit
    where = f"{order.channel}/{order.external_id}"
    if deposit is None:
        raise LedgerInputError(where, "is not a deposit order")
    if not deposit.campaign:
        raise LedgerInputError(
            where, "a deposit order must name its campaign (meta stocksync_campaign)"
        )
    if not deposit.sku:
        raise LedgerInputError(
            where, "a deposit order must name the variant wanted (meta stocksync_variant)"
        )
    form = SignUp(
        deposit.email, deposit.sku, deposit.qty, channel=order.channel,
        accept_terms=deposit.accepted_terms, deposit_paid=(order.channel, order.external_id),
        placed_at=order.placed_at,
    )  # fmt: skip
    return sign_up(tx, config, deposit.campaign, form)


def deposit_cancelled(tx: LedgerTx, order: OrderInput) -> EntryRow | None:
    """The deposit order of an entry was cancelled or refunded on the shop: the entry is
    cancelled and no refund of its own is made (the shop gave the money back)."""
    found = campaign_money.by_key(tx.session, deposit_key((order.channel, order.external_id)))
    if found is None:
        return None  # never a sign-up (unpaid when it was cancelled)
    item = campaigns.entry(tx.session, found.entry_id)
    live = ("waiting", "review", "allocated", "confirmed")
    if item.status not in live:
        return item
    campaigns.lock_state(tx, item.campaign)
    campaigns.change(
        tx, item, "cancelled",
        f"its deposit order {order.external_id} was {order.source_status or 'cancelled'} on "
        f"{order.channel}", expected=live, refund="none",
    )  # fmt: skip
    return campaigns.entry(tx.session, item.id)


def deposit_key(paid: tuple[str, str]) -> str:
    return f"deposit-{paid[0]}-{paid[1]}"


def _accepted_terms(tx: LedgerTx, campaign: Campaign, form: SignUp) -> dict[str, Any] | None:
    """The campaign's payment terms as this customer accepts them (None: the campaign has no
    terms). Refused when they were not accepted, or a deposit is due and was not paid."""
    terms = campaign.payment
    if terms is None:
        return None
    agreed = payment_terms.accepted(terms, form.sku, form.qty, campaign.window_hours, tx.now)
    if not form.accept_terms:
        raise LedgerInputError(
            campaign.name,
            "the customer must accept the payment terms (accept_terms): "
            + " ".join(payment_terms.in_words(agreed)),
        )
    if terms.mode != "none" and form.deposit_paid is None:
        due = rules_money.text(Decimal(agreed["deposit"]), terms.currency)
        raise LedgerInputError(
            campaign.name,
            f"takes {due} at sign-up: customers sign up by paying it on the shop"
            + (f" (the deposit product {terms.deposit_sku})" if terms.deposit_sku else "")
            + "; a payment taken by hand: --deposit-paid CHANNEL:REFERENCE",
        )
    if form.deposit_paid is not None and form.deposit_paid[0] not in campaign.channels:
        raise LedgerInputError(
            form.deposit_paid[0], f"is not a channel of campaign {campaign.name}"
        )
    return agreed


def _policy_entry(entry: EntryRow) -> campaign_policy.Entry:
    return campaign_policy.Entry(
        entry.id, entry.sku, entry.qty, entry.signed_up_at, entry.tier, entry.keys
    )


def review(tx: LedgerTx, entry_id: int, approve: bool, reason: str) -> EntryRow:
    """A merchant's decision on an entry in review: approved ones join the queue in their
    sign-up place; rejected ones are declined."""
    if not reason.strip():
        raise LedgerInputError(f"entry {entry_id}", "a review decision needs a reason")
    item = campaigns.entry(tx.session, entry_id)
    campaigns.lock_state(tx, item.campaign)
    status = "waiting" if approve else "declined"
    why = f"review {'approved' if approve else 'rejected'}: {reason}"
    campaigns.change(tx, item, status, why, expected=("review",))
    return campaigns.entry(tx.session, entry_id)


def free_units(tx: LedgerTx, campaign: Campaign) -> dict[str, int]:
    """Per SKU, units a wave may allocate: set aside less those held (allocated, confirmed),
    and never more than the stock not reserved for orders can fill."""
    ids = counts.ensure_skus(tx, {code for code, _units in campaign.skus})
    held = campaigns.held_units(tx.session, campaign.name)
    counts.lock(tx, ids.values())
    figures = offers.locked_figures(tx, ids.values())
    # every campaign's unpaid allocations claim these units, not only this one's
    allocated = campaigns.allocated_units(tx.session, ids.values())
    free = {}
    for code, units in campaign.skus:
        sku_id = ids[code]
        physical = figures[sku_id].on_hand - figures[sku_id].reserved - allocated.get(sku_id, 0)
        free[code] = max(min(units - held.get(sku_id, 0), physical), 0)
    return free


@dataclass(frozen=True)
class Wave:
    number: int | None  # None: a dry run
    method: str
    seed: int | None
    allocations: list[dict[str, Any]]


def allocate(
    tx: LedgerTx,
    config: Config,
    name: str,
    *,
    dry_run: bool = False,
    waiting: list[EntryRow] | None = None,
    free: dict[str, int] | None = None,
) -> Wave:
    """One wave now: the waiting entries the free units can serve, by the campaign's method.
    A dry run computes the same and changes nothing (the caller rolls back). `waiting` and
    `free`: read in this transaction already (the tick), so not read again."""
    campaign = campaign_of(config, name)
    state = campaigns.lock_state(tx, name)
    if state.closed_at is not None:
        raise LedgerInputError(name, "is closed")
    seed = state.seed
    if campaign.method == "lottery" and seed is None:
        seed = random.SystemRandom().randrange(2**62)  # recorded: anyone can re-draw it
    if free is None:
        free = free_units(tx, campaign)
    if waiting is None:
        waiting = campaigns.entries(tx.session, name, ("waiting",))
    taken = campaigns.tier_reserve_taken(tx.session, name)
    chosen = campaign_policy.allocate_wave(
        [_policy_entry(e) for e in waiting],
        free,
        campaign.method,
        seed=seed,
        tier_units=dict(campaign.tiers),
        tier_taken=taken,
    )
    by_id = {e.id: e for e in waiting}
    number = None if dry_run else campaigns.record_wave(tx, state, seed)
    rows = []
    for item in chosen:
        entry = by_id[item.entry_id]
        rows.append({"entry": entry.id, "email": entry.email, "sku": item.sku, "qty": item.qty,
                     "why": item.why})  # fmt: skip
        if not dry_run and number is not None:
            channel = pay_channel(campaign, entry)
            settled = _nothing_left_to_pay(entry)
            campaigns.allocate(
                tx, entry, number, campaign.window_hours, item.why, item.tier_reserve,
                channel=channel, on_shop=on_shop(config, channel) and not settled,
            )  # fmt: skip
            if settled:
                _confirm_paid_in_full(tx, entry.id, channel)
    return Wave(number, campaign.method, seed, rows)


def allocate_entry(tx: LedgerTx, config: Config, entry_id: int, reason: str) -> EntryRow:
    """An override: give this entry (waiting or in review) a unit now, out of its turn, when
    one of its SKU is free; the reason is kept in the audit log."""
    if not reason.strip():
        raise LedgerInputError(f"entry {entry_id}", "an override needs a reason")
    item = campaigns.entry(tx.session, entry_id)
    campaign = campaign_of(config, item.campaign)
    state = campaigns.lock_state(tx, item.campaign)
    if state.closed_at is not None:
        raise LedgerInputError(item.campaign, "is closed")
    free = free_units(tx, campaign).get(item.sku, 0)
    if free < item.qty:
        raise LedgerInputError(
            f"entry {entry_id}", f"needs {item.qty} of {item.sku}, {free} free in the campaign"
        )
    channel = pay_channel(campaign, item)
    campaigns.allocate(
        tx, item, state.waves, campaign.window_hours, f"override: {reason}",
        channel=channel, on_shop=on_shop(config, channel),
    )  # fmt: skip
    return campaigns.entry(tx.session, entry_id)


def _nothing_left_to_pay(entry: EntryRow) -> bool:
    """Paid in full at sign-up (`mode: full`): an allocation is a confirmation."""
    return bool(entry.terms) and Decimal(str((entry.terms or {}).get("balance", "0"))) <= 0


def _confirm_paid_in_full(tx: LedgerTx, entry_id: int, channel: str) -> None:
    """The unit of an entry paid in full becomes its order at once, on the channel it paid on:
    its pre-order's own line (Shopify), else `campaign:<name>:<entry>` (the shop's order was of
    the deposit product, not the SKU)."""
    from backorders import orders
    from sync import campaign_pre_orders  # it builds on this module

    item = campaigns.entry(tx.session, entry_id)
    if campaign_pre_orders.paid_in_full(tx, item, channel):
        return  # a Shopify pre-order: its own line is the unit
    ref = f"campaign:{item.campaign}:{item.id}"
    campaigns.change(tx, item, "confirmed", "paid in full at sign-up", expected=("allocated",),
                     channel=channel, order_ref=ref)  # fmt: skip
    orders.record_order(
        tx,
        orders.OrderInput(channel, ref, tx.now, tx.now, "open",
                          (orders.LineInput("1", item.sku, item.qty),),
                          customer_key=item.email, tier=item.tier),
    )  # fmt: skip


def cancel(tx: LedgerTx, config: Config, entry_id: int, reason: str) -> EntryRow:
    """The customer changes their mind: the entry is `cancelled` and what they paid comes back
    as their terms say (in full before a unit is allocated; all but the fee after; after the
    production lock only if the unit is re-allocated within a day). A unit allocated to them
    goes to the next in line; a confirmed order on a manual channel is cancelled with it."""
    from backorders import orders

    if not reason.strip():
        raise LedgerInputError(f"entry {entry_id}", "a cancellation needs a reason")
    item = campaigns.entry(tx.session, entry_id)
    campaign_of(config, item.campaign)
    campaigns.lock_state(tx, item.campaign)
    if item.status == "confirmed":
        channel = config.channels.get(item.channel or "")
        if channel is None or channel.kind != "manual":
            raise LedgerInputError(
                f"entry {entry_id}",
                f"was paid on {item.channel} (order {item.order_ref}): cancel that order on the "
                "shop; stocksync sees the cancellation as an order update",
            )
    campaigns.change(tx, item, "cancelled", f"cancelled: {reason}",
                     expected=("waiting", "review", "allocated", "confirmed"))  # fmt: skip
    if item.status == "confirmed" and item.channel and item.order_ref:
        orders.cancel_order(tx, item.channel, item.order_ref)
    return campaigns.entry(tx.session, entry_id)


def pay_channel(campaign: Campaign, entry: EntryRow) -> str:
    """Where an allocated customer pays: the channel they signed up on, else the campaign's
    first."""
    return entry.channel if entry.channel in campaign.channels else campaign.channels[0]


def on_shop(config: Config, channel: str) -> bool:
    """A shop takes the payment itself (a payment request is made there); manual: by hand."""
    found = config.channels.get(channel)
    return found is not None and found.kind != "manual"


def skip(tx: LedgerTx, entry_id: int, reason: str) -> EntryRow:
    """An override: take a waiting entry out of the line (declined, with the reason)."""
    if not reason.strip():
        raise LedgerInputError(f"entry {entry_id}", "an override needs a reason")
    item = campaigns.entry(tx.session, entry_id)
    campaigns.lock_state(tx, item.campaign)
    campaigns.change(
        tx, item, "declined", f"skipped: {reason}", expected=("waiting", "review")
    )  # fmt: skip
    return campaigns.entry(tx.session, entry_id)


def confirm(tx: LedgerTx, config: Config, entry_id: int, channel: str | None = None) -> EntryRow:
    """A manual channel's payment: the allocated entry becomes an order of that channel (its
    reservation takes the unit the campaign set aside: never a second one)."""
    from backorders import orders

    item = campaigns.entry(tx.session, entry_id)
    campaign = campaign_of(config, item.campaign)
    manual = [c for c in campaign.channels if config.channels[c].kind == "manual"]
    chosen = channel or (manual[0] if manual else None)
    if chosen is None or chosen not in manual:
        raise LedgerInputError(
            f"entry {entry_id}",
            "campaign confirm is for manual channels; "
            + (f"this campaign's: {', '.join(manual)}" if manual else "the campaign has none"),
        )
    campaigns.lock_state(tx, item.campaign)
    if (
        item.status == "allocated"
        and item.expires_at is not None
        and campaign_policy.expired(item.expires_at, tx.now)
    ):
        raise LedgerInputError(
            f"entry {entry_id}",
            f"its deadline passed at {item.expires_at.isoformat()}: the unit goes to the next "
            "in line (the next tick expires it)",
        )
    ref = f"{item.campaign}-{item.id}"
    extra: dict[str, Any] = {}
    if item.pay_state in campaigns.PAYABLE:  # paid by hand: the shop's link must not be paid too
        extra["pay_state"] = "withdrawing"
        campaigns.start_withdrawal(tx, item.id)
    campaigns.change(
        tx, item, "confirmed", f"paid on {chosen}", expected=("allocated",),
        channel=chosen, order_ref=ref, **extra,
    )  # fmt: skip
    record_balance(tx, item, chosen, ref)
    orders.record_order(
        tx,
        orders.OrderInput(
            chosen, ref, tx.now, tx.now, "open",
            (orders.LineInput("1", item.sku, item.qty),), customer_key=item.email,
            tier=item.tier,
        ),
    )  # fmt: skip
    return campaigns.entry(tx.session, entry_id)


PAYMENT_CALL_LEASE = timedelta(minutes=2)  # a shop call claimed longer ago: its job died


def tick(tx: LedgerTx, config: Config, name: str) -> dict[str, Any]:
    """What is due as of `tx.now`: allocations past their deadline expire; when stock went
    down, the newest unpaid allocations are cancelled; reminders before deadlines; a wave when
    one is due, or at once when stock went up, while units are free; after sign-up closed and
    nothing is allocated or can be, the campaign closes. Shop calls left undone (a lost
    message, a job that died) are handed out again in `payments`."""
    campaign = campaign_of(config, name)
    state = campaigns.lock_state(tx, name)
    done: dict[str, Any] = {"campaign": name, "now": tx.now.isoformat(), "expired": [],
                            "cancelled": [], "reminded": [], "wave": None, "closed": False,
                            "payments": campaigns.payment_calls_due(
                                tx.session, name, tx.now - PAYMENT_CALL_LEASE),
                            "refunds": campaign_money.refunds_due(
                                tx.session, tx.now - PAYMENT_CALL_LEASE),
                            "not_allocated": []}  # fmt: skip
    done["refunds"] += campaign_money.settle_after_lock(tx, name)
    if state.closed_at is not None:
        return done
    done["terms_offered"] = []
    digest = payment_terms.digest(campaign.payment) if campaign.payment else None
    if digest != state.terms_seen:  # the YAML's terms changed since the entries were compared
        done["terms_offered"] = _offer_changed_terms(tx, campaign)
        state.terms_seen = digest
    terms = campaign.payment
    if terms and terms.refund_unallocated_after and tx.now >= terms.refund_unallocated_after:
        for entry in campaigns.entries(tx.session, name, ("waiting", "review")):
            campaigns.change(
                tx, entry, "not_allocated",
                f"no unit allocated by {terms.refund_unallocated_after.isoformat()}: refunded",
                expected=("waiting", "review"),
            )  # fmt: skip
            done["not_allocated"].append(entry.id)
    # each state's entries are read once: the changes below are applied to these lists
    allocated = campaigns.entries(tx.session, name, ("allocated",))
    for entry in allocated:
        if entry.expires_at is not None and campaign_policy.expired(entry.expires_at, tx.now):
            campaigns.change(tx, entry, "expired", "not paid by the deadline",
                             expected=("allocated",))  # fmt: skip
            done["expired"].append(entry.id)
    allocated = [e for e in allocated if e.id not in set(done["expired"])]
    ids = counts.ensure_skus(tx, {code for code, _units in campaign.skus})
    counts.lock(tx, ids.values())
    figures = offers.locked_figures(tx, ids.values())
    free_stock = {code: figures[ids[code]].on_hand - figures[ids[code]].reserved
                  for code, _units in campaign.skus}  # fmt: skip
    rose = campaign_policy.stock_rose(state.stock_seen, free_stock)
    state.stock_seen = dict(free_stock)  # a new dict: the JSON column sees the change
    done["cancelled"] = _fit_allocations_to_stock(tx, allocated, ids, figures)
    allocated = [e for e in allocated if e.id not in set(done["cancelled"])]
    for entry in allocated:
        if entry.expires_at is not None and campaign_policy.reminder_due(
            entry.expires_at, entry.reminded_at, campaign.reminder_hours_before, tx.now
        ):
            campaigns.remind(tx, entry, on_shop(config, entry.channel or ""))
            done["reminded"].append(entry.id)
    free = free_units(tx, campaign)
    waiting = campaigns.entries(tx.session, name, ("waiting",))
    due = campaign_policy.wave_due(state.last_wave_at, tx.now, campaign.wave_every_hours)
    # more units: the next in line is invited now, not at the next scheduled wave
    invite = rose and campaign.on_stock_change_up == "next_in_line"
    if (due or invite) and tx.now >= campaign.opens and waiting and any(free.values()):
        wave = allocate(tx, config, name, waiting=waiting, free=dict(free))
        done["wave"] = {"number": wave.number, "allocated": wave.allocations,
                        "trigger": "schedule" if due else "stock_up"}  # fmt: skip
        given = {row["entry"] for row in wave.allocations}
        waiting = [e for e in waiting if e.id not in given]
        for row in wave.allocations:
            free[row["sku"]] -= row["qty"]
    servable = any(free.get(e.sku, 0) >= e.qty for e in waiting)
    closing = tx.now >= campaign.closes and not servable
    if closing and not allocated and not campaigns.any_in(tx.session, name, "allocated"):
        for entry in campaigns.entries(tx.session, name, ("waiting", "review")):
            campaigns.change(tx, entry, "not_allocated", "the campaign closed",
                             expected=("waiting", "review"))  # fmt: skip
        campaigns.close(tx, state)
        # its units are no longer set aside: every channel's offer goes up
        listings.mark_dirty(tx, counts.ensure_skus(tx, dict(campaign.skus)).values())
        done["closed"] = True
    return done


LIVE_WITH_TERMS = ("waiting", "review", "allocated", "confirmed")


def _offer_changed_terms(tx: LedgerTx, campaign: Campaign) -> list[int]:
    """When the campaign's price or terms changed after customers accepted theirs, each
    affected entry is offered the new terms: the customer accepts them or cancels for a full
    refund (`decide_terms`); until then their accepted terms stand."""
    terms = campaign.payment
    if terms is None:
        return []
    offered = []
    for entry in campaigns.entries(tx.session, campaign.name, LIVE_WITH_TERMS):
        if not entry.terms:
            continue
        offer = payment_terms.changed_terms(
            entry.terms, terms, entry.sku, entry.qty, campaign.window_hours, tx.now
        )
        same = (
            offer is not None
            and entry.terms_offer is not None
            and all(
                str(offer.get(k)) == str(entry.terms_offer.get(k)) for k in payment_terms.TERM_KEYS
            )
        )
        if same or (offer is None and entry.terms_offer is None):
            continue
        why = "the campaign's price or terms changed" if offer else "the terms are as accepted"
        campaigns.offer_terms(tx, entry, offer, why)
        offered.append(entry.id)
    return offered


def decide_terms(tx: LedgerTx, config: Config, entry_id: int, accept: bool) -> EntryRow:
    """The customer's choice on changed terms: accept them, or cancel with everything they
    paid refunded in full (whatever the fee)."""
    item = campaigns.entry(tx.session, entry_id)
    campaign_of(config, item.campaign)
    campaigns.lock_state(tx, item.campaign)
    if not item.terms_offer:
        raise LedgerInputError(f"entry {entry_id}", "has no changed terms to decide on")
    if accept:
        campaigns.accept_offer(tx, item)
    else:
        campaigns.change(tx, item, "cancelled", "declined the changed terms",
                         expected=LIVE_WITH_TERMS, refund="full", terms_offer=None)  # fmt: skip
    return campaigns.entry(tx.session, entry_id)


def _fit_allocations_to_stock(
    tx: LedgerTx,
    allocated: list[EntryRow],
    ids: Mapping[str, int],
    figures: Mapping[int, offers.StockFigures],
) -> list[int]:
    """Fewer units than allocated (a count went down): cancel the newest unpaid first."""
    cancelled = []
    by_sku: dict[str, list[EntryRow]] = defaultdict(list)
    for entry in allocated:
        by_sku[entry.sku].append(entry)
    for code, items in by_sku.items():
        fig = figures[ids[code]]
        over = sum(e.qty for e in items) - max(fig.on_hand - fig.reserved, 0)
        for entry in sorted(items, key=lambda e: (e.allocated_at or tx.now, e.id), reverse=True):
            if over <= 0:
                break
            campaigns.change(tx, entry, "declined", "stock went down: the newest unpaid "
                             "allocation is cancelled first", expected=("allocated",))  # fmt: skip
            cancelled.append(entry.id)
            over -= entry.qty
    return cancelled


def record_balance(tx: LedgerTx, item: EntryRow, channel: str, order_ref: str) -> None:
    """The balance of an entry with payment terms, paid with its confirmation."""
    agreed = item.terms
    if not agreed or Decimal(agreed["balance"]) <= 0:
        return
    key = f"balance-{item.id}"
    if campaign_money.by_key(tx.session, key) is None:
        campaign_money.record_paid(
            tx, item.id, item.campaign, "balance", Decimal(agreed["balance"]),
            str(agreed["currency"]), channel=channel, order_ref=order_ref, key=key,
        )  # fmt: skip


def payment_proof(entry: EntryRow) -> str:
    """What our payment request puts on the shop's order: the entry and a piece of its private
    token, so an order cannot claim somebody else's allocation by naming its id."""
    return f"{entry.id}:{entry.token[:12]}"


def paid_on_shop(tx: LedgerTx, config: Config, order: OrderInput) -> str:
    """A shop order that pays for an allocation (it carries our payment proof): the entry is
    confirmed and the order's reservation takes the unit set aside for it, never a second one.
    Paid after the allocation ended: confirmed if a unit of the campaign is still free, else
    the order takes stock like any order. Returns what happened (for the log)."""
    where = f"{order.channel}/{order.external_id}"
    entry_text, _sep, secret = (order.payment_proof or "").partition(":")
    item = None
    if entry_text.isdigit():
        try:
            item = campaigns.entry(tx.session, int(entry_text))
        except LedgerInputError:
            item = None
    if item is None or not secrets.compare_digest(secret, payment_proof(item).partition(":")[2]):
        why = "no campaign entry matches; the order is taken like any order"
        tx.audit("campaign.payment_unknown", where, {"proof": order.payment_proof, "why": why})
        return "unknown"
    if item.status == "confirmed":
        if item.order_ref != order.external_id or item.channel != order.channel:
            tx.audit("campaign.paid_twice", item.campaign, {"entry": item.id, "order": where,
                     "confirmed_by": f"{item.channel}/{item.order_ref}"})  # fmt: skip
        return "repeated"
    campaign = config.campaigns.get(item.campaign)
    state = campaigns.state(tx.session, item.campaign)
    why = f"paid on {order.channel} (order {order.external_id})"
    paid: dict[str, Any] = {
        "channel": order.channel,
        "order_ref": order.external_id,
        "pay_state": "paid",
    }
    if item.status == "allocated":
        campaigns.change(tx, item, "confirmed", why, expected=("allocated",), **paid)
        record_balance(tx, item, order.channel, order.external_id)
        return "confirmed"
    if (
        campaign is not None
        and item.status in ("expired", "declined")
        and (state is None or state.closed_at is None)
        and free_units(tx, campaign).get(item.sku, 0) >= item.qty
    ):
        campaigns.change(tx, item, "confirmed", why + " after its allocation ended; a unit "
                         "was still free", expected=(item.status,), **paid)  # fmt: skip
        campaign_money.withdraw_planned(tx, item.id, item.status, "paid after all")
        record_balance(tx, item, order.channel, order.external_id)
        return "confirmed_late"
    tx.audit("campaign.late_payment", item.campaign, {"entry": item.id, "order": where,
             "status": item.status, "why": "paid after its allocation ended and no unit of "
             "the campaign was free: the order takes stock like any order"})  # fmt: skip
    return "late"


def show(tx: LedgerTx, config: Config, name: str) -> dict[str, Any]:
    campaign = campaign_of(config, name)
    state = campaigns.state(tx.session, name)
    return {
        "campaign": name,
        "method": campaign.method,
        "skus": dict(campaign.skus),
        "counts": campaigns.counts_by_status(tx.session, name),
        "waves": state.waves if state else 0,
        "last_wave_at": state.last_wave_at.isoformat() if state and state.last_wave_at else None,
        "seed": state.seed if state else None,
        "closed_at": state.closed_at.isoformat() if state and state.closed_at else None,
        "free": free_units(tx, campaign),
        "rules": campaign.rules_in_words(),
        # Shopify pre-order selling plans: what the shop has, or why it refused
        "shop_plans": {
            plan.channel: {"group": plan.group_ref, "plan": plan.plan_ref, "error": plan.error}
            for plan in campaign_plans.of_campaign(tx.session, name)
        },
    }


def status_page(
    entry: EntryRow,
    campaign: Campaign,
    now: datetime,
    money: list[campaign_money.MoneyRow] | None = None,
) -> dict[str, Any]:
    """What the customer's status page shows: state, deadline, what to do next, the rules;
    with payment terms, the sums they accepted and what they paid and got back."""
    deadline = entry.expires_at.isoformat() if entry.expires_at else "the deadline"
    where = (
        f" at {entry.pay_url}"
        if entry.pay_url
        else " (the payment link is on its way)"
        if entry.pay_state == "requested"
        else ""
    )
    next_step = {
        "waiting": "You are on the waitlist. We will tell you when a unit is yours.",
        "review": "Your sign-up is being reviewed by the shop; you will hear from us.",
        "allocated": f"A unit is yours: pay before {deadline}{where}.",
        "confirmed": "Paid: your order is confirmed.",
        "expired": "The deadline passed; the unit went to the next person in line.",
        "declined": "Your sign-up was declined.",
        "not_allocated": "The campaign closed before a unit could be allocated to you.",
        "cancelled": "You cancelled; what you paid comes back as the terms you accepted say.",
    }[entry.status]
    return {
        "campaign": campaign.name,
        "status": entry.status,
        "sku": entry.sku,
        "qty": entry.qty,
        "deadline": entry.expires_at.isoformat() if entry.expires_at else None,
        "pay_url": entry.pay_url if entry.status == "allocated" else None,
        "next": next_step,
        "rules": campaign.rules_in_words(),
        "as_of": now.isoformat(),
        **({"payment": payment_summary(entry, money or [])} if entry.terms else {}),
        **(
            {
                "terms_changed": {
                    "terms": payment_terms.in_words(entry.terms_offer),
                    "choose": "accept the new terms, or cancel and get back everything you paid",
                }
            }
            if entry.terms_offer and entry.status in LIVE_WITH_TERMS
            else {}
        ),
    }


def payment_summary(entry: EntryRow, money: list[campaign_money.MoneyRow]) -> dict[str, Any]:
    """The sums as the customer accepted them (price, deposit today, balance later and when,
    what happens if they change their mind), and the money so far."""
    agreed = entry.terms or {}
    by_kind: dict[str, Decimal] = defaultdict(Decimal)
    for row in money:
        if row.state in ("paid", "refunded", "by_hand", "planned"):
            by_kind[f"{row.kind}_{'done' if row.state != 'planned' else 'planned'}"] += row.amount
    due = None
    if entry.status == "allocated" and entry.expires_at is not None:
        due = entry.expires_at.isoformat()
    return {
        "currency": agreed.get("currency"),
        "price": agreed.get("price"),
        "deposit": agreed.get("deposit"),
        "balance": agreed.get("balance"),
        "balance_due": due,
        "balance_due_hours_after_allocation": agreed.get("balance_due_hours"),
        "cancellation_fee": agreed.get("cancellation_fee"),
        "accepted_at": agreed.get("accepted_at"),
        "paid": str(by_kind["deposit_done"] + by_kind["balance_done"]),
        "refunded": str(by_kind["refund_done"]),
        "refund_on_its_way": str(by_kind["refund_planned"]),
        "terms": payment_terms.in_words(agreed),
    }


def sign_up_rows(rows: Mapping[str, str]) -> SignUp:
    """A CSV row or a JSON form -> SignUp (ValueError naming the field)."""
    email = (rows.get("email") or "").strip()
    sku = (rows.get("sku") or "").strip()
    if not email:
        raise ValueError("email is required")
    if not sku:
        raise ValueError("sku is required")
    qty_text = (rows.get("qty") or "1").strip() or "1"
    if not qty_text.isdigit() or int(qty_text) < 1:
        raise ValueError(f"qty must be a whole number of at least 1, got {qty_text!r}")

    def opt(key: str) -> str | None:
        value = (rows.get(key) or "").strip()
        return value or None

    accept = (rows.get("accept_terms") or "").strip().lower()
    if accept not in ("", "true", "false", "yes", "no", "1", "0"):
        raise ValueError(f"accept_terms must be true or false, got {accept!r}")
    return SignUp(email, sku, int(qty_text), opt("phone"), opt("country"), opt("address"),
                  opt("tier"), opt("channel"), accept in ("true", "yes", "1"))  # fmt: skip
