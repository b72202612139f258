"""WooCommerce order parsing, event keys and webhook verification, on the documented payloads."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from connectors.base import OrderStatus, PayloadError, WebhookRejected
from connectors.signatures import sign
from connectors.woocommerce import WooCommerceChannel
from connectors.woocommerce_parse import STATUS_MAP, event_key
from tests.woocommerce_support import fixture, order_fixture_bodies

FIXTURE_ORDERS = list(order_fixture_bodies())


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


@pytest.mark.parametrize(("name", "data"), FIXTURE_ORDERS, ids=[n for n, _ in FIXTURE_ORDERS])
def test_every_fixture_order_parses(name: str, data: dict[str, Any]) -> None:
    order = channel().parse_order("order.updated", body(data))
    assert order.external_id == str(data["id"])
    assert order.source_status == data["status"]
    assert order.status is STATUS_MAP[data["status"]]
    assert order.updated_at.tzinfo is not None
    with_sku = [li for li in data["line_items"] if li["sku"]]
    assert [line.sku for line in order.lines] == [li["sku"] for li in with_sku]
    assert [line.quantity for line in order.lines] == [li["quantity"] for li in with_sku]


def test_retrieve_fixture_in_detail() -> None:
    order = channel().parse_order("order.created", body(fixture("order_retrieve.json")))
    assert order.placed_at == datetime(2017, 3, 22, 19, 28, 2, tzinfo=UTC)  # the _gmt field
    assert order.updated_at == datetime(2017, 3, 22, 19, 28, 8, tzinfo=UTC)
    assert order.status is OrderStatus.OPEN
    assert order.customer_key == "john.doe@example.com"  # guest: customer_id 0
    assert [(li.external_line_id, li.sku, li.quantity) for li in order.lines] == [
        ("316", "Bar3", 1)
    ]


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
    data = {**fixture("order_retrieve.json"), "status": status}
    assert channel().parse_order("order.updated", body(data)).status is meaning


def test_unknown_status_is_refused_unless_mapped() -> None:
    data = {**fixture("order_retrieve.json"), "status": "shipped"}
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
    data = fixture("order_retrieve.json")
    data["line_items"][1]["quantity"] = 3
    data["refunds"] = [
        {"id": 1, "line_items": [{"id": 9, "quantity": -1, "refunded_item_id": 316}]},
        {
            "id": 2,
            "line_items": [
                {
                    "id": 10,
                    "quantity": -1,
                    "meta_data": [{"key": "_refunded_item_id", "value": "316"}],
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
        (body({**fixture("order_retrieve.json"), "id": "727"}), "id must be int"),
        (body({**fixture("order_retrieve.json"), "date_modified_gmt": "yesterday"}), "bad date"),
        (body({**fixture("order_retrieve.json"), "date_created_gmt": None}), "GMT date"),
        (body({**fixture("order_retrieve.json"), "line_items": {}}), "line_items"),
        (
            body({**fixture("order_retrieve.json"), "line_items": [{"id": 1, "sku": "A"}]}),
            "quantity",
        ),
        (body({**fixture("order_retrieve.json"), "refunds": [{"line_items": [{}]}]}), "refunds"),
    ],
)
def test_malformed_payloads_raise_payload_error(payload: bytes, match: str) -> None:
    with pytest.raises(PayloadError, match=match):
        channel().parse_order("order.updated", payload)


def test_event_key_same_for_one_version_different_for_a_new_change() -> None:
    data = fixture("order_retrieve.json")
    key = event_key("woo", data)
    assert key == event_key("woo", json.loads(json.dumps(data)))
    assert key.startswith("order:727@2017-03-22T19:28:08#")
    # same second, different status: a new change that matters
    assert event_key("woo", {**data, "status": "cancelled"}) != key
    assert event_key("woo", {**data, "date_modified_gmt": "2017-03-22T19:28:09"}) != key


def test_fixture_delivery_verifies_with_rotated_secrets() -> None:
    delivery = fixture("webhook_delivery_order_updated.COMPUTED.json")
    raw = delivery["raw_body"].encode()
    headers = {k.upper(): v for k, v in delivery["headers"].items()}  # any case
    event = channel("new-secret", delivery["secret"]).verify_webhook(headers, raw)
    assert event is not None
    assert event.topic == "order.updated"
    assert event.body == raw
    assert event.event_key == event_key("woo", json.loads(raw))


def test_ping_is_acknowledged_without_an_event() -> None:
    ping = fixture("webhook_ping.COMPUTED.json")
    assert channel().verify_webhook({}, ping["raw_body"].encode()) is None


@pytest.mark.parametrize("signature", [None, "", "bm90IHRoZSBzaWduYXR1cmU="])
def test_unsigned_or_forged_deliveries_are_rejected(signature: str | None) -> None:
    raw = body(fixture("order_retrieve.json"))
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
