"""Shop pages tell the truth on Shopify (issue #17), over real HTTP: the sandbox serves
`metafieldsSet`, `metafieldsDelete`, a variant's `metafield`/`metafields` and `orderUpdate`
against both pinned schemas with Shopify's rules and scopes; the connector keeps the variant's
expected date metafield (namespace `stocksync`, key `expected_date`, type `date`) while its
offer counts incoming units, deletes it when they are in stock, and calls only on a change;
shop notes are appended to the order's staff note once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest

from connectors import shopify_queries as q
from connectors.base import (
    PAGE_NOT_UPDATED,
    AnnotatesOrders,
    ChannelError,
    OfferPush,
    is_auth_error,
)
from connectors.sandbox.shopify import ShopifySandbox
from connectors.sandbox.shopify_schema import SCHEMA_VERSIONS
from connectors.sandbox.shopify_scopes import DEFAULT_SCOPES
from connectors.shopify import (
    NOTE_PREFIX,
    PAGE_KEY,
    PAGE_NAMESPACE,
    REQUIRED_SCOPES,
    ShopifyChannel,
    missing_scopes,
)
from tests.shopify_support import (
    channel_fixture,
    checkout,
    grant_scopes,
    graphql,
    graphql_data,
    make_channel,
    sandbox_fixture,
    variant_id,
)

ETA = date(2026, 8, 14)
NOTE_SCOPES = (*DEFAULT_SCOPES, "write_orders")


@pytest.fixture
def sandbox() -> Iterator[ShopifySandbox]:
    yield from sandbox_fixture(seed=17)


@pytest.fixture
def shop(sandbox: ShopifySandbox) -> Iterator[ShopifyChannel]:
    yield from channel_fixture(sandbox)


def expected_date(sandbox: ShopifySandbox, sku: str, version: str = "2026-07") -> Any:
    """The variant's metafield as a theme's or app's query reads it."""
    variables = {"id": variant_id(sandbox, sku)}
    body = graphql(sandbox, q.VARIANT_EXPECTED_DATE, variables, version=version).json()
    assert "errors" not in body, body
    return body["data"]["productVariant"]["metafield"]


def set_date(sandbox: ShopifySandbox, owner: str, value: str, **extra: Any) -> dict[str, Any]:
    field = {"ownerId": owner, "namespace": PAGE_NAMESPACE, "key": PAGE_KEY, "value": value}
    body = graphql(sandbox, q.SET_METAFIELDS, {"metafields": [{**field, **extra}]}).json()
    result: dict[str, Any] = body.get("data", {}).get("metafieldsSet") or body
    return result


# -- the sandbox ------------------------------------------------------------------------------
@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
def test_metafields_set_read_and_delete_on_a_variant(sandbox: ShopifySandbox, version: str) -> None:
    owner = variant_id(sandbox, "DEMO-1")
    field = {"ownerId": owner, "namespace": PAGE_NAMESPACE, "key": PAGE_KEY, "type": "date"}
    variables = {"metafields": [{**field, "value": "2026-08-14"}]}
    body = graphql(sandbox, q.SET_METAFIELDS, variables, version=version).json()
    assert body["data"]["metafieldsSet"] == {
        "metafields": [{"namespace": "stocksync", "key": "expected_date", "value": "2026-08-14"}],
        "userErrors": [],
    }
    assert expected_date(sandbox, "DEMO-1", version) == {"type": "date", "value": "2026-08-14"}
    listed = graphql_data(
        sandbox,
        """query($id: ID!) { productVariant(id: $id) {
             metafields(first: 5, namespace: "stocksync") {
               nodes { namespace key type value ownerType compareDigest } } } }""",
        {"id": owner},
    )["productVariant"]["metafields"]["nodes"]
    assert [(n["key"], n["ownerType"]) for n in listed] == [("expected_date", "PRODUCTVARIANT")]
    identifiers = {"metafields": [{"ownerId": owner, "namespace": "stocksync", "key": PAGE_KEY}]}
    gone = graphql(sandbox, q.DELETE_METAFIELDS, identifiers, version=version).json()
    assert gone["data"]["metafieldsDelete"] == {
        "deletedMetafields": [{"ownerId": owner, "namespace": "stocksync", "key": PAGE_KEY}],
        "userErrors": [],
    }
    assert expected_date(sandbox, "DEMO-1", version) is None
    # deleting what is not there succeeds, with null for it
    again = graphql(sandbox, q.DELETE_METAFIELDS, identifiers, version=version).json()
    assert again["data"]["metafieldsDelete"] == {"deletedMetafields": [None], "userErrors": []}


def test_metafields_set_keeps_shopifys_rules(sandbox: ShopifySandbox) -> None:
    owner = variant_id(sandbox, "DEMO-1")
    bad_date = set_date(sandbox, owner, "14/08/2026", type="date")
    [error] = bad_date["userErrors"]
    assert (error["code"], error["field"], error["elementIndex"]) == (
        "INVALID_VALUE", ["metafields", "0", "value"], 0,
    )  # fmt: skip
    assert set_date(sandbox, owner, "2026-08-14")["userErrors"][0]["code"] == "BLANK"  # no type
    missing = set_date(sandbox, "gid://shopify/ProductVariant/999999", "2026-08-14", type="date")
    assert missing["userErrors"][0]["field"] == ["metafields", "0", "ownerId"]
    assert expected_date(sandbox, "DEMO-1") is None  # nothing of a refused call was kept
    # atomic: one bad metafield of two, and neither is set
    good = {"ownerId": owner, "namespace": PAGE_NAMESPACE, "key": PAGE_KEY, "type": "date"}
    two = [{**good, "value": "2026-08-14"}, {**good, "namespace": "x", "value": "2026-08-14"}]
    refused = graphql(sandbox, q.SET_METAFIELDS, {"metafields": two}).json()
    assert refused["data"]["metafieldsSet"]["userErrors"][0]["elementIndex"] == 1
    assert expected_date(sandbox, "DEMO-1") is None
    # once set, the type is the metafield's own: a value alone updates it, a new type is refused
    assert set_date(sandbox, owner, "2026-08-14", type="date")["userErrors"] == []
    assert set_date(sandbox, owner, "2026-09-01")["userErrors"] == []
    assert set_date(sandbox, owner, "soon", type="single_line_text_field")["userErrors"]
    assert expected_date(sandbox, "DEMO-1")["value"] == "2026-09-01"
    too_many = [{**good, "key": f"k{i}", "value": "2026-08-14"} for i in range(26)]
    over = graphql(sandbox, q.SET_METAFIELDS, {"metafields": too_many}).json()
    assert over["data"]["metafieldsSet"]["userErrors"][0]["code"] == "LESS_THAN_OR_EQUAL_TO"


def test_compare_digest_guards_a_concurrent_change(sandbox: ShopifySandbox) -> None:
    owner = variant_id(sandbox, "DEMO-1")
    first = set_date(sandbox, owner, "2026-08-14", type="date", compareDigest=None)
    assert first["userErrors"] == []
    # null: "must not exist yet"
    stale = set_date(sandbox, owner, "2026-08-20", type="date", compareDigest=None)
    assert stale["userErrors"][0]["code"] == "STALE_OBJECT"
    digest = graphql_data(
        sandbox,
        'query($id: ID!) { productVariant(id: $id) { metafield(namespace: "stocksync", '
        'key: "expected_date") { compareDigest } } }',
        {"id": owner},
    )["productVariant"]["metafield"]["compareDigest"]
    assert set_date(sandbox, owner, "2026-08-20", compareDigest=digest)["userErrors"] == []
    assert set_date(sandbox, owner, "2026-08-21", compareDigest=digest)["userErrors"]
    assert expected_date(sandbox, "DEMO-1")["value"] == "2026-08-20"


def test_variant_metafields_need_write_products(sandbox: ShopifySandbox) -> None:
    owner = variant_id(sandbox, "DEMO-1")
    grant_scopes(sandbox, [s for s in DEFAULT_SCOPES if s != "write_products"])
    denied = set_date(sandbox, owner, "2026-08-14", type="date")
    [error] = denied["errors"]
    assert error["extensions"]["code"] == "ACCESS_DENIED" and "`write_products`" in error["message"]
    identifiers = {"metafields": [{"ownerId": owner, "namespace": "stocksync", "key": PAGE_KEY}]}
    gone = graphql(sandbox, q.DELETE_METAFIELDS, identifiers).json()
    assert gone["errors"][0]["extensions"]["code"] == "ACCESS_DENIED"
    # reading a variant's metafields needs only read_products
    assert expected_date(sandbox, "DEMO-1") is None


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
def test_order_update_sets_the_note_and_tells_the_webhooks(
    sandbox: ShopifySandbox, version: str
) -> None:
    grant_scopes(sandbox, NOTE_SCOPES)
    order = checkout(sandbox, {"DEMO-1": 1})
    gid = order["admin_graphql_api_id"]
    sent = len(sandbox.webhook_log)
    noted = {"input": {"id": gid, "note": "fragile"}}
    body = graphql(sandbox, q.SET_ORDER_NOTE, noted, version=version).json()
    assert body["data"]["orderUpdate"] == {
        "order": {"id": gid, "note": "fragile"},
        "userErrors": [],
    }
    assert [w["topic"] for w in sandbox.webhook_log[sent:]] == ["orders/updated"]
    read = graphql(sandbox, q.ORDER_NOTE, {"id": gid}, version=version).json()
    assert read["data"]["order"] == {"id": gid, "note": "fragile"}
    nobody = {"input": {"id": "gid://shopify/Order/1", "note": "x"}}
    unknown = graphql(sandbox, q.SET_ORDER_NOTE, nobody).json()
    assert unknown["data"]["orderUpdate"]["userErrors"][0]["field"] == ["id"]
    # a field the sandbox does not implement is refused, not dropped
    phone = graphql(sandbox, q.SET_ORDER_NOTE, {"input": {"id": gid, "phone": "+15555550100"}})
    assert phone.json()["errors"][0]["extensions"]["code"] == "NOT_IMPLEMENTED"


def test_order_update_needs_write_orders(sandbox: ShopifySandbox) -> None:
    order = checkout(sandbox, {"DEMO-1": 1})
    noted = {"input": {"id": order["admin_graphql_api_id"], "note": "x"}}
    body = graphql(sandbox, q.SET_ORDER_NOTE, noted).json()
    [error] = body["errors"]
    assert error["extensions"]["code"] == "ACCESS_DENIED"
    assert "`write_orders`" in error["message"] and "`write_marketplace_orders`" in error["message"]


# -- the connector: shop pages -----------------------------------------------------------------
def test_a_fresh_app_is_granted_what_shop_pages_need() -> None:
    assert "write_products" in REQUIRED_SCOPES
    assert missing_scopes(DEFAULT_SCOPES) == []


def test_the_expected_date_follows_the_incoming_units(
    sandbox: ShopifySandbox, shop: ShopifyChannel
) -> None:
    pushed = shop.push_offers(
        [OfferPush("DEMO-1", 30, 20, incoming=10, expected_on=ETA), OfferPush("DEMO-2", 20, 20)]
    )
    assert [(r.ok, r.channel_quantity) for r in pushed] == [(True, 30), (True, 20)]
    for version in SCHEMA_VERSIONS:
        assert expected_date(sandbox, "DEMO-1", version) == {"type": "date", "value": "2026-08-14"}
    assert expected_date(sandbox, "DEMO-2") is None
    assert sandbox.available("DEMO-1") == 30  # the quantity is the whole offer
    # the units came in: the date goes
    shown = OfferPush("DEMO-1", 30, 30, expected_on_shown=ETA)
    [arrived] = shop.push_offers([shown])
    assert arrived.ok and expected_date(sandbox, "DEMO-1") is None
    assert sandbox.state_snapshot()["metafields"] == []


def test_a_push_calls_for_the_page_only_when_its_date_changes(
    sandbox: ShopifySandbox, shop: ShopifyChannel
) -> None:
    shop.push_offers(
        [OfferPush("DEMO-1", 30, 20, incoming=10, expected_on=ETA), OfferPush("DEMO-2", 20, 20)]
    )
    calls = shop.transport.calls
    # the daemon remembers the date it gave the page: the same date again makes no page call
    same = OfferPush("DEMO-1", 29, 30, incoming=9, expected_on=ETA, expected_on_shown=ETA)
    [result] = shop.push_offers([same])
    assert result.ok and shop.transport.calls == calls + 1  # inventorySetQuantities only
    [plain] = shop.push_offers([OfferPush("DEMO-2", 19, 20)])  # no date then, none now
    assert plain.ok and shop.transport.calls == calls + 2
    # not known what the page shows (a page write that may have landed): written anew
    unknown = OfferPush("DEMO-1", 29, 29, incoming=9, expected_on=ETA, page_unknown=True)
    [rewritten] = shop.push_offers([unknown])
    assert rewritten.ok and shop.transport.calls == calls + 4
    assert expected_date(sandbox, "DEMO-1")["value"] == "2026-08-14"
    later = date(2026, 9, 1)
    moved = OfferPush("DEMO-1", 29, 29, incoming=9, expected_on=later, expected_on_shown=ETA)
    assert shop.push_offers([moved])[0].ok
    assert expected_date(sandbox, "DEMO-1")["value"] == "2026-09-01"


def test_many_pages_go_25_to_a_call(sandbox: ShopifySandbox, shop: ShopifyChannel) -> None:
    for i in range(30):
        sandbox.set_inventory(f"SKU-{i}", 0)
    pushes = [OfferPush(f"SKU-{i}", 2, 0, incoming=2, expected_on=ETA) for i in range(30)]
    shop.location_id()
    calls = shop.transport.calls
    assert all(r.ok for r in shop.push_offers(pushes))
    # one variant lookup, one quantity call, two metafieldsSet calls (25 + 5)
    assert shop.transport.calls == calls + 4
    assert len(sandbox.state_snapshot()["metafields"]) == 30


def test_a_failed_page_write_is_reported_with_the_quantity_that_landed(
    sandbox: ShopifySandbox, shop: ShopifyChannel, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = shop.transport.execute

    def failing(operation: str, query: str, variables: Any = None, **kw: Any) -> Any:
        if operation == "metafields_set":
            raise ChannelError("shop", operation, "timed out", retryable=True)
        return real(operation, query, variables, **kw)

    monkeypatch.setattr(shop.transport, "execute", failing)
    [result] = shop.push_offers([OfferPush("DEMO-1", 30, 20, incoming=10, expected_on=ETA)])
    assert (result.ok, result.error_code, result.channel_quantity) == (False, PAGE_NOT_UPDATED, 30)
    assert sandbox.available("DEMO-1") == 30


def test_without_write_products_pages_are_left_alone_and_quantities_go_on(
    sandbox: ShopifySandbox, shop: ShopifyChannel, monkeypatch: pytest.MonkeyPatch
) -> None:
    grant_scopes(sandbox, [s for s in DEFAULT_SCOPES if s != "write_products"])
    real, calls = shop.transport.execute, []

    def counted(operation: str, query: str, variables: Any = None, **kw: Any) -> Any:
        calls.append(operation)
        return real(operation, query, variables, **kw)

    monkeypatch.setattr(shop.transport, "execute", counted)
    [result] = shop.push_offers([OfferPush("DEMO-1", 30, 20, incoming=10, expected_on=ETA)])
    assert (result.ok, result.channel_quantity) == (True, 30)  # not held for the page
    assert calls.count("metafields_set") == 1  # refused
    [again] = shop.push_offers([OfferPush("DEMO-1", 31, 30, incoming=11, expected_on=ETA)])
    assert again.ok and sandbox.available("DEMO-1") == 31
    assert calls.count("metafields_set") == 1  # refused once: not tried again by this process
    probe = shop.probe()
    assert "write_products" in probe.facts["missing_scopes"]  # `check --online` names it


# -- the connector: shop notes -------------------------------------------------------------------
def test_a_shop_note_is_appended_to_the_order_note_once(
    sandbox: ShopifySandbox, shop: ShopifyChannel
) -> None:
    assert isinstance(shop, AnnotatesOrders)
    grant_scopes(sandbox, NOTE_SCOPES)
    order = checkout(sandbox, {"DEMO-1": 1})
    gid = order["admin_graphql_api_id"]
    graphql(sandbox, q.SET_ORDER_NOTE, {"input": {"id": gid, "note": "Gift wrap, please"}})
    text = "Your order waits for\nDEMO-1: expected 14 August."
    shop.add_customer_note(str(order["id"]), text)
    shop.add_customer_note(gid, text)  # a retry, by gid: nothing appended twice
    shop.add_customer_note(str(order["id"]), "Shipped today.")
    note = graphql_data(sandbox, q.ORDER_NOTE, {"id": gid})["order"]["note"]
    assert note.splitlines() == [
        "Gift wrap, please",
        f"{NOTE_PREFIX}Your order waits for DEMO-1: expected 14 August.",
        f"{NOTE_PREFIX}Shipped today.",
    ]
    rest = next(o for o in sandbox.state_snapshot()["orders"] if o["id"] == order["id"])
    assert rest["note"] == note  # what the order webhooks carry too
    with pytest.raises(ChannelError) as missing:
        shop.add_customer_note("1", text)
    assert missing.value.code == "NOT_FOUND"


def test_a_shop_note_needs_write_orders(sandbox: ShopifySandbox, shop: ShopifyChannel) -> None:
    order = checkout(sandbox, {"DEMO-1": 1})
    with pytest.raises(ChannelError) as caught:
        shop.add_customer_note(str(order["id"]), "hello")
    assert is_auth_error(caught.value)
    noted = make_channel(sandbox, notes=True)
    assert "write_orders" in noted.probe().facts["missing_scopes"]
    noted.close()
