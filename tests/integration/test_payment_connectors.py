"""Campaign payment requests through both connectors, against the sandboxes over loopback HTTP
(issue #15): made once per key even when asked again, the link sent to the customer, a reminder
sent again, withdrawn (or found paid)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connectors.base import PAYMENT_ATTRIBUTE, OfferPush, PaymentRequest, TakesPayments
from connectors.sandbox.shopify import ShopifySandbox
from connectors.sandbox.woocommerce import WooCommerceSandbox
from connectors.shopify import ShopifyChannel
from connectors.woocommerce import WooCommerceChannel
from tests.shopify_support import make_channel as make_shopify

SKU = "DEMO-1"


def request(key: str = "drop-7", email: str = "ann@example.com") -> PaymentRequest:
    deadline = datetime.now(UTC) + timedelta(hours=12)
    return PaymentRequest(
        key=key, email=email, sku=SKU, quantity=1, pay_by=deadline,
        reserve_until=deadline + timedelta(hours=1),
        attributes={PAYMENT_ATTRIBUTE: "7:abcdefabcdef"},
        message=f"1 x {SKU} is yours: pay before {deadline.isoformat()}.",
    )  # fmt: skip


@pytest.fixture
def shopify() -> Iterator[tuple[ShopifySandbox, ShopifyChannel]]:
    with ShopifySandbox(catalog={SKU: 1}, restore_rate=2000) as sandbox:
        channel = make_shopify(sandbox)
        yield sandbox, channel
        channel.close()


@pytest.fixture
def woo() -> Iterator[tuple[WooCommerceSandbox, WooCommerceChannel]]:
    with WooCommerceSandbox(catalog={SKU: 1}) as sandbox:
        yield sandbox, WooCommerceChannel(
            "woo", url="https://shop.example.com", api_url=sandbox.url,
            consumer_key="ck_sandbox", consumer_secret="cs_sandbox",
            webhook_secrets=["sandbox-secret"], timeout=5.0, backoff=0.01,
        )  # fmt: skip


def inventory(sandbox: ShopifySandbox) -> dict[str, Any]:
    found: dict[str, Any] = sandbox.state_snapshot()["inventory"][SKU]
    return found


def test_both_shops_take_payments(
    shopify: tuple[ShopifySandbox, ShopifyChannel],
    woo: tuple[WooCommerceSandbox, WooCommerceChannel],
) -> None:
    assert isinstance(shopify[1], TakesPayments) and isinstance(woo[1], TakesPayments)


def test_a_shopify_draft_is_made_once_invoiced_and_reserves_its_units(
    shopify: tuple[ShopifySandbox, ShopifyChannel],
) -> None:
    sandbox, channel = shopify
    wanted = request()
    link = channel.request_payment(wanted)
    assert link.ref.startswith("gid://shopify/DraftOrder/") and "/invoices/" in link.url
    again = channel.request_payment(wanted)  # a retry after a crash: found by its key
    assert again == link
    drafts = sandbox.state_snapshot()["draft_orders"]
    assert len(drafts) == 1
    assert [m["to"] for m in sandbox.sent_mail()] == ["ann@example.com"]  # sent once
    assert (inventory(sandbox)["available"], inventory(sandbox)["reserved"]) == (0, 1)
    channel.remind_payment(link.ref, request())
    assert len(sandbox.sent_mail()) == 2


def test_withdrawing_a_shopify_draft_never_puts_its_units_on_sale(
    shopify: tuple[ShopifySandbox, ShopifyChannel],
) -> None:
    """The ledger set the unit aside, so it offers 0. After the draft reserved the unit, the
    push put available back to that 0. Deleting the draft returns its unit to available, so
    the withdrawal lowers available by as much first: the storefront still sees 0."""
    sandbox, channel = shopify
    sandbox.set_inventory(SKU, 0)  # the ledger's offer: the campaign holds the one unit
    link = channel.request_payment(request())
    listing = channel.fetch_listings([SKU])[SKU]
    assert listing.quantity == -1  # Shopify took the reserved unit out of available
    [pushed] = channel.push_offers([OfferPush(SKU, 0, listing.quantity)])
    assert pushed.ok and inventory(sandbox)["available"] == 0
    assert channel.withdraw_payment(link.ref) is True
    assert (inventory(sandbox)["available"], inventory(sandbox)["reserved"]) == (0, 0)
    assert channel.withdraw_payment(link.ref) is True  # gone already: nothing to do
    assert inventory(sandbox)["available"] == 0


def test_a_paid_shopify_draft_cannot_be_withdrawn(
    shopify: tuple[ShopifySandbox, ShopifyChannel],
) -> None:
    sandbox, channel = shopify
    link = channel.request_payment(request())
    paid = sandbox.pay_draft(link.ref)
    assert channel.withdraw_payment(link.ref) is False
    orders = sandbox.state_snapshot()["orders"]
    [order] = [o for o in orders if o["id"] == paid["order_id"]]
    assert {"name": PAYMENT_ATTRIBUTE, "value": "7:abcdefabcdef"} in order["note_attributes"]
    assert (inventory(sandbox)["reserved"], inventory(sandbox)["committed"]) == (0, 1)


def test_a_woocommerce_pending_order_is_made_once_and_its_link_sent(
    woo: tuple[WooCommerceSandbox, WooCommerceChannel],
) -> None:
    sandbox, channel = woo
    wanted = request()
    link = channel.request_payment(wanted)
    assert link.ref.isdigit() and "order-pay" in link.url
    assert channel.request_payment(wanted) == link  # found by its key, no second order
    orders = sandbox.state_snapshot()["orders"]
    assert [o["status"] for o in orders] == ["pending"]
    full = channel.order("test", link.ref)  # as the REST API shows it
    meta = {m["key"]: m["value"] for m in full["meta_data"]}
    assert full["billing"]["email"] == "ann@example.com"
    assert meta[PAYMENT_ATTRIBUTE] == "7:abcdefabcdef"
    assert sandbox.state_snapshot()["stock"][SKU] == 1  # a pending order holds no stock
    mails = sandbox.sent_mail()
    assert len(mails) == 1 and link.url in mails[0]["note"]  # one note, even asked twice
    channel.remind_payment(link.ref, request())
    assert len(sandbox.sent_mail()) == 2
    assert channel.withdraw_payment(link.ref) is True
    assert sandbox.state_snapshot()["orders"][0]["status"] == "cancelled"


def test_a_paid_woocommerce_order_cannot_be_withdrawn(
    woo: tuple[WooCommerceSandbox, WooCommerceChannel],
) -> None:
    sandbox, channel = woo
    link = channel.request_payment(request())
    sandbox.pay_order(int(link.ref))
    assert channel.withdraw_payment(link.ref) is False
    assert sandbox.state_snapshot()["orders"][0]["status"] == "processing"
