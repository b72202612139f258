"""Paying for an order on the WooCommerce sandbox, as a customer does at its payment_url, over
real HTTP: the pay page's rules (pending or failed only, stock checked for failed orders alone),
payment_complete moving stock once, customer notes emailed, and orders found by `search`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from woocommerce import API

from connectors.sandbox.woocommerce import WooCommerceSandbox
from connectors.sandbox.woocommerce_store import PaymentRefused
from connectors.signatures import verify
from tests.woocommerce_support import (
    WebhookReceiver,
    flush,
    order_updates,
    receiver_fixture,
    rest_api,
    sandbox_fixture,
    set_faults,
    stock,
)

REQUEST_KEY = "stocksync_request"


def not_payable(status: str) -> str:
    # WC_Shortcode_Checkout::order_pay's notice, entities decoded
    return (
        f"This order\u2019s status is \u201c{status}\u201d\u2014it cannot be paid for."
        " Please contact us if you need assistance."
    )


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    yield from receiver_fixture()


@pytest.fixture
def shop(receiver: WebhookReceiver) -> Iterator[WooCommerceSandbox]:
    yield from sandbox_fixture(receiver, seed=7)


@pytest.fixture
def api(shop: WooCommerceSandbox) -> API:
    return rest_api(shop)


def pending_order(
    api: API, email: str = "buyer@example.com", quantity: int = 2, request: str = "req-1"
) -> dict[str, Any]:
    """A payment request as the campaign code makes one: a pending REST order with our key."""
    (product,) = api.get("products", params={"sku": "DEMO-1"}).json()
    created = api.post(
        "orders",
        {
            "status": "pending",
            "set_paid": False,
            "billing": {"email": email},
            "line_items": [{"product_id": product["id"], "quantity": quantity}],
            "meta_data": [{"key": REQUEST_KEY, "value": request}],
        },
    )
    assert created.status_code == 201, created.text
    order: dict[str, Any] = created.json()
    return order


def pay(shop: WooCommerceSandbox, order: dict[str, Any], **body: Any) -> requests.Response:
    return requests.post(
        f"{shop.url}/_sandbox/orders/{order['id']}/pay",
        json={"key": order["order_key"], **body},
        timeout=10,
    )


def test_pending_rest_order_has_a_payment_url_and_holds_no_stock(
    api: API, shop: WooCommerceSandbox
) -> None:
    order = pending_order(api)
    assert order["status"] == "pending"
    assert order["payment_url"] == (
        f"{shop.url}/checkout/order-pay/{order['id']}/?pay_for_order=true&key={order['order_key']}"
    )
    assert order["needs_payment"] is True
    assert order["needs_processing"] is True
    assert order["is_editable"] is True
    assert order["date_paid"] is None and order["transaction_id"] == ""
    assert order["meta_data"][0]["key"] == REQUEST_KEY
    assert stock(shop, "DEMO-1") == 20
    fetched = api.get(f"orders/{order['id']}").json()
    assert fetched["payment_url"] == order["payment_url"]


def test_paying_moves_to_processing_and_reduces_stock_once(
    api: API, shop: WooCommerceSandbox, receiver: WebhookReceiver
) -> None:
    order = pending_order(api)
    flush(shop.url)
    before = len(order_updates(receiver))
    paid = pay(shop, order)
    assert paid.status_code == 200, paid.text
    body = paid.json()
    assert body["status"] == "processing"
    assert body["date_paid"] is not None and body["date_paid_gmt"] is not None
    assert body["transaction_id"]
    assert body["needs_payment"] is False and body["is_editable"] is False
    assert body["date_modified_gmt"] >= order["date_modified_gmt"]
    assert stock(shop, "DEMO-1") == 18
    assert api.get(f"orders/{order['id']}").json()["status"] == "processing"

    flush(shop.url)
    (hook,) = order_updates(receiver)[before:]  # exactly one, as a status change sends
    assert verify(hook.body, hook.headers["x-wc-webhook-signature"], ["sandbox-secret"])
    assert hook.headers["x-wc-webhook-resource"] == "order"
    delivered = json.loads(hook.body)
    assert (delivered["id"], delivered["status"]) == (order["id"], "processing")
    assert delivered["date_paid_gmt"] == body["date_paid_gmt"]

    again = pay(shop, order)
    assert again.status_code == 409
    assert again.json()["message"] == not_payable("Processing")
    assert again.json()["data"]["status"] == 409
    assert stock(shop, "DEMO-1") == 18  # reduced once
    # completing later does not take the units again either
    assert api.put(f"orders/{order['id']}", {"status": "completed"}).status_code == 200
    assert stock(shop, "DEMO-1") == 18


def test_a_cancelled_order_cannot_be_paid(api: API, shop: WooCommerceSandbox) -> None:
    order = pending_order(api)
    assert api.put(f"orders/{order['id']}", {"status": "cancelled"}).status_code == 200
    refused = pay(shop, order)
    assert refused.status_code == 409
    assert refused.json()["message"] == not_payable("Cancelled")
    assert api.get(f"orders/{order['id']}").json()["status"] == "cancelled"
    assert stock(shop, "DEMO-1") == 20


def test_wrong_key_unknown_order_and_faults(api: API, shop: WooCommerceSandbox) -> None:
    order = pending_order(api)
    wrong = pay(shop, order, key="wc_order_nope")
    assert wrong.status_code == 403
    assert wrong.json()["message"] == "Sorry, this order is invalid and cannot be paid for."
    missing = requests.post(f"{shop.url}/_sandbox/orders/999999/pay", timeout=10)
    assert missing.status_code == 404
    set_faults(shop.url, error_rate=1.0, error_status=503)  # /_sandbox/* is never faulted
    no_body = requests.post(f"{shop.url}/_sandbox/orders/{order['id']}/pay", timeout=10)
    assert no_body.status_code == 200, no_body.text  # the key is optional
    assert no_body.json()["status"] == "processing"


def test_failed_orders_check_stock_and_pending_ones_do_not(
    api: API, shop: WooCommerceSandbox
) -> None:
    failed = pending_order(api, quantity=25, request="req-failed")
    assert api.put(f"orders/{failed['id']}", {"status": "failed"}).status_code == 200
    refused = pay(shop, failed)
    assert refused.status_code == 409
    assert refused.json()["message"] == (
        'Sorry, we do not have enough "Sandbox DEMO-1" in stock to fulfill your order'
        " (20 available). We apologize for any inconvenience caused."
    )
    assert stock(shop, "DEMO-1") == 20
    # a pending order's stock counts as held, so its pay page does not check: it oversells
    pending = pending_order(api, quantity=25, request="req-pending")
    assert pay(shop, pending).status_code == 200
    assert stock(shop, "DEMO-1") == -5


def test_pay_order_in_process(api: API, shop: WooCommerceSandbox) -> None:
    order = pending_order(api)
    paid = shop.pay_order(order["id"], transaction_id="ch_test_1")
    assert (paid["status"], paid["transaction_id"]) == ("processing", "ch_test_1")
    with pytest.raises(PaymentRefused) as refused:
        shop.pay_order(order["id"])
    assert refused.value.status == 409


def test_customer_notes_are_mailed_to_the_billing_email(api: API, shop: WooCommerceSandbox) -> None:
    order = pending_order(api)
    link = f"Pay here: {order['payment_url']}"
    created = api.post(f"orders/{order['id']}/notes", {"note": link, "customer_note": True})
    assert created.status_code == 201 and created.json()["customer_note"] is True
    private = api.post(f"orders/{order['id']}/notes", {"note": "Checked by hand."})
    assert private.status_code == 201 and private.json()["customer_note"] is False
    (mail,) = requests.get(f"{shop.url}/_sandbox/mail", timeout=10).json()
    assert (mail["to"], mail["order_id"], mail["note"]) == ("buyer@example.com", order["id"], link)
    assert mail["sent_at"]
    assert shop.sent_mail() == [mail]
    # WooCommerce sends nothing when the order has no billing email
    (product,) = api.get("products", params={"sku": "DEMO-2"}).json()
    anonymous = api.post("orders", {"line_items": [{"product_id": product["id"]}]}).json()
    api.post(f"orders/{anonymous['id']}/notes", {"note": "Hello", "customer_note": True})
    assert len(shop.sent_mail()) == 1


def test_search_finds_orders_by_billing_email_and_id(api: API, shop: WooCommerceSandbox) -> None:
    mine = pending_order(api, email="buyer@example.com", request="req-a")
    pending_order(api, email="other@example.com", request="req-b")
    found = api.get("orders", params={"search": "buyer@example.com", "per_page": 100}).json()
    assert [o["id"] for o in found] == [mine["id"]]
    assert [o["id"] for o in api.get("orders", params={"search": "BUYER@"}).json()] == [mine["id"]]
    by_id = api.get("orders", params={"search": str(mine["id"])}).json()
    assert [o["id"] for o in by_id] == [mine["id"]]
    assert api.get("orders", params={"search": "nobody@example.com"}).json() == []
    # every sandbox order bills "Sandbox Customer": a name matches them all
    assert len(api.get("orders", params={"search": "sandbox customer"}).json()) == 2


def test_status_filter_takes_a_list_and_refuses_unknown_statuses(
    api: API, shop: WooCommerceSandbox
) -> None:
    first = pending_order(api, request="req-a")
    second = pending_order(api, request="req-b")
    assert pay(shop, second).status_code == 200
    listed = api.get("orders", params={"status": "pending"}).json()
    assert [o["id"] for o in listed] == [first["id"]]
    both = api.get("orders", params={"status": "pending,processing"}).json()
    assert {o["id"] for o in both} == {first["id"], second["id"]}
    assert len(api.get("orders", params={"status": "any"}).json()) == 2
    bogus = api.get("orders", params={"status": "pending,paid"})
    assert bogus.status_code == 400
    assert bogus.json()["code"] == "rest_invalid_param"
    assert bogus.json()["data"]["params"]["status"].startswith("status[1] is not one of any,")
