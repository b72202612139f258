"""Pre-order deposits in the Shopify sandbox, over real HTTP against the real schema: a selling
plan group with a fixed billing policy, a storefront checkout through the plan that charges the
deposit and vaults the card, `orderCreateMandatePayment` charging the balance once per
idempotency key (and the gateway's test declines), `refundCreate` refunding by parent
transaction, with webhooks, schema checks and access scopes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from connectors.sandbox.shopify import ShopifySandbox
from connectors.signatures import verify
from tests.shopify_support import (
    DEPOSIT_APP_SCOPES,
    SECRET,
    Clock,
    Receiver,
    graphql,
    sandbox_fixture,
    variant_id,
    wire_receiver,
)
from tests.shopify_support import graphql_data as data

START = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)

PLAN_FIELDS = """
  id name category options
  billingPolicy {
    ... on SellingPlanFixedBillingPolicy {
      checkoutCharge {
        type
        value {
          ... on SellingPlanCheckoutChargePercentageValue { percentage }
          ... on MoneyV2 { amount currencyCode }
        }
      }
      remainingBalanceChargeTrigger remainingBalanceChargeExactTime
      remainingBalanceChargeTimeAfterCheckout
    }
  }
  deliveryPolicy { ... on SellingPlanFixedDeliveryPolicy { fulfillmentTrigger } }
  inventoryPolicy { reserve }
  pricingPolicies { ... on SellingPlanFixedPricingPolicy { adjustmentType } }
"""
GROUP_FIELDS = f"""
  id name merchantCode appId options
  sellingPlans(first: 5) {{ nodes {{ {PLAN_FIELDS} }} }}
  productVariants(first: 5) {{ nodes {{ id sku }} }}
  productVariantsCount {{ count precision }}
"""
CREATE_GROUP = f"""
mutation Create($input: SellingPlanGroupInput!, $resources: SellingPlanGroupResourceInput) {{
  sellingPlanGroupCreate(input: $input, resources: $resources) {{
    sellingPlanGroup {{ {GROUP_FIELDS} }}
    userErrors {{ code field message }}
  }}
}}"""
UPDATE_GROUP = f"""
mutation Update($id: ID!, $input: SellingPlanGroupInput!) {{
  sellingPlanGroupUpdate(id: $id, input: $input) {{
    sellingPlanGroup {{ {GROUP_FIELDS} }}
    deletedSellingPlanIds
    userErrors {{ code field message }}
  }}
}}"""
ADD_VARIANTS = """
mutation Add($id: ID!, $variants: [ID!]!) {
  sellingPlanGroupAddProductVariants(id: $id, productVariantIds: $variants) {
    sellingPlanGroup { productVariants(first: 5) { nodes { sku } } }
    userErrors { code field message }
  }
}"""
GROUP = f"query($id: ID!) {{ sellingPlanGroup(id: $id) {{ {GROUP_FIELDS} }} }}"
ORDER = """
query($id: ID!) {
  order(id: $id) {
    id displayFinancialStatus fullyPaid
    totalPriceSet { shopMoney { amount currencyCode } }
    totalOutstandingSet { shopMoney { amount currencyCode } }
    totalReceivedSet { shopMoney { amount } }
    totalRefundedSet { shopMoney { amount } }
    paymentCollectionDetails { vaultedPaymentMethods { id } }
    transactions(first: 10) {
      id kind status gateway errorCode processedAt
      amountSet { shopMoney { amount currencyCode } }
      parentTransaction { id }
    }
    lineItems(first: 5) { nodes { id sku quantity sellingPlan { sellingPlanId name } } }
    refunds(first: 5) {
      id note createdAt
      totalRefundedSet { shopMoney { amount } }
      transactions(first: 5) { nodes { id kind status amountSet { shopMoney { amount } } } }
    }
  }
}"""
CHARGE = """
mutation Charge($id: ID!, $mandate: ID!, $key: String!, $amount: MoneyInput) {
  orderCreateMandatePayment(id: $id, mandateId: $mandate, idempotencyKey: $key, amount: $amount) {
    job { id done }
    paymentReferenceId
    jobResult { status errors { message } }
    userErrors { code field message }
  }
}"""
PAYMENT_STATUS = """
query($order: ID!, $ref: String!) {
  orderPaymentStatus(orderId: $order, paymentReferenceId: $ref) {
    status errorMessage transactions { kind status errorCode }
  }
}"""
REFUND = """
mutation Refund($input: RefundInput!, $key: String!) {
  refundCreate(input: $input) @idempotent(key: $key) {
    refund {
      id note totalRefundedSet { shopMoney { amount } }
      transactions(first: 5) { nodes { id kind status parentTransaction { id } } }
    }
    order { displayFinancialStatus totalOutstandingSet { shopMoney { amount } } }
    userErrors { field message }
  }
}"""
LEVEL = """
query($item: ID!, $location: ID!) {
  inventoryItem(id: $item) {
    inventoryLevel(locationId: $location) {
      quantities(names: ["available", "committed", "on_hand"]) { name quantity }
    }
  }
}"""


@pytest.fixture
def sandbox() -> Iterator[ShopifySandbox]:
    yield from sandbox_fixture(Clock(START), DEPOSIT_APP_SCOPES)


@pytest.fixture
def receiver(sandbox: ShopifySandbox) -> Iterator[Receiver]:
    yield from wire_receiver(sandbox)


def plan_input(percentage: float = 20, **overrides: Any) -> dict[str, Any]:
    plan: dict[str, Any] = {
        "name": f"Pre-order, {percentage:g}% deposit",
        "category": "PRE_ORDER",
        "options": [f"{percentage:g}% deposit"],
        "billingPolicy": {
            "fixed": {
                "checkoutCharge": {"type": "PERCENTAGE", "value": {"percentage": percentage}},
                "remainingBalanceChargeTrigger": "EXACT_TIME",
                "remainingBalanceChargeExactTime": "2026-09-01T00:00:00Z",
            }
        },
        "deliveryPolicy": {"fixed": {"fulfillmentTrigger": "UNKNOWN"}},
        "inventoryPolicy": {"reserve": "ON_SALE"},
        "pricingPolicies": [],
    }
    plan.update(overrides)
    return plan


def group_input(*plans: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "Pre-order",
        "merchantCode": "stocksync-preorder",
        "appId": "stocksync",
        "options": ["Deposit"],
        "sellingPlansToCreate": list(plans) or [plan_input()],
    }


def create_group(
    sandbox: ShopifySandbox, *plans: dict[str, Any], skus: tuple[str, ...] = ("DEMO-1",)
) -> dict[str, Any]:
    resources = {"productVariantIds": [variant_id(sandbox, s) for s in skus]}
    made = data(sandbox, CREATE_GROUP, {"input": group_input(*plans), "resources": resources})
    payload: dict[str, Any] = made["sellingPlanGroupCreate"]
    assert payload["userErrors"] == [], payload
    group: dict[str, Any] = payload["sellingPlanGroup"]
    return group


def checkout(sandbox: ShopifySandbox, body: dict[str, Any]) -> requests.Response:
    return requests.post(f"{sandbox.url}/_sandbox/checkout", json=body, timeout=5)


def deposit_order(
    sandbox: ShopifySandbox, quantity: int = 2, **plan: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A pre-order of DEMO-1 at $10 a unit through a new plan; (checkout body, order node)."""
    group = create_group(sandbox, plan_input(**plan))
    plan_id = group["sellingPlans"]["nodes"][0]["id"]
    placed = checkout(
        sandbox,
        {
            "sku": "DEMO-1",
            "quantity": quantity,
            "email": "ann@example.com",
            "selling_plan": plan_id,
        },
    )
    assert placed.status_code == 201, placed.text
    body: dict[str, Any] = placed.json()
    node: dict[str, Any] = data(sandbox, ORDER, {"id": body["admin_graphql_api_id"]})["order"]
    return body, node


def amount(bag: dict[str, Any]) -> str:
    return str(bag["shopMoney"]["amount"])


def levels(sandbox: ShopifySandbox, sku: str) -> dict[str, int]:
    state = sandbox.state_snapshot()
    level = data(
        sandbox,
        LEVEL,
        {"item": state["inventory"][sku]["inventory_item_id"], "location": state["location"]["id"]},
    )["inventoryItem"]["inventoryLevel"]
    return {q["name"]: q["quantity"] for q in level["quantities"]}


def charge(
    sandbox: ShopifySandbox, order: dict[str, Any], key: str, value: str | None = None
) -> dict[str, Any]:
    variables: dict[str, Any] = {
        "id": order["id"],
        "mandate": order["paymentCollectionDetails"]["vaultedPaymentMethods"][0]["id"],
        "key": key,
        "amount": {"amount": value, "currencyCode": "USD"} if value else None,
    }
    payload: dict[str, Any] = data(sandbox, CHARGE, variables)["orderCreateMandatePayment"]
    return payload


def refund_input(order: dict[str, Any], value: str, **overrides: Any) -> dict[str, Any]:
    [sale] = [t for t in order["transactions"] if t["kind"] == "SALE" and t["status"] == "SUCCESS"]
    transaction = {
        "orderId": order["id"],
        "parentId": sale["id"],
        "amount": value,
        "gateway": "shopify_payments",
        "kind": "REFUND",
    } | overrides
    return {"orderId": order["id"], "transactions": [transaction]}


def refund(sandbox: ShopifySandbox, key: str, refund: dict[str, Any]) -> dict[str, Any]:
    payload: dict[str, Any] = data(sandbox, REFUND, {"input": refund, "key": key})["refundCreate"]
    return payload


# -- selling plan groups ------------------------------------------------------------------------
def test_a_pre_order_group_on_a_variant(sandbox: ShopifySandbox) -> None:
    group = create_group(sandbox)
    assert group["id"].startswith("gid://shopify/SellingPlanGroup/")
    assert (group["name"], group["merchantCode"], group["appId"]) == (
        "Pre-order",
        "stocksync-preorder",
        "stocksync",
    )
    [plan] = group["sellingPlans"]["nodes"]
    assert plan["id"].startswith("gid://shopify/SellingPlan/")
    assert plan["category"] == "PRE_ORDER" and plan["options"] == ["20% deposit"]
    assert plan["billingPolicy"] == {
        "checkoutCharge": {"type": "PERCENTAGE", "value": {"percentage": 20.0}},
        "remainingBalanceChargeTrigger": "EXACT_TIME",
        "remainingBalanceChargeExactTime": "2026-09-01T00:00:00Z",
        "remainingBalanceChargeTimeAfterCheckout": None,
    }
    assert plan["deliveryPolicy"] == {"fulfillmentTrigger": "UNKNOWN"}
    assert plan["inventoryPolicy"] == {"reserve": "ON_SALE"}
    assert plan["pricingPolicies"] == []
    assert group["productVariants"]["nodes"] == [
        {"id": variant_id(sandbox, "DEMO-1"), "sku": "DEMO-1"}
    ]
    assert group["productVariantsCount"] == {"count": 1, "precision": "EXACT"}
    assert data(sandbox, GROUP, {"id": group["id"]})["sellingPlanGroup"] == group

    listed = data(
        sandbox,
        """query($q: String) { sellingPlanGroups(first: 5, query: $q) { nodes { id } } }""",
        {"q": "category:PRE_ORDER"},
    )["sellingPlanGroups"]["nodes"]
    assert listed == [{"id": group["id"]}]
    none = data(
        sandbox,
        'query { sellingPlanGroups(first: 5, query: "category:SUBSCRIPTION") { nodes { id } } }',
        {},
    )
    assert none["sellingPlanGroups"]["nodes"] == []
    variant = data(
        sandbox,
        """query($id: ID!) { productVariant(id: $id) {
             sellingPlanGroups(first: 5) { nodes { id name } }
             sellingPlanGroupsCount { count } } }""",
        {"id": variant_id(sandbox, "DEMO-1")},
    )["productVariant"]
    assert variant == {
        "sellingPlanGroups": {"nodes": [{"id": group["id"], "name": "Pre-order"}]},
        "sellingPlanGroupsCount": {"count": 1},
    }


def test_a_price_checkout_charge_and_a_pricing_policy(sandbox: ShopifySandbox) -> None:
    plan = plan_input(
        name="Reserve for $3",
        options=["$3 now"],
        billingPolicy={
            "fixed": {
                "checkoutCharge": {"type": "PRICE", "value": {"fixedValue": "3.00"}},
                "remainingBalanceChargeTrigger": "TIME_AFTER_CHECKOUT",
                "remainingBalanceChargeTimeAfterCheckout": "P30D",
            }
        },
        pricingPolicies=[
            {"fixed": {"adjustmentType": "PERCENTAGE", "adjustmentValue": {"percentage": 10}}}
        ],
    )
    group = create_group(sandbox, plan)
    [made] = group["sellingPlans"]["nodes"]
    assert made["billingPolicy"]["checkoutCharge"] == {
        "type": "PRICE",
        "value": {"amount": "3.0", "currencyCode": "USD"},
    }
    assert made["billingPolicy"]["remainingBalanceChargeTimeAfterCheckout"] == "P30D"
    assert made["pricingPolicies"] == [{"adjustmentType": "PERCENTAGE"}]
    placed = checkout(sandbox, {"sku": "DEMO-1", "quantity": 2, "selling_plan": made["id"]}).json()
    # 10% off $10 is $9 a unit; $3 a unit now, the rest later
    [line] = placed["line_items"]
    assert line["price"] == "9.00"
    assert line["selling_plan_allocation"]["checkout_charge_amount"] == "6.00"
    assert line["selling_plan_allocation"]["remaining_balance_charge_amount"] == "12.00"
    assert placed["total_outstanding"] == "12.00"


BILLING = ["input", "sellingPlansToCreate", "0", "billingPolicy", "fixed"]
BAD_INPUTS: list[tuple[dict[str, Any], str, list[str]]] = [
    (
        plan_input(billingPolicy=None),
        "SELLING_PLAN_BILLING_POLICY_MISSING",
        ["input", "sellingPlansToCreate", "0", "billingPolicy"],
    ),
    (
        plan_input(percentage=120),
        "LESS_THAN_OR_EQUAL_TO",
        [*BILLING, "checkoutCharge", "value", "percentage"],
    ),
    (
        plan_input(percentage=-5),
        "GREATER_THAN_OR_EQUAL_TO",
        [*BILLING, "checkoutCharge", "value", "percentage"],
    ),
    (
        plan_input(
            billingPolicy={
                "fixed": {
                    "checkoutCharge": {"type": "PERCENTAGE", "value": {"percentage": 20}},
                    "remainingBalanceChargeTrigger": "NO_REMAINING_BALANCE",
                }
            }
        ),
        "REMAINING_BALANCE_CHARGE_TRIGGER_NO_REMAINING_BALANCE_ON_PARTIAL_PERCENTAGE_CHECKOUT_CHARGE",
        [*BILLING, "remainingBalanceChargeTrigger"],
    ),
    (
        plan_input(
            billingPolicy={
                "fixed": {
                    "checkoutCharge": {"type": "PERCENTAGE", "value": {"percentage": 20}},
                    "remainingBalanceChargeTrigger": "EXACT_TIME",
                }
            }
        ),
        "REMAINING_BALANCE_CHARGE_EXACT_TIME_REQUIRED",
        [*BILLING, "remainingBalanceChargeExactTime"],
    ),
    (
        plan_input(
            billingPolicy={
                "fixed": {
                    "checkoutCharge": {"type": "PRICE", "value": {"percentage": 20}},
                    "remainingBalanceChargeTrigger": "TIME_AFTER_CHECKOUT",
                    "remainingBalanceChargeTimeAfterCheckout": "P7D",
                }
            }
        ),
        "CHECKOUT_CHARGE_VALUE_AND_TYPE_MUST_MATCH",
        [*BILLING, "checkoutCharge", "value"],
    ),
    (
        plan_input(deliveryPolicy=None),
        "SELLING_PLAN_DELIVERY_POLICY_MISSING",
        ["input", "sellingPlansToCreate", "0", "deliveryPolicy"],
    ),
]


@pytest.mark.parametrize(("plan", "code", "field"), BAD_INPUTS)
def test_invalid_plans_are_refused_whole(
    sandbox: ShopifySandbox, plan: dict[str, Any], code: str, field: list[str]
) -> None:
    made = data(sandbox, CREATE_GROUP, {"input": group_input(plan)})["sellingPlanGroupCreate"]
    assert made["sellingPlanGroup"] is None
    assert [(e["code"], e["field"]) for e in made["userErrors"]] == [(code, field)]
    assert made["userErrors"][0]["message"]
    assert sandbox.state_snapshot()["selling_plan_groups"] == []


def test_unknown_variants_and_blank_names_are_refused(sandbox: ShopifySandbox) -> None:
    resources = {"productVariantIds": ["gid://shopify/ProductVariant/999999"]}
    made = data(sandbox, CREATE_GROUP, {"input": group_input(), "resources": resources})
    assert made["sellingPlanGroupCreate"]["userErrors"] == [
        {
            "code": "PRODUCT_VARIANT_DOES_NOT_EXIST",
            "field": ["resources", "productVariantIds"],
            "message": "Product variant does not exist",
        }
    ]
    nameless = group_input() | {"name": " "}
    blank = data(sandbox, CREATE_GROUP, {"input": nameless})["sellingPlanGroupCreate"]
    assert [(e["code"], e["field"]) for e in blank["userErrors"]] == [("BLANK", ["input", "name"])]
    assert sandbox.state_snapshot()["selling_plan_groups"] == []


def test_update_plans_and_add_variants(sandbox: ShopifySandbox) -> None:
    group = create_group(sandbox)
    [plan] = group["sellingPlans"]["nodes"]
    changed = data(
        sandbox,
        UPDATE_GROUP,
        {
            "id": group["id"],
            "input": {
                "sellingPlansToUpdate": [
                    {
                        "id": plan["id"],
                        "billingPolicy": {
                            "fixed": {
                                "checkoutCharge": {
                                    "type": "PERCENTAGE",
                                    "value": {"percentage": 30},
                                },
                                "remainingBalanceChargeTrigger": "EXACT_TIME",
                                "remainingBalanceChargeExactTime": "2026-10-01T00:00:00Z",
                            }
                        },
                    }
                ],
                "sellingPlansToCreate": [plan_input(50)],
            },
        },
    )["sellingPlanGroupUpdate"]
    assert changed["userErrors"] == [] and changed["deletedSellingPlanIds"] == []
    updated, added = changed["sellingPlanGroup"]["sellingPlans"]["nodes"]
    assert updated["id"] == plan["id"] and updated["name"] == plan["name"]
    assert updated["billingPolicy"]["checkoutCharge"]["value"] == {"percentage": 30.0}
    assert added["options"] == ["50% deposit"]

    removed = data(
        sandbox,
        UPDATE_GROUP,
        {"id": group["id"], "input": {"sellingPlansToDelete": [added["id"]]}},
    )["sellingPlanGroupUpdate"]
    assert removed["deletedSellingPlanIds"] == [added["id"]]
    assert [p["id"] for p in removed["sellingPlanGroup"]["sellingPlans"]["nodes"]] == [plan["id"]]

    # every plan gone would leave an empty group: refused, nothing changes
    emptied = data(
        sandbox,
        UPDATE_GROUP,
        {"id": group["id"], "input": {"sellingPlansToDelete": [plan["id"]]}},
    )["sellingPlanGroupUpdate"]
    assert [e["code"] for e in emptied["userErrors"]] == ["SELLING_PLAN_COUNT_LOWER_BOUND"]
    unknown = data(sandbox, UPDATE_GROUP, {"id": "gid://shopify/SellingPlanGroup/1", "input": {}})[
        "sellingPlanGroupUpdate"
    ]
    assert unknown["userErrors"] == [
        {
            "code": "GROUP_DOES_NOT_EXIST",
            "field": ["id"],
            "message": "Selling plan group does not exist.",
        }
    ]

    variants = [variant_id(sandbox, "DEMO-2"), variant_id(sandbox, "DEMO-2")]
    joined = data(sandbox, ADD_VARIANTS, {"id": group["id"], "variants": variants})
    payload = joined["sellingPlanGroupAddProductVariants"]
    assert payload["userErrors"] == []
    assert payload["sellingPlanGroup"]["productVariants"]["nodes"] == [
        {"sku": "DEMO-1"},
        {"sku": "DEMO-2"},
    ]
    bad = data(
        sandbox,
        ADD_VARIANTS,
        {"id": group["id"], "variants": ["gid://shopify/ProductVariant/1"]},
    )["sellingPlanGroupAddProductVariants"]
    assert [e["code"] for e in bad["userErrors"]] == ["PRODUCT_VARIANT_DOES_NOT_EXIST"]


# -- checkout with a plan -----------------------------------------------------------------------
def test_checkout_with_the_plan_charges_the_deposit(
    sandbox: ShopifySandbox, receiver: Receiver
) -> None:
    body, order = deposit_order(sandbox, quantity=2)
    # $20 of goods: $4 now, $16 outstanding against the vaulted card
    assert body["financial_status"] == "partially_paid"
    assert (body["total_price"], body["total_outstanding"]) == ("20.00", "16.00")
    [line] = body["line_items"]
    assert line["selling_plan_allocation"] == {
        "selling_plan_id": line["selling_plan_allocation"]["selling_plan_id"],
        "selling_plan_name": "Pre-order, 20% deposit",
        "price": "10.00",
        "checkout_charge_amount": "4.00",
        "remaining_balance_charge_amount": "16.00",
    }
    assert order["displayFinancialStatus"] == "PARTIALLY_PAID" and not order["fullyPaid"]
    assert order["totalPriceSet"]["shopMoney"] == {"amount": "20.0", "currencyCode": "USD"}
    assert order["totalOutstandingSet"]["shopMoney"] == {"amount": "16.0", "currencyCode": "USD"}
    assert amount(order["totalReceivedSet"]) == "4.0"
    assert amount(order["totalRefundedSet"]) == "0.0"
    [mandate] = order["paymentCollectionDetails"]["vaultedPaymentMethods"]
    assert mandate["id"].startswith("gid://shopify/PaymentMandate/")
    [sale] = order["transactions"]
    assert (sale["kind"], sale["status"], sale["gateway"]) == (
        "SALE",
        "SUCCESS",
        "shopify_payments",
    )
    assert sale["amountSet"]["shopMoney"] == {"amount": "4.0", "currencyCode": "USD"}
    assert sale["id"].startswith("gid://shopify/OrderTransaction/")
    assert sale["processedAt"] == "2026-07-01T12:00:00Z" and sale["errorCode"] is None
    [item] = order["lineItems"]["nodes"]
    assert item["sellingPlan"]["name"] == "Pre-order, 20% deposit"
    assert item["sellingPlan"]["sellingPlanId"].startswith("gid://shopify/SellingPlan/")
    # ON_SALE: the units are committed at checkout, like any sale
    assert levels(sandbox, "DEMO-1") == {"available": 18, "committed": 2, "on_hand": 20}
    owing = data(
        sandbox,
        'query { orders(first: 5, query: "financial_status:partially_paid") { nodes { id } } }',
        {},
    )
    assert owing["orders"]["nodes"] == [{"id": order["id"]}]

    [created] = receiver.wait_for(1)
    assert created.headers["X-Shopify-Topic"] == "orders/create"
    assert verify(created.body, created.headers["X-Shopify-Hmac-Sha256"], [SECRET])
    delivered = json.loads(created.body)
    assert delivered["financial_status"] == "partially_paid"
    assert delivered["total_outstanding"] == "16.00"


def test_plain_lines_are_paid_in_full_beside_plan_lines(sandbox: ShopifySandbox) -> None:
    group = create_group(sandbox)
    plan_id = group["sellingPlans"]["nodes"][0]["id"]
    lines = [
        {"sku": "DEMO-1", "quantity": 1, "selling_plan": plan_id},
        {"sku": "DEMO-3", "quantity": 1},
    ]
    placed = checkout(sandbox, {"lines": lines}).json()
    assert placed["financial_status"] == "partially_paid"
    assert placed["total_outstanding"] == "8.00"  # $2 deposit + $10 in full, of $20
    assert placed["line_items"][1]["selling_plan_allocation"] is None


def test_a_plan_the_variant_is_not_sold_with_is_refused(sandbox: ShopifySandbox) -> None:
    group = create_group(sandbox)
    plan_id = group["sellingPlans"]["nodes"][0]["id"]
    refused = checkout(sandbox, {"sku": "DEMO-2", "quantity": 1, "selling_plan": plan_id})
    assert refused.status_code == 409
    assert refused.json()["sku"] == "DEMO-2" and refused.json()["selling_plan"] == plan_id
    unknown = checkout(
        sandbox, {"sku": "DEMO-1", "quantity": 1, "selling_plan": "gid://shopify/SellingPlan/9"}
    )
    assert unknown.status_code == 404
    assert sandbox.state_snapshot()["orders"] == []
    assert sandbox.available("DEMO-2") == 20


def test_an_on_fulfillment_plan_takes_units_when_shipped(sandbox: ShopifySandbox) -> None:
    body, _order = deposit_order(sandbox, quantity=3, inventoryPolicy={"reserve": "ON_FULFILLMENT"})
    assert levels(sandbox, "DEMO-1") == {"available": 20, "committed": 0, "on_hand": 20}
    shipped = requests.post(f"{sandbox.url}/_sandbox/orders/{body['id']}/fulfill", timeout=5)
    assert shipped.status_code == 200
    assert levels(sandbox, "DEMO-1") == {"available": 17, "committed": 0, "on_hand": 17}


# -- charging the balance -----------------------------------------------------------------------
def test_the_mandate_charges_the_balance_once_per_key(
    sandbox: ShopifySandbox, receiver: Receiver
) -> None:
    _body, order = deposit_order(sandbox)
    receiver.wait_for(1)
    first = charge(sandbox, order, "balance-1")
    assert first["userErrors"] == []
    assert first["job"]["id"].startswith("gid://shopify/Job/") and first["job"]["done"] is True
    assert first["paymentReferenceId"]
    assert first["jobResult"] == {"status": "SUCCEEDED", "errors": []}
    paid = data(sandbox, ORDER, {"id": order["id"]})["order"]
    assert paid["displayFinancialStatus"] == "PAID" and paid["fullyPaid"]
    assert amount(paid["totalOutstandingSet"]) == "0.0"
    assert amount(paid["totalReceivedSet"]) == "20.0"
    _deposit, balance = paid["transactions"]
    assert (balance["kind"], balance["status"]) == ("SALE", "SUCCESS")
    assert amount(balance["amountSet"]) == "16.0"
    deliveries = receiver.wait_for(3)
    assert [d.headers["X-Shopify-Topic"] for d in deliveries] == [
        "orders/create",
        "orders/paid",
        "orders/updated",
    ]
    assert json.loads(deliveries[1].body)["financial_status"] == "paid"

    again = charge(sandbox, order, "balance-1")  # a retry: the first result, no second charge
    assert again == first
    assert len(data(sandbox, ORDER, {"id": order["id"]})["order"]["transactions"]) == 2
    status = data(
        sandbox, PAYMENT_STATUS, {"order": order["id"], "ref": first["paymentReferenceId"]}
    )["orderPaymentStatus"]
    assert status["status"] == "PURCHASED" and status["errorMessage"] is None
    assert status["transactions"] == [{"kind": "SALE", "status": "SUCCESS", "errorCode": None}]
    more = charge(sandbox, order, "balance-2")
    assert [(e["code"], e["field"]) for e in more["userErrors"]] == [
        ("ORDER_MANDATE_PAYMENT_ERROR_CODE", ["id"])
    ]
    assert len(receiver.deliveries) == 3


def test_a_declined_charge_leaves_the_balance(sandbox: ShopifySandbox) -> None:
    _body, order = deposit_order(sandbox)
    switched = requests.put(f"{sandbox.url}/_sandbox/payments", json={"decline_next": 1}, timeout=5)
    assert switched.json() == {
        "decline_next": 1,
        "decline_orders": [],
        "error_code": "CARD_DECLINED",
    }
    declined = charge(sandbox, order, "balance-1")
    assert declined["userErrors"] == []  # the payment is asynchronous: it fails afterwards
    assert declined["jobResult"]["status"] == "FAILED"
    after = data(sandbox, ORDER, {"id": order["id"]})["order"]
    assert after["displayFinancialStatus"] == "PARTIALLY_PAID"
    assert amount(after["totalOutstandingSet"]) == "16.0"
    failed = after["transactions"][-1]
    assert (failed["kind"], failed["status"], failed["errorCode"]) == (
        "SALE",
        "FAILURE",
        "CARD_DECLINED",
    )
    status = data(
        sandbox, PAYMENT_STATUS, {"order": order["id"], "ref": declined["paymentReferenceId"]}
    )["orderPaymentStatus"]
    assert status["status"] == "ERROR" and status["errorMessage"] == "Your card was declined."
    # the same key gives the same failure back; a new key is a new attempt
    assert charge(sandbox, order, "balance-1") == declined
    retried = charge(sandbox, order, "balance-2")
    assert retried["jobResult"]["status"] == "SUCCEEDED"
    assert data(sandbox, ORDER, {"id": order["id"]})["order"]["displayFinancialStatus"] == "PAID"


def test_declining_every_charge_of_an_order(sandbox: ShopifySandbox) -> None:
    body, order = deposit_order(sandbox)
    requests.put(
        f"{sandbox.url}/_sandbox/payments",
        json={"decline_orders": [body["id"]], "error_code": "INSUFFICIENT_FUNDS"},
        timeout=5,
    ).raise_for_status()
    for key in ("a", "b"):
        assert charge(sandbox, order, key)["jobResult"]["status"] == "FAILED"
    codes = [
        t["errorCode"] for t in data(sandbox, ORDER, {"id": order["id"]})["order"]["transactions"]
    ]
    assert codes == [None, "INSUFFICIENT_FUNDS", "INSUFFICIENT_FUNDS"]
    bad = requests.put(f"{sandbox.url}/_sandbox/payments", json={"decline_next": "x"}, timeout=5)
    assert bad.status_code == 400
    assert requests.get(f"{sandbox.url}/_sandbox/payments", timeout=5).json()["decline_orders"] == [
        body["id"]
    ]


def test_part_of_the_balance_and_refused_charges(sandbox: ShopifySandbox) -> None:
    _body, order = deposit_order(sandbox)
    part = charge(sandbox, order, "part", "6.00")
    assert part["userErrors"] == [] and part["jobResult"]["status"] == "SUCCEEDED"
    after = data(sandbox, ORDER, {"id": order["id"]})["order"]
    assert amount(after["totalOutstandingSet"]) == "10.0"
    assert after["displayFinancialStatus"] == "PARTIALLY_PAID"

    def refused(variables: dict[str, Any]) -> list[Any]:
        payload = data(sandbox, CHARGE, variables)["orderCreateMandatePayment"]
        assert payload["job"] is None and payload["paymentReferenceId"] is None
        return [e["field"] for e in payload["userErrors"]]

    mandate = order["paymentCollectionDetails"]["vaultedPaymentMethods"][0]["id"]
    base = {"id": order["id"], "mandate": mandate, "key": "k", "amount": None}
    assert refused(base | {"id": "gid://shopify/Order/1"}) == [["id"]]
    assert refused(base | {"mandate": "gid://shopify/PaymentMandate/1"}) == [["mandateId"]]
    too_much = {"amount": "10.01", "currencyCode": "USD"}
    assert refused(base | {"amount": too_much}) == [["amount", "amount"]]
    euros = {"amount": "1.00", "currencyCode": "EUR"}
    assert refused(base | {"amount": euros}) == [["amount", "currencyCode"]]
    # a key already used is for that request only
    assert refused(base | {"key": "part", "amount": {"amount": "5.00", "currencyCode": "USD"}}) == [
        ["idempotencyKey"]
    ]


def test_an_authorization_is_captured_later(sandbox: ShopifySandbox, receiver: Receiver) -> None:
    _body, order = deposit_order(sandbox)
    mandate = order["paymentCollectionDetails"]["vaultedPaymentMethods"][0]["id"]
    held = data(
        sandbox,
        """mutation($id: ID!, $mandate: ID!) {
             orderCreateMandatePayment(id: $id, mandateId: $mandate, idempotencyKey: "hold",
                                       autoCapture: false) {
               paymentReferenceId userErrors { message } } }""",
        {"id": order["id"], "mandate": mandate},
    )["orderCreateMandatePayment"]
    assert held["userErrors"] == []
    status = data(
        sandbox, PAYMENT_STATUS, {"order": order["id"], "ref": held["paymentReferenceId"]}
    )["orderPaymentStatus"]
    assert status["status"] == "AUTHORIZED"
    authorized = data(sandbox, ORDER, {"id": order["id"]})["order"]
    auth = authorized["transactions"][-1]
    assert (auth["kind"], auth["status"]) == ("AUTHORIZATION", "SUCCESS")
    assert authorized["displayFinancialStatus"] == "PARTIALLY_PAID"
    assert amount(authorized["totalOutstandingSet"]) == "16.0"  # authorized is not received
    # the balance is held already: a second charge finds nothing to take
    assert charge(sandbox, order, "more")["userErrors"][0]["field"] == ["id"]
    captured = data(
        sandbox,
        """mutation($input: OrderCaptureInput!) { orderCapture(input: $input) {
             transaction { kind status parentTransaction { id } }
             userErrors { field message } } }""",
        {"input": {"id": order["id"], "parentTransactionId": auth["id"], "amount": "16.00"}},
    )["orderCapture"]
    assert captured["userErrors"] == []
    assert captured["transaction"] == {
        "kind": "CAPTURE",
        "status": "SUCCESS",
        "parentTransaction": {"id": auth["id"]},
    }
    assert data(sandbox, ORDER, {"id": order["id"]})["order"]["displayFinancialStatus"] == "PAID"
    topics = [d.headers["X-Shopify-Topic"] for d in receiver.wait_for(4)]
    assert topics == ["orders/create", "orders/updated", "orders/paid", "orders/updated"]


def test_nothing_due_at_checkout_leaves_the_order_pending(sandbox: ShopifySandbox) -> None:
    free_now = plan_input(
        name="Try before you buy",
        category="TRY_BEFORE_YOU_BUY",
        options=["14 days"],
        billingPolicy={
            "fixed": {
                "checkoutCharge": {"type": "PRICE", "value": {"fixedValue": 0}},
                "remainingBalanceChargeTrigger": "TIME_AFTER_CHECKOUT",
                "remainingBalanceChargeTimeAfterCheckout": "P14D",
            }
        },
    )
    body, order = deposit_order(sandbox, quantity=1, **free_now)
    assert body["financial_status"] == "pending" and body["total_outstanding"] == "10.00"
    assert order["displayFinancialStatus"] == "PENDING" and order["transactions"] == []
    assert len(order["paymentCollectionDetails"]["vaultedPaymentMethods"]) == 1
    assert charge(sandbox, order, "tbyb")["jobResult"]["status"] == "SUCCEEDED"
    assert data(sandbox, ORDER, {"id": order["id"]})["order"]["displayFinancialStatus"] == "PAID"


# -- refunds ------------------------------------------------------------------------------------
def test_refund_part_of_the_deposit(sandbox: ShopifySandbox, receiver: Receiver) -> None:
    _body, order = deposit_order(sandbox)
    receiver.wait_for(1)
    wanted = refund_input(order, "1.50") | {
        "note": "stocksync-refund c1-7 fee kept",
        "notify": False,
    }
    made = refund(sandbox, "refund-c1-7", wanted)
    assert made["userErrors"] == []
    assert made["refund"]["note"] == "stocksync-refund c1-7 fee kept"
    assert amount(made["refund"]["totalRefundedSet"]) == "1.5"
    [back] = made["refund"]["transactions"]["nodes"]
    assert (back["kind"], back["status"]) == ("REFUND", "SUCCESS")
    assert back["parentTransaction"]["id"] == order["transactions"][0]["id"]
    assert made["order"]["displayFinancialStatus"] == "PARTIALLY_REFUNDED"
    assert amount(made["order"]["totalOutstandingSet"]) == "16.0"  # the balance is still owed

    again = refund(sandbox, "refund-c1-7", wanted)  # a retry with the key: the first refund
    assert again["refund"]["id"] == made["refund"]["id"]
    node = data(sandbox, ORDER, {"id": order["id"]})["order"]
    [listed] = node["refunds"]
    assert (
        listed["note"] == "stocksync-refund c1-7 fee kept" and listed["id"] == made["refund"]["id"]
    )
    assert listed["createdAt"] == "2026-07-01T12:00:00Z"
    assert [t["kind"] for t in node["transactions"]] == ["SALE", "REFUND"]
    assert amount(node["totalRefundedSet"]) == "1.5"

    deliveries = receiver.wait_for(3)
    assert [d.headers["X-Shopify-Topic"] for d in deliveries] == [
        "orders/create",
        "refunds/create",
        "orders/updated",
    ]
    sent = json.loads(deliveries[1].body)
    assert sent["note"] == "stocksync-refund c1-7 fee kept"
    assert sent["order_id"] == int(order["id"].rsplit("/", 1)[1])
    assert [(t["kind"], t["amount"]) for t in sent["transactions"]] == [("refund", "1.50")]
    assert json.loads(deliveries[2].body)["refunds"][0]["note"] == sent["note"]

    over = refund(sandbox, "refund-over", refund_input(order, "2.51"))
    assert over["refund"] is None
    assert [e["field"] for e in over["userErrors"]] == [["transactions", "0", "amount"]]
    rest = refund(sandbox, "refund-rest", refund_input(order, "2.50"))
    assert rest["userErrors"] == [] and rest["order"]["displayFinancialStatus"] == "REFUNDED"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"parentId": "gid://shopify/OrderTransaction/1"}, "parentId"),
        ({"parentId": None}, "parentId"),
        ({"gateway": "manual"}, "gateway"),
        ({"kind": "SALE"}, "kind"),
        ({"amount": "0"}, "amount"),
    ],
)
def test_refunds_shopify_refuses(
    sandbox: ShopifySandbox, overrides: dict[str, Any], field: str
) -> None:
    _body, order = deposit_order(sandbox)
    made = refund(sandbox, "k", refund_input(order, "1.00", **overrides))
    assert made["refund"] is None and made["order"] is None
    assert [e["field"] for e in made["userErrors"]] == [["transactions", "0", field]]
    assert data(sandbox, ORDER, {"id": order["id"]})["order"]["refunds"] == []


def test_cancelling_a_pre_order_refunds_the_deposit_and_restocks(sandbox: ShopifySandbox) -> None:
    _body, order = deposit_order(sandbox)
    [line] = order["lineItems"]["nodes"]
    wanted = refund_input(order, "4.00") | {
        "refundLineItems": [{"lineItemId": line["id"], "quantity": 2, "restockType": "CANCEL"}]
    }
    made = refund(sandbox, "cancel", wanted)
    assert made["userErrors"] == []
    assert made["order"]["displayFinancialStatus"] == "REFUNDED"
    assert amount(made["order"]["totalOutstandingSet"]) == "0.0"  # nothing is owed any more
    assert levels(sandbox, "DEMO-1") == {"available": 20, "committed": 0, "on_hand": 20}
    # nothing left to charge
    assert charge(sandbox, order, "late")["userErrors"][0]["field"] == ["id"]


# -- schema and scopes --------------------------------------------------------------------------
def test_documents_the_real_schema_lacks_are_rejected(sandbox: ShopifySandbox) -> None:
    for document, code in (
        ('query { sellingPlanGroup(id: "gid://shopify/SellingPlanGroup/1") { id deposit } }', None),
        ('query { order(id: "gid://shopify/Order/1") { outstandingBalance } }', None),
        (
            'mutation { refundCreate(input: {orderId: "gid://shopify/Order/1"}) '
            '@idempotent(key: "k") { userErrors { code } } }',
            None,
        ),  # refundCreate's UserError has no code
        (
            'mutation { orderCreateMandatePayment(id: "gid://shopify/Order/1", '
            'mandateId: "gid://shopify/PaymentMandate/1", idempotencyKey: "k") '
            "{ transaction { id } } }",
            None,
        ),
        (
            'mutation { orderCreateMandatePayment(id: "gid://shopify/Order/1", '
            'mandateId: "gid://shopify/PaymentMandate/1") { paymentReferenceId } }',
            "missingRequiredArguments",
        ),
    ):
        body = graphql(sandbox, document).json()
        assert "data" not in body, body
        [error] = body["errors"]
        assert error["extensions"]["code"] == (code or "undefinedField"), body
    # from 2026-04 refundCreate needs @idempotent
    bare = graphql(
        sandbox,
        'mutation { refundCreate(input: {orderId: "gid://shopify/Order/1"}) '
        "{ userErrors { message } } }",
    ).json()
    assert bare["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert "@idempotent" in bare["errors"][0]["message"]


def test_access_scopes(sandbox: ShopifySandbox) -> None:
    installed = data(sandbox, "query { currentAppInstallation { accessScopes { handle } } }", {})
    handles = {s["handle"] for s in installed["currentAppInstallation"]["accessScopes"]}
    assert {"write_purchase_options", "write_payment_mandate", "write_orders"} <= handles

    sandbox.access_scopes = ("read_orders", "read_products", "write_purchase_options")
    denied = graphql(sandbox, CREATE_GROUP, {"input": group_input()}).json()
    [error] = denied["errors"]
    assert error["extensions"]["code"] == "ACCESS_DENIED"
    assert "`write_products`" in error["message"] and "`write_purchase_options`" in error["message"]
    for document, variables, scope in (
        (CHARGE, {"id": "x", "mandate": "y", "key": "k"}, "write_payment_mandate"),
        (REFUND, {"input": {"orderId": "x"}, "key": "k"}, "write_orders"),
    ):
        body = graphql(sandbox, document, variables).json()
        assert body["errors"][0]["extensions"]["code"] == "ACCESS_DENIED"
        assert f"`{scope}`" in body["errors"][0]["message"]
    # reading groups needs read_products only
    assert data(sandbox, "query { sellingPlanGroups(first: 1) { nodes { id } } }", {})

    sandbox.access_scopes = ("write_products", "write_purchase_options")
    assert data(sandbox, CREATE_GROUP, {"input": group_input()})["sellingPlanGroupCreate"][
        "sellingPlanGroup"
    ]


def test_state_lists_groups_and_payment_switches(sandbox: ShopifySandbox) -> None:
    group = create_group(sandbox)
    state = requests.get(f"{sandbox.url}/_sandbox/state", timeout=5).json()
    [listed] = state["selling_plan_groups"]
    assert listed["id"] == group["id"] and listed["variant_ids"] == [variant_id(sandbox, "DEMO-1")]
    assert listed["selling_plans"][0]["inventory_policy"] == {"reserve": "ON_SALE"}
    assert state["payments"] == {
        "decline_next": 0,
        "decline_orders": [],
        "error_code": "CARD_DECLINED",
    }
