"""Both sandboxes and the daemon on loopback, over a throw-away SQLite ledger in a folder."""

from __future__ import annotations

import secrets
import socket
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import requests

from connectors.sandbox.shopify import ShopifySandbox
from connectors.sandbox.woocommerce import WooCommerceSandbox
from rules import load_config
from stock.db import upgrade
from sync.daemon import Daemon
from sync.demo_plan import (
    CATALOG,
    NEXT_PO_ETA_DAYS,
    NEXT_PO_LINES,
    NEXT_PO_REF,
    PO_ETA_DAYS,
    PO_LINES,
    PO_REF,
)

DEMO_CONFIG = """\
database: sqlite:///{database}
broker: memory
channels:
  shop:
    kind: shopify
    shop: sandbox.myshopify.com
    token: shpat_sandbox
    webhook_secret: sandbox-secret
    location: Main
    api_url: {shopify_url}
  woo:
    kind: woocommerce
    url: http://shop.example.com
    consumer_key: ck_sandbox
    consumer_secret: cs_sandbox
    webhook_secret: sandbox-secret
    api_url: {woo_url}
server: {{api_token: {api_token}}}
daemon:
  poll_interval_s: 5
  poll_overlap_s: 5
  sweep_interval_s: 1
  sweep_age_s: 2
  push_interval_s: 0.5
  reconcile_interval_s: 3600
logging: {{level: WARNING}}
tiers: [vip, regular]
defaults:
  safety_buffer: 1
  backorders: {{enabled: true, incoming_share: 0.5, horizon_days: 14}}
  release: {{order: [priority, tier, placed_at], partial: true}}
channel_rules:
  shop: {{priority: 1}}
  woo: {{priority: 2, safety_buffer: 2}}  # no compare-and-set on WooCommerce: keep more back
"""


def free_port() -> int:
    """A loopback port free now; the daemon binds it moments later (sandboxes must know it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(folder: Path, shopify_url: str, woo_url: str, api_token: str) -> Path:
    path = folder / "stocksync.yaml"
    text = DEMO_CONFIG.format(
        database=(folder / "ledger.db").as_posix(),
        shopify_url=shopify_url,
        woo_url=woo_url,
        api_token=api_token,
    )
    path.write_text(text, encoding="utf-8")
    return path


@dataclass
class DemoStack:
    shopify: ShopifySandbox
    woo: WooCommerceSandbox
    daemon: Daemon
    api_token: str
    folder: Path

    @property
    def sandbox_urls(self) -> dict[str, str]:
        return {"shop": self.shopify.url, "woo": self.woo.url}

    def shown(self) -> dict[str, dict[str, int]]:
        """What each storefront offers now, per channel and SKU (read in-process, cheap)."""
        with self.shopify.lock:
            shop = {sku: self.shopify.available(sku) for sku in CATALOG}
        with self.woo.lock:
            stock = self.woo.store.stock()
        return {"shop": shop, "woo": {sku: int(stock.get(sku) or 0) for sku in CATALOG}}

    def shown_one(self, channel: str, sku: str) -> int:
        return self.shown()[channel][sku]

    def shopify_hold_ids(self) -> set[int]:
        """Fulfillment holds on the Shopify sandbox now (a split shares its hold ids)."""
        with self.shopify.lock:
            return {
                hold.id
                for fo in self.shopify.state.fulfillment_orders.values()
                for hold in fo.holds
            }

    def woo_on_hold(self) -> set[int]:
        with self.woo.lock:
            return {o.id for o in self.woo.store.orders.values() if o.status == "on-hold"}

    def receive_po(self, lines: dict[str, int], timeout: float = 10.0) -> None:
        """Book a receipt the way a warehouse system would: the daemon's HTTP API."""
        reply = requests.post(
            f"{self.daemon.url}/api/purchase-orders/{PO_REF}/receipts",
            json={"lines": lines},
            headers={"Authorization": f"Bearer {self.api_token}"},
            timeout=timeout,
        )
        if reply.status_code != 200:
            raise RuntimeError(f"receipt of {PO_REF} refused: {reply.status_code} {reply.text}")

    def flush_webhooks(self) -> None:
        self.shopify.outbox.flush()
        self.woo.outbox.flush()

    def stop(self) -> None:
        try:
            self.daemon.stop()
        finally:
            self.shopify.stop()
            self.woo.stop()


def start_stack(folder: Path, today: date, worker_threads: int = 4) -> DemoStack:
    """Start sandboxes, migrate and seed the ledger (stock, two POs), start the daemon."""
    port = free_port()
    daemon_url = f"http://127.0.0.1:{port}"
    shopify = ShopifySandbox(catalog=CATALOG, webhook_url=f"{daemon_url}/webhooks/shop")
    woo = WooCommerceSandbox(catalog=dict(CATALOG), webhook_url=f"{daemon_url}/webhooks/woo")
    shopify.start()
    woo.start()
    try:
        api_token = secrets.token_urlsafe(24)
        config = load_config(write_config(folder, shopify.url, woo.url, api_token))
        upgrade(config.database)
        daemon = Daemon(config, "127.0.0.1", port, worker_threads=worker_threads)
        try:
            with daemon.runtime.ctx.ledger(actor="demo") as ledger:
                for sku, qty in CATALOG.items():
                    ledger.set_stock(sku, qty, "opening count")
                soon, later = (today + timedelta(days=d) for d in (PO_ETA_DAYS, NEXT_PO_ETA_DAYS))
                ledger.add_po(PO_REF, soon, PO_LINES, "Demo Supplies")
                ledger.add_po(NEXT_PO_REF, later, NEXT_PO_LINES, "Demo Supplies")
            daemon.start()
        except BaseException:
            daemon.shutdown()
            raise
    except BaseException:
        shopify.stop()
        woo.stop()
        raise
    return DemoStack(shopify, woo, daemon, api_token, folder)
