"""WooCommerceChannel against the WooCommerce sandbox, over real HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from connectors.base import (
    POLL_TOPIC,
    BackorderHold,
    Channel,
    ChannelError,
    Listing,
    OfferPush,
    OrderStatus,
)
from connectors.sandbox.woocommerce import WooCommerceSandbox
from connectors.woocommerce import WooCommerceChannel
from tests.woocommerce_support import (
    WebhookReceiver,
    checkout,
    flush,
    receiver_fixture,
    sandbox_fixture,
    set_faults,
    state,
    wait_for,
    woo_channel,
)

EPOCH = datetime(2020, 1, 1, tzinfo=UTC)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    yield from receiver_fixture()


@pytest.fixture
def shop(receiver: WebhookReceiver) -> Iterator[WooCommerceSandbox]:
    yield from sandbox_fixture(receiver, seed=3)


def make_channel(shop: WooCommerceSandbox, **options: float) -> WooCommerceChannel:
    return woo_channel(
        shop,
        webhook_secrets=["old-secret", "sandbox-secret"],
        timeout=float(options.get("timeout", 5.0)),
        max_attempts=int(options.get("max_attempts", 5)),
        backoff=float(options.get("backoff", 0.01)),
    )


@pytest.fixture
def channel(shop: WooCommerceSandbox) -> WooCommerceChannel:
    return make_channel(shop)


def calls(shop: WooCommerceSandbox, key: str) -> int:
    return sum(n for k, n in shop.request_count.items() if k.startswith(key))


def test_satisfies_the_channel_protocol(channel: WooCommerceChannel) -> None:
    assert isinstance(channel, Channel)


def test_fetch_listings_finds_products_and_variations(
    channel: WooCommerceChannel, shop: WooCommerceSandbox
) -> None:
    found = channel.fetch_listings(["DEMO-1", "DEMO-4", "NOPE"])
    assert set(found) == {"DEMO-1", "DEMO-4"}
    assert set(found["DEMO-1"].external_ids) == {"product_id"}
    variation = found["DEMO-4"].external_ids
    assert set(variation) == {"product_id", "variation_id"}
    product = shop.store.products[int(variation["variation_id"])]
    assert str(product.parent_id) == variation["product_id"]
    assert found["DEMO-1"].quantity == found["DEMO-4"].quantity == 20


def test_webhooks_verify_and_parse_end_to_end(
    channel: WooCommerceChannel, shop: WooCommerceSandbox, receiver: WebhookReceiver
) -> None:
    placed = checkout(shop.url, "DEMO-5", 2, email="buyer@example.com").json()
    flush(shop.url)
    wait_for(lambda: len(receiver.received) >= 3)
    pings = [r for r in receiver.received if r.body.startswith(b"webhook_id=")]
    assert [channel.verify_webhook(p.headers, p.body) for p in pings] == [None, None]
    (delivery,) = receiver.events()
    event = channel.verify_webhook(delivery.headers, delivery.body)
    assert event is not None and event.topic == "order.created"
    order = channel.parse_order(event.topic, event.body)
    assert order.external_id == str(placed["id"])
    assert order.status is OrderStatus.OPEN
    assert order.customer_key == "buyer@example.com"
    assert [(li.sku, li.quantity) for li in order.lines] == [("DEMO-5", 2)]
    # the poll of the same version shares the webhook's key, so the inbox keeps one
    polled = list(channel.pull_orders(EPOCH))
    assert [p.event_key for p in polled] == [event.event_key]


def test_pull_orders_pages_oldest_first(
    channel: WooCommerceChannel, shop: WooCommerceSandbox
) -> None:
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    with shop.lock:
        for index in range(230):
            order = shop.store.create_order(
                lines=[{"sku": "DEMO-1", "quantity": 1}],
                status="pending",
                email=f"c{index}@example.com",
                created_via="rest-api",
                now=base,
            )
            # 150 orders share one second: a whole page inside it must still be read
            order.modified = base + timedelta(seconds=0 if index < 150 else index)
    polled = list(channel.pull_orders(base - timedelta(seconds=1)))
    assert len(polled) == 230
    assert len({p.order.external_id for p in polled}) == 230
    stamps = [p.order.updated_at for p in polled]
    assert stamps == sorted(stamps)
    first = polled[0]
    assert channel.parse_order(POLL_TOPIC, first.body) == first.order
    assert first.order.status is OrderStatus.CANCELLED  # pending holds no stock
    later = list(channel.pull_orders(base + timedelta(seconds=200)))
    assert len(later) == 29


def test_push_writes_decreases_and_refuses_stale_raises(
    channel: WooCommerceChannel, shop: WooCommerceSandbox
) -> None:
    channel.fetch_listings(["DEMO-1", "DEMO-2", "DEMO-4"])
    checkout(shop.url, "DEMO-2", 3)  # a sale since our read: the shop now holds 17
    results = channel.push_offers(
        [
            OfferPush("DEMO-1", 12, last_seen=20),  # decrease
            OfferPush("DEMO-2", 19, last_seen=20),  # raise on stale data
            OfferPush("DEMO-4", 25, last_seen=20),  # raise, nothing sold: fine
            OfferPush("GHOST", 1, last_seen=None),
        ]
    )
    by_sku = {r.sku: r for r in results}
    assert [r.sku for r in results] == ["DEMO-1", "DEMO-2", "DEMO-4", "GHOST"]
    assert by_sku["DEMO-1"].ok and by_sku["DEMO-1"].channel_quantity == 12
    assert not by_sku["DEMO-2"].ok and by_sku["DEMO-2"].error_code == "STALE"
    assert by_sku["DEMO-2"].channel_quantity == 17
    assert by_sku["DEMO-4"].ok and by_sku["DEMO-4"].channel_quantity == 25
    assert by_sku["GHOST"].error_code == "UNKNOWN_SKU"
    assert state(shop.url)["stock"] == {
        "DEMO-1": 12,
        "DEMO-2": 17,
        "DEMO-3": 20,
        "DEMO-4": 25,
        "DEMO-5": 20,
    }
    # a decrease below a stale read is still written
    (lower,) = channel.push_offers([OfferPush("DEMO-2", 5, last_seen=20)])
    assert lower.ok and lower.channel_quantity == 5


def test_push_sets_manage_stock_on_variations(
    channel: WooCommerceChannel, shop: WooCommerceSandbox
) -> None:
    variation = next(p for p in shop.store.products.values() if p.sku == "DEMO-5")
    with shop.lock:
        variation.manage_stock = False  # a merchant switched stock management off
        variation.stock_quantity = None
    (result,) = channel.push_offers([OfferPush("DEMO-5", 8, last_seen=None)])
    assert result.ok and result.channel_quantity == 8
    assert variation.manage_stock is True


def test_push_batches_at_100_and_reports_item_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    catalog = {f"SKU-{i:03d}": 50 for i in range(150)}
    with WooCommerceSandbox(catalog=catalog) as shop:
        channel = make_channel(shop)
        channel.fetch_listings(list(catalog))
        reread = channel._reread

        def reread_then_delete(listings: list[Listing]) -> dict[str, int | None]:
            current = reread(listings)
            with shop.lock:  # the merchant deletes a product between our read and our write
                gone = next(p for p in shop.store.products.values() if p.sku == "SKU-007")
                del shop.store.products[gone.id]
            return current

        monkeypatch.setattr(channel, "_reread", reread_then_delete)
        results = channel.push_offers([OfferPush(s, 10, last_seen=50) for s in catalog])
        assert calls(shop, "POST /wp-json/wc/v3/products/batch") == 2
        failed = [r for r in results if not r.ok]
        assert [(r.sku, r.error_code) for r in failed] == [
            ("SKU-007", "woocommerce_rest_product_invalid_id")
        ]
        assert sum(r.ok for r in results) == 149
        monkeypatch.undo()
        (again,) = channel.push_offers([OfferPush("SKU-007", 10, last_seen=50)])
        assert again.error_code == "NOT_FOUND"  # and forgotten: the next push looks it up
        (third,) = channel.push_offers([OfferPush("SKU-007", 10, last_seen=50)])
        assert third.error_code == "UNKNOWN_SKU"


def test_push_reports_listings_gone_since_cached(
    channel: WooCommerceChannel, shop: WooCommerceSandbox
) -> None:
    channel.fetch_listings(["DEMO-3"])
    with shop.lock:
        gone = next(p for p in shop.store.products.values() if p.sku == "DEMO-3")
        del shop.store.products[gone.id]
    (result,) = channel.push_offers([OfferPush("DEMO-3", 1, last_seen=20)])
    assert result.error_code == "NOT_FOUND"


def test_hold_and_release_backorder(channel: WooCommerceChannel, shop: WooCommerceSandbox) -> None:
    placed = checkout(shop.url, "DEMO-4", 3).json()
    line = str(placed["line_items"][0]["id"])
    hold = BackorderHold(str(placed["id"]), {line: 2})
    channel.place_hold(hold)
    channel.place_hold(hold)  # idempotent
    (order,) = state(shop.url)["orders"]
    assert order["status"] == "on-hold"
    assert json.loads(order["meta"]["_stocksync_backorder"]) == {line: 2}
    assert len(order["notes"]) == 1 and order["notes"][0]["customer_note"] is True
    assert "DEMO-4 x 2" in order["notes"][0]["note"]
    assert state(shop.url)["stock"]["DEMO-4"] == 17  # on-hold did not reduce again
    channel.lift_hold(hold)
    channel.lift_hold(hold)
    (order,) = state(shop.url)["orders"]
    assert order["status"] == "processing"
    assert json.loads(order["meta"]["_stocksync_backorder"]) == {}
    assert len(order["notes"]) == 2
    assert state(shop.url)["stock"]["DEMO-4"] == 17


def test_hold_refuses_a_cancelled_order(
    channel: WooCommerceChannel, shop: WooCommerceSandbox
) -> None:
    placed = checkout(shop.url, "DEMO-1", 1).json()
    channel._call("cancel", "PUT", f"orders/{placed['id']}", data={"status": "cancelled"})
    with pytest.raises(ChannelError) as caught:
        channel.place_hold(BackorderHold(str(placed["id"]), {"1": 1}))
    assert caught.value.code == "order_not_open" and not caught.value.retryable


# -- faults ---------------------------------------------------------------------------------
def test_transient_5xx_are_retried_through(shop: WooCommerceSandbox) -> None:
    set_faults(shop.url, error_rate=0.5, error_status=503, seed=11)
    channel = make_channel(shop, max_attempts=10)
    found = channel.fetch_listings(["DEMO-1", "DEMO-2", "DEMO-3", "DEMO-4"])
    assert len(found) == 4
    (result,) = channel.push_offers([OfferPush("DEMO-3", 4, last_seen=20)])
    assert result.ok


def test_persistent_5xx_surfaces_as_retryable(shop: WooCommerceSandbox) -> None:
    set_faults(shop.url, error_rate=1.0, error_status=502)
    with pytest.raises(ChannelError) as caught:
        make_channel(shop, max_attempts=3).fetch_listings(["DEMO-1"])
    assert caught.value.retryable and caught.value.status == 502
    assert calls(shop, "GET /wp-json/wc/v3/products") == 3


def test_413_is_not_retried(shop: WooCommerceSandbox) -> None:
    set_faults(shop.url, error_rate=1.0, error_status=413)
    with pytest.raises(ChannelError) as caught:
        make_channel(shop).fetch_listings(["DEMO-1"])
    assert caught.value.status == 413 and not caught.value.retryable
    assert calls(shop, "GET /wp-json/wc/v3/products") == 1


@pytest.mark.slow
def test_429_waits_for_retry_after(shop: WooCommerceSandbox) -> None:
    set_faults(shop.url, error_rate=1.0, error_status=429)
    started = time.monotonic()
    with pytest.raises(ChannelError) as caught:
        make_channel(shop, max_attempts=2).fetch_listings(["DEMO-1"])
    assert caught.value.retryable and caught.value.status == 429
    assert time.monotonic() - started >= 1.0  # the sandbox says Retry-After: 1


def test_timeouts_are_retryable(shop: WooCommerceSandbox) -> None:
    set_faults(shop.url, latency_ms=400)
    with pytest.raises(ChannelError) as caught:
        make_channel(shop, timeout=0.1, max_attempts=2).fetch_listings(["DEMO-1"])
    assert caught.value.retryable and "timed out" in caught.value.message


def test_bad_credentials_are_not_retried(shop: WooCommerceSandbox) -> None:
    channel = WooCommerceChannel(
        "woo",
        url=shop.url,
        consumer_key="ck_sandbox",
        consumer_secret="wrong",
        webhook_secrets=["s"],
    )
    with pytest.raises(ChannelError) as caught:
        list(channel.pull_orders(EPOCH))
    assert caught.value.status == 401 and not caught.value.retryable
    assert caught.value.code == "woocommerce_rest_authentication_error"
