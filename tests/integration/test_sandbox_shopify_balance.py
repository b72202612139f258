"""The balance of a pre-order in the Shopify sandbox, over real HTTP against the real schema: an
open order that owes money has a payment link (`additionalPaymentCollectionUrl`),
`orderInvoiceSend` emails it, and the customer paying it (`POST .../pay_balance`) settles the
order with one card SALE, announced by webhooks like a mandate charge."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from connectors.sandbox.shopify import ShopifySandbox
from connectors.sandbox.shopify_scopes import DEFAULT_SCOPES
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
INVOICE_ERROR = "ORDER_INVOICE_SEND_UNSUCCESSFUL"

CREATE_GROUP = """
mutation Create($input: SellingPlanGroupInput!, $resources: SellingPlanGroupResourceInput) {
  sellingPlanGroupCreate(input: $input, resources: $resources) {
    sellingPlanGroup { sellingPlans(first: 1) { nodes { id } } }
    userErrors { code field message }
  }
}"""
ORDER = """
query($id: ID!) {
  order(id: $id) {
    id name displayFinancialStatus fullyPaid
    totalOutstandingSet { shopMoney { amount } }
    paymentCollectionDetails { additionalPaymentCollectionUrl vaultedPaymentMethods { id } }
    transactions(first: 5) { kind status gateway amountSet { shopMoney { amount } } }
  }
}"""
SEND = """
mutation Send($id: ID!, $email: EmailInput) {
  orderInvoiceSend(id: $id, email: $email) {
    order { id }
    userErrors { code field message }
  }
}"""
AUTHORIZE = """
mutation Authorize($id: ID!, $mandate: ID!) {
  orderCreateMandatePayment(id: $id, mandateId: $mandate, idempotencyKey: "auth",
                            autoCapture: false) {
    userErrors { code field message }
  }
}"""


@pytest.fixture
def sandbox() -> Iterator[ShopifySandbox]:
    yield from sandbox_fixture(Clock(START), DEPOSIT_APP_SCOPES)


@pytest.fixture
def receiver(sandbox: ShopifySandbox) -> Iterator[Receiver]:
    yield from wire_receiver(sandbox)


def deposit_plan(sandbox: ShopifySandbox) -> str:
    """A pre-order plan on DEMO-1 charging 20% at checkout; its SellingPlan gid."""
    plan = {
        "name": "Pre-order, 20% deposit",
        "category": "PRE_ORDER",
        "options": ["20% deposit"],
        "billingPolicy": {
            "fixed": {
                "checkoutCharge": {"type": "PERCENTAGE", "value": {"percentage": 20}},
                "remainingBalanceChargeTrigger": "EXACT_TIME",
                "remainingBalanceChargeExactTime": "2026-09-01T00:00:00Z",
            }
        },
        "deliveryPolicy": {"fixed": {"fulfillmentTrigger": "UNKNOWN"}},
        "inventoryPolicy": {"reserve": "ON_SALE"},
    }
    group = {
        "name": "Pre-order",
        "merchantCode": "stocksync-preorder",
        "options": ["Deposit"],
        "sellingPlansToCreate": [plan],
    }
    resources = {"productVariantIds": [variant_id(sandbox, "DEMO-1")]}
    made = data(sandbox, CREATE_GROUP, {"input": group, "resources": resources})
    payload = made["sellingPlanGroupCreate"]
    assert payload["userErrors"] == [], payload
    return str(payload["sellingPlanGroup"]["sellingPlans"]["nodes"][0]["id"])


def place(sandbox: ShopifySandbox, body: dict[str, Any]) -> dict[str, Any]:
    placed = requests.post(f"{sandbox.url}/_sandbox/checkout", json=body, timeout=5)
    assert placed.status_code == 201, placed.text
    order: dict[str, Any] = placed.json()
    return order


def deposit_order(sandbox: ShopifySandbox, email: str | None = "ann@example.com") -> int:
    """Two DEMO-1 at $10 through the deposit plan: $4 paid, $16 owed. The numeric order id."""
    body = {"sku": "DEMO-1", "quantity": 2, "selling_plan": deposit_plan(sandbox), "email": email}
    return int(place(sandbox, body)["id"])


def gid(order_id: int) -> str:
    return f"gid://shopify/Order/{order_id}"


def order(sandbox: ShopifySandbox, order_id: int) -> dict[str, Any]:
    node: dict[str, Any] = data(sandbox, ORDER, {"id": gid(order_id)})["order"]
    return node


def link(sandbox: ShopifySandbox, order_id: int) -> str | None:
    details = order(sandbox, order_id)["paymentCollectionDetails"]
    url: str | None = details["additionalPaymentCollectionUrl"]
    return url


def pay(sandbox: ShopifySandbox, order_id: int) -> requests.Response:
    return requests.post(f"{sandbox.url}/_sandbox/orders/{order_id}/pay_balance", timeout=5)


def send(sandbox: ShopifySandbox, order_gid: str, **email: Any) -> dict[str, Any]:
    variables = {"id": order_gid, "email": email or None}
    payload: dict[str, Any] = data(sandbox, SEND, variables)["orderInvoiceSend"]
    return payload


def mail(sandbox: ShopifySandbox) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = requests.get(f"{sandbox.url}/_sandbox/mail", timeout=5).json()
    return sent


# -- the payment link ---------------------------------------------------------------------------
def test_a_deposit_order_has_a_payment_link(sandbox: ShopifySandbox) -> None:
    order_id = deposit_order(sandbox)
    assert link(sandbox, order_id) == f"{sandbox.url}/_sandbox/orders/{order_id}/pay_balance"
    # a plain checkout is paid in full: nothing to collect, no link
    paid = place(sandbox, {"sku": "DEMO-2", "quantity": 1, "email": "bob@example.com"})
    assert order(sandbox, int(paid["id"]))["displayFinancialStatus"] == "PAID"
    assert link(sandbox, int(paid["id"])) is None


def test_an_authorization_for_the_balance_closes_the_link(sandbox: ShopifySandbox) -> None:
    order_id = deposit_order(sandbox)
    mandate = order(sandbox, order_id)["paymentCollectionDetails"]["vaultedPaymentMethods"][0]
    made = data(sandbox, AUTHORIZE, {"id": gid(order_id), "mandate": mandate["id"]})
    assert made["orderCreateMandatePayment"]["userErrors"] == []
    # still outstanding until captured, but the card already holds it: no second charge
    assert order(sandbox, order_id)["totalOutstandingSet"]["shopMoney"]["amount"] == "16.0"
    assert link(sandbox, order_id) is None
    assert pay(sandbox, order_id).status_code == 409


# -- paying through the link --------------------------------------------------------------------
def test_paying_the_link_settles_the_order(sandbox: ShopifySandbox, receiver: Receiver) -> None:
    order_id = deposit_order(sandbox)
    receiver.wait_for(1)
    paid = pay(sandbox, order_id)
    assert paid.status_code == 200, paid.text
    assert paid.json() == {"order_id": order_id, "amount": "16.00"}

    node = order(sandbox, order_id)
    assert node["displayFinancialStatus"] == "PAID" and node["fullyPaid"]
    assert node["totalOutstandingSet"]["shopMoney"]["amount"] == "0.0"
    assert node["paymentCollectionDetails"]["additionalPaymentCollectionUrl"] is None
    _deposit, balance = node["transactions"]
    assert balance == {
        "kind": "SALE",
        "status": "SUCCESS",
        "gateway": "shopify_payments",
        "amountSet": {"shopMoney": {"amount": "16.0"}},
    }

    deliveries = receiver.wait_for(3)
    topics = [d.headers["X-Shopify-Topic"] for d in deliveries]
    assert topics == ["orders/create", "orders/paid", "orders/updated"]
    for delivery in deliveries[1:]:
        assert verify(delivery.body, delivery.headers["X-Shopify-Hmac-Sha256"], [SECRET])
        body = json.loads(delivery.body)
        assert (body["id"], body["financial_status"]) == (order_id, "paid")

    again = pay(sandbox, order_id)
    assert again.status_code == 409 and again.json()["error"]
    assert len(order(sandbox, order_id)["transactions"]) == 2
    assert len(receiver.deliveries) == 3


def test_the_gateway_declines_do_not_apply_to_the_link(sandbox: ShopifySandbox) -> None:
    order_id = deposit_order(sandbox)
    switches = {"decline_next": 1, "decline_orders": [order_id]}
    assert requests.put(f"{sandbox.url}/_sandbox/payments", json=switches, timeout=5).ok
    assert pay(sandbox, order_id).status_code == 200
    assert order(sandbox, order_id)["displayFinancialStatus"] == "PAID"
    # the declines wait for a mandate charge
    left = requests.get(f"{sandbox.url}/_sandbox/payments", timeout=5).json()
    assert left["decline_next"] == 1


def test_a_cancelled_or_unknown_order_cannot_be_paid(sandbox: ShopifySandbox) -> None:
    order_id = deposit_order(sandbox)
    cancelled = requests.post(f"{sandbox.url}/_sandbox/orders/{order_id}/cancel", timeout=5)
    assert cancelled.status_code == 200
    assert link(sandbox, order_id) is None
    refused = pay(sandbox, order_id)
    assert refused.status_code == 409 and "cancelled" in refused.json()["error"]
    assert len(order(sandbox, order_id)["transactions"]) == 1
    assert pay(sandbox, 999999).status_code == 404


# -- orderInvoiceSend ---------------------------------------------------------------------------
def test_invoice_send_mails_the_link(sandbox: ShopifySandbox) -> None:
    order_id = deposit_order(sandbox)
    url = link(sandbox, order_id)
    sent = send(sandbox, gid(order_id), subject="Your balance", customMessage="Due on shipping")
    assert sent == {"order": {"id": gid(order_id)}, "userErrors": []}
    other = send(sandbox, gid(order_id), to="billing@example.com")
    assert other["userErrors"] == []
    name = order(sandbox, order_id)["name"]
    assert mail(sandbox) == [
        {
            "to": "ann@example.com",
            "subject": "Your balance",
            "customMessage": "Due on shipping",
            "invoiceUrl": url,
            "orderId": gid(order_id),
            "sentAt": "2026-07-01T12:00:00Z",
        },
        {
            "to": "billing@example.com",
            "subject": f"Invoice for order {name}",
            "customMessage": None,
            "invoiceUrl": url,
            "orderId": gid(order_id),
            "sentAt": "2026-07-01T12:00:00Z",
        },
    ]
    # the mailed link is the one the customer pays through
    assert url is not None
    assert requests.post(url, timeout=5).status_code == 200
    send(sandbox, gid(order_id))
    assert mail(sandbox)[-1]["invoiceUrl"] is None  # settled: nothing left to pay


def test_invoice_send_refusals(sandbox: ShopifySandbox) -> None:
    unknown = send(sandbox, gid(999999))
    assert unknown == {
        "order": None,
        "userErrors": [{"code": INVOICE_ERROR, "field": ["id"], "message": "Order not found"}],
    }
    nobody = deposit_order(sandbox, email=None)
    blank = send(sandbox, gid(nobody))
    assert blank["order"] == {"id": gid(nobody)}
    assert [(e["code"], e["field"]) for e in blank["userErrors"]] == [
        (INVOICE_ERROR, ["email", "to"])
    ]
    assert mail(sandbox) == []


def test_invoice_send_needs_write_orders(sandbox: ShopifySandbox) -> None:
    order_id = deposit_order(sandbox)
    sandbox.access_scopes = DEFAULT_SCOPES  # read_orders, not write_orders
    body = graphql(sandbox, SEND, {"id": gid(order_id)}).json()
    [error] = body["errors"]
    assert error["extensions"]["code"] == "ACCESS_DENIED"
    assert "`write_orders`" in error["message"]
    assert mail(sandbox) == []
    # reading the link is reading the order
    sandbox.access_scopes = ("read_orders",)
    assert link(sandbox, order_id) is not None
