"""The daemon never zeroes a live shop: a SKU the ledger never counted (it came with an order)
is not pushed lower than the channel shows until it is counted or the channel adopted; it is
held (still dirty), counted in the gauge and in `status`, and pushed once the channel is
adopted."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from connectors.sandbox.shopify import ShopifySandbox
from connectors.sandbox.woocommerce import WooCommerceSandbox
from rules import load_config
from stock import listings
from stock import models as m
from sync.metrics import refresh_gauges
from sync.queries import channel_sync
from sync.stack import HOST, free_port, start_daemon
from tests.support.processes import stocksync_executable
from tests.support.stack import Stack, stack_config

pytestmark = pytest.mark.slow

CATALOG = {"DEMO-1": 20, "NEW-1": 20}  # what both shops sell
COUNTED = {"DEMO-1": 20}  # what the ledger was told


@contextmanager
def shops_selling_more_than_counted(folder: Path) -> Iterator[Stack]:
    port = free_port()
    base = f"http://{HOST}:{port}"
    shopify = ShopifySandbox(catalog=CATALOG, webhook_url=f"{base}/webhooks/shop")
    woo = WooCommerceSandbox(catalog=CATALOG, webhook_url=f"{base}/webhooks/woo")
    shopify.start()
    woo.start()
    try:
        config = stack_config()
        path = config.write(folder / "stocksync.yaml", shopify.url, woo.url)
        daemon = start_daemon(load_config(path), port, COUNTED, actor="test")
    except BaseException:
        shopify.stop()
        woo.stop()
        raise
    with Stack(folder, config, path, shopify, woo, port, daemon.runtime.ctx, daemon) as stack:
        yield stack


def held(stack: Stack) -> dict[str, int]:
    with stack.ctx.read() as session:
        return listings.held_counts(session)


def test_an_unknown_sku_is_held_not_zeroed_until_the_channel_is_adopted(tmp_path: Path) -> None:
    with shops_selling_more_than_counted(tmp_path) as stack:
        assert stack.daemon is not None
        # a customer buys one of each on WooCommerce: NEW-1 enters the ledger with 0 on hand
        requests.post(
            f"{stack.woo.url}/_sandbox/checkout",
            json={"lines": [{"sku": "DEMO-1", "quantity": 1}, {"sku": "NEW-1", "quantity": 1}]},
            timeout=5,
        ).raise_for_status()
        # the counted SKU is pushed as always ...
        stack.wait_until(lambda: stack.shop_available("DEMO-1") == 19, what="DEMO-1 pushed")
        stack.wait_until(
            lambda: held(stack) == {"shop": 1, "woo": 1}, what="NEW-1 held on both channels"
        )
        stack.daemon.wait_idle()
        # ... the unknown one is not: neither shop was told 0
        assert (stack.shop_available("NEW-1"), stack.woo_stock("NEW-1")) == (20, 19)
        with stack.ctx.read() as session:
            rows = session.execute(
                select(m.Listing.channel, m.Listing.dirty, m.Listing.last_pushed)
                .join(m.Sku, m.Sku.id == m.Listing.sku_id)
                .where(m.Sku.code == "NEW-1")
            ).all()
            assert sorted(rows) == [("shop", True, None), ("woo", True, None)]
            assert listings.dirty_counts(session) == {}  # held ones are not "waiting"
            state = channel_sync(stack.ctx, session)
            metrics = stack.daemon.runtime.metrics
            refresh_gauges(metrics, session, ["shop", "woo"])
        assert state["shop"] == {
            "kind": "shopify",
            "adopted_at": None,
            "listings_held_unknown": 1,
            "held_skus": ["NEW-1"],
        }
        assert 'stocksync_listings_held_unknown{channel="shop"} 1.0' in metrics.render().decode()

        # adopting the Shopify shop takes its 20 as on hand: the order's unit is reserved,
        # and the lower number (19) may now go out
        adopted = subprocess.run(
            [stocksync_executable(), "--config", str(stack.config_path), "adopt", "shop",
             "--yes", "--json"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert adopted.returncode == 0, adopted.stdout + adopted.stderr
        data = json.loads(adopted.stdout)
        # DEMO-1: the shop shows what we pushed (20 less the WooCommerce order's unit); the
        # ledger's count stands
        assert {r["sku"]: (r["channel"], r["ledger"], r["action"]) for r in data["rows"]} == {
            "DEMO-1": (19, 20, "refused"),
            "NEW-1": (20, 0, "set"),
        }
        assert data["released_units"] == 1
        stack.wait_until(lambda: stack.shop_available("NEW-1") == 19, what="NEW-1 pushed")
        stack.wait_until(lambda: held(stack) == {}, what="nothing held")
        assert stack.woo_stock("NEW-1") == 19
