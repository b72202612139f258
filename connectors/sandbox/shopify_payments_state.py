"""Pre-orders and money in the sandbox shop: selling plan groups (deferred, fixed billing),
storefront checkouts through a plan (a deposit now, a vaulted card for the rest), charges against
that mandate with the card gateway's test declines, the customer paying the balance through the
order's payment link, captures and refunds.

Callers hold the sandbox lock; nothing here does I/O.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from connectors.sandbox.shopify_state import (
    CENT,
    LineItem,
    Order,
    Refund,
    ShopState,
    Transaction,
    Variant,
    gid,
)

# the card gateway's test decline codes (a subset of OrderTransactionErrorCode)
DECLINE_CODES = frozenset(
    {
        "CARD_DECLINED",
        "INSUFFICIENT_FUNDS",
        "EXPIRED_CARD",
        "PROCESSING_ERROR",
        "CALL_ISSUER",
        "DO_NOT_HONOR",
        "GENERIC_ERROR",
        "FRAUD_SUSPECTED",
    }
)
DECLINE_MESSAGES = {
    "CARD_DECLINED": "Your card was declined.",
    "INSUFFICIENT_FUNDS": "Your card has insufficient funds.",
    "EXPIRED_CARD": "Your card has expired.",
}
RESTOCK_TYPES = ("CANCEL", "NO_RESTOCK", "RETURN", "LEGACY_RESTOCK")
# where an order's additionalPaymentCollectionUrl leads: the sandbox's own test route, so a test
# can play the customer paying through the link (`POST` it)
BALANCE_PATH = "/_sandbox/orders/{order_id}/pay_balance"


@dataclass
class FixedBilling:
    """SellingPlanFixedBillingPolicy: part of the price at checkout, the rest later."""

    charge_type: str  # SellingPlanCheckoutChargeType: PERCENTAGE or PRICE
    charge_value: Decimal  # a percentage 0..100, or an amount per unit
    trigger: str  # SellingPlanRemainingBalanceChargeTrigger
    exact_time: datetime | None = None
    time_after_checkout: str | None = None  # an ISO 8601 duration

    def checkout_charge(self, line_total: Decimal, quantity: int) -> Decimal:
        """What the customer pays at checkout for a line of this plan."""
        if self.charge_type == "PERCENTAGE":
            charge = line_total * self.charge_value / 100
        else:
            charge = self.charge_value * quantity
        return min(charge, line_total).quantize(CENT)


@dataclass
class FixedDelivery:
    """SellingPlanFixedDeliveryPolicy."""

    trigger: str  # SellingPlanFulfillmentTrigger
    exact_time: datetime | None = None
    cutoff: int | None = None
    intent: str = "FULFILLMENT_BEGIN"
    pre_anchor_behavior: str = "ASAP"
    anchors: list[dict[str, object]] = field(default_factory=list)


@dataclass
class SellingPlan:
    id: int
    name: str
    options: list[str]
    billing: FixedBilling
    delivery: FixedDelivery
    created_at: datetime
    category: str | None = None
    description: str | None = None
    position: int | None = None
    reserve: str = "ON_SALE"  # SellingPlanReserve; Shopify's default
    # fixed pricing policies: (SellingPlanPricingPolicyAdjustmentType, value)
    pricing: list[tuple[str, Decimal]] = field(default_factory=list)

    def unit_price(self, price: Decimal) -> Decimal:
        """The variant's price after the plan's pricing policy."""
        for kind, value in self.pricing[:1]:
            if kind == "PERCENTAGE":
                price = price * (100 - value) / 100
            elif kind == "FIXED_AMOUNT":
                price = price - value
            else:  # PRICE: the plan sets the price
                price = value
        return max(price, Decimal(0)).quantize(CENT)


@dataclass
class SellingPlanGroup:
    id: int
    name: str
    merchant_code: str
    options: list[str]
    plans: list[SellingPlan]
    created_at: datetime
    updated_at: datetime
    app_id: str | None = None
    description: str | None = None
    position: int | None = None
    variant_ids: list[int] = field(default_factory=list)  # in the order they were added
    product_ids: list[int] = field(default_factory=list)  # every variant of these too

    def sells(self, variant: Variant) -> bool:
        return variant.id in self.variant_ids or variant.product_id in self.product_ids


@dataclass
class MandatePayment:
    """One orderCreateMandatePayment request, remembered by its idempotency key."""

    key: str
    order_id: int
    mandate_id: int
    amount: str | None  # as requested (None: the outstanding balance)
    auto_capture: bool
    reference: str  # paymentReferenceId
    job_id: str
    transaction_id: int


class PlanRefused(ValueError):
    """A checkout line names a selling plan its variant is not sold with."""

    def __init__(self, sku: str, plan_gid: str, reason: str) -> None:
        super().__init__(f"{sku}: {reason}")
        self.sku = sku
        self.plan_gid = plan_gid


def find_plan(state: ShopState, plan_id: int) -> tuple[SellingPlanGroup, SellingPlan] | None:
    for group in state.selling_plan_groups.values():
        for plan in group.plans:
            if plan.id == plan_id:
                return group, plan
    return None


def groups_of_variant(state: ShopState, variant: Variant) -> list[SellingPlanGroup]:
    return [g for g in state.selling_plan_groups.values() if g.sells(variant)]


# -- checkout ---------------------------------------------------------------------------------
def checkout(
    state: ShopState,
    lines: Sequence[tuple[Variant, int, SellingPlan | None]],
    email: str | None,
) -> Order:
    """A storefront checkout, some lines through a selling plan.

    The customer pays every plain line in full and each plan line's checkout charge now (one
    SALE); when a plan leaves a balance the card is vaulted as a payment mandate for it. A plan
    that reserves ON_FULFILLMENT claims no units at the sale; ON_SALE lines and plain lines
    obey the variant's stock rule (StockRefused) as any sale does."""
    deferred: set[int] = set()
    for index, (variant, _qty, plan) in enumerate(lines):
        if plan is None:
            continue
        found = find_plan(state, plan.id)
        if found is None or not found[0].sells(variant):
            raise PlanRefused(
                variant.sku,
                gid("SellingPlan", plan.id),
                f"variant is not sold with selling plan {plan.id}",
            )
        if plan.reserve == "ON_FULFILLMENT":
            deferred.add(index)
    order = state.create_order(
        [(variant, variant.sku, qty) for variant, qty, _plan in lines],
        email,
        decrement=True,
        obey_policy=True,
        deferred=deferred,
    )
    due_now = Decimal(0)
    balance_left = False
    for item, (variant, qty, plan) in zip(order.line_items, lines, strict=True):
        unit = Decimal(variant.price)
        if plan is None:
            due_now += unit * qty
            continue
        unit = plan.unit_price(unit)
        item.price = f"{unit:.2f}"
        item.selling_plan_id, item.selling_plan_name = plan.id, plan.name
        charge = plan.billing.checkout_charge(unit * qty, qty)
        item.checkout_charge = charge
        due_now += charge
        balance_left = balance_left or charge < unit * qty
    if balance_left:
        state.add_mandate(order)
    if due_now > 0:
        state.record_transaction(order, "SALE", "SUCCESS", due_now)
    else:
        order.financial_status = "pending"  # nothing charged yet: the card is only vaulted
    return order


# -- charges against a mandate ----------------------------------------------------------------
def charge_mandate(
    state: ShopState, order: Order, amount: Decimal, *, auto_capture: bool
) -> Transaction:
    """One charge (SALE, or AUTHORIZATION without auto capture) on the vaulted card.

    The gateway's test switches decide it: an order in `decline_orders` is always declined,
    else the next `decline_next` charges are. A declined charge is a FAILURE transaction and
    leaves the balance as it was."""
    declined = order.id in state.decline_orders
    if not declined and state.decline_next > 0:
        state.decline_next -= 1
        declined = True
    return state.record_transaction(
        order,
        "SALE" if auto_capture else "AUTHORIZATION",
        "FAILURE" if declined else "SUCCESS",
        amount,
        error_code=state.decline_code if declined else None,
        payment_reference=payment_reference(),
    )


def payment_reference() -> str:
    """A paymentReferenceId: opaque, unique, like Shopify's."""
    return secrets.token_urlsafe(18)


def set_declines(
    state: ShopState,
    *,
    decline_next: int | None = None,
    decline_orders: Sequence[int] | None = None,
    error_code: str | None = None,
) -> dict[str, object]:
    if decline_next is not None:
        if decline_next < 0:
            raise ValueError("'decline_next' must be a whole number >= 0")
        state.decline_next = decline_next
    if decline_orders is not None:
        state.decline_orders = set(decline_orders)
    if error_code is not None:
        if error_code not in DECLINE_CODES:
            raise ValueError(f"'error_code' must be one of {sorted(DECLINE_CODES)}")
        state.decline_code = error_code
    return declines_json(state)


def declines_json(state: ShopState) -> dict[str, object]:
    return {
        "decline_next": state.decline_next,
        "decline_orders": sorted(state.decline_orders),
        "error_code": state.decline_code,
    }


# -- the customer paying the balance through the order's payment link --------------------------
class NothingToPay(ValueError):
    """The order's payment link takes no money: the order was cancelled or owes nothing."""


def balance_due(order: Order) -> Decimal:
    """What is left to collect from the customer: the outstanding balance of an open order, less
    what an authorization already holds (that is captured, not charged a second time)."""
    if order.cancelled_at is not None:
        return Decimal(0)
    return max(order.outstanding() - order.capturable(), Decimal(0))


def balance_url(base_url: str, order: Order) -> str | None:
    """Order.paymentCollectionDetails.additionalPaymentCollectionUrl: a link only while there
    is something to pay through it."""
    if balance_due(order) <= 0:
        return None
    return base_url + BALANCE_PATH.format(order_id=order.id)


def pay_balance(state: ShopState, order: Order) -> Transaction:
    """The customer pays the whole balance at the payment link: one successful SALE.

    They pay by card at a checkout, not through the vaulted mandate, so the gateway's test
    declines (which stand for the mandate's card failing) do not apply. Raises NothingToPay."""
    if order.cancelled_at is not None:
        raise NothingToPay("the order is cancelled")
    due = balance_due(order)
    if due <= 0:
        raise NothingToPay("the order has no outstanding balance")
    return state.record_transaction(order, "SALE", "SUCCESS", due)


# -- captures and refunds ---------------------------------------------------------------------
def captured_left(order: Order, parent: Transaction) -> Decimal:
    """What is left to refund of a successful SALE or CAPTURE."""
    refunded = sum(
        (
            t.amount
            for t in order.transactions
            if t.parent_id == parent.id and t.kind == "REFUND" and t.succeeded
        ),
        Decimal(0),
    )
    return parent.amount - refunded


def refund(
    state: ShopState,
    order: Order,
    *,
    note: str | None,
    lines: Sequence[tuple[LineItem, int, str]],
    money: Sequence[tuple[Transaction, Decimal]],
) -> Refund:
    """Record a refund: line items leave the order (restocked by their restock type) and each
    amount goes back against its parent transaction. The caller has checked the amounts."""
    made = state.refund_lines(
        order,
        {line.id: qty for line, qty, _kind in lines},
        restock=False,
        restock_types={line.id: kind for line, _qty, kind in lines},
    )
    made.note = note
    for parent, amount in money:
        made.transactions.append(
            state.record_transaction(order, "REFUND", "SUCCESS", amount, parent_id=parent.id)
        )
    return made
