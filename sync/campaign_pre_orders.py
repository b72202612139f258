"""Pre-orders on Shopify (issue #16): a checkout through a campaign's selling plan pays the
deposit and is the sign-up; the same order carries the unit. Its plan lines are money, not
stock, while the entry waits (Shopify reserves nothing either: the plan's inventory policy is
ON_FULFILLMENT); once the balance is paid the entry is confirmed on that order and its plan lines
become the order's reservation, taking the unit the campaign set aside (never a second one).

The balance is paid when stocksync charges the customer's vaulted card at allocation
(sync.jobs.campaign_payments -> `balance_charged`), or when the customer pays the order's
payment link and the shop's order update shows nothing outstanding (`apply`, from the inbox).
"""

from __future__ import annotations

from decimal import Decimal

from backorders import orders
from backorders.orders import OrderInput
from connectors.shopify_deposits import order_gid
from connectors.shopify_orders import gid_tail
from rules import Config
from stock import campaign_money, campaigns
from stock.campaigns import EntryRow
from stock.tx import LedgerInputError, LedgerTx
from sync import campaign_service


def apply(tx: LedgerTx, config: Config, order: OrderInput) -> OrderInput:
    """What a pre-order's version does to its campaign entry, and the order as the ledger
    records it: plan lines as stock once the entry is confirmed on it, as money before."""
    deposit = order.campaign_deposit
    assert deposit is not None and deposit.pre_order
    where = f"{order.channel}/{order.external_id}"
    if order.status == "cancelled":
        campaign_service.deposit_cancelled(tx, order)
    elif order.status == "open":
        if deposit.mixed:
            raise LedgerInputError(
                where, "a pre-order checkout is for one variant of one campaign: this one has "
                "pre-order lines of several (refund it on the shop and ask for one checkout each)",
            )  # fmt: skip
        signed = campaign_service.deposit_sign_up(tx, config, order)
        if signed.status in ("waiting", "review"):
            # ended without a unit, the order is cancelled on the shop (the refund is separate)
            campaigns.hold_pre_order(tx, signed.id, order.channel, order_gid(order.external_id))
        if order.outstanding is not None and order.outstanding <= 0:
            # the customer paid the rest through the order's payment link
            _balance_paid(tx, config, signed, order.channel, order.external_id, "on the shop")
    entry = _entry_of(tx, order.channel, order.external_id)
    if entry is None or not _confirmed_on(entry, order.channel, order.external_id):
        return order
    return orders.plan_lines_as_stock(order)


def balance_charged(
    tx: LedgerTx, config: Config, entry_id: int, channel: str, order_ref: str
) -> EntryRow:
    """The shop charged the balance on the pre-order (the customer's vaulted card): the entry
    is confirmed and the order's plan lines reserve their units now."""
    entry = campaigns.entry(tx.session, entry_id)
    campaigns.lock_state(tx, entry.campaign)
    order_id = gid_tail(order_ref)
    if _balance_paid(tx, config, entry, channel, order_id, "charged to the saved card"):
        orders.stock_plan_lines(tx, channel, order_id)
    return campaigns.entry(tx.session, entry_id)


def _balance_paid(
    tx: LedgerTx, config: Config, entry: EntryRow, channel: str, order_ref: str, how: str
) -> bool:
    """The pre-order is paid in full: an allocated entry is confirmed on it. Paid after its
    allocation ended, it is confirmed if a unit of the campaign is still free; else the balance
    is refunded (the deposit as the terms say, planned when the allocation ended). True: the
    entry is confirmed now."""
    why = f"balance paid {how}"
    if entry.status == "allocated":
        _confirm(tx, entry, channel, order_ref, why)
        return True
    if entry.status not in ("expired", "declined") or not entry.terms:
        return False  # waiting (paid early: confirmed at allocation), confirmed, or gone
    campaign = config.campaigns.get(entry.campaign)
    state = campaigns.state(tx.session, entry.campaign)
    if (
        campaign is not None
        and (state is None or state.closed_at is None)
        and campaign_service.free_units(tx, campaign).get(entry.sku, 0) >= entry.qty
    ):
        _confirm(tx, entry, channel, order_ref, why + " after its allocation ended; a unit was "
                 "still free", expected=(entry.status,))  # fmt: skip
        campaign_money.withdraw_planned(tx, entry.id, entry.status, "paid after all")
        return True
    balance = Decimal(str(entry.terms["balance"]))
    currency = str(entry.terms["currency"])
    if campaign_money.by_key(tx.session, f"balance-{entry.id}") is None:
        campaign_money.record_paid(
            tx, entry.id, entry.campaign, "balance", balance, currency, channel=channel,
            order_ref=order_ref, key=f"balance-{entry.id}",
        )  # fmt: skip
        campaign_money.refund_of(
            tx, entry.id, entry.campaign, balance, currency, paid_on=(channel, order_ref),
            key=f"refund-{entry.id}-late-balance",
            why="balance paid after the allocation ended and no unit was free",
        )  # fmt: skip
        tx.audit("campaign.late_payment", entry.campaign, {
            "entry": entry.id, "order": f"{channel}/{order_ref}", "status": entry.status,
            "why": "paid after its allocation ended and no unit of the campaign was free: the "
            "balance is refunded",
        })  # fmt: skip
    return False


def paid_in_full(tx: LedgerTx, entry: EntryRow, channel: str) -> bool:
    """An entry paid in full at checkout through a plan (`mode: full`), now allocated: it is
    confirmed on its own pre-order. False when it has none (another kind of sign-up)."""
    order_ref = deposit_order(tx, entry, channel)
    if order_ref is None:
        return False
    _confirm(tx, entry, channel, order_ref, "paid in full at checkout")
    orders.stock_plan_lines(tx, channel, order_ref)
    return True


def deposit_order(tx: LedgerTx, entry: EntryRow, channel: str | None = None) -> str | None:
    """The pre-order the entry's deposit was paid on, on `channel` (default: the channel it
    pays on); None when it has none there (another kind of sign-up)."""
    where = channel or entry.pay_channel
    for row in campaign_money.of_entries(tx.session, [entry.id]).get(entry.id, []):
        if row.kind == "deposit" and where and row.channel == where and row.order_ref:
            stored = orders.find(tx, where, row.order_ref)
            if stored is not None and any(o.get("plan_sku") for o in stored.other_lines or ()):
                return row.order_ref
    return None


def _confirm(
    tx: LedgerTx,
    entry: EntryRow,
    channel: str,
    order_ref: str,
    why: str,
    expected: tuple[str, ...] = ("allocated",),
) -> None:
    campaigns.change(
        tx, entry, "confirmed", f"{why} (order {order_ref})", expected=expected,
        channel=channel, order_ref=order_ref, pay_state="paid",
    )  # fmt: skip
    campaign_service.record_balance(tx, entry, channel, order_ref)


def _entry_of(tx: LedgerTx, channel: str, order_ref: str) -> EntryRow | None:
    found = campaign_money.by_key(tx.session, campaign_service.deposit_key((channel, order_ref)))
    return None if found is None else campaigns.entry(tx.session, found.entry_id)


def _confirmed_on(entry: EntryRow, channel: str, order_ref: str) -> bool:
    return entry.status == "confirmed" and entry.channel == channel and entry.order_ref == order_ref
