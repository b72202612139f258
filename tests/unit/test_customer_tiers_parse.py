"""What a customer tier is read from, as the connectors parse it: Shopify customer tags (a
comma-separated string in REST webhooks, a list in GraphQL polls), WooCommerce order meta and the
customer role that completing an order adds (never fetched while parsing)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from connectors.base import POLL_TOPIC, PayloadError
from connectors.shopify import ShopifyChannel
from connectors.shopify_queries import ORDER_FIELDS
from connectors.woocommerce import WooCommerceChannel
from connectors.woocommerce_parse import CUSTOMER_ROLE_KEY
from tests.shared_fixtures import require_shared
from tests.woocommerce_support import own_fixture


def shopify() -> ShopifyChannel:
    return ShopifyChannel(
        "shop",
        shop="sandbox.myshopify.com",
        token="shpat_x",
        webhook_secrets=["s"],
        api_url="http://127.0.0.1:9",
    )


def woo(*, customer_roles: bool = False) -> WooCommerceChannel:
    return WooCommerceChannel(
        "woo",
        url="https://shop.example.com",
        consumer_key="ck",
        consumer_secret="cs",
        webhook_secrets=["s"],
        customer_roles=customer_roles,
    )


def encode(data: Any) -> bytes:
    return json.dumps(data).encode()


def rest_order(customer: Any) -> dict[str, Any]:
    return {
        "id": 450789469,
        "email": "bob@example.com",
        "created_at": "2026-07-01T08:00:00-04:00",
        "updated_at": "2026-07-01T09:30:00-04:00",
        "cancelled_at": None,
        "fulfillment_status": None,
        "customer": customer,
        "line_items": [{"id": 1, "sku": "DEMO-1", "quantity": 1, "current_quantity": 1}],
        "refunds": [],
    }


def graphql_node(customer: Any) -> dict[str, Any]:
    return {
        "id": "gid://shopify/Order/450789469",
        "legacyResourceId": "450789469",
        "createdAt": "2026-07-01T12:00:00Z",
        "updatedAt": "2026-07-01T13:30:00Z",
        "cancelledAt": None,
        "displayFulfillmentStatus": "UNFULFILLED",
        "customer": customer,
        "lineItems": {
            "nodes": [{"id": "gid://shopify/LineItem/1", "sku": "DEMO-1", "currentQuantity": 1}]
        },
    }


# ---- Shopify ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ("vip, wholesale", ("vip", "wholesale")),
        (" VIP ,, wholesale ,vip", ("VIP", "wholesale", "vip")),  # trimmed; matching folds case
        ("", ()),
        (None, ()),
    ],
)
def test_rest_webhooks_carry_customer_tags_as_one_string(
    tags: str | None, expected: tuple[str, ...]
) -> None:
    customer = {"id": 207119551, "email": "bob@example.com", "tags": tags}
    order = shopify().parse_order("orders/create", encode(rest_order(customer)))
    assert order.customer_tags == expected
    assert order.customer_key == "207119551"


def test_graphql_polls_carry_customer_tags_as_a_list() -> None:
    customer = {"id": "gid://shopify/Customer/207119551", "tags": ["vip", " wholesale ", ""]}
    order = shopify().parse_order(POLL_TOPIC, encode(graphql_node(customer)))
    assert order.customer_tags == ("vip", "wholesale")


def test_a_webhook_and_a_poll_of_one_order_agree_on_tags() -> None:
    rest = rest_order({"id": 207119551, "tags": "vip, wholesale"})
    node = graphql_node({"id": "gid://shopify/Customer/207119551", "tags": ["vip", "wholesale"]})
    channel = shopify()
    assert (
        channel.parse_order("orders/updated", encode(rest)).customer_tags
        == channel.parse_order(POLL_TOPIC, encode(node)).customer_tags
    )


def test_a_guest_order_has_no_tags() -> None:
    assert shopify().parse_order("orders/create", encode(rest_order(None))).customer_tags == ()
    assert shopify().parse_order(POLL_TOPIC, encode(graphql_node(None))).customer_tags == ()


@pytest.mark.parametrize(
    ("topic", "body"),
    [
        ("orders/create", rest_order({"id": 1, "tags": 7})),
        ("orders/create", rest_order({"id": 1, "tags": ["vip", 3]})),
        (POLL_TOPIC, graphql_node({"id": "gid://shopify/Customer/1", "tags": {"vip": True}})),
    ],
)
def test_malformed_tags_are_payload_errors(topic: str, body: dict[str, Any]) -> None:
    with pytest.raises(PayloadError, match=r"customer\.tags"):
        shopify().parse_order(topic, encode(body))


def test_the_orders_query_asks_for_customer_tags() -> None:
    assert "customer { id email tags }" in ORDER_FIELDS


def test_a_real_shopify_payload_gives_its_customer_tags() -> None:
    folder = require_shared("fixtures/real-payloads/shopify", "Shopify's own order payloads")
    body = (folder / "s01-450789469-partially-refunded-2024-10.json").read_bytes()
    assert shopify().parse_order("orders/updated", body).customer_tags == ("Léon", "Noël")


# ---- WooCommerce ------------------------------------------------------------------------------


def woo_order(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = own_fixture("order.json")
    data.update(overrides)
    return data


def test_order_meta_is_read_as_text_pairs_in_payload_order() -> None:
    meta = [
        {"id": 1, "key": "_customer_tier", "value": "vip"},
        {"id": 2, "key": "_group", "value": 3},
        {"id": 3, "key": "_plugin_blob", "value": {"a": 1}},  # not text: names no tier
        {"id": 4, "key": "_flag", "value": True},
        {"id": 5, "key": "_customer_tier", "value": "trade"},
    ]
    order = woo().parse_order("order.updated", encode(woo_order(meta_data=meta)))
    assert order.meta == (("_customer_tier", "vip"), ("_group", "3"), ("_customer_tier", "trade"))


def test_malformed_meta_is_a_payload_error() -> None:
    with pytest.raises(PayloadError, match="meta_data"):
        woo().parse_order("order.updated", encode(woo_order(meta_data={"k": "v"})))
    with pytest.raises(PayloadError, match="meta_data"):
        woo().parse_order("order.updated", encode(woo_order(meta_data=[{"value": "v"}])))


def test_the_role_comes_only_from_a_completed_body() -> None:
    plain = woo().parse_order("order.updated", encode(woo_order(customer_id=7)))
    assert plain.customer_role is None
    completed = encode(woo_order(customer_id=7, **{CUSTOMER_ROLE_KEY: "wholesale"}))
    assert woo().parse_order("order.updated", completed).customer_role == "wholesale"
    gone = encode(woo_order(customer_id=7, **{CUSTOMER_ROLE_KEY: None}))  # customer deleted
    assert woo().parse_order("order.updated", gone).customer_role is None
    with pytest.raises(PayloadError, match=CUSTOMER_ROLE_KEY):
        woo().parse_order("order.updated", encode(woo_order(**{CUSTOMER_ROLE_KEY: 5})))


def test_registered_customers_orders_await_their_role_only_when_roles_are_read() -> None:
    registered = encode(woo_order(customer_id=7, refunds=[]))
    guest = encode(woo_order(customer_id=0, refunds=[]))
    completed = encode(woo_order(customer_id=7, refunds=[], **{CUSTOMER_ROLE_KEY: "customer"}))
    reading = woo(customer_roles=True)
    assert reading.needs_fetch("order.created", registered)
    assert not reading.needs_fetch("order.created", guest)
    assert not reading.needs_fetch("order.created", completed)
    assert not woo().needs_fetch("order.created", registered)
