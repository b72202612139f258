"""Order refunds on the WooCommerce sandbox over real HTTP, as wc/v3 and wc_create_refund have
them: checked against the amount left only, restocking what they name, 500s with bare data."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from woocommerce import API

from connectors.sandbox.woocommerce import WooCommerceSandbox
from connectors.signatures import verify
from tests.shared_fixtures import require_shared
from tests.woocommerce_support import (
    WebhookReceiver,
    checkout,
    flush,
    order_updates,
    receiver_fixture,
    rest_api,
    sandbox_fixture,
    state,
    stock,
    wait_for,
)

NO_GATEWAY = {"api_refund": False}  # sandbox orders are paid by bacs, which cannot refund


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    yield from receiver_fixture()


@pytest.fixture
def shop(receiver: WebhookReceiver) -> Iterator[WooCommerceSandbox]:
    yield from sandbox_fixture(receiver, seed=7)


@pytest.fixture
def api(shop: WooCommerceSandbox) -> API:
    return rest_api(shop)


def age(shop: WooCommerceSandbox, order_id: int) -> str:
    """Move the order's date_modified an hour back (dates have one-second resolution)."""
    with shop.lock:
        shop.store.orders[order_id].modified -= timedelta(hours=1)
    (value,) = [o["date_modified_gmt"] for o in state(shop.url)["orders"] if o["id"] == order_id]
    return str(value)


def refund(api: API, order: dict[str, Any], quantity: int, amount: str, **extra: Any) -> Any:
    line = order["line_items"][0]
    body = {
        "amount": amount,
        "reason": "Damaged in transit",
        "line_items": [{"id": line["id"], "quantity": quantity, "refund_total": float(amount)}],
        **NO_GATEWAY,
        **extra,
    }
    return api.post(f"orders/{order['id']}/refunds", body)


def test_partial_refund_restocks_and_updates_the_order(
    api: API, shop: WooCommerceSandbox, receiver: WebhookReceiver
) -> None:
    order = checkout(shop.url, "DEMO-1", 3).json()
    line = order["line_items"][0]
    assert stock(shop, "DEMO-1") == 17
    before = age(shop, order["id"])

    created = refund(api, order, 2, "20.00")
    assert created.status_code == 201, created.text
    body = created.json()
    assert created.headers["Location"].endswith(f"/orders/{order['id']}/refunds/{body['id']}")
    assert body["amount"] == "20.00" and body["reason"] == "Damaged in transit"
    assert body["refunded_by"] == 1 and body["refunded_payment"] is False
    (refunded,) = body["line_items"]
    assert refunded["id"] != line["id"]
    assert (refunded["product_id"], refunded["variation_id"]) == (line["product_id"], 0)
    assert (refunded["quantity"], refunded["total"], refunded["subtotal"]) == (
        -2,
        "-20.00",
        "-20.00",
    )
    assert refunded["sku"] == "DEMO-1" and refunded["price"] == 10.0
    (meta,) = refunded["meta_data"]
    assert meta["key"] == "_refunded_item_id" and meta["value"] == str(line["id"])

    assert stock(shop, "DEMO-1") == 19  # two units back on the shelf
    assert api.get(f"orders/{order['id']}/refunds").json() == [body]
    assert api.get(f"orders/{order['id']}/refunds/{body['id']}").json() == body

    after = api.get(f"orders/{order['id']}").json()
    assert after["refunds"] == [
        {"id": body["id"], "reason": "Damaged in transit", "total": "-20.00"}
    ]
    assert after["line_items"][0]["quantity"] == 3  # WooCommerce keeps the ordered quantity
    assert after["status"] == "processing" and after["total"] == "30.00"
    assert after["date_modified_gmt"] > before

    flush(shop.url)
    wait_for(lambda: len(order_updates(receiver)) == 1)
    (hook,) = order_updates(receiver)
    assert verify(hook.body, hook.headers["x-wc-webhook-signature"], ["sandbox-secret"])
    delivered = json.loads(hook.body)
    assert delivered["refunds"] == after["refunds"]
    assert delivered["date_modified_gmt"] == after["date_modified_gmt"]

    (snapshot,) = state(shop.url)["orders"]
    (kept,) = snapshot["lines"]
    assert (kept["quantity"], kept["reduced"], kept["refunded"], kept["restocked"]) == (3, 1, 2, 2)
    (summary,) = snapshot["refunds"]
    assert summary["amount"] == "20.00" and summary["lines"] == {str(line["id"]): 2}
    note = f"Item #{line['product_id']} stock increased from 17 to 19."
    assert snapshot["notes"][-1]["note"] == note


def test_refund_shapes_match_the_published_payloads(api: API, shop: WooCommerceSandbox) -> None:
    folder = require_shared("fixtures/real-payloads/woocommerce", "refund shapes compare with it")
    published = json.loads((folder / "x03-560-refunds.json").read_text(encoding="utf-8"))[0]
    order_body = json.loads(
        (folder / "w06-560-processing-partially-refunded.json").read_text(encoding="utf-8")
    )
    order = checkout(shop.url, "DEMO-2", 2).json()
    ours = refund(api, order, 1, "10.00").json()
    assert set(published) <= set(ours)
    assert set(published["line_items"][0]) <= set(ours["line_items"][0])
    assert set(published["line_items"][0]["meta_data"][0]) == set(
        ours["line_items"][0]["meta_data"][0]
    )
    assert set(published["_links"]) == set(ours["_links"])
    listed = api.get(f"orders/{order['id']}").json()["refunds"]
    assert [set(r) for r in listed] == [set(order_body["refunds"][0])]


def test_refunds_list_newest_first_and_page(api: API, shop: WooCommerceSandbox) -> None:
    order = checkout(shop.url, "DEMO-2", 5).json()
    first = refund(api, order, 1, "10.00").json()
    second = refund(api, order, 2, "20.00").json()
    listed = api.get(f"orders/{order['id']}/refunds").json()
    assert [r["id"] for r in listed] == [second["id"], first["id"]]
    page = api.get(f"orders/{order['id']}/refunds", params={"per_page": 1, "page": 2})
    assert page.headers["X-WP-Total"] == "2" and page.headers["X-WP-TotalPages"] == "2"
    assert [r["id"] for r in page.json()] == [first["id"]]
    body = api.get(f"orders/{order['id']}").json()
    assert [r["id"] for r in body["refunds"]] == [second["id"], first["id"]]
    assert stock(shop, "DEMO-2") == 18  # 20 - 5 + 1 + 2


def test_over_refund_is_refused_and_changes_nothing(
    api: API, shop: WooCommerceSandbox, receiver: WebhookReceiver
) -> None:
    order = checkout(shop.url, "DEMO-2", 2).json()
    assert refund(api, order, 1, "15.00").status_code == 201
    before = age(shop, order["id"])
    flush(shop.url)
    seen = len(order_updates(receiver))
    snapshot = state(shop.url)

    # WooCommerce checks the amount left (5.00), so both the stated and the summed one fail
    stated = refund(api, order, 1, "10.00")
    line = order["line_items"][0]
    summed = api.post(
        f"orders/{order['id']}/refunds",
        {"line_items": [{"id": line["id"], "quantity": 2, "refund_total": 20}], **NO_GATEWAY},
    )
    for refused in (stated, summed):
        assert refused.status_code == 500  # a WP_Error with bare data: WordPress answers 500
        assert refused.json() == {
            "code": "woocommerce_rest_cannot_create_order_refund",
            "message": "Invalid refund amount.",
            "data": 500,
        }
    assert state(shop.url) == snapshot
    assert len(api.get(f"orders/{order['id']}/refunds").json()) == 1
    assert api.get(f"orders/{order['id']}").json()["date_modified_gmt"] == before
    flush(shop.url)
    assert len(order_updates(receiver)) == seen


def test_full_refund_sets_status_refunded(
    api: API, shop: WooCommerceSandbox, receiver: WebhookReceiver
) -> None:
    order = checkout(shop.url, "DEMO-3", 2).json()
    assert stock(shop, "DEMO-3") == 18
    assert refund(api, order, 2, "20.00").status_code == 201
    after = api.get(f"orders/{order['id']}").json()
    assert after["status"] == "refunded"
    assert after["line_items"][0]["quantity"] == 2
    assert stock(shop, "DEMO-3") == 20
    flush(shop.url)
    wait_for(lambda: len(order_updates(receiver)) == 1)
    assert json.loads(order_updates(receiver)[0].body)["status"] == "refunded"
    assert refund(api, order, 0, "0.01").json()["message"] == "Invalid refund amount."


def test_the_full_amount_refunds_the_order_even_without_lines(
    api: API, shop: WooCommerceSandbox
) -> None:
    # "fully refunded" is by amount, not units; without lines nothing is restocked
    order = checkout(shop.url, "DEMO-3", 2).json()
    made = api.post(f"orders/{order['id']}/refunds", {"amount": "20.00", **NO_GATEWAY})
    assert made.status_code == 201 and made.json()["line_items"] == []
    assert api.get(f"orders/{order['id']}").json()["status"] == "refunded"
    assert stock(shop, "DEMO-3") == 18


def test_every_unit_for_less_than_the_total_stays_partial(
    api: API, shop: WooCommerceSandbox
) -> None:
    order = checkout(shop.url, "DEMO-3", 2).json()
    assert refund(api, order, 2, "5.00").status_code == 201
    assert api.get(f"orders/{order['id']}").json()["status"] == "processing"
    assert stock(shop, "DEMO-3") == 20


def test_restocking_follows_api_restock_not_restock_items(
    api: API, shop: WooCommerceSandbox
) -> None:
    order = checkout(shop.url, "DEMO-1", 4).json()
    assert refund(api, order, 1, "10.00", api_restock=False).status_code == 201
    assert stock(shop, "DEMO-1") == 16
    # restock_items is wc_create_refund's argument, not the REST API's: it is ignored
    assert refund(api, order, 1, "10.00", restock_items=False).status_code == 201
    assert stock(shop, "DEMO-1") == 17
    assert refund(api, order, 1, "10.00", api_restock="maybe").status_code == 400


def test_variation_and_unreduced_lines(api: API, shop: WooCommerceSandbox) -> None:
    order = checkout(shop.url, "DEMO-4", 3).json()
    body = refund(api, order, 1, "10.00").json()
    assert body["line_items"][0]["variation_id"] == order["line_items"][0]["variation_id"] != 0
    assert stock(shop, "DEMO-4") == 18
    # a pending order never reduced stock, so its refund gives nothing back
    pending = api.post("orders", {"line_items": [{"sku": "DEMO-5", "quantity": 2}]}).json()
    assert refund(api, pending, 2, "20.00").status_code == 201
    assert stock(shop, "DEMO-5") == 20


def test_lines_woocommerce_ignores(api: API, shop: WooCommerceSandbox) -> None:
    # an id not on the order and an empty line are skipped, as wc_create_refund skips them
    order = checkout(shop.url, "DEMO-1", 2).json()
    line = order["line_items"][0]
    made = api.post(
        f"orders/{order['id']}/refunds",
        {
            "amount": "1.00",
            "line_items": [
                {"id": 999999, "quantity": 1, "refund_total": 1},
                {"id": line["id"], "quantity": 0, "refund_total": 0},
            ],
            **NO_GATEWAY,
        },
    )
    assert made.status_code == 201 and made.json()["line_items"] == []
    assert stock(shop, "DEMO-1") == 18


def test_refund_errors_are_shaped_like_woocommerce(api: API, shop: WooCommerceSandbox) -> None:
    order = checkout(shop.url, "DEMO-1", 1).json()
    other = checkout(shop.url, "DEMO-2", 1).json()
    flush(shop.url)
    snapshot = state(shop.url)

    gateway = api.post(f"orders/{order['id']}/refunds", {"amount": "1.00"})  # api_refund: true
    assert gateway.status_code == 500
    assert gateway.json()["message"] == (
        "The payment gateway for this order does not support automatic refunds."
    )
    number = api.post(f"orders/{order['id']}/refunds", {"amount": 1, **NO_GATEWAY})
    assert number.status_code == 400
    assert number.json()["data"]["params"] == {"amount": "amount is not of type string."}
    negative = api.post(f"orders/{order['id']}/refunds", {"amount": "-1", **NO_GATEWAY})
    assert (negative.status_code, negative.json()["code"], negative.json()["data"]) == (
        500,
        "woocommerce_rest_invalid_order_refund",
        400,
    )
    unknown = api.post("orders/999999/refunds", {"amount": "1.00", **NO_GATEWAY})
    assert (unknown.status_code, unknown.json()) == (
        500,
        {"code": "woocommerce_rest_invalid_order_id", "message": "Invalid order ID.", "data": 404},
    )
    flush(shop.url)
    assert state(shop.url) == snapshot  # no refund, no webhook

    made = refund(api, order, 1, "10.00").json()
    assert api.get("orders/999999/refunds").json() == []  # a query by parent: empty, not 404
    missing = api.get(f"orders/{order['id']}/refunds/999999")
    assert (missing.status_code, missing.json()["code"]) == (
        404,
        "woocommerce_rest_shop_order_refund_invalid_id",
    )
    elsewhere = api.get(f"orders/{other['id']}/refunds/{made['id']}")
    assert (elsewhere.status_code, elsewhere.json()["code"]) == (
        500,
        "woocommerce_rest_invalid_order_refund_id",
    )
    assert api.get(f"orders/{made['id']}").status_code == 404  # a refund is no order


def test_status_refunded_by_hand_refunds_what_is_left(api: API, shop: WooCommerceSandbox) -> None:
    order = checkout(shop.url, "DEMO-2", 3).json()
    first = refund(api, order, 1, "10.00").json()
    api.put(f"orders/{order['id']}", {"status": "refunded"})
    body = api.get(f"orders/{order['id']}").json()
    assert body["status"] == "refunded"
    rest, earlier = body["refunds"]
    assert earlier["id"] == first["id"]
    assert (rest["reason"], rest["total"]) == ("Order fully refunded.", "-20.00")
    assert api.get(f"orders/{order['id']}/refunds/{rest['id']}").json()["line_items"] == []
    assert stock(shop, "DEMO-2") == 18  # wc_order_fully_refunded restocks nothing
