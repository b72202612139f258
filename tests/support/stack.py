"""A whole stack on loopback: both sandboxes, the daemon and a ledger, for integration tests.

sync/stack.py builds it; this module holds the tests' config values and their helpers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from sync import stack
from sync.stack import LoopbackStack, StackConfig, wait_until
from tests.support.checker import woo_offered

API_TOKEN = "test-token"  # the receipts API's token in every test stack
RULES = {
    "tiers": ["vip", "regular"],
    "defaults": {
        "safety_buffer": 0,
        "backorders": {"enabled": True, "incoming_share": 1.0, "horizon_days": 30},
        "release": {"order": ["priority", "tier", "placed_at"], "partial": True},
    },
    "channel_rules": {"shop": {"priority": 1}, "woo": {"priority": 2}},
}


def stack_config(
    *,
    database: str | None = None,
    broker: str = "memory",
    poll_interval: float = 3600,
    sweep_age: float = 2,
) -> StackConfig:
    """The tests' config: both sandboxes and a manual channel `popup`; polling only when a test
    asks for it, a quick sweeper."""
    return StackConfig(
        rules=RULES,
        database=database,
        broker=broker,
        api_token=API_TOKEN,
        daemon={
            "poll_interval_s": poll_interval,
            "sweep_interval_s": 0.5,
            "sweep_age_s": sweep_age,
        },
        manual_channels=("popup",),
    )


@dataclass
class Stack(LoopbackStack):
    def wait_until(
        self, predicate: Callable[[], bool], timeout: float = 20.0, what: str = "condition"
    ) -> None:
        wait_until(predicate, timeout, what)

    def woo_stock(self, sku: str) -> int:
        """What the WooCommerce sandbox offers of `sku` as stocksync reads it (its stock, plus
        incoming units left out of it while on backorder: tests/support/checker.woo_offered)."""
        state = requests.get(f"{self.woo.url}/_sandbox/state", timeout=5).json()
        return woo_offered(state)[sku]

    def woo_product(self, sku: str) -> dict[str, Any]:
        """The WooCommerce sandbox's record of `sku` as `/_sandbox/state` lists it (stock,
        backorders, stock status, meta)."""
        state = requests.get(f"{self.woo.url}/_sandbox/state", timeout=5).json()
        return dict(next(p for p in state["products"] if p["sku"] == sku))

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


@contextmanager
def running_stack(
    folder: Path,
    *,
    catalog: dict[str, int] | None = None,
    database: str | None = None,
    broker: str = "memory",
    poll_interval: float = 3600,
    sweep_age: float = 2,
) -> Iterator[Stack]:
    """Sandboxes selling `catalog`, the ledger counted in, the daemon in this process."""
    config = stack_config(
        database=database, broker=broker, poll_interval=poll_interval, sweep_age=sweep_age
    )
    catalog = catalog or {f"DEMO-{i}": 20 for i in range(1, 6)}
    with stack.start_stack(Stack, folder, config, catalog, actor="test") as running:
        yield running
