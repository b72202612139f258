"""Onboarding a live shop must not zero it: `stocksync adopt CHANNEL` against both sandboxes
over real HTTP (the CLI run in this process), and each connector's `list_listings`."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import func, select

from connectors.sandbox.shopify import ShopifySandbox
from connectors.sandbox.woocommerce import WooCommerceSandbox
from connectors.shopify import ShopifyChannel
from connectors.woocommerce import WooCommerceChannel
from rules import load_config
from stock import models as m
from stock.db import upgrade
from sync.cli import main
from sync.context import AppContext
from tests.support.stack import stack_config

SHOP_CATALOG = {"TEE-S": 5, "TEE-M": 7, "CAP": 0}
WOO_CATALOG = {"TEE-S": 4, "DEMO-4": 3, "DEMO-5": 2}  # DEMO-4, DEMO-5: variations


@dataclass
class Shops:
    shopify: ShopifySandbox
    woo: WooCommerceSandbox
    config: Path
    capsys: pytest.CaptureFixture[str]
    monkeypatch: pytest.MonkeyPatch

    def cli(self, *args: str, answer: str = "") -> tuple[int, str, str]:
        """`stocksync --config … ARGS` in this process: (exit code, stdout, stderr)."""
        self.capsys.readouterr()
        self.monkeypatch.setattr("sys.stdin", io.StringIO(answer))
        try:
            main(["--config", str(self.config), *args])
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = self.capsys.readouterr()
        return code, captured.out, captured.err

    def json(self, *args: str, expect: int = 0) -> Any:
        code, stdout, stderr = self.cli(*args, "--json")
        assert code == expect, (code, stdout, stderr)
        return json.loads(stdout)

    def ledger(self) -> dict[str, Any]:
        """On hand per SKU, the counted SKUs, the audit log's actions, adopted channels."""
        ctx = AppContext.open(load_config(self.config))
        try:
            with ctx.read() as session:
                stock = dict(
                    session.execute(
                        select(m.Sku.code, m.StockLevel.on_hand).join(
                            m.StockLevel, m.StockLevel.sku_id == m.Sku.id
                        )
                    ).all()
                )
                counted = set(
                    session.scalars(select(m.Sku.code).where(m.Sku.counted_at.is_not(None)))
                )
                audit = [
                    (a.action, a.subject, a.detail.get("reason"))
                    for a in session.scalars(select(m.AuditEntry).order_by(m.AuditEntry.id))
                ]
                adopted = set(
                    session.scalars(
                        select(m.ChannelState.channel).where(m.ChannelState.adopted_at.is_not(None))
                    )
                )
                listings = session.scalar(select(func.count()).select_from(m.Listing))
        finally:
            ctx.close()
        return {
            "stock": stock,
            "counted": counted,
            "audit": audit,
            "adopted": adopted,
            "listings": listings,
        }


@pytest.fixture
def shops(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Shops]:
    shopify = ShopifySandbox(catalog=SHOP_CATALOG, restore_rate=100_000)
    woo = WooCommerceSandbox(catalog=WOO_CATALOG)
    shopify.start()
    woo.start()
    try:
        config = stack_config().write(tmp_path / "stocksync.yaml", shopify.url, woo.url)
        upgrade(load_config(config).database)
        yield Shops(shopify, woo, config, capsys, monkeypatch)
    finally:
        shopify.stop()
        woo.stop()


def rows_by_sku(data: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    return {r["sku"]: (r["channel"], r["ledger"], r["action"]) for r in data["rows"]}


# ---------------------------------------------------------------------------- connectors
def test_list_listings_pages_through_every_sku() -> None:
    catalog = {f"SKU-{i:03}": i for i in range(300)}  # two pages of each API
    with (
        ShopifySandbox(catalog=catalog, restore_rate=100_000) as shopify_sandbox,
        WooCommerceSandbox(catalog=catalog) as woo_sandbox,
    ):
        shopify = ShopifyChannel(
            "shop",
            shop="sandbox.myshopify.com",
            token="shpat_sandbox",
            webhook_secrets=["sandbox-secret"],
            api_url=shopify_sandbox.url,
        )
        woo = WooCommerceChannel(
            "woo",
            url="http://shop.example.com",
            consumer_key="ck_sandbox",
            consumer_secret="cs_sandbox",
            webhook_secrets=["sandbox-secret"],
            api_url=woo_sandbox.url,
        )
        try:
            requests.post(
                f"{shopify_sandbox.url}/_sandbox/checkout",
                json={"sku": "SKU-010", "quantity": 3},
                timeout=5,
            ).raise_for_status()
            shop_listed = {li.sku: li for li in shopify.list_listings()}
            woo_listed = {li.sku: li for li in woo.list_listings()}
        finally:
            shopify.close()
            woo.close()
    assert set(shop_listed) == set(catalog)
    # available drops with the sale; on hand keeps the units until they ship
    assert (shop_listed["SKU-010"].quantity, shop_listed["SKU-010"].on_hand) == (7, 10)
    assert all(
        li.quantity == li.on_hand == catalog[s] for s, li in shop_listed.items() if s != "SKU-010"
    )
    assert set(shop_listed["SKU-001"].external_ids) == {
        "variant_id",
        "inventory_item_id",
        "location_id",
    }
    assert {s: li.quantity for s, li in woo_listed.items() if s in catalog} == catalog


# ---------------------------------------------------------------------------- adopt
def test_dry_run_shows_the_diff_and_writes_nothing(shops: Shops) -> None:
    shops.json("stock", "set", "TEE-S", "3")
    before = shops.ledger()
    data = shops.json("adopt", "shop", "--dry-run")
    assert (data["ok"], data["dry_run"], data["adopted"]) == (True, True, False)
    assert rows_by_sku(data) == {
        "CAP": (0, None, "set"),
        "TEE-M": (7, None, "set"),
        "TEE-S": (5, 3, "refused"),
    }
    assert data["summary"] == {"set": 2, "same": 0, "refused": 1, "skipped": 0}
    assert shops.ledger() == before
    code, stdout, _err = shops.cli("adopt", "shop", "--dry-run")
    assert code == 0
    assert "refused: differs, use --overwrite" in stdout
    assert "TEE-M" in stdout and "new" in stdout
    assert "(dry run: nothing written)" in stdout
    assert shops.ledger() == before


def test_adopt_sets_on_hand_from_the_channel(shops: Shops) -> None:
    # a sale the shop has not shipped: Shopify's available drops, on hand does not
    requests.post(
        f"{shops.shopify.url}/_sandbox/checkout", json={"sku": "TEE-M", "quantity": 2}, timeout=5
    ).raise_for_status()
    data = shops.json("adopt", "shop", "--yes")
    assert (data["ok"], data["adopted"]) == (True, True)
    assert {r["sku"]: (r["channel"], r["available"]) for r in data["rows"]}["TEE-M"] == (7, 5)
    ledger = shops.ledger()
    assert ledger["stock"] == {"CAP": 0, "TEE-M": 7, "TEE-S": 5}
    assert ledger["counted"] == {"CAP", "TEE-M", "TEE-S"}
    assert ledger["adopted"] == {"shop"}
    assert ("stock.set", "TEE-M", "adopt shop") in ledger["audit"]
    assert ("channel.adopt", "shop", None) in ledger["audit"]
    # the WooCommerce shop: its variations too; a second adoption finds everything the same
    woo = shops.json("adopt", "woo", "--yes")
    assert rows_by_sku(woo) == {
        "DEMO-4": (3, None, "set"),
        "DEMO-5": (2, None, "set"),
        "DEMO-VAR": (None, None, "skipped"),  # the variable parent keeps no stock
        "TEE-S": (4, 5, "refused"),  # counted by the first adoption
    }
    again = shops.json("adopt", "shop", "--yes")
    assert again["summary"] == {"set": 0, "same": 3, "refused": 0, "skipped": 0}
    status = shops.json("status")
    assert status["channel_state"]["shop"]["adopted_at"] is not None
    assert status["channel_state"]["shop"]["listings_held_unknown"] == 0


def test_counted_skus_are_refused_unless_overwrite(shops: Shops) -> None:
    shops.json("stock", "set", "TEE-S", "3")
    refused = shops.json("adopt", "shop", "--yes")
    assert (refused["ok"], refused["adopted"]) == (True, True)
    assert refused["summary"] == {"set": 2, "same": 0, "refused": 1, "skipped": 0}
    assert shops.ledger()["stock"] == {"CAP": 0, "TEE-M": 7, "TEE-S": 3}
    code, stdout, _err = shops.cli("adopt", "shop", "--yes")
    assert code == 0
    assert "Refused 1 SKUs the ledger counted differently: TEE-S" in stdout
    taken = shops.json("adopt", "shop", "--yes", "--overwrite")
    assert rows_by_sku(taken)["TEE-S"] == (5, 3, "set")
    assert shops.ledger()["stock"]["TEE-S"] == 5


def test_a_sku_that_came_with_an_order_is_set(shops: Shops) -> None:
    """On hand of a SKU created by an order is no count: adopting sets it, releasing the
    order's backorder."""
    shops.json("order", "add", "popup", "P-1", "TEE-S=2")
    data = shops.json("adopt", "shop", "--yes")
    assert rows_by_sku(data)["TEE-S"] == (5, 0, "set")
    assert data["released_units"] == 2
    assert shops.ledger()["stock"]["TEE-S"] == 5


def test_the_prompt_asks_before_writing(shops: Shops) -> None:
    before = shops.ledger()
    code, stdout, stderr = shops.cli("adopt", "shop", answer="n\n")
    assert code == 1
    assert "Set on hand for 3 SKUs? [y/N]" in stdout
    assert stderr == "error: nothing written\n"
    assert shops.ledger() == before
    code, stdout, _err = shops.cli("adopt", "shop", answer="y\n")
    assert code == 0, stdout
    assert "Adopted shop: on hand set for 3 SKUs" in stdout
    assert shops.ledger()["adopted"] == {"shop"}


def test_bad_input_exits_2(shops: Shops) -> None:
    cases = {
        ("adopt", "shop"): "--json needs --yes or --dry-run (no prompts in JSON mode)",
        ("adopt", "popup", "--yes"): (
            "channel 'popup' is manual: only Shopify and WooCommerce channels have quantities "
            "to adopt"
        ),
        ("adopt", "market", "--yes"): "unknown channel 'market'; configured: popup, shop, woo",
    }
    for args, message in cases.items():
        assert shops.json(*args, expect=2) == {"ok": False, "error": message}
    assert shops.ledger()["stock"] == {}


@pytest.mark.slow  # the connector retries its calls before it gives up
def test_an_unreachable_shop_exits_1(shops: Shops) -> None:
    shops.woo.stop()
    code, _out, stderr = shops.cli("adopt", "woo", "--yes")
    assert code == 1
    assert stderr.startswith("error: reading woo: ")
    assert shops.ledger()["adopted"] == set()


# ---------------------------------------------------------------------------- stock import
def test_stock_import_reads_a_shopify_inventory_export(shops: Shops, tmp_path: Path) -> None:
    export = tmp_path / "inventory_export_1.csv"
    export.write_text(
        "Handle,Title,Option1 Name,Option1 Value,Option2 Name,Option2 Value,Option3 Name,"
        "Option3 Value,SKU,HS Code,COO,Location,Incoming,Unavailable,Committed,Available,"
        "On hand\n"
        "tee,Tee,Size,S,,,,,TEE-S,,,Main,0,0,1,4,5\n"
        "tee,Tee,Size,S,,,,,TEE-S,,,Depot,0,0,0,9,9\n"
        "tee,Tee,Size,M,,,,,,,,Main,0,0,0,1,1\n",
        encoding="utf-8",
    )
    several = shops.json("stock", "import", str(export), expect=2)
    assert several["error"].endswith(
        "several locations (Depot, Main): choose one with --location NAME"
    )
    data = shops.json("stock", "import", str(export), "--location", "Main")
    assert data["skus"] == 1
    assert (data["format"], data["location"], data["quantity_column"]) == (
        "shopify_inventory",
        "Main",
        "On hand",
    )
    assert data["skipped"] == {"no_sku": 1, "untracked": 0, "other_locations": 1}
    assert shops.ledger()["stock"] == {"TEE-S": 5}
    code, stdout, _err = shops.cli("stock", "import", str(export), "--location", "Main")
    assert code == 0
    assert "Detected Shopify inventory export, column 'On hand', location 'Main'" in stdout
