"""Customer tiers over real HTTP: sandbox checkouts carry a Shopify customer's tags or a
WooCommerce customer's role; the payloads deliver them as the real shops do (REST `customer.tags`
a string, GraphQL `customer { tags }` a list; WooCommerce `role` only on GET customers/{id}),
and the connectors plus sync.mapping turn them into the configured tier."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import requests
from woocommerce import API

from connectors.base import POLL_TOPIC
from connectors.sandbox.shopify import ShopifySandbox
from connectors.sandbox.woocommerce import WooCommerceSandbox
from connectors.woocommerce_parse import CUSTOMER_ROLE_KEY
from rules import Config, parse_config
from sync.mapping import to_order_input
from tests.shopify_support import Receiver, graphql, make_channel, receiver_fixture
from tests.woocommerce_support import WebhookReceiver, flush, state, wait_for, woo_channel
from tests.woocommerce_support import receiver_fixture as woo_receiver
from tests.woocommerce_support import sandbox_fixture as woo_sandbox

EPOCH = datetime(2020, 1, 1, tzinfo=UTC)

CONFIG = """\
tiers: [vip, trade, regular]
channels:
  shop:
    kind: shopify
    shop: sandbox.myshopify.com
    token: t
    webhook_secret: w
    tier_from: {tags: {vip: vip, wholesale: trade}}
  woo:
    kind: woocommerce
    url: https://shop.example.com
    consumer_key: k
    consumer_secret: s
    webhook_secret: w
    tier_from: {role: {wholesale: trade}}
  woo-meta:
    kind: woocommerce
    url: https://shop.example.com
    consumer_key: k
    consumer_secret: s
    webhook_secret: w
    tier_from: {meta: _customer_tier}
"""


@pytest.fixture(scope="module")
def config() -> Config:
    return parse_config(textwrap.dedent(CONFIG), "stocksync.yaml", {})


# ---- Shopify ----------------------------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from receiver_fixture()


def shopify_checkout(sandbox: ShopifySandbox, body: dict[str, object]) -> requests.Response:
    return requests.post(f"{sandbox.url}/_sandbox/checkout", json=body, timeout=5)


def test_shopify_checkout_tags_reach_webhooks_and_polls(receiver: Receiver, config: Config) -> None:
    with ShopifySandbox(webhook_url=receiver.url, restore_rate=2000) as sandbox:
        channel = make_channel(sandbox)
        reply = shopify_checkout(
            sandbox,
            {
                "sku": "DEMO-1",
                "quantity": 1,
                "email": "v@example.com",
                "tags": ["wholesale", "VIP"],
            },
        )
        assert reply.status_code == 201, reply.text
        placed = reply.json()
        assert placed["customer"]["tags"] == "VIP, wholesale"  # REST: one string
        [delivery] = receiver.wait_for(1)
        assert json.loads(delivery.body)["customer"]["tags"] == "VIP, wholesale"
        event = channel.verify_webhook(delivery.headers, delivery.body)
        assert event is not None
        from_webhook = channel.parse_order(event.topic, event.body)
        assert from_webhook.customer_tags == ("VIP", "wholesale")

        node = graphql(
            sandbox,
            "query($id: ID!) { order(id: $id) { customer { tags } } }",
            {"id": f"gid://shopify/Order/{placed['id']}"},
        ).json()["data"]["order"]
        assert node["customer"]["tags"] == ["VIP", "wholesale"]  # GraphQL: a list

        [polled] = list(channel.pull_orders(EPOCH))
        assert polled.order.customer_tags == ("VIP", "wholesale")
        assert channel.parse_order(POLL_TOPIC, polled.body) == polled.order
        for parsed in (from_webhook, polled.order):
            assert to_order_input(parsed, "shop", config).tier == "vip"
        channel.close()


def test_shopify_tags_belong_to_the_customer(receiver: Receiver, config: Config) -> None:
    with ShopifySandbox(webhook_url=receiver.url, restore_rate=2000) as sandbox:
        channel = make_channel(sandbox)
        first = {"sku": "DEMO-1", "quantity": 1, "email": "t@example.com", "tags": ["wholesale"]}
        assert shopify_checkout(sandbox, first).status_code == 201
        # a later checkout without tags keeps them; an untagged customer has none
        again = shopify_checkout(
            sandbox, {"sku": "DEMO-2", "quantity": 1, "email": "t@example.com"}
        )
        other = shopify_checkout(
            sandbox, {"sku": "DEMO-2", "quantity": 1, "email": "o@example.com"}
        )
        deliveries = receiver.wait_for(3)
        parsed = [channel.parse_order("orders/create", d.body) for d in deliveries]
        by_order = {p.external_id: p for p in parsed}
        assert by_order[str(again.json()["id"])].customer_tags == ("wholesale",)
        assert by_order[str(other.json()["id"])].customer_tags == ()
        tiers = sorted(str(to_order_input(p, "shop", config).tier) for p in parsed)
        assert tiers == ["None", "trade", "trade"]
        channel.close()


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"sku": "DEMO-1", "quantity": 1, "tags": ["vip"]}, "give an 'email' too"),
        ({"sku": "DEMO-1", "quantity": 1, "email": "a@example.com", "tags": "vip"}, "list"),
    ],
)
def test_shopify_checkout_refuses_bad_tags(body: dict[str, object], error: str) -> None:
    with ShopifySandbox(restore_rate=2000) as sandbox:
        reply = shopify_checkout(sandbox, body)
        assert reply.status_code == 400
        assert error in reply.json()["error"]


# ---- WooCommerce ------------------------------------------------------------------------------


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    yield from woo_receiver()


@pytest.fixture
def woo_shop(hook: WebhookReceiver) -> Iterator[WooCommerceSandbox]:
    yield from woo_sandbox(hook, seed=5)


def woo_checkout(shop: WooCommerceSandbox, body: dict[str, object]) -> requests.Response:
    return requests.post(f"{shop.url}/_sandbox/checkout", json=body, timeout=5)


def customer_calls(shop: WooCommerceSandbox) -> int:
    return sum(n for key, n in shop.request_count.items() if "/customers/" in key)


def test_woocommerce_role_is_on_the_customer_and_completes_the_order(
    woo_shop: WooCommerceSandbox, hook: WebhookReceiver, config: Config
) -> None:
    reply = woo_checkout(
        woo_shop, {"sku": "DEMO-1", "quantity": 2, "email": "w@example.com", "role": "wholesale"}
    )
    assert reply.status_code == 201, reply.text
    placed = reply.json()
    customer_id = placed["customer_id"]
    assert customer_id > 0
    assert "role" not in json.dumps(placed)  # orders carry no role, as on a real shop

    api = API(
        url=woo_shop.url, consumer_key="ck_sandbox", consumer_secret="cs_sandbox", version="wc/v3"
    )
    customer = api.get(f"customers/{customer_id}").json()
    assert (customer["id"], customer["email"], customer["role"]) == (
        customer_id,
        "w@example.com",
        "wholesale",
    )
    missing = api.get("customers/9999")
    assert missing.status_code == 404
    assert missing.json()["code"] == "woocommerce_rest_invalid_id"
    assert state(woo_shop.url)["customers"] == [
        {"id": customer_id, "email": "w@example.com", "role": "wholesale"}
    ]

    flush(woo_shop.url)
    wait_for(lambda: len(hook.events()) >= 1)
    [delivery] = hook.events()
    channel = woo_channel(woo_shop, customer_roles=True)
    event = channel.verify_webhook(delivery.headers, delivery.body)
    assert event is not None
    assert channel.parse_order(event.topic, event.body).customer_role is None  # parsing: no I/O
    assert channel.needs_fetch(event.topic, event.body)
    completed = channel.complete_order(event.topic, event.body)
    assert json.loads(completed)[CUSTOMER_ROLE_KEY] == "wholesale"
    order = channel.parse_order(event.topic, completed)
    assert order.customer_role == "wholesale"
    assert to_order_input(order, "woo", config).tier == "trade"

    # the role is read once for a while per customer; a polled version completes alike
    calls = customer_calls(woo_shop)
    [polled] = list(channel.pull_orders(EPOCH))
    assert channel.needs_fetch(POLL_TOPIC, polled.body)
    again = channel.parse_order(POLL_TOPIC, channel.complete_order(POLL_TOPIC, polled.body))
    assert again.customer_role == "wholesale"
    assert customer_calls(woo_shop) == calls

    # without `tier_from: {role}` nothing is fetched for it
    assert not woo_channel(woo_shop, customer_roles=False).needs_fetch(event.topic, event.body)


def test_woocommerce_guests_and_deleted_customers_have_no_role(
    woo_shop: WooCommerceSandbox, config: Config
) -> None:
    guest = woo_checkout(woo_shop, {"sku": "DEMO-1", "quantity": 1, "email": "g@example.com"})
    assert guest.status_code == 201 and guest.json()["customer_id"] == 0
    channel = woo_channel(woo_shop, customer_roles=True)
    assert not channel.needs_fetch("order.created", json.dumps(guest.json()).encode())

    ghost = {**guest.json(), "customer_id": 424242}  # a customer the shop no longer has
    body = json.dumps(ghost).encode()
    assert channel.needs_fetch("order.updated", body)
    completed = channel.complete_order("order.updated", body)
    assert json.loads(completed)[CUSTOMER_ROLE_KEY] is None
    order = channel.parse_order("order.updated", completed)
    assert to_order_input(order, "woo", config).tier is None


def test_a_registered_customers_later_checkout_is_theirs(woo_shop: WooCommerceSandbox) -> None:
    first = {"sku": "DEMO-1", "quantity": 1, "email": "r@example.com", "role": "customer"}
    registered = woo_checkout(woo_shop, first).json()["customer_id"]
    promoted = {**first, "role": "wholesale"}  # as an administrator changing the role
    assert woo_checkout(woo_shop, promoted).json()["customer_id"] == registered
    later = woo_checkout(woo_shop, {"sku": "DEMO-1", "quantity": 1, "email": "r@example.com"})
    assert later.json()["customer_id"] == registered
    assert state(woo_shop.url)["customers"] == [
        {"id": registered, "email": "r@example.com", "role": "wholesale"}
    ]


def test_woocommerce_checkout_meta_names_the_tier(
    woo_shop: WooCommerceSandbox, config: Config
) -> None:
    body = {
        "sku": "DEMO-2",
        "quantity": 1,
        "meta_data": [{"key": "_customer_tier", "value": "vip"}],
    }
    placed = woo_checkout(woo_shop, body).json()
    assert [(m["key"], m["value"]) for m in placed["meta_data"]] == [("_customer_tier", "vip")]
    channel = woo_channel(woo_shop, customer_roles=False)
    order = channel.parse_order("order.created", json.dumps(placed).encode())
    assert to_order_input(order, "woo-meta", config).tier == "vip"


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"sku": "DEMO-1", "quantity": 1, "role": "wholesale"}, "give an email too"),
        ({"sku": "DEMO-1", "quantity": 1, "email": "a@example.com", "role": ""}, "role must"),
        ({"sku": "DEMO-1", "quantity": 1, "meta_data": {"k": "v"}}, "meta_data must"),
    ],
)
def test_woocommerce_checkout_refuses_bad_customer_data(
    woo_shop: WooCommerceSandbox, body: dict[str, object], error: str
) -> None:
    reply = woo_checkout(woo_shop, body)
    assert reply.status_code == 400
    assert error in reply.json()["error"]
