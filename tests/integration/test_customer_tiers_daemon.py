"""A tagged Shopify customer's and a WooCommerce wholesale customer's orders, sold through the
sandboxes' storefronts, are backordered with their tiers, and `stocksync backorders --json`
lists them in tier order."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from sync import queries
from sync.stack import SeedPo, start_stack
from tests.e2e import Cli
from tests.support.stack import Stack, stack_config

TIER_FROM = {
    "channels": {
        "shop": {"tier_from": {"tags": {"vip": "vip"}}},
        "woo": {"tier_from": {"role": {"wholesale": "regular"}}},
    }
}


@pytest.mark.slow  # a whole stack, three checkouts and a `stocksync` process: ~9 s
def test_shop_orders_are_backordered_with_their_customers_tiers(tmp_path: Path) -> None:
    config = dataclasses.replace(stack_config(), overrides=TIER_FROM)
    eta = datetime.now(UTC).date() + timedelta(days=5)
    with start_stack(
        Stack,
        tmp_path,
        config,
        {"DEMO-1": 1},
        actor="test",
        purchase_orders=[SeedPo("PO-1", eta, {"DEMO-1": 10})],
    ) as stack:
        assert stack.daemon is not None
        # offered = 1 on hand + 10 incoming: the shops sell what the ledger must backorder
        stack.wait_until(lambda: stack.shop_available("DEMO-1") == 11, what="shopify offers 11")
        stack.wait_until(lambda: stack.woo_stock("DEMO-1") == 11, what="woo offers 11")

        def buy(url: str, body: dict[str, object], backorders: int) -> None:
            reply = requests.post(f"{url}/_sandbox/checkout", json=body, timeout=5)
            assert reply.status_code == 201, reply.text
            stack.wait_until(lambda: len(open_backorders(stack)) == backorders, what="backorder")

        plain = {"sku": "DEMO-1", "quantity": 2, "email": "plain@example.com"}
        buy(stack.shopify.url, plain, 1)  # first, untagged: takes the one unit on hand
        buy(stack.shopify.url, {**plain, "email": "vip@example.com", "tags": ["VIP"]}, 2)
        buy(stack.woo.url, {**plain, "email": "trade@example.com", "role": "wholesale"}, 3)
        stack.daemon.wait_idle()
        listed = Cli(stack.folder, stack.config_path)("backorders", "--json").json()["backorders"]
        assert [(row["channel"], row["tier"], row["qty_open"]) for row in listed] == [
            ("shop", "vip", 2),  # shop's priority 1 first; within it vip before no tier
            ("shop", None, 1),
            ("woo", "regular", 2),
        ]


def open_backorders(stack: Stack) -> list[dict[str, Any]]:
    assert stack.daemon is not None
    with stack.ctx.read() as session:
        found, _next = queries.backorders(session, stack.daemon.runtime.config, None, False)
    return found
