"""Shopify order parsing (REST webhook shape and GraphQL poll shape) and webhook verification."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from connectors.base import POLL_TOPIC, OrderStatus, PayloadError, WebhookRejected
from connectors.shopify import ShopifyChannel
from connectors.signatures import sign


def channel(*secrets: str) -> ShopifyChannel:
    return ShopifyChannel(
        "shop",
        shop="sandbox.myshopify.com",
        token="shpat_x",
        webhook_secrets=list(secrets) or ["new-secret"],
        api_url="http://127.0.0.1:9",
    )


def rest_order(**overrides: Any) -> dict[str, Any]:
    order: dict[str, Any] = {
        "id": 450789469,
        "admin_graphql_api_id": "gid://shopify/Order/450789469",
        "email": "bob@example.com",
        "created_at": "2026-07-01T08:00:00-04:00",
        "updated_at": "2026-07-01T09:30:00-04:00",
        "cancelled_at": None,
        "fulfillment_status": None,
        "customer": {"id": 207119551, "email": "bob@example.com"},
        "line_items": [
            {"id": 466157049, "sku": "DEMO-1", "quantity": 3, "current_quantity": 2},
            {"id": 518995019, "sku": "DEMO-2", "quantity": 1, "current_quantity": 1},
        ],
        "refunds": [],
    }
    order.update(overrides)
    return order


def poll_node(**overrides: Any) -> dict[str, Any]:
    node: dict[str, Any] = {
        "id": "gid://shopify/Order/450789469",
        "legacyResourceId": "450789469",
        "email": "bob@example.com",
        "createdAt": "2026-07-01T12:00:00Z",
        "updatedAt": "2026-07-01T13:30:00Z",
        "cancelledAt": None,
        "displayFulfillmentStatus": "UNFULFILLED",
        "customer": {"id": "gid://shopify/Customer/207119551", "email": "bob@example.com"},
        "lineItems": {
            "nodes": [
                {
                    "id": "gid://shopify/LineItem/466157049",
                    "sku": "DEMO-1",
                    "quantity": 3,
                    "currentQuantity": 2,
                },
                {
                    "id": "gid://shopify/LineItem/518995019",
                    "sku": "DEMO-2",
                    "quantity": 1,
                    "currentQuantity": 1,
                },
            ]
        },
    }
    node.update(overrides)
    return node


def encode(data: Any) -> bytes:
    return json.dumps(data).encode()


def test_rest_and_poll_shapes_give_the_same_order() -> None:
    c = channel()
    from_webhook = c.parse_order("orders/updated", encode(rest_order()))
    from_poll = c.parse_order(POLL_TOPIC, encode(poll_node()))
    assert from_webhook == from_poll
    assert from_webhook.external_id == "450789469"
    assert from_webhook.status is OrderStatus.OPEN
    assert from_webhook.customer_key == "207119551"
    assert [(li.external_line_id, li.sku, li.quantity) for li in from_webhook.lines] == [
        ("466157049", "DEMO-1", 2),  # current quantity, after an edit removed one
        ("518995019", "DEMO-2", 1),
    ]
    assert from_webhook.placed_at == datetime(2026, 7, 1, 12, 0, tzinfo=UTC)


def test_cancelled_and_fulfilled() -> None:
    c = channel()
    cancelled = rest_order(cancelled_at="2026-07-02T10:00:00-04:00")
    assert c.parse_order("orders/cancelled", encode(cancelled)).status is OrderStatus.CANCELLED
    assert (
        c.parse_order("orders/updated", encode(rest_order(fulfillment_status="fulfilled"))).status
        is OrderStatus.FULFILLED
    )
    assert (
        c.parse_order("orders/updated", encode(rest_order(fulfillment_status="partial"))).status
        is OrderStatus.OPEN
    )
    assert (
        c.parse_order(POLL_TOPIC, encode(poll_node(cancelledAt="2026-07-02T14:00:00Z"))).status
        is OrderStatus.CANCELLED
    )
    assert (
        c.parse_order(POLL_TOPIC, encode(poll_node(displayFulfillmentStatus="FULFILLED"))).status
        is OrderStatus.FULFILLED
    )


def test_refunds_reduce_quantity_when_current_quantity_is_absent() -> None:
    order = rest_order(
        line_items=[{"id": 1, "sku": "DEMO-1", "quantity": 5}],
        refunds=[{"id": 9, "refund_line_items": [{"line_item_id": 1, "quantity": 2}]}],
    )
    parsed = channel().parse_order("orders/updated", encode(order))
    assert parsed.lines[0].quantity == 3


def test_guest_checkout_uses_email_as_customer_key() -> None:
    parsed = channel().parse_order("orders/create", encode(rest_order(customer=None)))
    assert parsed.customer_key == "bob@example.com"
    parsed = channel().parse_order(POLL_TOPIC, encode(poll_node(customer=None)))
    assert parsed.customer_key == "bob@example.com"


@pytest.mark.parametrize(
    ("topic", "body", "needle"),
    [
        ("orders/create", b"not json", "not JSON"),
        ("orders/create", b"[1]", "not a JSON object"),
        ("orders/create", encode(rest_order(id=None)), "'id' is missing"),
        ("orders/create", encode(rest_order(line_items="x")), "'line_items' is not a list"),
        ("orders/create", encode(rest_order(updated_at="yesterday")), "not an ISO time"),
        ("orders/create", encode(rest_order(updated_at="2026-07-01T09:30:00")), "no time zone"),
        (
            "orders/create",
            encode(rest_order(line_items=[{"id": 1, "sku": "A", "current_quantity": -1}])),
            "whole number",
        ),
        (POLL_TOPIC, encode(poll_node(lineItems=None)), "lineItems missing"),
        ("products/update", encode(rest_order()), "not an order topic"),
    ],
)
def test_malformed_payloads_raise_payload_error(topic: str, body: bytes, needle: str) -> None:
    with pytest.raises(PayloadError) as caught:
        channel().parse_order(topic, body)
    assert needle in str(caught.value)


def headers(body: bytes, secret: str, **extra: str) -> dict[str, str]:
    base = {
        "X-Shopify-Hmac-Sha256": sign(secret, body),
        "X-Shopify-Topic": "orders/create",
        "X-Shopify-Event-Id": "98880550-7158-44d4-b7cd-2c97c8a091b5",
        "X-Shopify-Webhook-Id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
    }
    base.update(extra)
    return base


def test_webhook_verifies_with_old_or_new_secret_and_any_header_case() -> None:
    body = encode(rest_order())
    c = channel("new-secret", "old-secret")
    for secret in ("new-secret", "old-secret"):
        event = c.verify_webhook({k.lower(): v for k, v in headers(body, secret).items()}, body)
        assert event is not None
        assert event.event_key.startswith("orders/create:")
        assert event.topic == "orders/create"
        assert event.body == body


def test_the_event_key_is_the_bodys_identity_so_a_replay_under_a_fresh_id_is_a_duplicate() -> None:
    """The signature covers the body, not the headers (issue #13): a captured delivery sent
    again with a new X-Shopify-Event-Id keys the same; a changed body does not."""
    c = channel("new-secret")
    order = rest_order()
    body = encode(order)
    first = c.verify_webhook(headers(body, "new-secret"), body)
    replayed = c.verify_webhook(
        headers(body, "new-secret", **{"X-Shopify-Event-Id": "another-fresh-id"}), body
    )
    assert first is not None and replayed is not None
    assert first.event_key == replayed.event_key
    assert first.event_key.startswith(f"orders/create:{order['id']}@{order['updated_at']}#")
    edited = encode({**order, "note": "changed within the same second"})
    other = c.verify_webhook(headers(edited, "new-secret"), edited)
    assert other is not None and other.event_key != first.event_key
    # another topic of the same version is its own delivery
    cancelled = c.verify_webhook(
        headers(body, "new-secret", **{"X-Shopify-Topic": "orders/cancelled"}), body
    )
    assert cancelled is not None and cancelled.event_key != first.event_key


@pytest.mark.parametrize(
    ("mutate", "status"),
    [
        (lambda h, b: (h | {"X-Shopify-Hmac-Sha256": sign("other", b)}, b), 401),
        (lambda h, b: ({k: v for k, v in h.items() if "Hmac" not in k}, b), 401),
        (lambda h, b: (h, b + b" "), 401),  # one changed byte breaks the signature
        (lambda h, b: ({k: v for k, v in h.items() if k != "X-Shopify-Event-Id"}, b), 400),
        (lambda h, b: ({k: v for k, v in h.items() if k != "X-Shopify-Topic"}, b), 400),
    ],
)
def test_webhook_rejections(mutate: Any, status: int) -> None:
    body = encode(rest_order())
    h, b = mutate(headers(body, "new-secret"), body)
    with pytest.raises(WebhookRejected) as caught:
        channel().verify_webhook(h, b)
    assert caught.value.status == status


def test_webhook_with_a_body_that_is_not_json_is_rejected_400() -> None:
    body = b"<html>"
    with pytest.raises(WebhookRejected) as caught:
        channel().verify_webhook(headers(body, "new-secret"), body)
    assert caught.value.status == 400


def test_lines_without_a_sku_are_kept_apart_not_made_into_stock() -> None:
    """A custom item, a tip or a gift card has no SKU: no invented SKU, no units counted."""
    lines = [
        {"id": 1, "sku": "DEMO-1", "quantity": 1, "current_quantity": 1},
        {"id": 2, "sku": None, "name": "Tip", "quantity": 1, "current_quantity": 1},
        {"id": 3, "sku": "", "title": "Custom engraving", "quantity": 2, "current_quantity": 2},
    ]
    order = channel().parse_order("orders/create", encode(rest_order(line_items=lines)))
    assert [(li.external_line_id, li.sku) for li in order.lines] == [("1", "DEMO-1")]
    assert [(o.external_line_id, o.title, o.quantity) for o in order.other_lines] == [
        ("2", "Tip", 1),
        ("3", "Custom engraving", 2),
    ]
    nodes = {
        "nodes": [
            {
                "id": "gid://shopify/LineItem/9",
                "sku": None,
                "name": "Gift card",
                "currentQuantity": 1,
            }
        ]
    }
    polled = channel().parse_order(POLL_TOPIC, encode(poll_node(lineItems=nodes)))
    assert polled.lines == ()
    assert [(o.external_line_id, o.title) for o in polled.other_lines] == [("9", "Gift card")]


@pytest.mark.parametrize("topic", ["orders/edited", "refunds/create", "orders/delete"])
def test_topics_we_do_not_subscribe_to_are_verified_then_ignored(topic: str) -> None:
    body = encode({"id": 929361472, "order_id": 450789469})
    headers = {
        "X-Shopify-Hmac-Sha256": sign("new-secret", body),
        "X-Shopify-Event-Id": "evt-1",
        "X-Shopify-Topic": topic,
    }
    event = channel().verify_webhook(headers, body)
    assert event is not None and event.ignored
    forged = {**headers, "X-Shopify-Hmac-Sha256": sign("wrong", body)}
    with pytest.raises(WebhookRejected):
        channel().verify_webhook(forged, body)  # ignored only once it is proven to be Shopify's
    order = encode(rest_order())
    ordered = {**headers, "X-Shopify-Topic": "orders/updated"}
    ordered["X-Shopify-Hmac-Sha256"] = sign("new-secret", order)
    stored = channel().verify_webhook(ordered, order)
    assert stored is not None and not stored.ignored


def test_order_attributes_carry_the_campaign_payment_proof_in_both_shapes() -> None:
    """A draft order's custom attributes ride on the order it becomes: REST `note_attributes`
    {name, value}, GraphQL `customAttributes` {key, value}; other shapes are left out."""
    from connectors.base import PAYMENT_ATTRIBUTE
    from sync.mapping import to_order_input

    c = channel()
    proof = [{"name": PAYMENT_ATTRIBUTE, "value": "7:abcdefabcdef"}, {"name": "gift", "value": 1}]
    from_webhook = c.parse_order("orders/create", encode(rest_order(note_attributes=proof)))
    attributes = [{"key": PAYMENT_ATTRIBUTE, "value": "7:abcdefabcdef"}]
    from_poll = c.parse_order(POLL_TOPIC, encode(poll_node(customAttributes=attributes)))
    assert from_webhook.meta == from_poll.meta == ((PAYMENT_ATTRIBUTE, "7:abcdefabcdef"),)
    assert to_order_input(from_poll, "shop").payment_proof == "7:abcdefabcdef"
    assert (
        to_order_input(c.parse_order(POLL_TOPIC, encode(poll_node())), "shop").payment_proof is None
    )
