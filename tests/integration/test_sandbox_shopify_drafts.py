"""Draft orders in the Shopify sandbox, over real HTTP against the real schema: a reservation
moves units from available to reserved until reserveInventoryUntil, the invoice goes to the
shop's outbox, deleting gives the units back, paying (or draftOrderComplete) makes an order that
carries the draft's attributes and is announced like a checkout's."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from connectors.sandbox.shopify import ShopifySandbox
from connectors.signatures import verify
from tests.shopify_support import (
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

DRAFT_FIELDS = """
  id legacyResourceId name email status invoiceUrl invoiceSentAt reserveInventoryUntil
  customAttributes { key value } tags note2 createdAt updatedAt completedAt
  order { id name }
  lineItems(first: 10) { nodes { id sku quantity variant { id } title } }
  totalQuantityOfLineItems
"""
CREATE = f"""
mutation Create($input: DraftOrderInput!) {{
  draftOrderCreate(input: $input) {{
    draftOrder {{ {DRAFT_FIELDS} }}
    userErrors {{ field message }}
  }}
}}"""
SEND = """
mutation Send($id: ID!, $email: EmailInput) {
  draftOrderInvoiceSend(id: $id, email: $email) {
    draftOrder { id status invoiceSentAt }
    userErrors { field message }
  }
}"""
DELETE = """
mutation Delete($input: DraftOrderDeleteInput!) {
  draftOrderDelete(input: $input) { deletedId userErrors { field message } }
}"""
COMPLETE = """
mutation Complete($id: ID!, $pending: Boolean, $gateway: ID) {
  draftOrderComplete(id: $id, paymentPending: $pending, paymentGatewayId: $gateway) {
    draftOrder { id status completedAt order { id displayFinancialStatus sourceName } }
    userErrors { field message }
  }
}"""
DRAFT = f"query($id: ID!) {{ draftOrder(id: $id) {{ {DRAFT_FIELDS} }} }}"
LEVEL = """
query($item: ID!, $location: ID!) {
  inventoryItem(id: $item) {
    inventoryLevel(locationId: $location) {
      updatedAt
      quantities(names: ["available", "committed", "reserved", "on_hand"]) { name quantity }
    }
  }
}"""


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


@pytest.fixture
def sandbox(clock: Clock) -> Iterator[ShopifySandbox]:
    yield from sandbox_fixture(clock)


@pytest.fixture
def receiver(sandbox: ShopifySandbox) -> Iterator[Receiver]:
    """Where the sandbox's webhooks go (only tests that read them pay for its shutdown)."""
    yield from wire_receiver(sandbox)


def create(sandbox: ShopifySandbox, **fields: Any) -> dict[str, Any]:
    payload: dict[str, Any] = data(sandbox, CREATE, {"input": fields})["draftOrderCreate"]
    return payload


def reserve(
    sandbox: ShopifySandbox, sku: str, quantity: int, until: datetime, **fields: Any
) -> dict[str, Any]:
    made = create(
        sandbox,
        lineItems=[{"variantId": variant_id(sandbox, sku), "quantity": quantity}],
        reserveInventoryUntil=until.isoformat(),
        **fields,
    )
    assert made["userErrors"] == []
    draft: dict[str, Any] = made["draftOrder"]
    return draft


def quantities(sandbox: ShopifySandbox, sku: str) -> dict[str, Any]:
    state = sandbox.state_snapshot()
    level = data(
        sandbox,
        LEVEL,
        {"item": state["inventory"][sku]["inventory_item_id"], "location": state["location"]["id"]},
    )["inventoryItem"]["inventoryLevel"]
    counts = {q["name"]: q["quantity"] for q in level["quantities"]}
    return counts | {"updatedAt": level["updatedAt"]}


def test_a_reservation_moves_units_from_available_to_reserved(sandbox: ShopifySandbox) -> None:
    until = START + timedelta(hours=2)
    draft = reserve(
        sandbox,
        "DEMO-1",
        3,
        until,
        email="ann@example.com",
        customAttributes=[{"key": "campaign", "value": "spring"}, {"key": "seat", "value": "7"}],
        tags=["stocksync", "Stocksync-A1", " stocksync "],
        note="pay by Friday",
    )
    assert draft["name"] == "#D1"
    assert draft["status"] == "OPEN"
    assert draft["reserveInventoryUntil"] == "2026-07-01T14:00:00Z"
    assert draft["createdAt"] == draft["updatedAt"] == "2026-07-01T12:00:00Z"
    assert draft["tags"] == ["stocksync", "Stocksync-A1"]  # trimmed, once, alphabetical
    assert draft["customAttributes"] == [
        {"key": "campaign", "value": "spring"},
        {"key": "seat", "value": "7"},
    ]
    assert draft["note2"] == "pay by Friday"
    assert draft["order"] is None and draft["completedAt"] is None
    assert draft["invoiceUrl"].startswith("https://sandbox.myshopify.com/1/invoices/")
    assert len(draft["invoiceUrl"].rsplit("/", 1)[1]) == 32
    [line] = draft["lineItems"]["nodes"]
    assert (line["sku"], line["quantity"], line["title"]) == ("DEMO-1", 3, "Product DEMO-1")
    assert line["variant"]["id"] == variant_id(sandbox, "DEMO-1")
    assert draft["totalQuantityOfLineItems"] == 3

    assert sandbox.available("DEMO-1") == 17
    counts = quantities(sandbox, "DEMO-1")
    assert (counts["available"], counts["reserved"], counts["committed"]) == (17, 3, 0)
    assert counts["on_hand"] == 20  # reserved units are still on hand
    assert data(sandbox, DRAFT, {"id": draft["id"]})["draftOrder"] == draft


def test_a_draft_without_reservation_holds_nothing(sandbox: ShopifySandbox) -> None:
    made = create(sandbox, lineItems=[{"variantId": variant_id(sandbox, "DEMO-2"), "quantity": 4}])
    assert made["userErrors"] == [] and made["draftOrder"]["reserveInventoryUntil"] is None
    assert quantities(sandbox, "DEMO-2")["reserved"] == 0
    assert sandbox.available("DEMO-2") == 20


def test_invoice_send_records_the_email(sandbox: ShopifySandbox, clock: Clock) -> None:
    draft = reserve(sandbox, "DEMO-1", 1, START + timedelta(days=1), email="ann@example.com")
    clock.now = START + timedelta(minutes=5)
    email = {"subject": "Your seat", "customMessage": "Pay within a day"}
    sent = data(sandbox, SEND, {"id": draft["id"], "email": email})["draftOrderInvoiceSend"]
    assert sent["userErrors"] == []
    assert sent["draftOrder"]["status"] == "INVOICE_SENT"
    assert sent["draftOrder"]["invoiceSentAt"] == "2026-07-01T12:05:00Z"
    mail = requests.get(f"{sandbox.url}/_sandbox/mail", timeout=5).json()
    assert mail == [
        {
            "to": "ann@example.com",  # the draft's email when EmailInput.to is left out
            "subject": "Your seat",
            "customMessage": "Pay within a day",
            "invoiceUrl": draft["invoiceUrl"],
            "draftOrderId": draft["id"],
            "sentAt": "2026-07-01T12:05:00Z",
        }
    ]
    # a reminder to another address: a second email, the draft stays INVOICE_SENT
    again = data(sandbox, SEND, {"id": draft["id"], "email": {"to": "bo@example.com"}})
    assert again["draftOrderInvoiceSend"]["userErrors"] == []
    assert [m["to"] for m in sandbox.sent_mail()] == ["ann@example.com", "bo@example.com"]
    assert sandbox.sent_mail()[1]["subject"] == "Complete your purchase"


def test_invoice_send_refusals(sandbox: ShopifySandbox) -> None:
    no_email = reserve(sandbox, "DEMO-1", 1, START + timedelta(days=1))
    refused = data(sandbox, SEND, {"id": no_email["id"]})["draftOrderInvoiceSend"]
    assert refused["userErrors"] == [{"field": None, "message": "To can't be blank"}]
    assert refused["draftOrder"]["status"] == "OPEN"  # Shopify still answers with the draft
    unknown = data(sandbox, SEND, {"id": "gid://shopify/DraftOrder/999"})["draftOrderInvoiceSend"]
    assert unknown == {
        "draftOrder": None,
        "userErrors": [{"field": None, "message": "Draft order not found"}],
    }
    sandbox.pay_draft(no_email["legacyResourceId"])
    paid = data(sandbox, SEND, {"id": no_email["id"], "email": {"to": "a@example.com"}})
    assert paid["draftOrderInvoiceSend"]["userErrors"] == [
        {
            "field": None,
            "message": "Draft order Invoice can't be sent. This draft order is already paid.",
        }
    ]
    assert sandbox.sent_mail() == []


def test_deleting_a_draft_returns_its_units(sandbox: ShopifySandbox) -> None:
    draft = reserve(sandbox, "DEMO-3", 6, START + timedelta(hours=1))
    assert sandbox.available("DEMO-3") == 14
    deleted = data(sandbox, DELETE, {"input": {"id": draft["id"]}})["draftOrderDelete"]
    assert deleted == {"deletedId": draft["id"], "userErrors": []}
    counts = quantities(sandbox, "DEMO-3")
    assert (counts["available"], counts["reserved"], counts["on_hand"]) == (20, 0, 20)
    assert data(sandbox, DRAFT, {"id": draft["id"]})["draftOrder"] is None
    again = data(sandbox, DELETE, {"input": {"id": draft["id"]}})["draftOrderDelete"]
    assert again == {
        "deletedId": None,
        "userErrors": [{"field": ["id"], "message": "Draft order does not exist"}],
    }


def test_paying_makes_an_order_with_the_draft_attributes(
    sandbox: ShopifySandbox, receiver: Receiver, clock: Clock
) -> None:
    draft = reserve(
        sandbox,
        "DEMO-1",
        2,
        START + timedelta(hours=1),
        email="ann@example.com",
        customAttributes=[{"key": "stocksync_request", "value": "c1-7"}],
        tags=["stocksync"],
    )
    clock.now = START + timedelta(minutes=30)
    paid = requests.post(
        f"{sandbox.url}/_sandbox/draft_orders/{draft['legacyResourceId']}/pay", timeout=5
    )
    assert paid.status_code == 200, paid.text
    order = paid.json()
    assert order["order_gid"] == f"gid://shopify/Order/{order['order_id']}"
    assert order["name"] == "#1001"
    # reserved units became committed: available never moved again
    counts = quantities(sandbox, "DEMO-1")
    assert (counts["available"], counts["reserved"], counts["committed"]) == (18, 0, 2)

    node = data(
        sandbox,
        """query($id: ID!) { order(id: $id) {
             name email sourceName displayFinancialStatus tags
             customAttributes { key value }
             lineItems(first: 5) { nodes { sku currentQuantity } } } }""",
        {"id": order["order_gid"]},
    )["order"]
    assert node == {
        "name": "#1001",
        "email": "ann@example.com",
        "sourceName": "shopify_draft_order",
        "displayFinancialStatus": "PAID",
        "tags": ["stocksync"],
        "customAttributes": [{"key": "stocksync_request", "value": "c1-7"}],
        "lineItems": {"nodes": [{"sku": "DEMO-1", "currentQuantity": 2}]},
    }
    completed = data(sandbox, DRAFT, {"id": draft["id"]})["draftOrder"]
    assert completed["status"] == "COMPLETED"
    assert completed["completedAt"] == "2026-07-01T12:30:00Z"
    assert completed["order"] == {"id": order["order_gid"], "name": "#1001"}

    [delivery] = receiver.wait_for(1)
    assert delivery.headers["X-Shopify-Topic"] == "orders/create"
    assert verify(delivery.body, delivery.headers["X-Shopify-Hmac-Sha256"], [SECRET])
    body = json.loads(delivery.body)
    assert body["id"] == order["order_id"]
    assert body["note_attributes"] == [{"name": "stocksync_request", "value": "c1-7"}]
    assert body["source_name"] == "shopify_draft_order"
    assert body["financial_status"] == "paid"

    again = requests.post(
        f"{sandbox.url}/_sandbox/draft_orders/{draft['legacyResourceId']}/pay", timeout=5
    )
    assert again.status_code == 409 and again.json()["error"] == "This order has been paid"
    missing = requests.post(f"{sandbox.url}/_sandbox/draft_orders/5/pay", timeout=5)
    assert missing.status_code == 404


def test_other_orders_have_no_custom_attributes(sandbox: ShopifySandbox) -> None:
    placed = requests.post(
        f"{sandbox.url}/_sandbox/checkout", json={"sku": "DEMO-1", "quantity": 1}, timeout=5
    ).json()
    assert placed["note_attributes"] == [] and placed["source_name"] == "web"
    node = data(
        sandbox,
        "query($id: ID!) { order(id: $id) { customAttributes { key value } } }",
        {"id": placed["admin_graphql_api_id"]},
    )["order"]
    assert node == {"customAttributes": []}


def test_a_completed_draft_cannot_be_deleted(sandbox: ShopifySandbox) -> None:
    draft = reserve(sandbox, "DEMO-1", 1, START + timedelta(hours=1))
    sandbox.pay_draft(draft["id"])
    refused = data(sandbox, DELETE, {"input": {"id": draft["id"]}})["draftOrderDelete"]
    assert refused["deletedId"] is None
    assert refused["userErrors"] == [
        {"field": ["id"], "message": "Completed draft orders can't be deleted."}
    ]
    assert data(sandbox, DRAFT, {"id": draft["id"]})["draftOrder"]["status"] == "COMPLETED"
    assert quantities(sandbox, "DEMO-1")["committed"] == 1


def test_a_lapsed_reservation_returns_its_units(sandbox: ShopifySandbox, clock: Clock) -> None:
    draft = reserve(sandbox, "DEMO-2", 5, START + timedelta(minutes=10))
    assert sandbox.available("DEMO-2") == 15
    clock.now = START + timedelta(minutes=11)
    counts = quantities(sandbox, "DEMO-2")
    assert (counts["available"], counts["reserved"]) == (20, 0)
    assert counts["updatedAt"] == "2026-07-01T12:10:00Z"  # when the reservation ended
    # the units are for sale again; once they are gone, paying the draft is refused
    requests.post(
        f"{sandbox.url}/_sandbox/checkout", json={"sku": "DEMO-2", "quantity": 17}, timeout=5
    ).raise_for_status()
    refused = requests.post(
        f"{sandbox.url}/_sandbox/draft_orders/{draft['legacyResourceId']}/pay", timeout=5
    )
    assert refused.status_code == 409
    assert refused.json() == {
        "error": "not enough stock",
        "sku": "DEMO-2",
        "wanted": 5,
        "available": 3,
    }
    completing = data(sandbox, COMPLETE, {"id": draft["id"]})["draftOrderComplete"]
    assert completing["userErrors"] == [
        {"field": None, "message": "Not enough inventory: DEMO-2: wanted 5, only 3 available"}
    ]
    assert completing["draftOrder"]["status"] == "OPEN"
    # restocked: the lapsed draft now takes its units from available, like a checkout
    sandbox.set_inventory("DEMO-2", 10)
    sandbox.pay_draft(int(draft["legacyResourceId"]))
    counts = quantities(sandbox, "DEMO-2")
    assert (counts["available"], counts["reserved"], counts["committed"]) == (5, 0, 22)


def test_a_short_reservation_lapses_on_the_real_clock() -> None:
    with ShopifySandbox(restore_rate=2000) as sandbox:
        # DateTime has whole seconds: the next full second is at most one second away
        until = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
        reserve(sandbox, "DEMO-4", 2, until)
        assert sandbox.available("DEMO-4") == 18
        time.sleep(max((until - datetime.now(UTC)).total_seconds(), 0) + 0.05)
        assert sandbox.available("DEMO-4") == 20


def test_draft_order_complete(sandbox: ShopifySandbox, receiver: Receiver) -> None:
    draft = reserve(sandbox, "DEMO-5", 2, START + timedelta(hours=1), email="c@example.com")
    done = data(sandbox, COMPLETE, {"id": draft["id"], "pending": True})["draftOrderComplete"]
    assert done["userErrors"] == []
    assert done["draftOrder"]["status"] == "COMPLETED"
    assert done["draftOrder"]["order"]["displayFinancialStatus"] == "PENDING"
    assert done["draftOrder"]["order"]["sourceName"] == "shopify_draft_order"
    [delivery] = receiver.wait_for(1)
    assert delivery.headers["X-Shopify-Topic"] == "orders/create"
    assert json.loads(delivery.body)["financial_status"] == "pending"
    again = data(sandbox, COMPLETE, {"id": draft["id"]})["draftOrderComplete"]
    assert again["userErrors"] == [{"field": None, "message": "This order has been paid"}]
    assert again["draftOrder"]["order"] == done["draftOrder"]["order"]
    other = reserve(sandbox, "DEMO-5", 1, START + timedelta(hours=1))
    gateway = {"id": other["id"], "gateway": "gid://shopify/PaymentGateway/1"}
    refused = data(sandbox, COMPLETE, gateway)["draftOrderComplete"]
    assert refused["userErrors"] == [{"field": None, "message": "Invalid payment gateway"}]
    unknown = data(sandbox, COMPLETE, {"id": "gid://shopify/DraftOrder/1"})["draftOrderComplete"]
    assert unknown == {
        "draftOrder": None,
        "userErrors": [{"field": ["id"], "message": "Draft order does not exist"}],
    }


def test_custom_line_items(sandbox: ShopifySandbox) -> None:
    made = create(
        sandbox,
        lineItems=[
            {"title": "Engraving", "sku": "ENGRAVE", "quantity": 2, "originalUnitPrice": "4.50"},
            {"variantId": variant_id(sandbox, "DEMO-1"), "quantity": 1, "title": "ignored"},
        ],
        reserveInventoryUntil=(START + timedelta(hours=1)).isoformat(),
    )
    assert made["userErrors"] == []
    lines = made["draftOrder"]["lineItems"]["nodes"]
    assert [(li["title"], li["sku"], li["variant"]) for li in lines] == [
        ("Engraving", "ENGRAVE", None),
        ("Product DEMO-1", "DEMO-1", {"id": variant_id(sandbox, "DEMO-1")}),
    ]
    assert quantities(sandbox, "DEMO-1")["reserved"] == 1  # a custom item reserves nothing
    paid = sandbox.pay_draft(made["draftOrder"]["id"])
    node = data(
        sandbox,
        "query($id: ID!) { order(id: $id) { lineItems(first: 5) { nodes { sku name } } } }",
        {"id": paid["order_gid"]},
    )["order"]
    assert node["lineItems"]["nodes"] == [
        {"sku": "ENGRAVE", "name": "Engraving"},
        {"sku": "DEMO-1", "name": "Product DEMO-1"},
    ]


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        ({"lineItems": []}, [{"field": None, "message": "Add at least 1 product"}]),
        ({}, [{"field": None, "message": "Add at least 1 product"}]),
        (
            {"lineItems": [{"variantId": "gid://shopify/ProductVariant/999999", "quantity": 1}]},
            [{"field": None, "message": "Product with ID 999999 is no longer available."}],
        ),
        (
            {"lineItems": [{"variantId": "DEMO-1", "quantity": 0}]},
            [
                {
                    "field": ["lineItems", "0", "quantity"],
                    "message": "Quantity must be greater than or equal to 1",
                }
            ],
        ),
        (
            {
                "lineItems": [{"variantId": "DEMO-1", "quantity": 1}],
                "reserveInventoryUntil": "2026-07-01T11:59:59Z",
            },
            [{"field": None, "message": "Reserve until can't be in the past"}],
        ),
        (
            {"lineItems": [{"variantId": "DEMO-1", "quantity": 1}], "email": "not-an-email"},
            [{"field": ["email"], "message": "Email is invalid"}],
        ),
        (
            {"lineItems": [{"quantity": 1, "originalUnitPrice": "1.00"}]},
            [{"field": None, "message": "Merchandise title is empty."}],
        ),
        (
            {"lineItems": [{"variantId": "DEMO-1", "quantity": 1}], "tags": ["x" * 41]},
            [
                {
                    "field": ["tags", "0"],
                    "message": "Title Tag exceeds the maximum length of 40 characters",
                }
            ],
        ),
    ],
)
def test_invalid_input_gives_user_errors(
    sandbox: ShopifySandbox, fields: dict[str, Any], errors: list[dict[str, Any]]
) -> None:
    for item in fields.get("lineItems", []):
        if item.get("variantId") == "DEMO-1":
            item["variantId"] = variant_id(sandbox, "DEMO-1")
    assert create(sandbox, **fields) == {"draftOrder": None, "userErrors": errors}
    assert sandbox.state_snapshot()["draft_orders"] == []
    assert sandbox.available("DEMO-1") == 20


def test_search_and_paging(sandbox: ShopifySandbox) -> None:
    later = START + timedelta(days=1)
    first = reserve(sandbox, "DEMO-1", 1, later, tags=["stocksync", "stocksync-k1"])
    second = reserve(sandbox, "DEMO-1", 1, later, tags=["stocksync", "stocksync-k2"])
    third = reserve(sandbox, "DEMO-1", 1, later, email="t@example.com")
    data(sandbox, SEND, {"id": third["id"]})
    query = """query($q: String, $after: String) {
      draftOrders(first: 2, query: $q, after: $after) {
        nodes { id }
        edges { cursor node { name } }
        pageInfo { hasNextPage endCursor }
      }
    }"""

    def ids(q: str | None, after: str | None = None) -> tuple[list[str], dict[str, Any]]:
        page = data(sandbox, query, {"q": q, "after": after})["draftOrders"]
        return [n["id"] for n in page["nodes"]], page["pageInfo"]

    assert ids("tag:'stocksync-k2'")[0] == [second["id"]]
    assert ids("tag:STOCKSYNC")[0] == [first["id"], second["id"]]
    assert ids("status:invoice_sent")[0] == [third["id"]]
    assert ids("status:open")[0] == [first["id"], second["id"]]
    everything, info = ids(None)
    assert everything == [first["id"], second["id"]] and info["hasNextPage"]
    rest, info = ids(None, info["endCursor"])
    assert rest == [third["id"]] and not info["hasNextPage"]


def test_fields_the_real_schema_lacks_are_rejected(sandbox: ShopifySandbox) -> None:
    for document, wrong in (
        ('query { draftOrder(id: "gid://shopify/DraftOrder/1") { id reservedUntil } }', None),
        # UserError has no `code` on draft order payloads
        (
            'mutation { draftOrderDelete(input: {id: "gid://shopify/DraftOrder/1"}) '
            "{ userErrors { code } } }",
            None,
        ),
        (
            'mutation { draftOrderCreate(input: {lineItems: [], reserveUntil: "2030-01-01"}) '
            "{ userErrors { message } } }",
            "reserveUntil",
        ),
    ):
        body = graphql(sandbox, document).json()
        assert "data" not in body, body
        [error] = body["errors"]
        if wrong is None:
            assert error["extensions"]["code"] == "undefinedField", body
        else:
            assert wrong in error["message"], body
    assert sandbox.state_snapshot()["draft_orders"] == []


def test_state_lists_drafts(sandbox: ShopifySandbox) -> None:
    draft = reserve(sandbox, "DEMO-1", 2, START + timedelta(hours=1), email="s@example.com")
    state = requests.get(f"{sandbox.url}/_sandbox/state", timeout=5).json()
    [listed] = state["draft_orders"]
    assert listed["id"] == draft["id"] and listed["status"] == "OPEN" and listed["holds_stock"]
    assert listed["line_items"][0]["sku"] == "DEMO-1"
    assert state["inventory"]["DEMO-1"]["reserved"] == 2
    assert state["inventory"]["DEMO-1"]["on_hand"] == 20
