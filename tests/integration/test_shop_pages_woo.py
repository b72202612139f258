"""Shop pages tell the truth on WooCommerce (issue #17), over real HTTP: the sandbox computes
`stock_status`, `backorders_allowed` and `backordered` as WooCommerce does, and the connector
puts incoming units on backorder ("notify") while the offer counts them, back to "no" when the
units are in stock, writing only when something changed; shop notes reach the customer once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
import requests
from woocommerce import API

from connectors.base import AnnotatesOrders, OfferPush
from connectors.sandbox.woocommerce import WooCommerceSandbox
from connectors.woocommerce import (
    EXPECTED_META,
    INCOMING_META,
    WooCommerceChannel,
    offered_quantity,
)
from tests.woocommerce_support import checkout, rest_api, state, woo_channel

ETA = date(2026, 8, 14)


@pytest.fixture
def shop() -> Iterator[WooCommerceSandbox]:
    with WooCommerceSandbox(catalog={"TEE": 20, "DEMO-4": 20, "DEMO-5": 20}, seed=17) as sandbox:
        yield sandbox


@pytest.fixture
def api(shop: WooCommerceSandbox) -> API:
    return rest_api(shop)


@pytest.fixture
def channel(shop: WooCommerceSandbox) -> WooCommerceChannel:
    return woo_channel(shop)


def product(shop: WooCommerceSandbox, sku: str) -> dict[str, Any]:
    """The record as the REST API answers it (a variation too: ?sku= finds both)."""
    found = rest_api(shop).get("products", params={"sku": sku}).json()
    assert len(found) == 1, found
    record: dict[str, Any] = found[0]
    return record


def page(record: dict[str, Any]) -> tuple[Any, ...]:
    meta = {m["key"]: m["value"] for m in record["meta_data"]}
    return (
        record["stock_quantity"],
        record["backorders"],
        record["stock_status"],
        record["backorders_allowed"],
        record["backordered"],
        meta.get(INCOMING_META),
        meta.get(EXPECTED_META),
    )


def writes(shop: WooCommerceSandbox) -> int:
    return sum(n for key, n in shop.request_count.items() if key.startswith("POST /wp-json"))


# -- the sandbox: WooCommerce's own rules ---------------------------------------------------
def test_stock_status_follows_stock_and_backorders_as_woocommerce_computes_it(
    shop: WooCommerceSandbox, api: API
) -> None:
    record = product(shop, "TEE")
    path = f"products/{record['id']}"
    assert page(record)[:5] == (20, "no", "instock", False, False)
    # in stock above zero (the "out of stock threshold"), else out of stock or on backorder
    assert api.put(path, {"stock_quantity": 0}).json()["stock_status"] == "outofstock"
    notify = api.put(path, {"backorders": "notify"}).json()
    assert page(notify)[:5] == (0, "notify", "onbackorder", True, True)
    assert api.put(path, {"stock_quantity": 3}).json()["stock_status"] == "instock"
    # a stock status sent for a product that manages stock is computed over
    assert api.put(path, {"stock_status": "outofstock"}).json()["stock_status"] == "instock"
    allowed = api.put(path, {"stock_quantity": -2, "backorders": "yes"}).json()
    assert page(allowed)[:5] == (-2, "yes", "onbackorder", True, True)
    # without managed stock: no quantity, backorders forced to "no", the status as given
    loose = api.put(path, {"manage_stock": False, "stock_status": "onbackorder"}).json()
    assert page(loose)[:5] == (None, "no", "onbackorder", False, True)
    refused = api.put(path, {"backorders": "sometimes"})
    assert refused.status_code == 400 and refused.json()["code"] == "rest_invalid_param"
    refused = api.put(path, {"stock_status": "soon"})
    assert refused.status_code == 400 and refused.json()["code"] == "rest_invalid_param"


def test_the_sandbox_shapes_match_the_documented_product(shop: WooCommerceSandbox) -> None:
    documented = {
        "manage_stock", "stock_quantity", "stock_status", "backorders", "backorders_allowed",
        "backordered", "meta_data",
    }  # fmt: skip
    assert documented <= set(product(shop, "TEE"))  # fixtures/woocommerce/product_retrieve.json
    assert documented <= set(product(shop, "DEMO-4"))  # a variation


def test_the_storefront_sells_beyond_stock_only_on_backorder(
    shop: WooCommerceSandbox, api: API
) -> None:
    record = product(shop, "TEE")
    api.put(f"products/{record['id']}", {"stock_quantity": 1})
    assert checkout(shop.url, "TEE", 3).status_code == 409
    api.put(f"products/{record['id']}", {"backorders": "notify"})
    assert checkout(shop.url, "TEE", 3).status_code == 201
    assert page(product(shop, "TEE"))[:5] == (-2, "notify", "onbackorder", True, True)


# -- the connector ---------------------------------------------------------------------------
def test_incoming_units_go_on_backorder_and_come_off_when_in_stock(
    shop: WooCommerceSandbox, channel: WooCommerceChannel
) -> None:
    # 20 offered, 8 of them incoming: 12 in stock "(can be backordered)"
    [mixed] = channel.push_offers([OfferPush("TEE", 20, 20, incoming=8, expected_on=ETA)])
    assert (mixed.ok, mixed.channel_quantity) == (True, 20)
    assert page(product(shop, "TEE")) == (12, "notify", "instock", True, False, "8", "2026-08-14")
    # every offered unit incoming: "Available on backorder"
    [waiting] = channel.push_offers([OfferPush("TEE", 8, 20, incoming=8, expected_on=ETA)])
    assert (waiting.ok, waiting.channel_quantity) == (True, 8)
    assert page(product(shop, "TEE")) == (0, "notify", "onbackorder", True, True, "8", "2026-08-14")
    # stocksync reads back the offer, not the stock: fetch, adopt and the state agree
    assert channel.fetch_listings(["TEE"])["TEE"].quantity == 8
    assert [li.quantity for li in channel.list_listings() if li.sku == "TEE"] == [8]
    tee = next(p for p in state(shop.url)["products"] if p["sku"] == "TEE")
    assert offered_quantity(tee) == 8
    # the units arrived: in stock, backorders off again, the meta says none are incoming
    [arrived] = channel.push_offers([OfferPush("TEE", 8, 8)])
    assert (arrived.ok, arrived.channel_quantity) == (True, 8)
    assert page(product(shop, "TEE")) == (8, "no", "instock", False, False, "0", "")


def test_a_push_that_changes_nothing_writes_nothing(
    shop: WooCommerceSandbox, channel: WooCommerceChannel
) -> None:
    push = OfferPush("TEE", 20, 20, incoming=8, expected_on=ETA)
    channel.push_offers([push])
    before = writes(shop)
    [again] = channel.push_offers([push])
    assert again.ok and writes(shop) == before  # re-read only
    # a new date alone is written (meta only)
    later = OfferPush("TEE", 20, 20, incoming=8, expected_on=date(2026, 9, 1))
    [moved] = channel.push_offers([later])
    assert moved.ok and writes(shop) == before + 1
    assert page(product(shop, "TEE"))[6] == "2026-09-01"


def test_a_variation_goes_on_backorder_too(
    shop: WooCommerceSandbox, channel: WooCommerceChannel
) -> None:
    [result] = channel.push_offers([OfferPush("DEMO-4", 5, 20, incoming=5, expected_on=ETA)])
    assert result.ok
    record = product(shop, "DEMO-4")
    assert record["type"] == "variation"
    assert page(record) == (0, "notify", "onbackorder", True, True, "5", "2026-08-14")
    assert page(product(shop, "DEMO-5"))[:3] == (20, "no", "instock")  # its sibling untouched


def test_a_sale_on_backorder_is_read_back_against_the_offer(
    shop: WooCommerceSandbox, channel: WooCommerceChannel
) -> None:
    channel.push_offers([OfferPush("TEE", 6, 20, incoming=6, expected_on=ETA)])
    sold = checkout(shop.url, "TEE", 2)  # on backorder: stock -2
    assert sold.status_code == 201
    [line] = sold.json()["line_items"]
    assert [(m["key"], m["value"]) for m in line["meta_data"]] == [("Backordered", 2)]
    assert channel.fetch_listings(["TEE"])["TEE"].quantity == 4  # 6 offered, 2 sold
    # a raise over what the shop sold by itself waits for the orders, as for any stock
    [stale] = channel.push_offers([OfferPush("TEE", 6, 6, incoming=6, expected_on=ETA)])
    assert (stale.ok, stale.error_code, stale.channel_quantity) == (False, "STALE", 4)
    [lower] = channel.push_offers([OfferPush("TEE", 4, 4, incoming=4, expected_on=ETA)])
    assert lower.ok
    assert page(product(shop, "TEE")) == (0, "notify", "onbackorder", True, True, "4", "2026-08-14")


def test_the_merchants_own_backorder_setting_is_kept(
    shop: WooCommerceSandbox, api: API, channel: WooCommerceChannel
) -> None:
    record = product(shop, "TEE")
    api.put(f"products/{record['id']}", {"backorders": "yes"})  # allowed, customers not told
    channel.push_offers([OfferPush("TEE", 20, 20, incoming=5, expected_on=ETA)])
    assert page(product(shop, "TEE"))[:2] == (15, "yes")
    channel.push_offers([OfferPush("TEE", 15, 20)])
    assert page(product(shop, "TEE"))[:2] == (15, "yes")  # not switched off: not ours
    # switched off by hand while incoming: the shop sells its stock only, and we read that
    channel.push_offers([OfferPush("TEE", 20, 15, incoming=5, expected_on=ETA)])
    api.put(f"products/{record['id']}", {"backorders": "no"})
    assert channel.fetch_listings(["TEE"])["TEE"].quantity == 15


# -- shop notes -------------------------------------------------------------------------------
def test_a_shop_note_reaches_the_customer_once(
    shop: WooCommerceSandbox, channel: WooCommerceChannel
) -> None:
    assert isinstance(channel, AnnotatesOrders)
    order = checkout(shop.url, "TEE", 1, email="ann@example.com").json()
    text = "Your T-shirt is on its way back to our shelves: expected 14 August."
    channel.add_customer_note(str(order["id"]), text)
    channel.add_customer_note(str(order["id"]), text)  # a retry after a call that landed
    notes = rest_api(shop).get(f"orders/{order['id']}/notes").json()
    assert [(n["note"], n["customer_note"]) for n in notes].count((text, True)) == 1
    mail = requests.get(f"{shop.url}/_sandbox/mail", timeout=5).json()
    assert [m["to"] for m in mail if text in m["note"]] == ["ann@example.com"]
    with pytest.raises(ValueError, match="numbers"):
        channel.add_customer_note("gid://shopify/Order/1", text)
