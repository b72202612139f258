"""The demo's stack: sync.stack's loopback stack with the demo's rules, seeded with the catalog
and two purchase orders, plus what the demo reads from the shops and the receipt it books."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import requests

from connectors.woocommerce import offered_quantity
from sync.demo.plan import (
    CATALOG,
    NEXT_PO_ETA_DAYS,
    NEXT_PO_LINES,
    NEXT_PO_REF,
    PO_ETA_DAYS,
    PO_LINES,
    PO_REF,
)
from sync.stack import LoopbackStack, SeedPo, StackConfig, start_stack

SUPPLIER = "Demo Supplies"
RULES = {
    "tiers": ["vip", "regular"],
    "defaults": {
        "safety_buffer": 1,
        "backorders": {"enabled": True, "incoming_share": 0.5, "horizon_days": 14},
        "release": {"order": ["priority", "tier", "placed_at"], "partial": True},
    },
    "channel_rules": {
        "shop": {"priority": 1},
        # no compare-and-set on WooCommerce: keep more back
        "woo": {"priority": 2, "safety_buffer": 2},
    },
}


def demo_config(api_token: str) -> StackConfig:
    """A throw-away SQLite ledger beside the config, the in-process broker, quick polling."""
    return StackConfig(
        rules=RULES,
        api_token=api_token,
        daemon={"poll_interval_s": 5},
        overrides={"channels": {"shop": {"location": "Main"}}},
    )


@dataclass
class DemoStack(LoopbackStack):
    """The demo's daemon runs in this process; its receipts token is in `config.api_token`."""

    @property
    def sandbox_urls(self) -> dict[str, str]:
        return {"shop": self.shopify.url, "woo": self.woo.url}

    def shown(self) -> dict[str, dict[str, int]]:
        """What each storefront offers now, per channel and SKU (read in-process, cheap)."""
        with self.shopify.lock:
            shop = {sku: self.shopify.available(sku) for sku in CATALOG}
        with self.woo.lock:
            products = self.woo.state_snapshot()["products"]
        # the stock, plus incoming units a product on backorder leaves out of it (issue #17)
        stock = {p["sku"]: offered_quantity(p) for p in products if p["type"] != "variable"}
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
            f"{self.daemon_url}/api/purchase-orders/{PO_REF}/receipts",
            json={"lines": lines},
            headers={"Authorization": f"Bearer {self.config.api_token}"},
            timeout=timeout,
        )
        if reply.status_code != 200:
            raise RuntimeError(f"receipt of {PO_REF} refused: {reply.status_code} {reply.text}")

    def flush_webhooks(self) -> None:
        self.shopify.outbox.flush()
        self.woo.outbox.flush()


def start_demo_stack(folder: Path, today: date, worker_threads: int = 4) -> DemoStack:
    """Start sandboxes, migrate and seed the ledger (stock, two POs), start the daemon."""
    soon, later = (today + timedelta(days=d) for d in (PO_ETA_DAYS, NEXT_PO_ETA_DAYS))
    return start_stack(
        DemoStack,
        folder,
        demo_config(secrets.token_urlsafe(24)),
        CATALOG,
        actor="demo",
        purchase_orders=(
            SeedPo(PO_REF, soon, PO_LINES, SUPPLIER),
            SeedPo(NEXT_PO_REF, later, NEXT_PO_LINES, SUPPLIER),
        ),
        worker_threads=worker_threads,
    )
