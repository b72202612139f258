"""Manual channels and POs from the command line: `order ship` after a pop-up day (the evening's
shelf count then books no phantom oversell), `po cancel` (its backorders at risk, `explain` no
longer counting it) and receipts beyond what was ordered (`--allow-over`). Refused commands
exit 2 and book nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import Cli

CONFIG = """\
database: sqlite:///ledger.db
channels:
  popup: {kind: manual}
  phone: {kind: manual}
  shop: {kind: shopify, shop: my-store.myshopify.com, token: shpat_test, webhook_secret: test}
defaults:
  safety_buffer: 0
  backorders: {enabled: true, incoming_share: 1.0, horizon_days: 30}
channel_rules:
  popup: {priority: 1}
  phone: {priority: 2}
"""
ORDER_KEYS = {
    "ok", "channel", "order", "status", "placed_at", "customer", "tier", "lines", "reserved",
    "backordered", "beyond_capacity", "released", "oversold",
}  # fmt: skip


def ledger(tmp_path: Path) -> Cli:
    config = tmp_path / "stocksync.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    cli = Cli(tmp_path, config)
    cli("db", "upgrade")
    return cli


def lines(order: dict[str, Any]) -> list[tuple[str, int, int, int, int]]:
    """(sku, reserved, backordered, shipped, cancelled) per line."""
    return [
        (x["sku"], x["reserved"], x["backordered"], x["shipped"], x["cancelled"])
        for x in order["lines"]
    ]


def stock_of(cli: Cli) -> dict[str, tuple[int, int, int, int]]:
    """SKU -> (on hand, reserved, backordered, oversold)."""
    return {
        s["sku"]: (s["on_hand"], s["reserved"], s["backordered"], s["oversold"])
        for s in cli("status", "--json").json()["skus"]
    }


@pytest.mark.slow  # ~15 `stocksync` processes
def test_shipping_a_popup_order_and_counting_the_shelf(tmp_path: Path) -> None:
    cli = ledger(tmp_path)
    cli("stock", "set", "TEE", "10")
    cli("order", "add", "popup", "DAY", "TEE=4", "MUG=1")  # MUG: none on hand, backordered

    refusals = {
        ("order", "ship", "popup", "DAY", "TEE=5"): (
            "popup/DAY: TEE: cannot ship 5, only 4 reserved (0 backordered); nothing shipped"
        ),
        ("order", "ship", "popup", "DAY", "MUG=1", "CAP=1"): (
            "popup/DAY: MUG: cannot ship 1, only 0 reserved (1 backordered); "
            "CAP is not on this order; nothing shipped"
        ),
        ("order", "ship", "popup", "NOPE"): "popup/NOPE: no such order",
        ("order", "ship", "shop", "DAY"): (
            "channel 'shop' is shopify: its orders come from the channel itself"
        ),
        ("order", "ship", "popup", "DAY", "TEE=0"): "TEE: quantity must be positive, got 0",
    }
    results = cli.many([(*args, "--json") for args in refusals], expect=2)
    for result, message in zip(results, refusals.values(), strict=True):
        assert result.json() == {"ok": False, "error": message}, result
    assert stock_of(cli)["TEE"] == (10, 4, 0, 0)  # nothing was booked

    part = cli("order", "ship", "popup", "DAY", "TEE=3", "--json").json()
    assert set(part) == ORDER_KEYS | {"shipped"}
    assert (part["shipped"], part["status"]) == ({"1": 3}, "open")
    assert lines(part) == [("TEE", 1, 0, 3, 0), ("MUG", 0, 1, 0, 0)]
    rest = cli("order", "ship", "popup", "DAY", "--json").json()  # every reserved unit
    assert (rest["shipped"], rest["status"]) == ({"1": 1}, "open")  # MUG still waits
    cli("order", "add", "popup", "D2", "TEE=1")
    human = cli("order", "ship", "popup", "D2").stdout
    assert "popup/D2 (fulfilled)" in human
    assert "line 1: 1 units shipped now" in human

    # the evening's shelf count: 10 - 4 - 1 sold and handed over; no phantom oversell
    counted = cli("stock", "set", "TEE", "5", "--json").json()
    assert (counted["on_hand"], counted["oversold"]) == (5, {})
    assert stock_of(cli)["TEE"] == (5, 0, 0, 0)

    # the MUG arrives: released to the order, shipped, and the order is fulfilled
    cli("stock", "adjust", "MUG", "1")
    done = cli("order", "ship", "popup", "DAY", "--json").json()
    assert (done["shipped"], done["status"]) == ({"2": 1}, "fulfilled")
    assert lines(done) == [("TEE", 0, 0, 4, 0), ("MUG", 0, 0, 1, 0)]
    refused = cli("order", "cancel", "popup", "DAY", "--json", expect=2).json()
    assert refused["error"] == "popup/DAY: order is fulfilled: its units were shipped"
    assert stock_of(cli)["MUG"] == (0, 0, 0, 0)


@pytest.mark.slow  # ~20 `stocksync` processes
def test_cancelling_a_po_puts_the_backorders_it_covered_at_risk(tmp_path: Path) -> None:
    cli = ledger(tmp_path)
    soon = (datetime.now(UTC) + timedelta(days=5)).date().isoformat()
    later = (datetime.now(UTC) + timedelta(days=9)).date().isoformat()
    cli.many(
        [
            ("po", "add", "PO-1", "--eta", soon, "TEE=5"),
            ("po", "add", "PO-2", "--eta", later, "TEE=2"),
        ]
    )
    cli("order", "add", "popup", "P1", "TEE=3")  # priority 1: released first
    cli("order", "add", "phone", "T1", "TEE=3")
    explained = cli("explain", "TEE", "--channel", "popup", "--json").json()
    assert [(i["po"], i["open"]) for i in explained["incoming"]] == [("PO-1", 5), ("PO-2", 2)]
    assert explained["channels"][0]["terms"]["incoming_open"] == 7

    # a receipt beyond what PO-2 ordered is refused, nothing booked
    over = cli("po", "receive", "PO-2", "TEE=3", "--json", expect=2).json()
    assert over == {
        "ok": False,
        "error": "PO-2: more than ordered (TEE: 2 ordered, 0 received before, receiving 3 "
        "would be 1 over); nothing booked; book it anyway with --allow-over",
    }

    cancelled = cli("po", "cancel", "PO-1", "--json").json()
    assert (cancelled["ok"], cancelled["status"], cancelled["cancelled"]) == (
        True, "cancelled", {"TEE": 5},
    )  # fmt: skip
    assert cancelled["lines"] == [{"sku": "TEE", "ordered": 5, "received": 0, "open": 0}]
    # PO-2's 2 units still come: P1 keeps 2 of its 3, T1 none of its 3
    assert [
        (r["channel"], r["order"], r["rank"], r["qty_open"], r["at_risk_units"], r["at_risk"])
        for r in cancelled["at_risk"]
    ] == [("popup", "P1", 1, 3, 1, True), ("phone", "T1", 2, 3, 3, True)]

    again, receive_cancelled = cli.many(
        [("po", "cancel", "PO-1", "--json"), ("po", "receive", "PO-1", "TEE=1", "--json")],
        expect=2,
    )
    assert again.json()["error"] == "PO-1: purchase order is already cancelled"
    assert receive_cancelled.json()["error"].startswith(
        "PO-1: purchase order is cancelled; a cancelled PO cannot be received"
    )

    listed_run, human_run, explain_run, open_run, all_run = cli.many(
        [
            ("backorders", "--json"),
            ("backorders",),
            ("explain", "TEE", "--channel", "popup", "--json"),
            ("po", "list", "--json"),
            ("po", "list", "--all", "--json"),
        ]
    )
    listed = listed_run.json()["backorders"]
    assert [(r["order"], r["at_risk"], r["at_risk_units"]) for r in listed] == [
        ("P1", True, 1),
        ("T1", True, 3),
    ]
    assert "AT RISK (3)" in human_run.stdout
    explained = explain_run.json()
    assert [(i["po"], i["open"]) for i in explained["incoming"]] == [("PO-2", 2)]
    assert explained["channels"][0]["terms"]["incoming_open"] == 2
    assert [po["ref"] for po in open_run.json()["purchase_orders"]] == ["PO-2"]
    assert [(po["ref"], po["status"]) for po in all_run.json()["purchase_orders"]] == [
        ("PO-1", "cancelled"), ("PO-2", "open"),
    ]  # fmt: skip

    receipt = cli("po", "receive", "PO-2", "TEE=3", "--allow-over", "--json").json()
    assert (receipt["over_received"], receipt["status"]) == ({"TEE": 1}, "received")
    assert [(r["order"], r["qty"]) for r in receipt["released"]] == [("P1", 3)]
    waiting = cli("backorders", "--json").json()["backorders"]
    assert [(r["order"], r["qty_open"], r["at_risk_units"]) for r in waiting] == [("T1", 3, 3)]
