"""ShopifyChannel against the Shopify sandbox over real loopback HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from connectors.base import POLL_TOPIC, BackorderHold, Channel, ChannelError, OfferPush, OrderStatus
from connectors.sandbox.shopify import ShopifySandbox
from connectors.shopify import HOLD_HANDLE, STALE, STALE_RETRIES, ShopifyChannel
from tests.shopify_support import (
    Receiver,
    channel_fixture,
    checkout,
    make_channel,
    receiver_fixture,
    sandbox_fixture,
)

EPOCH = datetime(2020, 1, 1, tzinfo=UTC)


@pytest.fixture
def sandbox() -> Iterator[ShopifySandbox]:
    yield from sandbox_fixture(seed=7)


@pytest.fixture
def shop(sandbox: ShopifySandbox) -> Iterator[ShopifyChannel]:
    yield from channel_fixture(sandbox)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from receiver_fixture()


def test_satisfies_the_channel_protocol(shop: ShopifyChannel) -> None:
    assert isinstance(shop, Channel)


def test_fetch_listings_maps_skus(sandbox: ShopifySandbox, shop: ShopifyChannel) -> None:
    sandbox.set_inventory("DEMO-3", 4)
    listings = shop.fetch_listings(["DEMO-1", "DEMO-3", "NOPE"])
    assert set(listings) == {"DEMO-1", "DEMO-3"}
    snapshot = sandbox.state_snapshot()
    assert listings["DEMO-3"].quantity == 4
    assert listings["DEMO-1"].external_ids == {
        "variant_id": snapshot["inventory"]["DEMO-1"]["variant_id"],
        "inventory_item_id": snapshot["inventory"]["DEMO-1"]["inventory_item_id"],
        "location_id": snapshot["location"]["id"],
    }


def test_fetch_listings_exact_sku_only(sandbox: ShopifySandbox, shop: ShopifyChannel) -> None:
    sandbox.set_inventory("DEMO-10", 3)  # a search for DEMO-1 must not return DEMO-10
    assert set(shop.fetch_listings(["DEMO-1"])) == {"DEMO-1"}


def test_push_sets_available_with_compare_and_set(
    sandbox: ShopifySandbox, shop: ShopifyChannel
) -> None:
    results = shop.push_offers(
        [OfferPush("DEMO-1", 12, last_seen=20), OfferPush("DEMO-2", 5, last_seen=None)]
    )
    assert [(r.sku, r.ok, r.channel_quantity) for r in results] == [
        ("DEMO-1", True, 12),
        ("DEMO-2", True, 5),
    ]
    assert sandbox.available("DEMO-1") == 12
    assert sandbox.available("DEMO-2") == 5


def test_stale_push_changes_nothing_and_reports_current_quantities(
    sandbox: ShopifySandbox, shop: ShopifyChannel
) -> None:
    checkout(sandbox, {"DEMO-1": 2})  # a sale since we last looked: 18 now, we think 20
    results = shop.push_offers(
        [OfferPush("DEMO-1", 15, last_seen=20), OfferPush("DEMO-2", 9, last_seen=20)]
    )
    assert [(r.ok, r.error_code, r.channel_quantity) for r in results] == [
        (False, "CHANGE_FROM_QUANTITY_STALE", 18),
        (True, None, 9),  # held back by the stale row, sent again without it
    ]
    assert sandbox.available("DEMO-1") == 18
    assert sandbox.available("DEMO-2") == 9
    retry = shop.push_offers([OfferPush("DEMO-1", 7, last_seen=results[0].channel_quantity)])
    assert all(r.ok for r in retry)
    assert sandbox.available("DEMO-1") == 7


def test_rows_kept_back_by_stale_rows_every_time_come_back_stale_with_quantities(
    sandbox: ShopifySandbox, shop: ShopifyChannel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shop selling faster than we resend: each call finds a newly sold row stale. After
    STALE_RETRIES resends, the rows still held back come back stale with the shop's quantity
    (never reported pushed, never lost)."""
    skus = [f"DEMO-{i}" for i in range(1, STALE_RETRIES + 3)]
    calls: list[int] = []
    push_batch = shop._push_batch

    def selling_before_each_call(batch: Any) -> Any:
        checkout(sandbox, {skus[len(calls)]: 1})  # the shop sells the next row's SKU
        calls.append(len(batch))
        return push_batch(batch)

    monkeypatch.setattr(shop, "_push_batch", selling_before_each_call)
    results = shop.push_offers([OfferPush(sku, 3, last_seen=20) for sku in skus])
    assert calls == [len(skus) - i for i in range(STALE_RETRIES + 1)]
    assert all(not r.ok and r.error_code == STALE for r in results)
    assert [r.channel_quantity for r in results] == [19] * (STALE_RETRIES + 1) + [20]
    assert all(sandbox.available(sku) >= 19 for sku in skus)  # nothing was set


def test_push_batches_250_rows_per_call() -> None:
    with ShopifySandbox(catalog={f"SKU-{i}": 5 for i in range(260)}, restore_rate=2000) as big:
        channel = make_channel(big)
        pushes = [OfferPush(f"SKU-{i}", i % 4, last_seen=5) for i in range(260)]
        results = channel.push_offers(pushes)
        assert all(r.ok for r in results)
        assert [r.sku for r in results] == [p.sku for p in pushes]
        assert big.available("SKU-259") == 3
        assert len(big.idempotency) == 2  # 260 rows -> two mutations, each with its own key
        channel.close()


def test_unknown_sku_push_is_reported(shop: ShopifyChannel) -> None:
    [result] = shop.push_offers([OfferPush("NOPE", 1, last_seen=None)])
    assert (result.ok, result.error_code) == (False, "UNKNOWN_SKU")


def test_pull_orders_pages_oldest_first(sandbox: ShopifySandbox, shop: ShopifyChannel) -> None:
    sandbox.set_inventory("DEMO-1", 100)
    placed = [checkout(sandbox, {"DEMO-1": 1}, email=f"c{i}@example.com") for i in range(40)]
    pulled = list(shop.pull_orders(EPOCH))
    assert [p.order.external_id for p in pulled] == [str(o["id"]) for o in placed]
    calls = sandbox.request_count["POST /admin/api/2026-07/graphql.json"]
    assert calls == 3  # 40 orders, 18 a page (the most that fits Shopify's 1000-point limit)
    first = pulled[0]
    assert (
        first.event_key
        == f"{placed[0]['id']}@{first.order.updated_at.isoformat().replace('+00:00', 'Z')}"
    )
    assert shop.parse_order(POLL_TOPIC, first.body) == first.order


def test_pull_orders_respects_the_watermark(sandbox: ShopifySandbox, shop: ShopifyChannel) -> None:
    old = checkout(sandbox, {"DEMO-1": 1})
    sandbox.state.orders[old["id"]].updated_at -= timedelta(hours=2)
    new = checkout(sandbox, {"DEMO-2": 1})
    since = datetime.now(UTC) - timedelta(hours=1)
    assert [p.order.external_id for p in shop.pull_orders(since)] == [str(new["id"])]


def test_pull_reflects_cancel_refund_and_fulfilment(
    sandbox: ShopifySandbox, shop: ShopifyChannel
) -> None:
    a = checkout(sandbox, {"DEMO-1": 3, "DEMO-2": 1})
    b = checkout(sandbox, {"DEMO-3": 2})
    c = checkout(sandbox, {"DEMO-4": 1})
    line = a["line_items"][0]["id"]
    sandbox.refund(a["id"], {line: 2})
    sandbox.cancel_order(b["id"])
    sandbox.fulfill_order(c["id"])
    by_id = {p.order.external_id: p.order for p in shop.pull_orders(EPOCH)}
    assert by_id[str(a["id"])].lines[0].quantity == 1
    assert by_id[str(a["id"])].status is OrderStatus.OPEN
    assert by_id[str(b["id"])].status is OrderStatus.CANCELLED
    assert by_id[str(c["id"])].status is OrderStatus.FULFILLED
    assert sandbox.available("DEMO-3") == 20  # cancel restocked


def test_pull_fetches_line_items_beyond_the_first_page(
    sandbox: ShopifySandbox, shop: ShopifyChannel
) -> None:
    for i in range(60):
        sandbox.set_inventory(f"MANY-{i}", 5)
    order = checkout(sandbox, {f"MANY-{i}": 1 for i in range(60)})
    [pulled] = list(shop.pull_orders(EPOCH))
    assert len(pulled.order.lines) == 60
    assert pulled.order.external_id == str(order["id"])


def fulfillment_orders(sandbox: ShopifySandbox, order_id: int) -> list[dict[str, object]]:
    state = sandbox.state_snapshot()
    return [fo for fo in state["fulfillment_orders"] if fo["order_id"] == order_id]


def test_hold_and_release_backordered_units(sandbox: ShopifySandbox, shop: ShopifyChannel) -> None:
    order = checkout(sandbox, {"DEMO-1": 5, "DEMO-2": 1})
    line = str(order["line_items"][0]["id"])
    hold = BackorderHold(str(order["id"]), {line: 2})
    shop.place_hold(hold)
    fos = fulfillment_orders(sandbox, order["id"])
    held = [fo for fo in fos if fo["status"] == "ON_HOLD"]
    assert len(fos) == 2 and len(held) == 1  # split: 2 units held, the rest may ship
    assert [h["handle"] for h in held[0]["holds"]] == [HOLD_HANDLE]  # type: ignore[index]
    assert [li["remaining"] for li in held[0]["line_items"]] == [2]  # type: ignore[index]
    shop.place_hold(hold)  # again: no second hold
    assert sum(len(fo["holds"]) for fo in fulfillment_orders(sandbox, order["id"])) == 1  # type: ignore[arg-type, misc]
    shop.lift_hold(hold)
    assert all(fo["status"] == "OPEN" for fo in fulfillment_orders(sandbox, order["id"]))
    shop.lift_hold(hold)  # a hold that is gone is not an error


def test_hold_of_a_line_that_is_not_on_the_order_fails(
    sandbox: ShopifySandbox, shop: ShopifyChannel
) -> None:
    order = checkout(sandbox, {"DEMO-1": 1})
    with pytest.raises(ChannelError) as caught:
        shop.place_hold(BackorderHold(str(order["id"]), {"999": 1}))
    assert caught.value.code == "LINE_NOT_HOLDABLE"


def test_throttled_calls_wait_for_the_bucket(sandbox: ShopifySandbox) -> None:
    for status in (200, 429):
        requests.put(
            f"{sandbox.url}/_sandbox/bucket",
            json={"available": 0, "restore_rate": 1000, "throttle_http_status": status},
            timeout=5,
        )
        channel = make_channel(sandbox)
        listings = channel.fetch_listings(["DEMO-1"])  # waits for the refill, then succeeds
        assert listings["DEMO-1"].quantity == 20
        channel.close()


def test_throttled_forever_gives_a_retryable_error(sandbox: ShopifySandbox) -> None:
    requests.put(
        f"{sandbox.url}/_sandbox/bucket",
        json={"available": 0, "restore_rate": 0.001, "maximum": 1000},
        timeout=5,
    )
    channel = make_channel(sandbox, max_attempts=2)
    channel.transport._sleep = lambda _: None  # the wait would be hours; the decision is the test
    with pytest.raises(ChannelError) as caught:
        channel.fetch_listings(["DEMO-1"])
    assert caught.value.code == "THROTTLED" and caught.value.retryable


def test_server_errors_are_retried_then_reported(sandbox: ShopifySandbox) -> None:
    requests.put(
        f"{sandbox.url}/_sandbox/faults", json={"error_rate": 1.0, "error_status": 503}, timeout=5
    )
    channel = make_channel(sandbox, max_attempts=3)
    with pytest.raises(ChannelError) as caught:
        channel.fetch_listings(["DEMO-1"])
    assert (caught.value.status, caught.value.retryable) == (503, True)
    assert channel.transport.calls == 3


@pytest.mark.slow
def test_intermittent_faults_are_absorbed(sandbox: ShopifySandbox) -> None:
    requests.put(
        f"{sandbox.url}/_sandbox/faults", json={"error_rate": 0.3, "error_status": 502}, timeout=5
    )
    channel = make_channel(sandbox, max_attempts=8)
    for quantity in range(5):
        [result] = channel.push_offers([OfferPush("DEMO-1", quantity, last_seen=None)])
        assert result.ok
    assert sandbox.available("DEMO-1") == 4


def test_bad_token_is_not_retried(sandbox: ShopifySandbox) -> None:
    channel = make_channel(sandbox, token="shpat_wrong")
    with pytest.raises(ChannelError) as caught:
        channel.fetch_listings(["DEMO-1"])
    assert (caught.value.status, caught.value.retryable) == (401, False)
    assert channel.transport.calls == 1


def test_every_call_has_a_timeout(sandbox: ShopifySandbox) -> None:
    requests.put(f"{sandbox.url}/_sandbox/faults", json={"latency_ms": 600}, timeout=5)
    channel = make_channel(sandbox, timeout=0.2, max_attempts=2)
    with pytest.raises(ChannelError) as caught:
        channel.fetch_listings(["DEMO-1"])
    assert caught.value.retryable and "timed out" in caught.value.message


def test_webhooks_verify_and_parse_like_polls(receiver: Receiver) -> None:
    with ShopifySandbox(webhook_url=receiver.url, restore_rate=2000) as sandbox:
        channel = make_channel(sandbox)
        order = checkout(sandbox, {"DEMO-1": 2})
        sandbox.cancel_order(order["id"])
        deliveries = receiver.wait_for(3)
        events = [channel.verify_webhook(d.headers, d.body) for d in deliveries]
        assert [e.topic for e in events if e] == [
            "orders/create",
            "orders/cancelled",
            "orders/updated",
        ]
        headers = {k.lower(): v for k, v in deliveries[0].headers.items()}
        assert headers["x-shopify-shop-domain"] == "sandbox.myshopify.com"
        assert headers["x-shopify-api-version"] == "2026-07"
        assert headers["content-type"] == "application/json"
        assert {"x-shopify-webhook-id", "x-shopify-triggered-at"} <= set(headers)
        created = channel.parse_order("orders/create", deliveries[0].body)
        cancelled = channel.parse_order("orders/cancelled", deliveries[1].body)
        [polled] = list(channel.pull_orders(EPOCH))
        assert cancelled.status is OrderStatus.CANCELLED
        assert polled.order == cancelled  # the webhook and the poll agree, apart from source words
        assert created.lines == polled.order.lines
        channel.close()


def test_duplicated_webhooks_keep_their_event_id(receiver: Receiver) -> None:
    with ShopifySandbox(webhook_url=receiver.url, seed=1) as sandbox:
        requests.put(
            f"{sandbox.url}/_sandbox/faults", json={"webhook_duplicate_rate": 1.0}, timeout=5
        )
        checkout(sandbox, {"DEMO-1": 1})
        first, second = receiver.wait_for(2)
        assert first.body == second.body
        assert first.headers["X-Shopify-Event-Id"] == second.headers["X-Shopify-Event-Id"]
