"""A whole stack on loopback: both sandboxes, the daemon and a ledger, for integration tests."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from connectors.sandbox.shopify import ShopifySandbox
from connectors.sandbox.woocommerce import WooCommerceSandbox
from rules import load_config
from stock.db import upgrade
from sync.daemon import Daemon

CONFIG = """\
database: {database}
broker: {broker}
channels:
  shop:
    kind: shopify
    shop: sandbox.myshopify.com
    token: shpat_sandbox
    webhook_secret: sandbox-secret
    api_url: {shopify_url}
  woo:
    kind: woocommerce
    url: http://shop.example.com
    consumer_key: ck_sandbox
    consumer_secret: cs_sandbox
    webhook_secret: sandbox-secret
    api_url: {woo_url}
  popup: {{kind: manual}}
server: {{api_token: test-token}}
daemon:
  poll_interval_s: {poll_interval}
  poll_overlap_s: 5
  sweep_interval_s: 0.5
  sweep_age_s: {sweep_age}
  push_interval_s: 0.5
  reconcile_interval_s: 3600
logging: {{level: WARNING}}
tiers: [vip, regular]
defaults:
  safety_buffer: 0
  backorders: {{enabled: true, incoming_share: 1.0, horizon_days: 30}}
  release: {{order: [priority, tier, placed_at], partial: true}}
channel_rules:
  shop: {{priority: 1}}
  woo: {{priority: 2}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Stack:
    shopify: ShopifySandbox
    woo: WooCommerceSandbox
    daemon: Daemon | None
    config_path: Path
    daemon_url: str

    def wait_until(
        self, predicate: Callable[[], bool], timeout: float = 20.0, what: str = "condition"
    ) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")

    def woo_stock(self, sku: str) -> int:
        state = requests.get(f"{self.woo.url}/_sandbox/state", timeout=5).json()
        return int(state["stock"][sku])

    def shop_available(self, sku: str) -> int:
        return int(self.shopify.available(sku))

    def checkout_shopify(self, sku: str, qty: int, email: str = "a@example.com") -> Any:
        reply = requests.post(
            f"{self.shopify.url}/_sandbox/checkout",
            json={"sku": sku, "quantity": qty, "email": email},
            timeout=5,
        )
        return reply

    def checkout_woo(self, sku: str, qty: int, email: str = "b@example.com") -> Any:
        return requests.post(
            f"{self.woo.url}/_sandbox/checkout",
            json={"sku": sku, "quantity": qty, "email": email},
            timeout=5,
        )


def write_stack_config(
    folder: Path,
    shopify_url: str,
    woo_url: str,
    *,
    database: str | None = None,
    broker: str = "memory",
    poll_interval: float = 3600,
    sweep_age: float = 2,
) -> Path:
    path = folder / "stocksync.yaml"
    path.write_text(
        CONFIG.format(
            database=database or f"sqlite:///{folder / 'ledger.db'}",
            broker=broker,
            shopify_url=shopify_url,
            woo_url=woo_url,
            poll_interval=poll_interval,
            sweep_age=sweep_age,
        ),
        encoding="utf-8",
    )
    return path


@contextmanager
def running_stack(
    folder: Path,
    *,
    catalog: dict[str, int] | None = None,
    database: str | None = None,
    broker: str = "memory",
    poll_interval: float = 3600,
    in_process_daemon: bool = True,
    sweep_age: float = 2,
) -> Iterator[Stack]:
    catalog = catalog or {f"DEMO-{i}": 20 for i in range(1, 6)}
    port = free_port()
    daemon_url = f"http://127.0.0.1:{port}"
    shopify = ShopifySandbox(catalog=catalog, webhook_url=f"{daemon_url}/webhooks/shop")
    woo = WooCommerceSandbox(catalog=catalog, webhook_url=f"{daemon_url}/webhooks/woo")
    shopify.start()
    woo.start()
    path = write_stack_config(
        folder, shopify.url, woo.url, database=database, broker=broker,
        poll_interval=poll_interval, sweep_age=sweep_age,
    )  # fmt: skip
    config = load_config(path)
    upgrade(config.database)
    daemon: Daemon | None = None
    try:
        if in_process_daemon:
            daemon = Daemon(config, "127.0.0.1", port, worker_threads=4)
            with daemon.runtime.ctx.ledger(actor="test") as ledger:
                for sku, qty in catalog.items():
                    ledger.set_stock(sku, qty, "opening count")
            daemon.start()
        yield Stack(shopify, woo, daemon, path, daemon_url)
    finally:
        if daemon is not None:
            daemon.stop()
        shopify.stop()
        woo.stop()
