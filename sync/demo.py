"""`stocksync demo`: a pop-up shop's day on a throw-away SQLite ledger, shown step by step.

It uses only the manual channel, so it runs on a fresh machine with nothing configured; the
connected-channel demo with both sandboxes arrives with the daemon (issue #5).
"""

from __future__ import annotations

import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console

from rules import load_config
from stock.db import upgrade
from stock.ledger import LineInput, OrderInput
from sync import queries, render
from sync.context import AppContext

DEMO_CONFIG = """\
database: sqlite:///demo.db
broker: memory
channels:
  popup: {kind: manual}
  phone: {kind: manual}
tiers: [vip, regular]
defaults:
  safety_buffer: 1
  backorders: {enabled: true, incoming_share: 0.75, horizon_days: 14}
  release: {order: [priority, tier, placed_at], partial: true}
channel_rules:
  popup: {priority: 1}
  phone: {priority: 2, safety_buffer: 0}
"""


def run_demo(console: Console, duration: float) -> int:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="stocksync-demo-") as folder:
        path = Path(folder) / "stocksync.yaml"
        path.write_text(DEMO_CONFIG, encoding="utf-8")
        config = load_config(path)
        upgrade(config.database)
        ctx = AppContext.open(config)
        try:
            _story(console, ctx)
            while time.monotonic() - started < duration:
                time.sleep(min(1.0, duration))
            db_revision = queries.revision(ctx)
            with ctx.ledger(actor="demo") as ledger:
                render.status(console, queries.status(ctx, ledger, db_revision))
        finally:
            ctx.close()
    console.print(
        "\nShopify and WooCommerce channels are not configured in this demo yet: "
        "`stocksync init` writes a config to start your own ledger."
    )
    return 0


def _story(console: Console, ctx: AppContext) -> None:
    now = datetime.now(UTC)

    def order(channel: str, ref: str, qty: int, tier: str, minutes_ago: int) -> None:
        placed = now - timedelta(minutes=minutes_ago)
        with ctx.ledger(actor="demo") as ledger:
            outcome = ledger.record_order(
                OrderInput(
                    channel, ref, placed, placed, "open", (LineInput("1", "TEE-BLK-M", qty),),
                    customer_key=f"{ref.lower()}@example.com", tier=tier,
                )
            )  # fmt: skip
        waits = sum(outcome.backordered.values())
        console.print(
            f"order {channel}/{ref} ({tier}): {qty} x TEE-BLK-M -> "
            f"{sum(outcome.reserved.values())} reserved, {waits} backordered"
        )

    console.rule("stocksync demo: one T-shirt, two manual channels")
    with ctx.ledger(actor="demo") as ledger:
        ledger.set_stock("TEE-BLK-M", 6, "opening count")
        ledger.add_po("PO-1", (now + timedelta(days=5)).date(), {"TEE-BLK-M": 8}, "Acme Tees")
    console.print("counted 6 x TEE-BLK-M; PO-1 brings 8 more in 5 days (75 % may be promised)")
    order("popup", "P-1", 4, "regular", 50)
    order("phone", "T-1", 3, "regular", 40)
    order("popup", "P-2", 3, "vip", 30)
    order("phone", "T-2", 2, "vip", 20)
    with ctx.ledger(actor="demo") as ledger:
        render.explain(console, ledger.explain("TEE-BLK-M"))
        render.backorders(console, queries.backorders(ledger, None, False))
    with ctx.ledger(actor="demo") as ledger:
        outcome = ledger.receive_po("PO-1", {"TEE-BLK-M": 5})
        console.print(
            "received 5 of PO-1; release in configured order (priority, tier, placed_at):"
        )
        for item in outcome.released:
            console.print(f"  {item.qty} -> {item.channel}/{item.order_external_id}")
