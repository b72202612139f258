"""Campaign pre-orders with a deposit on Shopify (issue #16): a selling plan group on the
campaign's variants, the balance charged on the customer's vaulted card, a payment link when
that fails, the unpaid order cancelled at the deadline, refunds.

- The plan group (ours by `merchantCode`) has one fixed plan: a deposit at checkout (a percentage
  or an amount per unit), the balance at an exact time (or nothing left: the whole price at
  checkout), fulfillment to be decided, inventory reserved only when fulfilled. A storefront
  checkout through it is a waitlist sign-up; its order is the deposit order.
- The balance: `orderCreateMandatePayment` with an idempotency key per request and attempt (a
  retry gets Shopify's first result, never a second charge), its outcome read with
  `orderPaymentStatus`. Declined, or no card vaulted: `orderInvoiceSend` emails the order's
  payment link (`paymentCollectionDetails.additionalPaymentCollectionUrl`). Shopify keeps no
  record of an order invoice an app can read, so a retry after a failed call emails again.
- A refund carries our key in its note: the order's refunds are searched for it before any
  `refundCreate`, which also goes with `@idempotent(key:)`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Final, Protocol, runtime_checkable

from connectors.base import ChannelError, PaymentLink, PaymentRequest, RefundRequest
from connectors.shopify_payments import raise_user_errors

if TYPE_CHECKING:
    from connectors.shopify import ShopifyChannel

ORDER_GID: Final = "gid://shopify/Order/"
GROUP_OPTION: Final = "Pre-order"  # the group's option label; the plan's value: its deposit
APP_ID: Final = "stocksync"
CATEGORY: Final = "PRE_ORDER"
FULFILLMENT_TRIGGER: Final = "UNKNOWN"  # the ship date is decided when stock arrives
RESERVE: Final = "ON_FULFILLMENT"  # a sign-up takes no units; allocation decides who gets them
CANCEL_REASON: Final = "DECLINED"  # OrderCancelReason closest to "the balance was not paid"
CANCEL_NOTE: Final = "stocksync: balance not paid by the deadline"
GROUPS_PAGE: Final = 250
VARIANTS_PAGE: Final = 250
MAX_PLANS: Final = 31  # per group (Shopify's limit)
MAX_IDS_PER_CALL: Final = 250  # input arrays
LIST_LIMIT: Final = 100  # an order's transactions and refunds read at once
PAID: Final = frozenset({"PURCHASED", "CAPTURED", "AUTHORIZED", "SUCCESS"})
NOT_YET: Final = frozenset({"INITIATED", "PENDING", "PROCESSING", "UNKNOWN"})
STATUS_READS: Final = 3  # orderPaymentStatus reads while the charge is still processing
STATUS_WAIT_SECONDS: Final = 1.0

# -- documents --------------------------------------------------------------------------------
FIND_GROUPS: Final = """
query StocksyncFindSellingPlanGroups($first: Int!, $after: String) {
  sellingPlanGroups(first: $first, after: $after, sortKey: ID) {
    nodes { id merchantCode }
    pageInfo { hasNextPage endCursor }
  }
}
"""

# a plan's billing policy as _plan_state reads it (a selection on SellingPlan, not a document)
BILLING_POLICY: Final = """billingPolicy {
          ... on SellingPlanFixedBillingPolicy {
            checkoutCharge {
              type
              value {
                ... on SellingPlanCheckoutChargePercentageValue { percentage }
                ... on MoneyV2 { amount }
              }
            }
            remainingBalanceChargeTrigger
            remainingBalanceChargeExactTime
          }
        }"""

GROUP: Final = f"""
query StocksyncSellingPlanGroup($id: ID!, $plans: Int!) {{
  sellingPlanGroup(id: $id) {{
    id name merchantCode description options
    sellingPlans(first: $plans) {{
      nodes {{
        id name description options category
        {BILLING_POLICY}
        deliveryPolicy {{ ... on SellingPlanFixedDeliveryPolicy {{ fulfillmentTrigger }} }}
        inventoryPolicy {{ reserve }}
        pricingPolicies {{ __typename }}
      }}
    }}
  }}
}}
"""

GROUP_VARIANTS: Final = """
query StocksyncSellingPlanGroupVariants($id: ID!, $first: Int!, $after: String) {
  sellingPlanGroup(id: $id) {
    productVariants(first: $first, after: $after) {
      nodes { id }
      pageInfo { hasNextPage endCursor }
    }
  }
}
"""

CREATE_GROUP: Final = """
mutation StocksyncCreateSellingPlanGroup(
  $input: SellingPlanGroupInput!, $resources: SellingPlanGroupResourceInput
) {
  sellingPlanGroupCreate(input: $input, resources: $resources) {
    sellingPlanGroup { id sellingPlans(first: 1) { nodes { id } } }
    userErrors { code field message }
  }
}
"""

UPDATE_GROUP: Final = """
mutation StocksyncUpdateSellingPlanGroup($id: ID!, $input: SellingPlanGroupInput!) {
  sellingPlanGroupUpdate(id: $id, input: $input) {
    sellingPlanGroup { id }
    userErrors { code field message }
  }
}
"""

ADD_VARIANTS: Final = """
mutation StocksyncAddPlanVariants($id: ID!, $variants: [ID!]!) {
  sellingPlanGroupAddProductVariants(id: $id, productVariantIds: $variants) {
    sellingPlanGroup { id }
    userErrors { code field message }
  }
}
"""

REMOVE_VARIANTS: Final = """
mutation StocksyncRemovePlanVariants($id: ID!, $variants: [ID!]!) {
  sellingPlanGroupRemoveProductVariants(id: $id, productVariantIds: $variants) {
    removedProductVariantIds
    userErrors { code field message }
  }
}
"""

DELETE_GROUP: Final = """
mutation StocksyncDeleteSellingPlanGroup($id: ID!) {
  sellingPlanGroupDelete(id: $id) {
    deletedSellingPlanGroupId
    userErrors { code field message }
  }
}
"""

ORDER_BALANCE: Final = """
query StocksyncOrderBalance($id: ID!) {
  order(id: $id) {
    id
    cancelledAt
    presentmentCurrencyCode
    totalOutstandingSet { presentmentMoney { amount currencyCode } }
    paymentCollectionDetails {
      additionalPaymentCollectionUrl
      vaultedPaymentMethods {
        id
        paymentInstrument { ... on VaultCreditCard { expired } }
      }
    }
  }
}
"""

# the key makes a retry return Shopify's first result: one charge per request and attempt
CHARGE_BALANCE: Final = """
mutation StocksyncChargeBalance($id: ID!, $mandateId: ID!, $key: String!, $amount: MoneyInput) {
  orderCreateMandatePayment(
    id: $id, mandateId: $mandateId, idempotencyKey: $key, amount: $amount, autoCapture: true
  ) {
    paymentReferenceId
    userErrors { code field message }
  }
}
"""

PAYMENT_STATUS: Final = """
query StocksyncPaymentStatus($orderId: ID!, $reference: String!) {
  orderPaymentStatus(orderId: $orderId, paymentReferenceId: $reference) {
    status
    errorMessage
  }
}
"""

SEND_ORDER_INVOICE: Final = """
mutation StocksyncSendOrderInvoice($id: ID!, $email: EmailInput) {
  orderInvoiceSend(id: $id, email: $email) {
    order { id paymentCollectionDetails { additionalPaymentCollectionUrl } }
    userErrors { code field message }
  }
}
"""

CANCEL_ORDER: Final = """
mutation StocksyncCancelUnpaidOrder($id: ID!, $reason: OrderCancelReason!, $note: String) {
  orderCancel(
    orderId: $id, reason: $reason, refund: false, restock: false, notifyCustomer: true,
    staffNote: $note
  ) {
    job { id }
    orderCancelUserErrors { code field message }
  }
}
"""

ORDER_PAYMENTS: Final = """
query StocksyncOrderPayments($id: ID!, $limit: Int!) {
  order(id: $id) {
    id
    presentmentCurrencyCode
    refunds(first: $limit) { id note }
    transactions(first: $limit) {
      id kind status gateway processedAt createdAt
      amountSet { presentmentMoney { amount currencyCode } }
      parentTransaction { id }
    }
  }
}
"""

# @idempotent sits on the mutation field (required from 2026-04): a retried call refunds once
CREATE_REFUND: Final = """
mutation StocksyncRefund($input: RefundInput!, $key: String!) {
  refundCreate(input: $input) @idempotent(key: $key) {
    refund { id note }
    userErrors { field message }
  }
}
"""

# every document this module sends, for the schema and cost checks
ALL_DOCUMENTS: Final = {
    "FIND_GROUPS": FIND_GROUPS,
    "GROUP": GROUP,
    "GROUP_VARIANTS": GROUP_VARIANTS,
    "CREATE_GROUP": CREATE_GROUP,
    "UPDATE_GROUP": UPDATE_GROUP,
    "ADD_VARIANTS": ADD_VARIANTS,
    "REMOVE_VARIANTS": REMOVE_VARIANTS,
    "DELETE_GROUP": DELETE_GROUP,
    "ORDER_BALANCE": ORDER_BALANCE,
    "CHARGE_BALANCE": CHARGE_BALANCE,
    "PAYMENT_STATUS": PAYMENT_STATUS,
    "SEND_ORDER_INVOICE": SEND_ORDER_INVOICE,
    "CANCEL_ORDER": CANCEL_ORDER,
    "ORDER_PAYMENTS": ORDER_PAYMENTS,
    "CREATE_REFUND": CREATE_REFUND,
}
# the variables each document is sent with (page sizes drive the cost)
DOCUMENT_VARIABLES: Final[Mapping[str, Mapping[str, Any]]] = {
    "FIND_GROUPS": {"first": GROUPS_PAGE},
    "GROUP": {"plans": MAX_PLANS},
    "GROUP_VARIANTS": {"first": VARIANTS_PAGE},
    "ORDER_PAYMENTS": {"limit": LIST_LIMIT},
}


# -- selling plans ----------------------------------------------------------------------------
@dataclass(frozen=True)
class PlanSpec:
    """The pre-order plan a campaign sells with. `code` is the group's merchantCode (ours, e.g.
    "stocksync-spring-drop"); one of `deposit_percent` (of the price; 100: paid in full) and
    `deposit_per_unit` is set; `balance_by` is when the balance falls due (None: nothing is left
    to pay after checkout, which needs a 100 percent deposit)."""

    code: str
    name: str
    description: str
    deposit_percent: Decimal | None
    deposit_per_unit: Decimal | None
    balance_by: datetime | None
    skus: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.code.strip() or not self.name.strip():
            raise ValueError("a selling plan needs a code and a name")
        if (self.deposit_percent is None) == (self.deposit_per_unit is None):
            raise ValueError(f"{self.code}: set one of deposit_percent and deposit_per_unit")
        if self.deposit_percent is not None and not 0 <= self.deposit_percent <= 100:
            raise ValueError(f"{self.code}: deposit_percent must be within 0..100")
        if self.deposit_per_unit is not None and self.deposit_per_unit < 0:
            raise ValueError(f"{self.code}: deposit_per_unit must not be negative")
        full = self.deposit_percent == 100
        if self.balance_by is None and not full:
            raise ValueError(f"{self.code}: a balance left after checkout needs balance_by")
        if self.balance_by is not None and full:
            raise ValueError(f"{self.code}: nothing is left to pay after a 100% deposit")
        if self.balance_by is not None and self.balance_by.tzinfo is None:
            raise ValueError(f"{self.code}: balance_by must be timezone-aware")


@dataclass(frozen=True)
class PlanRef:
    group_id: str
    plan_id: str
    variant_ids: tuple[str, ...]  # in the order of the spec's SKUs


@runtime_checkable
class SellsPreOrders(Protocol):
    """A shop stocksync keeps campaign pre-order selling plans on (Shopify)."""

    name: str

    def ensure_selling_plan(self, spec: PlanSpec) -> PlanRef: ...

    def remove_selling_plan(self, code: str) -> bool: ...


def ensure_plan(channel: ShopifyChannel, spec: PlanSpec) -> PlanRef:
    """Our group for `spec.code`, made or brought in line with `spec` (its plan, and exactly the
    variants of `spec.skus`); a second call with the same spec changes nothing."""
    variants = _variant_ids(channel, spec.skus)
    groups = _find_groups(channel, spec.code)
    for extra in groups[1:]:  # a create retried after a lost answer made a second one
        _delete_group(channel, extra)
    if not groups:
        return _create_group(channel, spec, variants)
    group = _read_group(channel, groups[0])
    plan_id = _update_group(channel, spec, group)
    current = _group_variants(channel, groups[0])
    have, wanted = set(current), set(variants)
    _add_variants(channel, groups[0], [v for v in variants if v not in have])
    _remove_variants(channel, groups[0], [v for v in current if v not in wanted])
    return PlanRef(group_id=groups[0], plan_id=plan_id, variant_ids=variants)


def remove_plan(channel: ShopifyChannel, code: str) -> bool:
    """Delete our group for `code` (orders made with it keep the plan's terms); False if none."""
    deleted = False
    for group in _find_groups(channel, code):
        deleted = _delete_group(channel, group) or deleted
    return deleted


def plan_input(spec: PlanSpec, plan_id: str | None = None) -> dict[str, Any]:
    """SellingPlanInput for `spec` (with `id`: an update of that plan)."""
    billing: dict[str, Any] = {"checkoutCharge": _charge_input(spec)}
    if spec.balance_by is None:
        billing["remainingBalanceChargeTrigger"] = "NO_REMAINING_BALANCE"
    else:
        billing["remainingBalanceChargeTrigger"] = "EXACT_TIME"
        billing["remainingBalanceChargeExactTime"] = _iso(spec.balance_by)
    plan: dict[str, Any] = {
        "name": spec.name,
        "description": spec.description,
        "options": [_option(spec)],
        "category": CATEGORY,
        "billingPolicy": {"fixed": billing},
        "deliveryPolicy": {"fixed": {"fulfillmentTrigger": FULFILLMENT_TRIGGER}},
        "inventoryPolicy": {"reserve": RESERVE},
        "pricingPolicies": [],
    }
    return {"id": plan_id, **plan} if plan_id else plan


def _charge_input(spec: PlanSpec) -> dict[str, Any]:
    if spec.deposit_percent is not None:
        value = {"percentage": float(spec.deposit_percent)}
        return {"type": "PERCENTAGE", "value": value}
    return {"type": "PRICE", "value": {"fixedValue": f"{spec.deposit_per_unit:f}"}}


def _option(spec: PlanSpec) -> str:
    if spec.deposit_percent == 100:
        return "Pay in full"
    if spec.deposit_percent is not None:
        return f"{_plain(spec.deposit_percent)}% deposit"
    return f"{_plain(spec.deposit_per_unit or Decimal(0))} deposit per unit"


def _group_input(spec: PlanSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "merchantCode": spec.code,
        "description": spec.description,
        "appId": APP_ID,
        "options": [GROUP_OPTION],
    }


def _wanted_state(spec: PlanSpec) -> tuple[object, ...]:
    """What ensure_plan compares: the plan's terms, read back the way Shopify shows them."""
    billing = plan_input(spec)["billingPolicy"]["fixed"]
    charge = billing["checkoutCharge"]
    value = charge["value"].get("percentage", charge["value"].get("fixedValue"))
    exact = spec.balance_by.astimezone(UTC).replace(microsecond=0) if spec.balance_by else None
    return (
        spec.name, spec.description, (_option(spec),), CATEGORY, charge["type"],
        _decimal(value), billing["remainingBalanceChargeTrigger"], exact,
        FULFILLMENT_TRIGGER, RESERVE, False,
    )  # fmt: skip


def _plan_state(plan: Mapping[str, Any]) -> tuple[object, ...]:
    billing = plan.get("billingPolicy") or {}
    charge = billing.get("checkoutCharge") or {}
    value = charge.get("value") or {}
    exact = billing.get("remainingBalanceChargeExactTime")
    return (
        plan.get("name"), plan.get("description") or "", tuple(plan.get("options") or ()),
        plan.get("category"), charge.get("type"),
        _decimal(value.get("percentage", value.get("amount"))),
        billing.get("remainingBalanceChargeTrigger"), _time(exact) if exact else None,
        (plan.get("deliveryPolicy") or {}).get("fulfillmentTrigger"),
        (plan.get("inventoryPolicy") or {}).get("reserve"), bool(plan.get("pricingPolicies")),
    )  # fmt: skip


def _variant_ids(channel: ShopifyChannel, skus: Sequence[str]) -> tuple[str, ...]:
    wanted = list(dict.fromkeys(skus))
    listings = channel.fetch_listings(wanted) if wanted else {}
    unknown = [sku for sku in wanted if sku not in listings]
    if unknown:
        raise ChannelError(
            channel.name, "selling_plan_variants", f"no variant with SKU {', '.join(unknown)}",
            code="UNKNOWN_SKU",
        )  # fmt: skip
    return tuple(listings[sku].external_ids["variant_id"] for sku in wanted)


def _find_groups(channel: ShopifyChannel, code: str) -> list[str]:
    """Ids of this app's groups with merchantCode `code`, oldest first (search has no filter
    on the code: every page is read)."""
    found: list[str] = []
    after: str | None = None
    while True:
        data = channel.transport.execute(
            "selling_plan_groups", FIND_GROUPS, {"first": GROUPS_PAGE, "after": after}
        )
        page = _object(channel, "selling_plan_groups", data, "sellingPlanGroups")
        found += [str(n["id"]) for n in page.get("nodes") or [] if n.get("merchantCode") == code]
        info = page.get("pageInfo") or {}
        after = info.get("endCursor")
        if not info.get("hasNextPage") or not after:
            return found


def _read_group(channel: ShopifyChannel, group_id: str) -> Mapping[str, Any]:
    data = channel.transport.execute(
        "selling_plan_group", GROUP, {"id": group_id, "plans": MAX_PLANS}
    )
    return _object(channel, "selling_plan_group", data, "sellingPlanGroup")


def _group_variants(channel: ShopifyChannel, group_id: str) -> list[str]:
    found: list[str] = []
    after: str | None = None
    while True:
        variables = {"id": group_id, "first": VARIANTS_PAGE, "after": after}
        data = channel.transport.execute("selling_plan_variants", GROUP_VARIANTS, variables)
        group = _object(channel, "selling_plan_variants", data, "sellingPlanGroup")
        page = group.get("productVariants") or {}
        found += [str(n["id"]) for n in page.get("nodes") or []]
        info = page.get("pageInfo") or {}
        after = info.get("endCursor")
        if not info.get("hasNextPage") or not after:
            return found


def _create_group(channel: ShopifyChannel, spec: PlanSpec, variants: tuple[str, ...]) -> PlanRef:
    first, rest = variants[:MAX_IDS_PER_CALL], variants[MAX_IDS_PER_CALL:]
    variables = {
        "input": {**_group_input(spec), "sellingPlansToCreate": [plan_input(spec)]},
        "resources": {"productVariantIds": list(first)},
    }
    data = channel.transport.execute("selling_plan_group_create", CREATE_GROUP, variables)
    body = raise_user_errors(
        channel, "selling_plan_group_create", data, "sellingPlanGroupCreate", spec.code
    )
    group = body.get("sellingPlanGroup") or {}
    plans = (group.get("sellingPlans") or {}).get("nodes") or []
    if not group.get("id") or not plans:
        raise ChannelError(channel.name, "selling_plan_group_create", f"{spec.code}: no group")
    _add_variants(channel, str(group["id"]), list(rest))
    return PlanRef(group_id=str(group["id"]), plan_id=str(plans[0]["id"]), variant_ids=variants)


def _update_group(channel: ShopifyChannel, spec: PlanSpec, group: Mapping[str, Any]) -> str:
    """Bring the group and its one plan in line with `spec` (other plans are deleted); the
    plan's id. No call when nothing differs."""
    plans = list((group.get("sellingPlans") or {}).get("nodes") or [])
    if not plans:  # Shopify keeps at least one plan per group; the guard is for safety
        raise ChannelError(channel.name, "selling_plan_group", f"{spec.code}: group has no plan")
    ours, others = plans[0], plans[1:]
    group_state = (group.get("name"), group.get("description") or "", group.get("options"))
    same_group = group_state == (spec.name, spec.description, [GROUP_OPTION])
    if same_group and not others and _plan_state(ours) == _wanted_state(spec):
        return str(ours["id"])
    changes = {
        **_group_input(spec),
        "sellingPlansToUpdate": [plan_input(spec, str(ours["id"]))],
        "sellingPlansToDelete": [str(p["id"]) for p in others],
    }
    variables = {"id": str(group["id"]), "input": changes}
    data = channel.transport.execute("selling_plan_group_update", UPDATE_GROUP, variables)
    raise_user_errors(
        channel, "selling_plan_group_update", data, "sellingPlanGroupUpdate", spec.code
    )
    return str(ours["id"])


def _add_variants(channel: ShopifyChannel, group_id: str, variants: Sequence[str]) -> None:
    _change_variants(channel, "selling_plan_add_variants", ADD_VARIANTS,
                     "sellingPlanGroupAddProductVariants", group_id, variants)  # fmt: skip


def _remove_variants(channel: ShopifyChannel, group_id: str, variants: Sequence[str]) -> None:
    _change_variants(channel, "selling_plan_remove_variants", REMOVE_VARIANTS,
                     "sellingPlanGroupRemoveProductVariants", group_id, variants)  # fmt: skip


def _change_variants(
    channel: ShopifyChannel, operation: str, document: str, field: str, group_id: str,
    variants: Sequence[str],
) -> None:  # fmt: skip
    """`document` (ADD_VARIANTS or REMOVE_VARIANTS) on `variants`, as many per call as allowed."""
    for start in range(0, len(variants), MAX_IDS_PER_CALL):
        batch = list(variants[start : start + MAX_IDS_PER_CALL])
        data = channel.transport.execute(operation, document, {"id": group_id, "variants": batch})
        raise_user_errors(channel, operation, data, field, group_id)


def _delete_group(channel: ShopifyChannel, group_id: str) -> bool:
    data = channel.transport.execute("selling_plan_group_delete", DELETE_GROUP, {"id": group_id})
    body = data.get("sellingPlanGroupDelete")
    errors = (body or {}).get("userErrors") or [] if isinstance(body, Mapping) else []
    if any(e.get("code") == "GROUP_DOES_NOT_EXIST" for e in errors):
        return False  # deleted meanwhile
    raise_user_errors(
        channel, "selling_plan_group_delete", data, "sellingPlanGroupDelete", group_id
    )
    return True


# -- the balance ------------------------------------------------------------------------------
def order_gid(ref: str) -> str:
    """An Order gid from a numeric order id or a gid."""
    ref = ref.strip()
    if ref.startswith(ORDER_GID) and ref[len(ORDER_GID) :].isdigit():
        return ref
    if ref.isdigit():
        return ORDER_GID + ref
    raise ValueError(f"not a Shopify order id: {ref!r}")


def is_order_ref(ref: str) -> bool:
    """A payment ref that is an order (a deposit order's balance), not a draft order."""
    return ref.startswith(ORDER_GID)


def balance_key(request: PaymentRequest, attempt: int = 1) -> str:
    """orderCreateMandatePayment's idempotency key: one charge per request and attempt."""
    return f"stocksync-{request.key}-balance-{attempt}"


def refund_key(request: RefundRequest) -> str:
    return f"stocksync-refund-{request.key}"


def charge_balance(channel: ShopifyChannel, request: PaymentRequest) -> PaymentLink:
    """Charge what is left on the deposit order to the customer's vaulted card; when there is
    none, or it is declined, email the order's payment link instead (`paid` False)."""
    if request.deposit_order is None:
        raise ValueError(f"{request.key}: no deposit order to charge the balance on")
    order_id = order_gid(request.deposit_order)
    order = _read_balance(channel, order_id)
    if order.cancelled:
        raise ChannelError(channel.name, "charge_balance", f"{order_id} is cancelled",
                           code="ORDER_CANCELLED")  # fmt: skip
    if order.outstanding <= 0:
        return PaymentLink(ref=order_id, url="", paid=True)
    if order.mandate is not None and _charge(channel, order, request):
        return PaymentLink(ref=order_id, url="", paid=True)
    url = _send_invoice(channel, order_id, request)
    return PaymentLink(ref=order_id, url=url, paid=False)


def send_balance_link(channel: ShopifyChannel, order_ref: str, request: PaymentRequest) -> None:
    """Email the order's payment link again, with `request.message`; nothing when the balance
    was paid meanwhile (its order update arrives as any does)."""
    order_id = order_gid(order_ref)
    order = _read_balance(channel, order_id)
    if order.cancelled:
        raise ChannelError(channel.name, "send_balance_link", f"{order_id} is cancelled",
                           code="ORDER_CANCELLED")  # fmt: skip
    if order.outstanding > 0:
        _send_invoice(channel, order_id, request)


def cancel_unpaid(channel: ShopifyChannel, order_ref: str) -> bool:
    """Cancel a deposit order whose balance was not paid by the deadline (the deposit is not
    refunded here, nothing is restocked: an ON_FULFILLMENT plan took no units). True when it is
    cancelled (now or before); False when nothing is owed on it: it was paid."""
    order_id = order_gid(order_ref)
    order = _read_balance(channel, order_id)
    if order.cancelled:
        return True
    if order.outstanding <= 0:
        return False
    variables = {"id": order_id, "reason": CANCEL_REASON, "note": CANCEL_NOTE}
    data = channel.transport.execute("order_cancel", CANCEL_ORDER, variables)
    body = data.get("orderCancel")
    errors = (body or {}).get("orderCancelUserErrors") or [] if isinstance(body, Mapping) else []
    if errors and _read_balance(channel, order_id).cancelled:
        return True  # cancelled meanwhile (our own earlier call, or the merchant)
    raise_user_errors(
        channel, "order_cancel", data, "orderCancel", order_id, "orderCancelUserErrors"
    )
    return True


@dataclass(frozen=True)
class _Balance:
    id: str
    cancelled: bool
    outstanding: Decimal
    currency: str
    mandate: str | None  # a vaulted payment method that can be charged
    url: str


def _read_balance(channel: ShopifyChannel, order_id: str) -> _Balance:
    data = channel.transport.execute("order_balance", ORDER_BALANCE, {"id": order_id})
    order = data.get("order")
    if not isinstance(order, Mapping):
        raise ChannelError(channel.name, "order_balance", f"no order {order_id}",
                           code="NOT_FOUND")  # fmt: skip
    money = (order.get("totalOutstandingSet") or {}).get("presentmentMoney") or {}
    details = order.get("paymentCollectionDetails") or {}
    usable = [
        str(m["id"]) for m in details.get("vaultedPaymentMethods") or []
        if not (m.get("paymentInstrument") or {}).get("expired")
    ]  # fmt: skip
    return _Balance(
        id=str(order["id"]),
        cancelled=order.get("cancelledAt") is not None,
        outstanding=_decimal(money.get("amount")) or Decimal(0),
        currency=str(money.get("currencyCode") or order.get("presentmentCurrencyCode")),
        mandate=usable[0] if usable else None,
        url=str(details.get("additionalPaymentCollectionUrl") or ""),
    )


def _charge(channel: ShopifyChannel, order: _Balance, request: PaymentRequest) -> bool:
    """One charge on the vaulted card (a retry replays it); True when it went through."""
    variables: dict[str, Any] = {
        "id": order.id, "mandateId": order.mandate, "key": balance_key(request),
    }  # fmt: skip
    if request.amount is not None:
        if request.amount <= 0:
            raise ValueError(f"{request.key}: the balance to charge must be positive")
        currency = request.currency or order.currency
        if currency != order.currency:
            raise ChannelError(
                channel.name, "charge_balance",
                f"{order.id}: the order is in {order.currency}, the balance in {currency}",
                code="CURRENCY_MISMATCH",
            )  # fmt: skip
        amount = min(request.amount, order.outstanding)  # never more than the shop says is owed
        variables["amount"] = {"amount": f"{amount:f}", "currencyCode": currency}
    data = channel.transport.execute("charge_balance", CHARGE_BALANCE, variables)
    body = data.get("orderCreateMandatePayment")
    if not isinstance(body, Mapping):
        raise ChannelError(channel.name, "charge_balance", f"{order.id}: no answer")
    if body.get("userErrors") or not body.get("paymentReferenceId"):
        return False  # refused (card gone, nothing due meanwhile): the link still works
    return _payment_succeeded(channel, order.id, str(body["paymentReferenceId"]))


def _payment_succeeded(channel: ShopifyChannel, order_id: str, reference: str) -> bool:
    """The charge's outcome; ChannelError PAYMENT_PENDING (retryable) while Shopify is still
    processing it after a few reads: the retry with the same key finds the same payment."""
    for read in range(STATUS_READS):
        if read:
            time.sleep(STATUS_WAIT_SECONDS * read)
        data = channel.transport.execute(
            "payment_status", PAYMENT_STATUS, {"orderId": order_id, "reference": reference}
        )
        status = (data.get("orderPaymentStatus") or {}).get("status")
        if status in PAID:
            return True
        if status is not None and status not in NOT_YET:
            return False  # ERROR, VOIDED, RETRYABLE, REDIRECT_REQUIRED...: the customer pays
    raise ChannelError(channel.name, "payment_status", f"{order_id}: payment still processing",
                       code="PAYMENT_PENDING", retryable=True)  # fmt: skip


def _send_invoice(channel: ShopifyChannel, order_id: str, request: PaymentRequest) -> str:
    """Email the order's invoice with its payment link; the link."""
    email: dict[str, Any] = {"customMessage": request.message}
    if request.email:
        email["to"] = request.email
    data = channel.transport.execute(
        "order_invoice_send", SEND_ORDER_INVOICE, {"id": order_id, "email": email}
    )
    body = raise_user_errors(channel, "order_invoice_send", data, "orderInvoiceSend", order_id)
    details = (body.get("order") or {}).get("paymentCollectionDetails") or {}
    return str(details.get("additionalPaymentCollectionUrl") or "")


# -- refunds ----------------------------------------------------------------------------------
def refund(channel: ShopifyChannel, request: RefundRequest) -> str:
    """Refund `request.amount` on the order's payments, newest first, nothing restocked (a
    deposit is not a unit); once: a refund whose note carries our key is returned instead."""
    order_id = order_gid(request.order_ref)
    data = channel.transport.execute(
        "order_payments", ORDER_PAYMENTS, {"id": order_id, "limit": LIST_LIMIT}
    )
    order = data.get("order")
    if not isinstance(order, Mapping):
        raise ChannelError(channel.name, "order_payments", f"no order {order_id}",
                           code="NOT_FOUND")  # fmt: skip
    marker = f"[{request.key}]"
    for made in order.get("refunds") or []:
        if marker in str(made.get("note") or ""):
            return str(made["id"])
    currency = str(order.get("presentmentCurrencyCode"))
    if request.currency != currency:
        raise ChannelError(
            channel.name, "refund_create",
            f"{order_id}: the order is in {currency}, the refund in {request.currency}",
            code="CURRENCY_MISMATCH",
        )  # fmt: skip
    if request.amount <= 0:
        raise ValueError(f"{request.key}: a refund must be positive")
    rows = _spread(channel, order_id, order.get("transactions") or [], request.amount)
    refund_input = {
        "orderId": order_id,
        "note": f"{request.reason} {marker}",
        "notify": True,
        "currency": currency,
        "transactions": rows,
    }
    variables = {"input": refund_input, "key": refund_key(request)}
    data = channel.transport.execute("refund_create", CREATE_REFUND, variables)
    body = raise_user_errors(channel, "refund_create", data, "refundCreate", order_id)
    made = body.get("refund")
    if not isinstance(made, Mapping) or not made.get("id"):
        raise ChannelError(channel.name, "refund_create", f"{order_id}: no refund in the answer")
    return str(made["id"])


def _spread(
    channel: ShopifyChannel, order_id: str, transactions: Sequence[Mapping[str, Any]],
    amount: Decimal,
) -> list[dict[str, Any]]:  # fmt: skip
    """OrderTransactionInput rows taking `amount` from the successful sales and captures, the
    newest first, each by what is left to refund on it."""
    refunded: dict[str, Decimal] = {}
    for t in transactions:
        parent = (t.get("parentTransaction") or {}).get("id")
        if t.get("kind") == "REFUND" and t.get("status") == "SUCCESS" and parent:
            refunded[str(parent)] = refunded.get(str(parent), Decimal(0)) + _amount(t)
    paid = [
        (str(t.get("processedAt") or t.get("createdAt") or ""), index, t)
        for index, t in enumerate(transactions)
        if t.get("kind") in ("SALE", "CAPTURE") and t.get("status") == "SUCCESS"
    ]
    rows: list[dict[str, Any]] = []
    left = amount
    for _stamp, _index, t in sorted(paid, key=lambda p: (p[0], p[1]), reverse=True):
        take = min(left, _amount(t) - refunded.get(str(t["id"]), Decimal(0)))
        if take <= 0:
            continue
        rows.append({"orderId": order_id, "parentId": str(t["id"]), "kind": "REFUND",
                     "gateway": str(t.get("gateway") or ""), "amount": f"{take:f}"})  # fmt: skip
        left -= take
        if left <= 0:
            return rows
    raise ChannelError(
        channel.name, "refund_create",
        f"{order_id}: {amount:f} is more than the {amount - left:f} left to refund",
        code="REFUND_EXCEEDS",
    )  # fmt: skip


# -- helpers ----------------------------------------------------------------------------------
def _object(
    channel: ShopifyChannel, operation: str, data: Mapping[str, Any], key: str
) -> Mapping[str, Any]:
    value = data.get(key)
    if not isinstance(value, Mapping):
        raise ChannelError(channel.name, operation, f"no {key} in the answer", code="NOT_FOUND")
    return value


def _amount(transaction: Mapping[str, Any]) -> Decimal:
    money = (transaction.get("amountSet") or {}).get("presentmentMoney") or {}
    return _decimal(money.get("amount")) or Decimal(0)


def _decimal(value: Any) -> Decimal | None:
    if value is None:
        return None
    try:
        return Decimal(str(value)).normalize()
    except InvalidOperation:
        return None


def _plain(value: Decimal) -> str:
    """12.50 -> "12.5", 20 -> "20" (no exponent)."""
    return f"{Decimal(str(value)).normalize():f}"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None
