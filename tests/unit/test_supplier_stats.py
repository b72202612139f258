"""Suppliers measured (issue #17), pure: the figures of stock.supplier_stats, the auto share of
stock.engine, and `incoming_share: auto` in the YAML (values, sources, FILE:LINE errors)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from rules import ConfigError, parse_config
from stock.engine import (
    IncomingLine,
    OfferInputs,
    SupplierFill,
    auto_share,
    auto_shared,
    compute_offer,
)
from stock.offers import StockFigures
from stock.supplier_stats import (
    MIN_POS,
    NONE,
    PoRow,
    ReceiptRow,
    fill_rates,
    measured,
    supplier_stats,
)

T0 = datetime(2026, 10, 1, 9, tzinfo=UTC)
ETA = date(2026, 10, 11)  # ten days after T0


def po(
    po_id: int,
    supplier: str | None = "ACME",
    status: str = "received",
    *,
    ordered: int = 10,
    filled: int = 10,
    days: int = 0,
) -> PoRow:
    """PO `po_id`, created `days` after T0 (later ids newer), due ten days after creation."""
    created = T0 + timedelta(days=days or po_id)
    eta = created.date() + timedelta(days=10)
    return PoRow(po_id, f"PO-{po_id}", supplier, status, created, eta, ordered, filled)


def receipt(row: PoRow, qty: int, late_days: int) -> ReceiptRow:
    """`qty` units of `row` booked `late_days` after its original ETA, at 15:00 UTC."""
    day = row.original_eta + timedelta(days=late_days)
    return ReceiptRow(row.id, qty, datetime(day.year, day.month, day.day, 15, tzinfo=UTC))


# ---- the window ---------------------------------------------------------------------------------


def test_each_supplier_is_measured_over_its_last_closed_pos_newest_first() -> None:
    rows = [po(i) for i in range(1, 13)] + [po(13, status="open"), po(14, "Other", "cancelled")]
    window = measured(rows, last=10)
    assert [r.id for r in window["ACME"]] == list(range(12, 2, -1))  # open PO 13 not yet
    assert [r.id for r in window["Other"]] == [14]
    with pytest.raises(ValueError, match="at least 1"):
        measured(rows, last=0)


def test_pos_without_a_supplier_are_grouped_as_none_and_listed_last() -> None:
    stats = supplier_stats([po(1, None), po(2, "Zed"), po(3, "Acme"), po(4, None, "open")], [])
    assert [(s.supplier, s.pos, s.open_pos) for s in stats] == [
        ("Acme", 1, 0),
        ("Zed", 1, 0),
        (NONE, 1, 1),
    ]


def test_open_pos_are_counted_but_not_measured() -> None:
    [stats] = supplier_stats([po(1, status="open"), po(2, status="open")], [])
    assert (stats.pos, stats.open_pos, stats.fill_rate, stats.on_time_pct) == (0, 2, None, None)
    [given] = supplier_stats([po(1)], [], open_pos={"ACME": 5})
    assert (given.pos, given.open_pos) == (1, 5)


# ---- fill rate ----------------------------------------------------------------------------------


def test_fill_rate_counts_a_cancelled_pos_missing_units_as_not_filled() -> None:
    rows = [po(1, ordered=10, filled=10), po(2, status="cancelled", ordered=10, filled=4)]
    [stats] = supplier_stats(rows, [])
    assert (stats.units_ordered, stats.units_filled, stats.fill_rate) == (20, 14, 0.7)


def test_fill_rate_is_over_the_window_only() -> None:
    rows = [po(1, ordered=10, filled=0)] + [po(i) for i in range(2, 5)]
    assert supplier_stats(rows, [], last=3)[0].fill_rate == 1.0
    assert supplier_stats(rows, [], last=4)[0].fill_rate == 0.75


def test_fill_rates_for_the_auto_share_need_enough_history() -> None:
    few = [po(i, filled=5) for i in range(1, MIN_POS)]
    enough = [po(i, "B", filled=8) for i in range(1, MIN_POS + 1)]
    nothing_ordered = [po(i, "C", ordered=0, filled=0) for i in range(1, MIN_POS + 1)]
    found = fill_rates(few + enough + nothing_ordered)
    assert found["ACME"] == SupplierFill("ACME", None, MIN_POS - 1)
    assert found["B"] == SupplierFill("B", 0.8, MIN_POS)
    assert found["C"] == SupplierFill("C", None, MIN_POS)
    assert fill_rates(few, min_pos=1)["ACME"].rate == 0.5


# ---- on time, delay, lead time ------------------------------------------------------------------


def test_on_time_means_every_receipt_by_the_original_eta() -> None:
    early, on_day, partly_late, never = po(1), po(2), po(3), po(4, status="cancelled", filled=0)
    receipts = [
        receipt(early, 10, -2),
        receipt(on_day, 10, 0),
        receipt(partly_late, 6, -1),
        receipt(partly_late, 4, 3),
    ]
    [stats] = supplier_stats([early, on_day, partly_late, never], receipts)
    # the cancelled PO with nothing received has no delivery to judge
    assert (stats.delivered_pos, stats.on_time_pos, stats.on_time_pct) == (3, 2, 66.7)
    # signed and per unit: (10 x -2 + 10 x 0 + 6 x -1 + 4 x 3) / 30
    assert stats.mean_delay_days == round(-14 / 30, 2)


def test_lead_time_is_order_to_receipt_per_unit() -> None:
    first, second = po(1), po(2)
    receipts = [receipt(first, 10, 0), receipt(second, 30, 2)]
    [stats] = supplier_stats([first, second], receipts)
    # created 09:00, booked 15:00: 10 days 6 hours, and 12 days 6 hours
    assert stats.mean_lead_days == round((10 * 10.25 + 30 * 12.25) / 40, 2)
    assert stats.mean_delay_days == 1.5


def test_receipts_of_pos_outside_the_window_are_left_out() -> None:
    old, new = po(1), po(2)
    [stats] = supplier_stats([old, new], [receipt(old, 10, 30), receipt(new, 10, 0)], last=1)
    assert (stats.refs, stats.on_time_pct, stats.mean_delay_days) == (("PO-2",), 100.0, 0.0)


def test_a_supplier_without_receipts_has_no_timing_figures() -> None:
    [stats] = supplier_stats([po(1)], [])
    assert (stats.on_time_pct, stats.mean_delay_days, stats.mean_lead_days) == (None, None, None)
    assert stats.as_dict()["refs"] == ["PO-1"]


# ---- the auto share (engine) --------------------------------------------------------------------


def test_auto_share_is_the_fill_rate_bounded_and_the_floor_without_history() -> None:
    assert auto_share(SupplierFill("A", 0.82, 10), 0.5, 1.0) == 0.82
    assert auto_share(SupplierFill("A", 0.3, 10), 0.5, 1.0) == 0.5
    assert auto_share(SupplierFill("A", 1.0, 10), 0.5, 0.9) == 0.9
    assert auto_share(SupplierFill("A", None, 1), 0.5, 1.0) == 0.5
    assert auto_share(None, 0.6, 1.0) == 0.6
    assert auto_share(SupplierFill("A", 0.9, 10), 0.8, 0.7) == 0.7  # crossed bounds: the cap


def test_auto_shared_applies_each_lines_supplier_then_sums() -> None:
    today = date(2026, 11, 1)
    lines = [
        IncomingLine(10, 0, today, "A", SupplierFill("A", 0.8, 10)),
        IncomingLine(10, 6, today, "B", SupplierFill("B", 0.95, 10)),
        IncomingLine(7, 0, today + timedelta(days=5), "C", SupplierFill("C", None, 0)),
        IncomingLine(50, 0, today + timedelta(days=30), "A", SupplierFill("A", 0.8, 10)),
    ]
    shared = auto_shared(lines, today, 14, 0.5, 1.0)
    assert shared == pytest.approx(10 * 0.8 + 4 * 0.95 + 7 * 0.5)  # the last is beyond 14 days
    inputs = OfferInputs(0, 0, 2, 21, 0, None, True, shared / 21, incoming_shared=shared)
    offer = compute_offer(inputs)
    assert offer.incoming_capacity == 15 - 2  # floor(15.3) once, not per line
    assert offer.as_dict()["incoming_shared"] == 15.3


def test_figures_offer_under_auto_uses_each_lines_fill() -> None:
    config = parse_config(AUTO, "stocksync.yaml", {})
    today = date(2026, 11, 1)
    fig = StockFigures(
        on_hand=5,
        incoming=(
            ("PO-1", IncomingLine(10, 0, today, "ACME", SupplierFill("ACME", 0.82, 10))),
            ("PO-2", IncomingLine(10, 0, today, "NewCo", SupplierFill("NewCo", None, 1))),
        ),
    )
    terms = fig.offer(config.rule_for("shop", "A"), today).as_dict()
    assert terms["incoming_shared"] == pytest.approx(8.2 + 6.0)
    assert terms["incoming_share"] == 0.71
    assert terms["incoming_capacity"] == 14
    assert terms["offered"] == 19
    # a fixed share on another channel: unchanged arithmetic, no incoming_shared term
    fixed = fig.offer(config.rule_for("popup", "A"), today).as_dict()
    assert "incoming_shared" not in fixed
    assert (fixed["incoming_share"], fixed["incoming_capacity"]) == (0.5, 10)


# ---- the YAML -----------------------------------------------------------------------------------

AUTO = """\
channels:
  shop: {kind: manual}
  popup: {kind: manual}
defaults:
  backorders:
    enabled: true
    incoming_share: auto
    incoming_share_floor: 0.6
channel_rules:
  popup: {backorders: {incoming_share: 0.5}}
sku_rules:
  - {match: "B*", backorders: {incoming_share_cap: 0.9}}
"""


def test_auto_with_its_bounds_resolves_per_field_with_sources() -> None:
    config = parse_config(AUTO, "stocksync.yaml", {})
    assert config.rules.uses_auto_share
    rule = config.rule_for("shop", "B-1")
    assert rule.auto_share
    got = {
        name: (item["value"], item["source"])
        for name, item in rule.as_dict().items()
        if name.startswith("incoming_share")
    }
    assert got == {
        "incoming_share": ("auto", "stocksync.yaml:7"),
        "incoming_share_floor": (0.6, "stocksync.yaml:8"),
        "incoming_share_cap": (0.9, "stocksync.yaml:12"),
    }
    assert not config.rule_for("popup", "A").auto_share
    assert config.rule_for("shop", "A").incoming_share_cap.source == "default"
    plain = parse_config("channels: {p: {kind: manual}}\n", "stocksync.yaml", {})
    assert not plain.rules.uses_auto_share
    assert plain.rule_for("p", "A").incoming_share_floor.value == 0.5


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "defaults:\n  backorders:\n    incoming_share: automatic\n",
            "stocksync.yaml:3: defaults.backorders.incoming_share: must be a number or 'auto', "
            "got 'automatic'",
        ),
        (
            "defaults: {backorders: {incoming_share: yes}}\n",
            "stocksync.yaml:1: defaults.backorders.incoming_share: must be a number or 'auto', "
            "got true",
        ),
        (
            "defaults: {backorders: {incoming_share: 1.2}}\n",
            "stocksync.yaml:1: defaults.backorders.incoming_share: must be between 0 and 1, "
            "got 1.2",
        ),
        (
            "defaults:\n  backorders:\n    incoming_share_floor: -0.5\n",
            "stocksync.yaml:3: defaults.backorders.incoming_share_floor: must be between 0 and "
            "1, got -0.5",
        ),
        (
            "defaults: {backorders: {incoming_share_cap: high}}\n",
            "stocksync.yaml:1: defaults.backorders.incoming_share_cap: must be a number, "
            "got 'high'",
        ),
        (
            "defaults:\n  backorders:\n    incoming_share: auto\n    incoming_share_floor: 0.9"
            "\n    incoming_share_cap: 0.5\n",
            "stocksync.yaml:2: defaults.backorders: incoming_share_floor (0.9) is above "
            "incoming_share_cap (0.5)",
        ),
        (
            "defaults: {backorders: {incoming_share_flor: 0.5}}\n",
            "stocksync.yaml:1: defaults.backorders.incoming_share_flor: unknown key "
            "'incoming_share_flor' (did you mean 'incoming_share_floor'?)",
        ),
    ],
)
def test_bad_auto_settings_are_file_line_errors(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "stocksync.yaml", {})
    assert [str(issue) for issue in caught.value.errors] == [expected]


def test_bounds_crossed_across_blocks_warn_and_the_cap_wins() -> None:
    text = """\
channels:
  shop: {kind: manual}
defaults:
  backorders: {incoming_share: auto, incoming_share_floor: 0.7}
sku_rules:
  - {match: "B*", backorders: {incoming_share_cap: 0.4}}
"""
    config = parse_config(text, "stocksync.yaml", {})
    assert [str(w) for w in config.warnings] == [
        "stocksync.yaml:6: sku_rules[0].backorders.incoming_share_cap: below "
        "incoming_share_floor 0.7 (stocksync.yaml:4) where incoming_share is auto "
        "(stocksync.yaml:4, channel shop): the cap is used"
    ]
    rule = config.rule_for("shop", "B-1")
    share = auto_share(None, rule.incoming_share_floor.value, rule.incoming_share_cap.value)
    assert share == 0.4
