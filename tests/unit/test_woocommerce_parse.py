"""WooCommerce order parsing, event keys and webhook verification: on the project's own order
(tests/fixtures/woocommerce) and, where ../shared is beside the checkout, on the documented
reference payloads."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from connectors.base import OrderStatus, PayloadError, WebhookRejected
from connectors.sandbox.woocommerce_shapes import LineItem, Order, order_json
from connectors.signatures import sign
from connectors.woocommerce import WooCommerceChannel
from connectors.woocommerce_parse import STATUS_MAP, event_key
from tests.woocommerce_support import (
    fixture,
    needs_reference,
    order_fixture_params,
    own_fixture,
)

FIXTURE_ORDERS = order_fixture_params()


def channel(*secrets: str) -> WooCommerceChannel:
    return WooCommerceChannel(
        "woo",
        url="https://shop.example.com",
        consumer_key="ck",
        consumer_secret="cs",
        webhook_secrets=secrets or ("sandbox-secret",),
    )


def body(data: Any) -> bytes:
    return json.dumps(data).encode()


@pytest.mark.parametrize(("name", "data"), FIXTURE_ORDERS)
def test_every_fixture_order_parses(name: str, data: dict[str, Any]) -> None:
    order = channel().parse_order("order.updated", body(data))
    assert order.external_id == str(data["id"])
    assert order.source_status == data["status"]
    assert order.status is STATUS_MAP[data["status"]]
    assert order.updated_at.tzinfo is not None
    with_sku = [li for li in data["line_items"] if li["sku"]]
    assert [line.sku for line in order.lines] == [li["sku"] for li in with_sku]
    assert [line.quantity for line in order.lines] == [li["quantity"] for li in with_sku]


def test_own_order_has_the_sandbox_fields() -> None:
    """The hand-written order keeps exactly the fields of the sandbox's order JSON."""
    moment = datetime(2024, 5, 14, 9, 30, tzinfo=UTC)
    line = LineItem(101, 13, 14, "DEMO-4", "Sandbox DEMO-VAR - DEMO-4", 1, 10.0)
    order = Order(17, "processing", moment, moment, "wc_order_x", "checkout", "a@example.com")
    order.line_items.append(line)
    made = order_json(order, "http://127.0.0.1:8089")
    own = own_fixture("order.json")
    assert set(own) == set(made)
    assert all(set(item) == set(made["line_items"][0]) for item in own["line_items"])


def test_own_order_in_detail() -> None:
    order = channel().parse_order("order.created", body(own_fixture("order.json")))
    assert order.external_id == "17"
    assert order.placed_at == datetime(2024, 5, 14, 9, 30, 0, tzinfo=UTC)  # the _gmt field
    assert order.updated_at == datetime(2024, 5, 14, 9, 30, 5, tzinfo=UTC)
    assert order.status is OrderStatus.OPEN
    assert order.customer_key == "guest@example.com"  # guest: customer_id 0
    # line 100 has no SKU, so it is no line of ours
    assert [(li.external_line_id, li.sku, li.quantity) for li in order.lines] == [
        ("101", "DEMO-4", 1)
    ]


@needs_reference
def test_retrieve_fixture_in_detail() -> None:
    order = channel().parse_order("order.created", body(fixture("order_retrieve.json")))
    assert order.placed_at == datetime(2017, 3, 22, 19, 28, 2, tzinfo=UTC)  # the _gmt field
    assert order.updated_at == datetime(2017, 3, 22, 19, 28, 8, tzinfo=UTC)
    assert order.status is OrderStatus.OPEN
    assert order.customer_key == "john.doe@example.com"  # guest: customer_id 0
    assert [(li.external_line_id, li.sku, li.quantity) for li in order.lines] == [
        ("316", "Bar3", 1)
    ]


@needs_reference
def test_registered_customer_is_keyed_by_id() -> None:
    order = channel().parse_order("poll/order", body(fixture("order_list.json")[1]))
    assert order.customer_key == "26"
    assert order.status is OrderStatus.FULFILLED


@pytest.mark.parametrize(
    ("status", "meaning"),
    [
        ("pending", OrderStatus.CANCELLED),
        ("failed", OrderStatus.CANCELLED),
        ("cancelled", OrderStatus.CANCELLED),
        ("refunded", OrderStatus.CANCELLED),
        ("trash", OrderStatus.CANCELLED),
        ("checkout-draft", OrderStatus.CANCELLED),
        ("processing", OrderStatus.OPEN),
        ("on-hold", OrderStatus.OPEN),
        ("completed", OrderStatus.FULFILLED),
    ],
)
def test_status_meaning(status: str, meaning: OrderStatus) -> None:
    data = {**own_fixture("order.json"), "status": status}
    assert channel().parse_order("order.updated", body(data)).status is meaning


def test_unknown_status_is_refused_unless_mapped() -> None:
    data = {**own_fixture("order.json"), "status": "shipped"}
    with pytest.raises(PayloadError, match="shipped"):
        channel().parse_order("order.updated", body(data))
    mapped = WooCommerceChannel(
        "woo",
        url="https://x.example",
        consumer_key="ck",
        consumer_secret="cs",
        webhook_secrets=["s"],
        status_map={"shipped": OrderStatus.FULFILLED},
    )
    assert mapped.parse_order("order.updated", body(data)).status is OrderStatus.FULFILLED


def test_refund_objects_reduce_line_quantities() -> None:
    data = own_fixture("order.json")
    data["line_items"][1]["quantity"] = 3
    data["refunds"] = [
        {"id": 1, "line_items": [{"id": 9, "quantity": -1, "refunded_item_id": 101}]},
        {
            "id": 2,
            "line_items": [
                {
                    "id": 10,
                    "quantity": -1,
                    "meta_data": [{"key": "_refunded_item_id", "value": "101"}],
                }
            ],
        },
    ]
    order = channel().parse_order("order.updated", body(data))
    assert order.lines[0].quantity == 1


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (body({**own_fixture("order.json"), "id": "17"}), "id must be int"),
        (body({**own_fixture("order.json"), "date_modified_gmt": "yesterday"}), "bad date"),
        (body({**own_fixture("order.json"), "date_created_gmt": None}), "GMT date"),
        (body({**own_fixture("order.json"), "line_items": {}}), "line_items"),
        (
            body({**own_fixture("order.json"), "line_items": [{"id": 1, "sku": "A"}]}),
            "quantity",
        ),
        (body({**own_fixture("order.json"), "refunds": [{"line_items": [{}]}]}), "refunds"),
    ],
)
def test_malformed_payloads_raise_payload_error(payload: bytes, match: str) -> None:
    with pytest.raises(PayloadError, match=match):
        channel().parse_order("order.updated", payload)


def test_event_key_same_for_one_version_different_for_a_new_change() -> None:
    data = own_fixture("order.json")
    key = event_key("woo", data)
    assert key == event_key("woo", json.loads(json.dumps(data)))
    assert key.startswith("order:17@2024-05-14T09:30:05#")
    # same second, different status: a new change that matters
    assert event_key("woo", {**data, "status": "cancelled"}) != key
    assert event_key("woo", {**data, "date_modified_gmt": "2024-05-14T09:30:06"}) != key


@needs_reference
def test_fixture_delivery_verifies_with_rotated_secrets() -> None:
    delivery = fixture("webhook_delivery_order_updated.COMPUTED.json")
    raw = delivery["raw_body"].encode()
    headers = {k.upper(): v for k, v in delivery["headers"].items()}  # any case
    event = channel("new-secret", delivery["secret"]).verify_webhook(headers, raw)
    assert event is not None
    assert event.topic == "order.updated"
    assert event.body == raw
    assert event.event_key == event_key("woo", json.loads(raw))


@needs_reference
def test_ping_is_acknowledged_without_an_event() -> None:
    ping = fixture("webhook_ping.COMPUTED.json")
    assert channel().verify_webhook({}, ping["raw_body"].encode()) is None


@pytest.mark.parametrize("signature", [None, "", "bm90IHRoZSBzaWduYXR1cmU="])
def test_unsigned_or_forged_deliveries_are_rejected(signature: str | None) -> None:
    raw = body(own_fixture("order.json"))
    headers = {"X-WC-Webhook-Topic": "order.updated"}
    if signature is not None:
        headers["X-WC-Webhook-Signature"] = signature
    with pytest.raises(WebhookRejected) as caught:
        channel().verify_webhook(headers, raw)
    assert caught.value.status == 401


def test_signed_but_not_json_is_a_400() -> None:
    raw = b"<html>oops</html>"
    headers = {
        "x-wc-webhook-topic": "order.updated",
        "x-wc-webhook-signature": sign("sandbox-secret", raw),
    }
    with pytest.raises(WebhookRejected) as caught:
        channel().verify_webhook(headers, raw)
    assert caught.value.status == 400


def test_refunds_listed_without_lines_need_a_fetch_and_lines_without_sku_are_kept_apart() -> None:
    """The order body lists refunds as id/reason/total only: the refunded units are unknown
    until GET orders/{id}/refunds is read (`complete_order`), so the event waits for it."""
    data = own_fixture("order.json")
    assert not channel().needs_fetch("order.updated", body(data))
    data["refunds"] = [{"id": 562, "reason": "damaged", "total": "-27.00"}]
    assert channel().needs_fetch("order.updated", body(data))
    data["refunds"] = [{"id": 562, "line_items": []}]  # as complete_order leaves it
    assert not channel().needs_fetch("order.updated", body(data))
    data["line_items"].append(
        {"id": 900, "sku": "", "name": "Bundle", "quantity": 2, "product_id": 1, "variation_id": 0}
    )
    order = channel().parse_order("order.updated", body(data))
    assert [(o.external_line_id, o.title, o.quantity) for o in order.other_lines][-1] == (
        "900",
        "Bundle",
        2,
    )
    assert "900" not in [line.external_line_id for line in order.lines]
