"""Channels that set different `release.order`s: `check` warns, and `stocksync backorders` lists
exactly the order a receipt then releases in (it used to crash with a traceback)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e import Cli

CONFIG = """\
database: sqlite:///ledger.db
channels:
  popup: {kind: manual}
  phone: {kind: manual}
channel_rules:
  popup: {priority: 1, release: {order: [placed_at, priority, tier]}}
  phone: {priority: 2}
"""


@pytest.mark.slow  # nine `stocksync` processes: ~13 s
def test_disagreeing_release_orders_warn_and_the_listing_matches_the_release(
    tmp_path: Path,
) -> None:
    config = tmp_path / "stocksync.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    cli = Cli(tmp_path, config)
    cli("db", "upgrade")
    checked = cli("check", "--json").json()
    assert checked["settings"]["warnings"] == [
        f"{config}:6: channel_rules.popup.release.order: backorders of one SKU are released in "
        "one order across channels; where channels disagree, the defaults order "
        "['priority', 'tier', 'placed_at'] (default) is used instead of this one (set "
        "release.order in defaults, or in a sku rule for every channel)"
    ]
    assert "channel_rules.popup.release.order" in cli("check").stdout
    cli("po", "add", "PO1", "--eta", "2026-12-01", "A=10")
    cli("order", "add", "phone", "P1", "A=1", "--placed-at", "2026-11-20T10:00:00+00:00")
    cli("order", "add", "popup", "Q1", "A=1", "--placed-at", "2026-11-21T10:00:00+00:00")
    listed = cli("backorders", "--json").json()["backorders"]
    assert [(row["order"], row["rank"], row["release_order"]) for row in listed] == [
        ("Q1", 1, ["priority", "tier", "placed_at"]),
        ("P1", 2, ["priority", "tier", "placed_at"]),
    ]
    assert "Q1" in cli("backorders").stdout
    receipt = cli("po", "receive", "PO1", "A=1", "--json").json()
    assert [(r["channel"], r["order"]) for r in receipt["released"]] == [("popup", "Q1")]
