"""Credentials and failures are visible: `check --online` against both sandboxes over real HTTP
(right and wrong credentials, a missing scope, an unknown location, a shop that does not
answer), and a running daemon whose token is revoked: it backs off instead of calling every
push interval, `/readyz` says 503 for that channel, `status` and `/metrics` show it, and a fixed
token ends the hold."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from connectors.base import ChannelError, OfferPush, is_auth_error
from connectors.sandbox.shopify import ShopifySandbox
from connectors.sandbox.woocommerce import WooCommerceSandbox
from connectors.shopify import ShopifyChannel
from rules import Config, load_config
from stock import channel_state, counts
from sync import channel_auth, queries
from sync.jobs.followups import Followups
from sync.online_check import check_channels
from sync.stack import StackConfig, free_port
from tests.support.stack import Stack, running_stack

GRAPHQL = "POST /admin/api/2026-07/graphql.json"


@pytest.fixture
def shops() -> Iterator[tuple[ShopifySandbox, WooCommerceSandbox]]:
    shopify, woo = ShopifySandbox(), WooCommerceSandbox()
    shopify.start()
    woo.start()
    yield shopify, woo
    shopify.stop()
    woo.stop()


def config_for(tmp_path: Path, shopify_url: str | None, woo_url: str | None, **over: str) -> Config:
    overrides = {"channels": {"shop": dict(over)}} if over else {}
    path = StackConfig(rules={}, manual_channels=("popup",), overrides=overrides).write(
        tmp_path / "stocksync.yaml", shopify_url, woo_url
    )
    return load_config(path)


def test_check_online_passes_with_the_right_credentials(
    tmp_path: Path, shops: tuple[ShopifySandbox, WooCommerceSandbox]
) -> None:
    shopify, woo = shops
    results = check_channels(config_for(tmp_path, shopify.url, woo.url))
    assert {name: r["ok"] for name, r in results.items()} == {"shop": True, "woo": True,
                                                            "popup": True}  # fmt: skip
    shop = results["shop"]
    assert shop["facts"]["shop"] == "sandbox" and shop["facts"]["missing_scopes"] == []
    assert shop["facts"]["location_id"] == "gid://shopify/Location/1001"
    assert "every required scope granted" in shop["summary"]
    assert results["woo"]["facts"]["products"] >= 1
    assert results["popup"]["summary"] == "manual channel: nothing to call"


def test_check_online_names_a_wrong_token_and_wrong_keys(
    tmp_path: Path, shops: tuple[ShopifySandbox, WooCommerceSandbox]
) -> None:
    shopify, woo = shops
    shopify.token = "shpat_revoked"
    woo.oauth.consumer_key = "ck_other"
    results = check_channels(config_for(tmp_path, shopify.url, woo.url))
    for name in ("shop", "woo"):
        assert not results[name]["ok"] and results[name]["status"] == 401
        assert results[name]["error"].startswith("credentials refused (HTTP 401)")
    assert "Invalid API key or access token" in results["shop"]["error"]
    assert "Consumer key is invalid" in results["woo"]["error"]
    assert shopify.request_count[GRAPHQL] <= 2  # the check is a call, not a retry storm


def test_check_online_names_missing_scopes_and_an_unknown_location(
    tmp_path: Path, shops: tuple[ShopifySandbox, WooCommerceSandbox]
) -> None:
    shopify, _woo = shops
    shopify.access_scopes = ("read_orders", "read_products", "read_locations")
    result = check_channels(config_for(tmp_path, shopify.url, None, location="Back"))["shop"]
    assert not result["ok"]
    assert result["facts"]["missing_scopes"] == [
        "write_inventory",
        "write_merchant_managed_fulfillment_orders",
        "write_products",
    ]
    assert result["problems"] == [
        "missing access scope write_inventory (needed to set available quantities)",
        "missing access scope write_merchant_managed_fulfillment_orders (needed to hold "
        "backordered order lines)",
        "missing access scope write_products (needed to set and clear the expected date "
        "metafield of variants offering incoming units)",
        "no location named 'Back' (found: 'Main')",
    ]


def test_check_online_says_a_shop_does_not_answer(tmp_path: Path) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    results = check_channels(config_for(tmp_path, nowhere, nowhere))
    for name in ("shop", "woo"):
        assert not results[name]["ok"]
        assert results[name]["error"].startswith("unreachable: "), results[name]


# ------------------------------------------------------------------ a token revoked while running
def change_stock(stack: Stack, sku: str, qty: int) -> None:
    assert stack.daemon is not None
    runtime = stack.daemon.runtime
    with runtime.ctx.ledger(actor="test") as tx:
        counts.set_stock(tx, sku, qty, "count")
    stack.daemon.actors.dispatch(Followups.of(tx.effects, list(runtime.channels)))


def metric(stack: Stack, name: str, channel: str) -> float | None:
    text = requests.get(f"{stack.daemon_url}/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith(f'{name}{{channel="{channel}"}} '):
            return float(line.rsplit(" ", 1)[1])
    return None


@pytest.mark.slow
def test_a_revoked_token_backs_off_and_shows_everywhere(tmp_path: Path) -> None:
    with running_stack(tmp_path, catalog={"AUTH-1": 10}) as stack:
        assert stack.daemon is not None
        runtime, actors = stack.daemon.runtime, stack.daemon.actors
        change_stock(stack, "AUTH-1", 9)
        stack.wait_until(lambda: stack.shop_available("AUTH-1") == 9, what="first push")
        assert requests.get(f"{stack.daemon_url}/readyz", timeout=5).status_code == 200

        stack.shopify.token = "shpat_revoked"  # the merchant uninstalled the app
        change_stock(stack, "AUTH-1", 7)
        stack.wait_until(lambda: "shop" in channel_auth.holds(runtime), what="shop held")
        stack.wait_until(lambda: stack.woo_stock("AUTH-1") == 7, what="woo still pushed")

        # for a few seconds the daemon keeps wanting to push and poll: not one call goes out
        before = stack.shopify.request_count.get(GRAPHQL, 0)
        deadline = datetime.now(UTC) + timedelta(seconds=3)
        while datetime.now(UTC) < deadline:
            actors.request_push("shop")
            actors.poll.send("shop")
            time.sleep(0.2)  # the pace of a busy shop, not an assertion
        assert stack.shopify.request_count.get(GRAPHQL, 0) == before
        assert stack.shop_available("AUTH-1") == 9  # nothing reached the shop

        ready = requests.get(f"{stack.daemon_url}/readyz", timeout=5)
        assert ready.status_code == 503
        body = ready.json()
        assert body["ready"] is False and body["database"] == "ok"
        assert body["channel:woo"] == "ok"
        assert body["channel:shop"].startswith("auth error (1 refusal in a row), calls held")
        assert "Invalid API key or access token" in body["channel:shop"]

        with runtime.ctx.read() as session:
            status = queries.status(
                runtime.ctx, session, queries.revision(runtime.ctx), datetime.now(UTC).date()
            )
        shop = status["channel_health"]["shop"]
        assert shop["state"] == "auth_error" and shop["auth_failures"] == 1
        assert "Invalid API key" in shop["error"]
        assert status["channel_health"]["woo"]["state"] == "ok"
        assert "popup" not in status["channel_health"]  # manual: nothing to call

        assert metric(stack, "stocksync_channel_auth_failures_total", "shop") == 1
        assert metric(stack, "stocksync_channel_auth_held", "shop") == 1
        assert metric(stack, "stocksync_channel_auth_held", "woo") == 0

        # a new token is configured; when the hold runs out one call tries again and succeeds
        stack.shopify.token = "shpat_sandbox"
        with runtime.ctx.sessions.begin() as session:
            row = channel_state.get(session, "shop")
            assert row is not None
            row.held_until = datetime.now(UTC) - timedelta(seconds=1)
        actors.request_push("shop")
        stack.wait_until(lambda: stack.shop_available("AUTH-1") == 7, what="shop pushed again")
        assert channel_auth.holds(runtime) == {}
        assert requests.get(f"{stack.daemon_url}/readyz", timeout=5).status_code == 200
        assert metric(stack, "stocksync_channel_auth_held", "shop") == 0


@pytest.mark.slow
def test_revoked_woocommerce_keys_hold_that_channel_only(tmp_path: Path) -> None:
    with running_stack(tmp_path, catalog={"AUTH-2": 5}) as stack:
        assert stack.daemon is not None
        stack.wait_until(lambda: stack.woo_stock("AUTH-2") == 5, what="first push")
        stack.woo.oauth.consumer_key = "ck_revoked"
        change_stock(stack, "AUTH-2", 3)
        runtime = stack.daemon.runtime
        stack.wait_until(lambda: "woo" in channel_auth.holds(runtime), what="woo held")
        stack.wait_until(lambda: stack.shop_available("AUTH-2") == 3, what="shop still pushed")
        body = requests.get(f"{stack.daemon_url}/readyz", timeout=5).json()
        assert body["channel:shop"] == "ok"
        assert "Consumer key is invalid" in body["channel:woo"]
        assert body["ready"] is False


def test_a_missing_scope_is_refused_like_shopify_and_counts_as_an_auth_error(
    shops: tuple[ShopifySandbox, WooCommerceSandbox],
) -> None:
    shopify, _woo = shops
    shopify.access_scopes = ("read_orders", "read_products", "read_locations")
    channel = ShopifyChannel(
        "shop", shop="sandbox.myshopify.com", token="shpat_sandbox", webhook_secrets=["s"],
        api_url=shopify.url,
    )  # fmt: skip
    try:
        assert set(channel.fetch_listings(["DEMO-1"])) == {"DEMO-1"}  # reading is granted
        with pytest.raises(ChannelError) as denied:
            channel.push_offers([OfferPush("DEMO-1", 5, 20)])
    finally:
        channel.close()
    assert denied.value.code == "ACCESS_DENIED" and is_auth_error(denied.value)
    assert "Required access: `write_inventory` access scope." in denied.value.message
