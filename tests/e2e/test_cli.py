"""A merchant's day from the command line: a pop-up channel's ledger, `explain`, and a PO whose
receipts release backorders in the configured order. Every `--json` shape is checked key by key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import Cli, init, line_of

OUTCOME_KEYS = {"reserved", "backordered", "beyond_capacity", "released", "oversold"}
RELEASED_KEYS = {"channel", "order", "line", "sku", "qty", "complete"}
STOCK_CHANGE_KEYS = {"ok", "sku", "on_hand"} | OUTCOME_KEYS
ORDER_KEYS = {"ok", "channel", "order", "status", "placed_at", "customer", "tier", "lines"}
ORDER_LINE_KEYS = {"line", "sku", "quantity", "reserved", "backordered", "shipped", "cancelled"}
PO_KEYS = {"ref", "supplier", "eta", "status", "lines"}
PO_LINE_KEYS = {"sku", "ordered", "received", "open"}
BACKORDER_KEYS = {
    "id", "sku", "channel", "order", "line", "customer", "tier", "placed_at", "qty_open",
    "qty_released", "beyond_capacity", "priority", "partial", "release_order", "rank",
    "created_at", "at_risk", "at_risk_units", "promised_on", "promise_moved_from",
}  # fmt: skip
STATUS_KEYS = {
    "database", "channels", "orders_open", "backorders_open", "backorders_beyond_capacity",
    "inbox_pending", "inbox_failed", "listings_dirty", "skus",
}  # fmt: skip
STATUS_SKU_KEYS = {
    "sku", "on_hand", "reserved", "backordered", "incoming", "oversold", "pooled", "offered"
}  # fmt: skip
EXPLAIN_KEYS = {
    "sku", "on_hand", "oversold", "reserved", "backordered", "incoming", "today", "channels",
    "promises",
}  # fmt: skip
OFFER_KEYS = {
    "channel", "offered", "terms", "rule", "last_pushed", "last_seen", "pushed_at",
    "incoming_share",
}  # fmt: skip
TERM_KEYS = {
    "on_hand", "reserved", "sellable_now", "incoming_open", "incoming_share", "backorders_enabled",
    "backordered", "incoming_capacity", "safety_buffer", "cap", "offered",
}  # fmt: skip
RULE_KEYS = {
    "safety_buffer", "cap", "priority", "backorders_enabled", "incoming_share", "horizon_days",
    "release_order", "release_partial", "pool", "incoming_share_floor", "incoming_share_cap",
}  # fmt: skip


def released(data: dict[str, Any]) -> list[tuple[str, str, str, int, bool]]:
    """The `released` list of an outcome as (channel, order, sku, qty, complete), shape-checked."""
    for item in data["released"]:
        assert set(item) == RELEASED_KEYS
    return [(r["channel"], r["order"], r["sku"], r["qty"], r["complete"]) for r in data["released"]]


def check_order_shape(data: dict[str, Any]) -> None:
    assert set(data) == ORDER_KEYS | OUTCOME_KEYS
    for line in data["lines"]:
        assert set(line) == ORDER_LINE_KEYS


def check_po_shape(data: dict[str, Any]) -> None:
    assert set(data) >= PO_KEYS
    for line in data["lines"]:
        assert set(line) == PO_LINE_KEYS


def check_backorder_shape(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        assert set(row) == BACKORDER_KEYS


# ------------------------------------------------------------------------------ pop-up ledger
@pytest.mark.slow
def test_popup_ledger_stock_orders_and_cancel(tmp_path: Path) -> None:
    config = init(tmp_path)
    cli = Cli(tmp_path, config)
    csv_file = tmp_path / "count.csv"
    csv_file.write_text("sku,on_hand\nMUG,5\nCAP,0\n", encoding="utf-8")
    counted, imported, again = cli.many(
        [
            ("stock", "set", "TEE", "10", "--reason", "opening count", "--json"),
            ("stock", "import", str(csv_file), "--json"),
            ("init", "shop"),
        ],
        expect=None,
    )
    assert (counted.code, imported.code, again.code) == (0, 0, 2)
    assert set(counted.json()) == STOCK_CHANGE_KEYS
    assert counted.json()["ok"] is True
    assert (counted.json()["sku"], counted.json()["on_hand"]) == ("TEE", 10)
    assert imported.json() == {"ok": True, "file": str(csv_file), "skus": 2, "released_units": 0}
    assert again.stderr == "error: shop/stocksync.yaml already exists; not overwriting it\n"
    # a negative delta is an argument, not an option
    adjusted = cli("stock", "adjust", "TEE", "-3", "--reason", "damaged", "--json").json()
    assert set(adjusted) == STOCK_CHANGE_KEYS
    assert adjusted["on_hand"] == 7

    first = cli(
        "order", "add", "popup", "P-1", "TEE=4", "MUG=2", "--customer", "ann@example.com",
        "--tier", "vip", "--placed-at", "2026-11-20T10:00:00+01:00", "--json",
    ).json()  # fmt: skip
    check_order_shape(first)
    assert first["ok"] is True
    assert (first["channel"], first["order"], first["status"]) == ("popup", "P-1", "open")
    assert (first["customer"], first["tier"]) == ("ann@example.com", "vip")
    assert first["placed_at"] == "2026-11-20T09:00:00+00:00"
    assert first["reserved"] == {"1": 4, "2": 2}
    assert [(x["sku"], x["quantity"], x["reserved"]) for x in first["lines"]] == [
        ("TEE", 4, 4),
        ("MUG", 2, 2),
    ]

    # 3 left: the starter config has backorders disabled, so the rest waits flagged, never dropped
    second = cli("order", "add", "popup", "P-2", "TEE=5", "--json").json()
    check_order_shape(second)
    assert (second["reserved"], second["backordered"]) == ({"1": 3}, {"1": 2})
    assert second["beyond_capacity"] == {"1": 2}
    assert second["lines"][0]["backordered"] == 2

    cancelled = cli("order", "cancel", "popup", "P-1", "--json").json()
    check_order_shape(cancelled)
    assert cancelled["status"] == "cancelled"
    assert [(x["sku"], x["cancelled"], x["reserved"]) for x in cancelled["lines"]] == [
        ("TEE", 4, 0),
        ("MUG", 2, 0),
    ]
    assert released(cancelled) == [("popup", "P-2", "TEE", 2, True)]

    # $STOCKSYNC_CONFIG names the config when --config is not given
    via_env = Cli(tmp_path, env={"STOCKSYNC_CONFIG": str(config)})
    status_run, explain_run, history_run = via_env.many(
        [
            ("status", "--json"),
            ("explain", "TEE", "--channel", "popup"),
            ("backorders", "--all", "--json"),
        ]
    )
    status = status_run.json()
    assert set(status) == STATUS_KEYS
    assert status["channels"] == {"popup": "manual"}
    assert (status["orders_open"], status["backorders_open"]) == (1, 0)
    assert (status["inbox_pending"], status["inbox_failed"], status["listings_dirty"]) == (0, 0, 0)
    assert status["database"]["current"] == status["database"]["head"]
    rows = {row["sku"]: row for row in status["skus"]}
    assert list(rows) == ["CAP", "MUG", "TEE"]
    for row in rows.values():
        assert set(row) == STATUS_SKU_KEYS
    assert rows["TEE"] == {
        "sku": "TEE", "on_hand": 7, "reserved": 5, "backordered": 0, "incoming": 0,
        "oversold": 0, "pooled": False, "offered": {"popup": 2},
    }  # fmt: skip
    assert rows["MUG"]["offered"] == {"popup": 5}
    assert "TEE: 7 on hand, 5 reserved, 0 backordered" in explain_run.stdout
    assert "channel popup: offered 2" in explain_run.stdout
    history = history_run.json()
    assert set(history) == {"backorders", "next"}
    assert history["next"] is None  # one page holds them all
    check_backorder_shape(history["backorders"])
    assert [
        (b["order"], b["qty_open"], b["qty_released"], b["beyond_capacity"])
        for b in history["backorders"]
    ] == [("P-2", 0, 2, True)]


# ------------------------------------------------------------------------------ explain, release
RULES_CONFIG = """\
# a pop-up, a phone line and a wholesale account share one ledger
database: sqlite:///stocksync.db
channels:
  popup: {kind: manual}
  phone: {kind: manual}
  wholesale: {kind: manual}
tiers: [vip, regular]
defaults:
  safety_buffer: 1
  backorders:
    enabled: true
    incoming_share: 0.5
    horizon_days: 30
  release:
    order: [priority, tier, placed_at]
channel_rules:
  popup: {priority: 1}
  phone:
    priority: 2
    safety_buffer: 0
  wholesale:
    priority: 3
    cap: 5
    release: {partial: false}
sku_rules:
  - match: "TEE-*"
    channels: [phone]
    backorders: {incoming_share: 0.75}
"""


def expected_rules(config: Path) -> dict[str, dict[str, tuple[Any, str]]]:
    """Per channel: rule name -> (value, source), the sources read off the written file."""

    def at(needle: str) -> str:
        return f"{config}:{line_of(RULES_CONFIG, needle)}"

    common = {
        "safety_buffer": (1, at("safety_buffer: 1")),
        "cap": (None, "default"),
        "backorders_enabled": (True, at("enabled: true")),
        "incoming_share": (0.5, at("incoming_share: 0.5")),
        "incoming_share_floor": (0.5, "default"),
        "incoming_share_cap": (1.0, "default"),
        "horizon_days": (30, at("horizon_days: 30")),
        "release_order": (["priority", "tier", "placed_at"], at("order: [priority")),
        "release_partial": (True, "default"),
    }
    return {
        "popup": {**common, "priority": (1, at("priority: 1"))},
        "phone": {
            **common,
            "priority": (2, at("priority: 2")),
            "safety_buffer": (0, at("safety_buffer: 0")),
            "incoming_share": (0.75, at("incoming_share: 0.75")),
        },
        "wholesale": {
            **common,
            "priority": (3, at("priority: 3")),
            "cap": (5, at("cap: 5")),
            "release_partial": (False, at("partial: false")),
        },
    }


@pytest.mark.slow
def test_explain_and_receipts_release_in_configured_order(tmp_path: Path) -> None:
    config = init(tmp_path)
    config.write_text(RULES_CONFIG, encoding="utf-8")  # same database file, already migrated
    cli = Cli(tmp_path, config)
    eta = (datetime.now(UTC).date() + timedelta(days=5)).isoformat()

    counted, po = cli.many(
        [
            ("stock", "set", "TEE-1", "2", "--json"),
            ("po", "add", "PO-1", "--eta", eta, "--supplier", "Acme", "TEE-1=24", "--json"),
        ]
    )
    assert counted.json()["on_hand"] == 2
    po_data = po.json()
    check_po_shape(po_data)
    assert po_data == {
        "ok": True, "ref": "PO-1", "supplier": "Acme", "eta": eta, "status": "open",
        "lines": [{"sku": "TEE-1", "ordered": 24, "received": 0, "open": 24}],
    }  # fmt: skip

    # placed out of order on purpose: release ranks by priority, then tier, then placed_at
    orders = [
        ("phone", "T-1", "3", ("--tier", "regular", "--placed-at", "2026-11-20T10:00:00Z")),
        ("popup", "P-1", "2", ("--tier", "regular", "--placed-at", "2026-11-20T10:10:00Z")),
        ("phone", "T-2", "2", ("--tier", "vip", "--placed-at", "2026-11-20T10:20:00Z")),
        ("popup", "P-2", "2", ("--tier", "vip", "--placed-at", "2026-11-20T10:30:00Z")),
        ("wholesale", "W-1", "4", ("--customer", "acme-retail", "--placed-at", "2026-11-20T09:00")),
    ]
    outcomes = []
    for channel, ref, qty, options in orders:
        data = cli("order", "add", channel, ref, f"TEE-1={qty}", *options, "--json").json()
        check_order_shape(data)
        outcomes.append((data["reserved"], data["backordered"], data["beyond_capacity"]))
    assert outcomes == [
        ({"1": 2}, {"1": 1}, {}),
        ({}, {"1": 2}, {}),
        ({}, {"1": 2}, {}),
        ({}, {"1": 2}, {}),
        ({}, {"1": 4}, {}),  # 12 of 24 incoming may be promised: 7 were, 4 more fit
    ]

    explain_run, waiting_run = cli.many([("explain", "TEE-1", "--json"), ("backorders", "--json")])
    explained = explain_run.json()
    assert set(explained) == EXPLAIN_KEYS
    assert explained["today"] == datetime.now(UTC).date().isoformat()
    assert (explained["sku"], explained["on_hand"], explained["reserved"]) == ("TEE-1", 2, 2)
    assert (explained["backordered"], explained["oversold"]) == (11, 0)
    assert explained["incoming"] == [{"po": "PO-1", "eta": eta, "open": 24}]
    rules = expected_rules(config)
    offers = {offer["channel"]: offer for offer in explained["channels"]}
    assert list(offers) == ["popup", "phone", "wholesale"]
    for channel, offer in offers.items():
        assert set(offer) == OFFER_KEYS
        assert set(offer["terms"]) == TERM_KEYS
        assert set(offer["rule"]) == RULE_KEYS
        got = {name: (item["value"], item["source"]) for name, item in offer["rule"].items()}
        assert got == {**rules[channel], "pool": (None, "default")}, channel
        assert (offer["last_pushed"], offer["last_seen"], offer["pushed_at"]) == (None, None, None)
    # every term, per channel: sellable 0; capacity floor(24 x share) - 11; minus the buffer
    expected_terms = {
        "popup": (0.5, 1, 1, None, 0),
        "phone": (0.75, 7, 0, None, 7),
        "wholesale": (0.5, 1, 1, 5, 0),
    }
    for channel, (share, capacity, buffer, cap, offered) in expected_terms.items():
        assert offers[channel]["terms"] == {
            "on_hand": 2, "reserved": 2, "sellable_now": 0, "incoming_open": 24,
            "incoming_share": share, "backorders_enabled": True, "backordered": 11,
            "incoming_capacity": capacity, "safety_buffer": buffer, "cap": cap,
            "offered": offered,
        }, channel  # fmt: skip
        assert offers[channel]["offered"] == offered

    waiting = waiting_run.json()
    assert set(waiting) == {"backorders", "next"}
    assert waiting["next"] is None
    check_backorder_shape(waiting["backorders"])
    assert [(b["channel"], b["order"], b["qty_open"]) for b in waiting["backorders"]] == [
        ("popup", "P-2", 2),  # priority 1, vip
        ("popup", "P-1", 2),  # priority 1, regular
        ("phone", "T-2", 2),  # priority 2, vip
        ("phone", "T-1", 1),  # priority 2, regular
        ("wholesale", "W-1", 4),  # priority 3, though placed first
    ]
    assert all(not b["beyond_capacity"] for b in waiting["backorders"])

    receipt = cli("po", "receive", "PO-1", "TEE-1=5", "--json").json()
    check_po_shape(receipt)
    assert set(receipt) == {"ok", "release", "over_received"} | PO_KEYS | OUTCOME_KEYS
    assert receipt["release"] == "done"  # `broker: memory`: released right here, not by workers
    assert receipt["lines"] == [{"sku": "TEE-1", "ordered": 24, "received": 5, "open": 19}]
    assert released(receipt) == [
        ("popup", "P-2", "TEE-1", 2, True),
        ("popup", "P-1", "TEE-1", 2, True),
        ("phone", "T-2", "TEE-1", 1, False),  # partial fills are allowed by default
    ]

    # 4 more: phone is served; 2 units are left, but wholesale takes its 4 whole or not at all
    receipt = cli("po", "receive", "PO-1", "TEE-1=4", "--json").json()
    assert released(receipt) == [
        ("phone", "T-2", "TEE-1", 1, True),
        ("phone", "T-1", "TEE-1", 1, True),
    ]
    receipt = cli("po", "receive", "PO-1", "TEE-1=2", "--json").json()
    assert released(receipt) == [("wholesale", "W-1", "TEE-1", 4, True)]

    history_run, pos_run = cli.many(
        [("backorders", "--sku", "TEE-1", "--all", "--json"), ("po", "list", "--json")]
    )
    history = history_run.json()["backorders"]
    check_backorder_shape(history)
    assert [(b["order"], b["qty_open"], b["qty_released"], b["partial"]) for b in history] == [
        ("P-2", 0, 2, True), ("P-1", 0, 2, True), ("T-2", 0, 2, True), ("T-1", 0, 1, True),
        ("W-1", 0, 4, False),
    ]  # fmt: skip
    assert history[-1]["customer"] == "acme-retail"
    pos = pos_run.json()
    assert set(pos) == {"purchase_orders"}
    assert pos["purchase_orders"] == [
        {
            "ref": "PO-1", "supplier": "Acme", "eta": eta, "status": "open",
            "lines": [{"sku": "TEE-1", "ordered": 24, "received": 11, "open": 13}],
        }
    ]  # fmt: skip


# ------------------------------------------------------------------------------ partial: false
PARTIAL_CONFIG = """\
database: sqlite:///stocksync.db
channels:
  wholesale: {kind: manual}
defaults:
  backorders: {enabled: true, incoming_share: 0.5}
channel_rules:
  wholesale: {release: {partial: false}}
"""


@pytest.mark.slow
def test_partial_false_releases_a_line_whole_even_when_it_was_split(tmp_path: Path) -> None:
    """A line backordered partly beyond capacity is still one line the customer waits for."""
    config = init(tmp_path)
    config.write_text(PARTIAL_CONFIG, encoding="utf-8")
    cli = Cli(tmp_path, config)
    eta = (datetime.now(UTC).date() + timedelta(days=3)).isoformat()
    cli("po", "add", "PO-1", "--eta", eta, "BOX=4", "--json")
    order = cli("order", "add", "wholesale", "W-1", "BOX=3", "--json").json()
    # capacity floor(4 x 0.5) = 2: one unit beyond it, kept and flagged
    assert (order["backordered"], order["beyond_capacity"]) == ({"1": 3}, {"1": 1})

    receipt = cli("po", "receive", "PO-1", "BOX=2", "--json").json()
    assert released(receipt) == [], "partial: false, yet 2 of the line's 3 units were released"
    receipt = cli("po", "receive", "PO-1", "BOX=1", "--json").json()
    assert sum(item["qty"] for item in receipt["released"]) == 3
