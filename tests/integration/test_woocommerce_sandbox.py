"""The WooCommerce sandbox over real HTTP, driven by the real `woocommerce` client."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import requests
from woocommerce import API
from woocommerce.oauth import OAuth

from connectors.sandbox.woocommerce import WooCommerceSandbox
from connectors.signatures import verify
from tests.woocommerce_support import (
    WebhookReceiver,
    checkout,
    fixture,
    flush,
    needs_reference,
    receiver_fixture,
    rest_api,
    sandbox_fixture,
    set_faults,
    state,
    stock,
    wait_for,
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


def ids_by_sku(api: API) -> dict[str, dict[str, Any]]:
    found = api.get("products", params={"sku": "DEMO-1,DEMO-2,DEMO-3,DEMO-4,DEMO-5"}).json()
    return {p["sku"]: p for p in found}


# -- auth -----------------------------------------------------------------------------------
def test_unauthenticated_requests_get_woocommerce_401(shop: WooCommerceSandbox) -> None:
    response = requests.get(f"{shop.url}/wp-json/wc/v3/orders", timeout=5)
    assert response.status_code == 401
    assert response.json()["code"] == "woocommerce_rest_authentication_error"
    assert response.json()["data"]["status"] == 401


def test_basic_auth_only_counts_over_https(shop: WooCommerceSandbox) -> None:
    url = f"{shop.url}/wp-json/wc/v3/products"
    creds = ("ck_sandbox", "cs_sandbox")
    assert requests.get(url, auth=creds, timeout=5).status_code == 401
    https = {"X-Forwarded-Proto": "https"}  # as behind a TLS-terminating proxy
    assert requests.get(url, auth=creds, headers=https, timeout=5).status_code == 200
    wrong = ("ck_sandbox", "nope")
    assert requests.get(url, auth=wrong, headers=https, timeout=5).status_code == 401


def test_wrong_secret_and_replayed_nonce_are_refused(shop: WooCommerceSandbox) -> None:
    bad = API(url=shop.url, consumer_key="ck_sandbox", consumer_secret="cs_wrong", version="wc/v3")
    refused = bad.get("products")
    assert refused.status_code == 401
    assert "signature" in refused.json()["message"]
    base = f"{shop.url}/wp-json/wc/v3/products"
    signed = OAuth(
        url=f"{base}?{urlencode({'per_page': 5})}",
        consumer_key="ck_sandbox",
        consumer_secret="cs_sandbox",
        version="wc/v3",
        method="GET",
    ).get_oauth_url()
    assert requests.get(signed, timeout=5).status_code == 200
    replay = requests.get(signed, timeout=5)
    assert replay.status_code == 401
    assert "nonce" in replay.json()["message"]


def test_stale_timestamp_is_refused(shop: WooCommerceSandbox) -> None:
    base = f"{shop.url}/wp-json/wc/v3/products"
    old = OAuth(
        url=base,
        consumer_key="ck_sandbox",
        consumer_secret="cs_sandbox",
        version="wc/v3",
        method="GET",
        oauth_timestamp=int(time.time()) - 600,
    )
    response = requests.get(old.get_oauth_url(), timeout=5)
    assert response.status_code == 401
    assert "timestamp" in response.json()["message"]


# -- shapes and lists -----------------------------------------------------------------------
@needs_reference
def test_responses_carry_the_documented_fields(api: API, shop: WooCommerceSandbox) -> None:
    products = api.get("products", params={"per_page": 100}).json()
    assert set(fixture("product_retrieve.json")) <= set(products[0])
    parent = next(p for p in products if p["type"] == "variable")
    variations = api.get(f"products/{parent['id']}/variations").json()
    assert set(fixture("variation_retrieve.json")) <= set(variations[0])
    order = checkout(shop.url, "DEMO-1", 1).json()
    assert set(fixture("order_retrieve.json")) <= set(order)
    assert set(fixture("order_retrieve.json")["line_items"][0]) <= set(order["line_items"][0])
    note = api.post(f"orders/{order['id']}/notes", {"note": "Order ok!!!"})
    assert note.status_code == 201
    assert set(fixture("order_note_create_response.json")) <= set(note.json())
    hooks = api.get("webhooks").json()
    assert set(fixture("webhook_retrieve.json")) <= set(hooks[0])


def test_products_by_sku_find_variations_too(api: API) -> None:
    found = ids_by_sku(api)
    assert found["DEMO-1"]["type"] == "simple"
    assert found["DEMO-4"]["type"] == "variation"
    assert found["DEMO-4"]["parent_id"] == found["DEMO-5"]["parent_id"] != 0
    plain = api.get("products", params={"per_page": 100}).json()
    assert "variation" not in {p["type"] for p in plain}


def test_pagination_headers_and_limits(api: API, shop: WooCommerceSandbox) -> None:
    for _ in range(5):
        assert checkout(shop.url, "DEMO-2", 1).status_code == 201
    page = api.get("orders", params={"per_page": 2, "page": 3})
    assert page.headers["X-WP-Total"] == "5"
    assert page.headers["X-WP-TotalPages"] == "3"
    assert len(page.json()) == 1
    too_many = api.get("orders", params={"per_page": 101})
    assert too_many.status_code == 400
    assert too_many.json()["code"] == "rest_invalid_param"
    beyond = api.get("orders", params={"per_page": 2, "page": 4})
    assert beyond.status_code == 400
    assert beyond.json()["code"] == "rest_post_invalid_page_number"


def test_modified_after_reads_gmt_only_when_told(api: API, shop: WooCommerceSandbox) -> None:
    order = checkout(shop.url, "DEMO-2", 1).json()
    gmt = order["date_modified_gmt"]
    # one hour before in GMT is three hours after on the shop's local clock (UTC-3)
    earlier = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 3600))
    found = api.get("orders", params={"modified_after": earlier, "dates_are_gmt": "true"})
    assert [o["id"] for o in found.json()] == [order["id"]]
    assert api.get("orders", params={"modified_after": earlier}).json() == []
    assert api.get("orders", params={"modified_after": gmt, "dates_are_gmt": "true"}).json() == []


def test_unknown_route_and_id(api: API) -> None:
    missing = api.get("coupons")
    assert missing.status_code == 404
    assert missing.json()["code"] == "rest_no_route"
    assert api.get("orders/999999").json()["code"] == "woocommerce_rest_shop_order_invalid_id"


@needs_reference
def test_unknown_route_body_is_the_documented_one(api: API) -> None:
    assert api.get("coupons").json() == fixture("error_wp_rest_no_route.json")


# -- stock rules ----------------------------------------------------------------------------
def test_status_moves_stock_once(api: API, shop: WooCommerceSandbox) -> None:
    order = checkout(shop.url, "DEMO-1", 3).json()
    assert order["status"] == "processing"
    assert stock(shop, "DEMO-1") == 17
    for status, expected in [
        ("on-hold", 17),  # still reduced, not again
        ("processing", 17),
        ("cancelled", 20),  # restored
        ("cancelled", 20),
        ("completed", 17),  # reduced again, once
        ("pending", 20),  # pending gives units back
        ("failed", 20),
    ]:
        response = api.put(f"orders/{order['id']}", {"status": status})
        assert response.status_code == 200, response.text
        assert stock(shop, "DEMO-1") == expected, status


def test_rest_orders_start_pending_and_reduce_when_paid(api: API, shop: WooCommerceSandbox) -> None:
    created = api.post(
        "orders",
        {"line_items": [{"sku": "DEMO-5", "quantity": 2}], "billing": {"email": "x@example.com"}},
    )
    assert created.status_code == 201
    assert created.json()["status"] == "pending"
    assert stock(shop, "DEMO-5") == 20
    line = created.json()["line_items"][0]
    assert line["variation_id"] != 0 and line["sku"] == "DEMO-5"
    api.put(f"orders/{created.json()['id']}", {"set_paid": True})
    assert stock(shop, "DEMO-5") == 18


def test_stock_is_set_absolutely_and_variations_need_manage_stock(api: API) -> None:
    found = ids_by_sku(api)
    simple, variation = found["DEMO-1"], found["DEMO-4"]
    assert api.put(f"products/{simple['id']}", {"stock_quantity": 7}).json()["stock_quantity"] == 7
    path = f"products/{variation['parent_id']}/variations/{variation['id']}"
    ignored = api.put(path, {"stock_quantity": 3}).json()
    assert ignored["stock_quantity"] == 20
    taken = api.put(path, {"stock_quantity": 3, "manage_stock": True}).json()
    assert taken["stock_quantity"] == 3


def test_batch_limit_and_per_item_errors(api: API) -> None:
    found = ids_by_sku(api)
    too_big = api.post("products/batch", {"update": [{"id": 1}] * 101})
    assert too_big.status_code == 413
    assert too_big.json()["code"] == "rest_request_entity_too_large"
    mixed = api.post(
        "products/batch",
        {
            "update": [
                {"id": found["DEMO-1"]["id"], "manage_stock": True, "stock_quantity": 4},
                {"id": 99999, "stock_quantity": 1},
                {"id": found["DEMO-2"]["id"], "stock_quantity": "many"},
            ]
        },
    )
    assert mixed.status_code == 200
    first, unknown, bad = mixed.json()["update"]
    assert first["stock_quantity"] == 4
    assert unknown["error"]["code"] == "woocommerce_rest_product_invalid_id"
    assert bad["error"]["code"] == "rest_invalid_param"
    parent = found["DEMO-4"]["parent_id"]
    variations = api.post(
        f"products/{parent}/variations/batch",
        {
            "update": [
                {"id": found["DEMO-4"]["id"], "manage_stock": True, "stock_quantity": 9},
            ]
        },
    )
    assert variations.json()["update"][0]["stock_quantity"] == 9


def test_checkout_refuses_beyond_stock_unless_backorders(
    api: API, shop: WooCommerceSandbox
) -> None:
    refused = checkout(shop.url, "DEMO-3", 21)
    assert refused.status_code == 409
    assert refused.json()["data"]["shortages"] == [
        {"sku": "DEMO-3", "requested": 21, "available": 20}
    ]
    two_lines = requests.post(
        f"{shop.url}/_sandbox/checkout",
        timeout=5,
        json={"lines": [{"sku": "DEMO-3", "quantity": 15}, {"sku": "DEMO-3", "quantity": 6}]},
    )
    assert two_lines.status_code == 409
    product = ids_by_sku(api)["DEMO-3"]
    api.put(f"products/{product['id']}", {"backorders": "notify"})
    assert checkout(shop.url, "DEMO-3", 21).status_code == 201
    assert stock(shop, "DEMO-3") == -1
    assert (
        requests.post(f"{shop.url}/_sandbox/checkout", json={"sku": "NOPE"}, timeout=5).status_code
        == 400
    )


# -- webhooks -------------------------------------------------------------------------------
def test_pings_then_signed_order_webhooks(
    api: API, shop: WooCommerceSandbox, receiver: WebhookReceiver
) -> None:
    order = checkout(shop.url, "DEMO-4", 2).json()
    api.put(f"orders/{order['id']}", {"status": "cancelled"})
    flush(shop.url)
    wait_for(lambda: len(receiver.received) >= 4)
    first, second = receiver.received[:2]
    assert {first.body, second.body} == {b"webhook_id=1", b"webhook_id=2"}
    assert not any(k.lower().startswith("x-wc-") for k in first.headers)
    created, updated = receiver.events()
    assert created.headers["x-wc-webhook-topic"] == "order.created"
    assert updated.headers["x-wc-webhook-topic"] == "order.updated"
    for delivery in (created, updated):
        headers = delivery.headers
        assert verify(delivery.body, headers["x-wc-webhook-signature"], ["sandbox-secret"])
        assert headers["x-wc-webhook-resource"] == "order"
        assert headers["x-wc-webhook-source"] == f"{shop.url}/"
        assert len(headers["x-wc-webhook-delivery-id"]) == 32
        assert headers["x-wc-webhook-id"] in ("1", "2")
    assert json.loads(updated.body)["status"] == "cancelled"
    assert json.loads(created.body)["line_items"][0]["sku"] == "DEMO-4"


def test_webhook_is_disabled_after_five_failures(
    shop: WooCommerceSandbox, receiver: WebhookReceiver
) -> None:
    flush(shop.url)
    receiver.status = 500
    for _ in range(5):
        assert checkout(shop.url, "DEMO-2", 1).status_code == 201
    flush(shop.url)
    hooks = {h["topic"]: h for h in state(shop.url)["webhooks"]}
    assert hooks["order.created"]["status"] == "disabled"
    assert hooks["order.created"]["failure_count"] == 5
    assert hooks["order.updated"]["status"] == "active"
    before = len(receiver.received)
    checkout(shop.url, "DEMO-2", 1)
    flush(shop.url)
    assert len(receiver.received) == before  # no more deliveries once disabled


def test_faults_shape_errors_like_woocommerce(api: API, shop: WooCommerceSandbox) -> None:
    set_faults(shop.url, error_rate=1.0, error_status=429)
    limited = api.get("products")
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "1"
    assert limited.json()["data"]["status"] == 429
    assert checkout(shop.url, "DEMO-1", 1).status_code == 201  # /_sandbox/* is never faulted


def test_cli_main_prints_the_url_first(tmp_path: Any) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps({"SKU-A": 4}))
    code = (
        "import sys; from connectors.sandbox.woocommerce import main; sys.exit(main(sys.argv[1:]))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "--port", "0", "--seed", str(seed)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert urlsplit(url).scheme == "http"
        assert state(url)["stock"] == {"SKU-A": 4}
        api = API(url=url, consumer_key="ck_sandbox", consumer_secret="cs_sandbox", version="wc/v3")
        assert api.get("products", params={"sku": "SKU-A"}).json()[0]["stock_quantity"] == 4
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_query_values_signed_through_params(api: API) -> None:
    # the package appends params twice (signed URL and requests' params); both must agree
    response = api.get("orders", params={"status": "processing,on-hold", "per_page": 100})
    assert response.status_code == 200
    sent = dict(parse_qsl(urlsplit(response.url).query))
    assert sent["status"] == "processing,on-hold"
