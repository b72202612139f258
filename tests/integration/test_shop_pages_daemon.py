"""Shop pages through the whole stack (issue #17): a purchase order makes the offer count
incoming units, and the pushes put them on backorder on WooCommerce and give the Shopify
variant the PO's ETA as its expected date; a sale on backorder is read back against the offer;
the receipt puts the units in stock and clears both."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from connectors import shopify_queries as q
from connectors.woocommerce import EXPECTED_META, INCOMING_META
from stock import listings, purchasing
from stock import models as m
from sync.jobs.push import PAGE_KEY
from tests.shopify_support import graphql, variant_id
from tests.support.stack import API_TOKEN, Stack, running_stack

pytestmark = pytest.mark.slow

SKU = "DEMO-1"


def woo_page(stack: Stack) -> tuple[Any, ...]:
    record = stack.woo_product(SKU)
    meta = {m["key"]: m["value"] for m in record["meta_data"]}
    return (
        record["stock_quantity"],
        record["backorders"],
        record["stock_status"],
        meta.get(INCOMING_META),
        meta.get(EXPECTED_META),
    )


def shop_date(stack: Stack) -> str | None:
    body = graphql(stack.shopify, q.VARIANT_EXPECTED_DATE, {"id": variant_id(stack.shopify, SKU)})
    metafield = body.json()["data"]["productVariant"]["metafield"]
    return None if metafield is None else str(metafield["value"])


def remembered(stack: Stack, channel: str) -> Any:
    """What the push remembers of the listing's page (its expected date, "" for none)."""
    assert stack.daemon is not None
    with stack.daemon.runtime.ctx.sessions() as session:
        mapped = {row.sku: row for row in listings.mapped(session, channel)}
        listing = session.get(m.Listing, mapped[SKU].listing_id)
        assert listing is not None
        return listing.external_ids.get(PAGE_KEY)


def test_a_po_puts_incoming_units_on_both_shop_pages_until_received(tmp_path: Path) -> None:
    with running_stack(tmp_path, catalog={SKU: 0, "DEMO-2": 5}) as stack:
        assert stack.daemon is not None
        runtime = stack.daemon.runtime
        stack.wait_until(lambda: stack.woo_stock(SKU) == 0 and stack.shop_available(SKU) == 0)
        assert woo_page(stack)[:3] == (0, "no", "outofstock")

        with runtime.ctx.ledger(actor="test") as tx:
            eta = tx.now.date() + timedelta(days=5)
            purchasing.add_po(tx, "PO-17", eta, {SKU: 10})
        due = eta.isoformat()
        # every offered unit is incoming: on backorder on WooCommerce, dated on Shopify
        stack.wait_until(
            lambda: (
                woo_page(stack) == (0, "notify", "onbackorder", "10", due)
                and stack.shop_available(SKU) == 10
                and shop_date(stack) == due
            ),
            what="both pages show the incoming units",
        )
        assert stack.woo_stock(SKU) == 10  # as stocksync reads it: the offer
        stack.daemon.wait_idle()  # the push that landed is recorded
        assert remembered(stack, "shop") == due

        # a customer buys on backorder on WooCommerce: the offer drops to 8, still incoming
        assert stack.checkout_woo(SKU, 2).status_code == 201
        stack.wait_until(
            lambda: (
                woo_page(stack) == (0, "notify", "onbackorder", "8", due)
                and stack.shop_available(SKU) == 8
            ),
            what="the backorder is taken out of both offers",
        )

        # the goods arrive: the 2 backordered units are released, 8 are in stock
        receipt = requests.post(
            f"{stack.daemon_url}/api/purchase-orders/PO-17/receipts",
            json={"lines": {SKU: 10}},
            headers={"Authorization": f"Bearer {API_TOKEN}"},
            timeout=10,
        )
        assert receipt.status_code == 200, receipt.text
        stack.wait_until(
            lambda: (
                woo_page(stack) == (8, "no", "instock", "0", "")
                and stack.shop_available(SKU) == 8
                and shop_date(stack) is None
            ),
            what="both pages back to plain stock",
        )
        stack.daemon.wait_idle()
        assert remembered(stack, "shop") == ""
        # DEMO-2 never had incoming units: its page was never written beyond its stock
        assert stack.woo_product("DEMO-2")["backorders"] == "no"
        assert all(
            m["owner_id"] != variant_id(stack.shopify, "DEMO-2")
            for m in stack.shopify.state_snapshot()["metafields"]
        )


def test_nothing_moves_on_the_pages_without_incoming_units(tmp_path: Path) -> None:
    with running_stack(tmp_path, catalog={SKU: 6}) as stack:
        assert stack.daemon is not None
        stack.wait_until(lambda: stack.woo_stock(SKU) == 6 and stack.shop_available(SKU) == 6)
        assert stack.checkout_shopify(SKU, 1).status_code == 201
        stack.wait_until(lambda: stack.woo_stock(SKU) == 5 and stack.shop_available(SKU) == 5)
        stack.daemon.wait_idle()
        assert stack.shopify.state_snapshot()["metafields"] == []
        assert woo_page(stack) == (5, "no", "instock", None, None)  # no meta written either
        assert remembered(stack, "shop") is None  # never had a date: nothing remembered
