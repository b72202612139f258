"""The drop benchmark: its propagation rule, buyer plan and splits, the outcome figures
(sell-through, stranded refusals, unsold units, exposure), the pool's sizing and the summaries of
its audit and log, the baselines' arithmetic, and a tiny run."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bench.baselines import remaining, units_of
from bench.drop import (
    EVEN,
    FULL,
    QUICK,
    SKEWED,
    DropPlan,
    Propagation,
    Sale,
    SaleLog,
    SaleState,
    Sample,
    exposure,
    landed,
    log_summary,
    plan_buyers,
    pool_audit_summary,
    pool_reserve,
    pool_rules,
    refusals,
    run_drop,
    sell_through,
    sold_through,
    stranded_seconds,
    table,
    timeline,
    unsold,
)
from connectors.base import ChannelOrder, OrderLine, OrderStatus

SOLD, PENDING, REFUSED = SaleState.SOLD, SaleState.PENDING, SaleState.REFUSED


def sale(seq: int, channel: str, qty: int = 1, state: SaleState = SOLD) -> Sale:
    return Sale(seq, channel, qty, state, 1.0 if state is not PENDING else None)


def test_plan_buyers_is_seeded_sorted_and_within_the_burst() -> None:
    first = plan_buyers(200, 5.0, seed=3)
    assert first == plan_buyers(200, 5.0, seed=3)
    assert first != plan_buyers(200, 5.0, seed=4)
    assert [b.at for b in first] == sorted(b.at for b in first)
    assert all(0 <= b.at <= 5.0 and b.quantity in (1, 2) for b in first)
    assert {b.channel for b in first} == {"shop", "woo"}


def test_a_sale_lands_when_the_other_shop_shows_it_and_all_earlier_ones() -> None:
    sales = [sale(0, "shop"), sale(1, "shop", 2)]
    probes = {(0, "woo"), (1, "woo")}
    assert landed(sales, {"shop": 7, "woo": 10}, 10, probes) == ([], [])
    assert landed(sales, {"shop": 7, "woo": 9}, 10, probes) == ([(0, "woo")], [])
    assert landed(sales, {"shop": 7, "woo": 7}, 10, probes) == ([(0, "woo"), (1, "woo")], [])


def test_the_other_shops_own_later_sales_do_not_count_as_propagation() -> None:
    # woo sold 1 itself after the shop's sale: woo at 9 has not learnt of the shop's sale
    sales = [sale(0, "shop"), sale(1, "woo")]
    assert landed(sales, {"shop": 8, "woo": 9}, 10, {(0, "woo")}) == ([], [])
    assert landed(sales, {"shop": 8, "woo": 8}, 10, {(0, "woo")}) == ([(0, "woo")], [])


def test_a_probe_is_overtaken_when_the_other_shop_oversells_after_it() -> None:
    # 2 left after the shop's sale; woo then sells 3 itself: no woo quantity can show the sale
    sales = [sale(0, "shop"), sale(1, "woo", 2), sale(2, "woo")]
    assert landed(sales, {"shop": 2, "woo": 0}, 3, {(0, "woo")}) == ([], [(0, "woo")])
    # selling exactly what was left is fine: woo at 0 has then reflected the shop's sale
    assert landed(sales[:2], {"shop": 2, "woo": 0}, 3, {(0, "woo")}) == ([(0, "woo")], [])


def test_sales_in_flight_only_delay_a_landing_and_refused_ones_do_not_count() -> None:
    sales = [sale(0, "shop"), sale(1, "woo", state=PENDING), sale(2, "shop", state=REFUSED)]
    # the pending woo sale counts as sold on woo: woo at 9 could be that sale, not propagation
    assert landed(sales, {"shop": 9, "woo": 9}, 10, {(0, "woo")}) == ([], [])
    assert sold_through(sales) == {0: 1, 1: 2}
    found = landed(sales, {"shop": 9, "woo": 8}, 10, {(0, "woo"), (2, "woo")})
    assert found == ([(0, "woo")], [])


def test_propagation_measures_lags_and_leaves_oversells_out() -> None:
    prop = Propagation(("shop", "woo"), initial=3)
    log = [Sale(0, "shop", 1, SOLD, 10.0), Sale(1, "woo", 1, SOLD, 10.1),
           Sale(2, "shop", 1, SOLD, 10.2), Sale(3, "woo", 1, SOLD, 10.25)]  # fmt: skip
    prop.observe(log, {"shop": 1, "woo": 1}, 10.3)
    assert prop.lags == []
    assert set(prop.open) == {(0, "woo"), (1, "shop")}
    assert prop.oversells == {3}
    assert prop.overtaken == 1  # (2, woo): woo oversold after the last unit went on the shop
    prop.observe(log, {"shop": 0, "woo": 0}, 10.5)
    assert sorted(round(x, 3) for x in prop.lags) == [0.4, 0.5]
    assert prop.open == {}


def test_sale_log_keeps_send_order_and_outcomes() -> None:
    log = SaleLog()
    a = log.begin("shop", 1)
    b = log.begin("woo", 2)
    log.finish(b, True, 5.0)
    log.finish(a, False, 6.0)
    assert [(s.seq, s.state, s.done_at) for s in log.snapshot()] == [
        (0, REFUSED, 6.0),
        (1, SOLD, 5.0),
    ]


def test_baselines_count_current_units_and_never_go_below_zero() -> None:
    now = datetime.now(UTC)
    order = ChannelOrder("shop", "1", now, now, OrderStatus.OPEN,
                         (OrderLine("a", "DROP-1", 2), OrderLine("b", "OTHER", 5)))  # fmt: skip
    assert units_of(order, "DROP-1") == 2
    cancelled = ChannelOrder("shop", "1", now, now, OrderStatus.CANCELLED, order.lines)
    assert units_of(cancelled, "DROP-1") == 0
    assert remaining(5, {("shop", "1"): 2, ("woo", "9"): 1}) == 2
    assert remaining(5, {("shop", "1"): 7}) == 0


def test_a_skewed_split_sends_most_buyers_to_woocommerce_and_even_is_the_old_drop() -> None:
    assert EVEN.weights() is None  # the same seeded buyers as before splits existed
    assert plan_buyers(300, 5.0, seed=3, weights=EVEN.weights()) == plan_buyers(300, 5.0, seed=3)
    skewed = plan_buyers(2000, 15.0, seed=7, weights=SKEWED.weights())
    assert skewed == plan_buyers(2000, 15.0, seed=7, weights=SKEWED.weights())
    on_woo = sum(b.channel == "woo" for b in skewed) / len(skewed)
    assert 0.77 < on_woo < 0.83
    with pytest.raises(ValueError, match="weights"):
        plan_buyers(10, 1.0, seed=1, weights={"shop": 1.0})
    with pytest.raises(ValueError, match="weights"):
        plan_buyers(10, 1.0, seed=1, weights={"shop": 0.0, "woo": 0.0})


def test_a_refusal_is_stranded_when_the_other_shop_still_showed_units() -> None:
    log = SaleLog()
    for channel, qty in (("woo", 1), ("woo", 2), ("shop", 1), ("woo", 2)):
        log.begin(channel, qty)
    log.finish(0, True, 1.0)
    log.finish(1, False, 1.1, other_shown=1)  # wanted 2, the shop had 1: 1 unit stranded
    log.finish(2, False, 1.2, other_shown=0)  # both empty: refused, not stranded
    log.finish(3, False, 1.3, other_shown=5)
    sales = log.snapshot()
    assert [s.other_shown for s in sales] == [None, 1, 0, 5]
    assert refusals(sales) == {
        "refused": 3,
        "refused_units": 5,
        "stranded": 2,
        "stranded_units": 3,
        "max_other_shown": 5,
        "by_channel": {"shop": {"refused": 1, "stranded": 0},
                       "woo": {"refused": 2, "stranded": 2}},
    }  # fmt: skip


def test_sell_through_and_unsold_units_say_where_the_units_were_left() -> None:
    assert sell_through(500, 495, 2200) == 99.0
    assert sell_through(500, 600, 2200) == 100.0  # oversold: every unit went (and more)
    assert sell_through(500, 100, 100) == 100.0  # demand below supply: all that was asked
    assert sell_through(0, 0, 10) == 100.0
    assert unsold(100, 97, {"shop": 2, "woo": 0}) == {"total": 3, "shop": 2, "woo": 0, "held": 1}
    assert unsold(100, 104, {"shop": 3, "woo": 1}) == {"total": 0, "shop": 0, "woo": 0, "held": 0}


def test_exposure_stranded_time_and_timeline_come_from_the_samples() -> None:
    samples = [
        Sample(0.0, {"shop": 5, "woo": 5}, {"shop": 0, "woo": 0}),
        Sample(1.0, {"shop": 5, "woo": 0}, {"shop": 0, "woo": 5}),
        Sample(1.5, {"shop": 5, "woo": 0}, {"shop": 0, "woo": 5}),
        Sample(2.0, {"shop": 2, "woo": 4}, {"shop": 3, "woo": 5}),  # a late raise on woo
        Sample(3.0, {"shop": 0, "woo": 0}, {"shop": 5, "woo": 7}),
    ]
    assert exposure(samples, 10) == {"max": 14, "samples_over_units": 2, "samples": 5}
    assert stranded_seconds(samples, until=10.0) == {"shop": 0.0, "woo": 1.0}
    assert stranded_seconds(samples, until=1.25) == {"shop": 0.0, "woo": 0.25}
    assert timeline(samples) == [[0.0, 5, 5, 0, 0], [1.0, 5, 0, 0, 5], [2.0, 2, 4, 3, 5],
                                 [3.0, 0, 0, 5, 7]]  # fmt: skip


def test_the_pool_reserve_covers_woocommerce_races_at_its_peak_rate() -> None:
    # 2,000 buyers x 1.1 units x 80 % on woo / 15 s = 117 units/s; x 2 gaps of 20 ms = 4.7
    assert pool_reserve(FULL.buyers, FULL.burst_s) == 5 == FULL.pool_reserve
    assert pool_reserve(QUICK.buyers, QUICK.burst_s) == 3 == QUICK.pool_reserve
    assert pool_reserve(10, 15.0) == 2  # never below 2
    assert DropPlan(reserve=4).pool_reserve == 4


def test_the_pooled_rules_load_and_pool_the_drop_sku(tmp_path: Path) -> None:
    from bench.common import stocksync_config
    from rules import load_config, pool_for

    config = stocksync_config(rules=pool_rules(5, 1.0))
    path = config.write(tmp_path / "stocksync.yaml", "http://127.0.0.1:9", "http://127.0.0.1:9")
    loaded = load_config(path)
    rules = loaded.rules
    pool = pool_for(rules, "DROP-1")
    assert pool is not None
    assert (dict(pool.weights or {}), pool.reserve, pool.rebalance_interval_s) == (
        {"shop": 1, "woo": 1}, 5, 1.0)  # fmt: skip
    assert pool_for(rules, "TEE-1") is None
    assert loaded.rule_for("woo", "DROP-1").backorders_enabled.value is False


def test_the_pool_audit_summary_counts_moves_grants_covers_and_the_reserve() -> None:
    entries: list[tuple[float, str, dict[str, Any]]] = [
        (-1.0, "pool.start", {"allotments": {"shop": 248, "woo": 247}}),
        (1.0, "pool.move", {"from": "shop", "to": "woo", "units": 40, "state": "shrinking"}),
        (1.2, "pool.cover_sold", {"channel": "shop", "units": 3}),
        (1.5, "pool.move", {"from": "shop", "to": "woo", "units": 35, "state": "given",
                            "sold_by_donor_meanwhile": 5, "move": 1}),
        (2.0, "pool.move", {"from": "woo", "to": "unallocated", "units": 2, "why": "x"}),
        (2.5, "pool.move", {"from": "unallocated", "to": "woo", "units": 1, "why": "below"}),
        (3.0, "pool.move", {"from": "unallocated", "to": "shop", "units": 5,
                            "why": "end of the drop: the last units to a safe channel"}),
    ]  # fmt: skip
    summary = pool_audit_summary(entries)
    assert summary["entries"] == {"cover_sold": 1, "grants": 2, "moves_given": 1,
                                  "moves_started": 1, "start": 1, "take_backs": 1}  # fmt: skip
    assert summary["moves_started"] == {"shop->woo": 40}
    assert summary["moves_given"] == {"shop->woo": 35}
    assert summary["sold_by_donor_meanwhile"] == 5
    assert summary["sold_beyond_allotment"] == {"shop": 3}
    assert summary["granted"] == {"shop": 5, "woo": 1}
    assert summary["taken_back"] == {"woo": 2}
    assert summary["first_move_at_s"] == 1.0
    assert summary["reserve_granted"] == [{"at_s": 3.0, "to": "shop", "units": 5}]


def test_the_log_summary_counts_the_pools_events_and_pushes() -> None:
    lines = [
        '{"event": "pool_rebalanced", "level": "info"}',
        '{"event": "pool_move_given", "level": "info"}',
        '{"event": "push_sent", "channel": "shop", "stale": 1, "level": "info"}',
        '{"event": "push_sent", "channel": "shop", "stale": 0, "level": "info"}',
        '{"event": "push_failed", "channel": "woo", "level": "warning"}',
        "not json",
        "[1, 2]",
    ]
    summary = log_summary(lines)
    assert summary["events"]["pool_rebalanced"] == 1
    assert summary["events"]["pool_move_given"] == 1
    assert summary["events"]["pool_started"] == 0
    assert summary["pushes"] == {"shop": 2}
    assert summary["pushes_stale_rows"] == {"shop": 1}
    assert summary["levels"] == {"info": 4, "warning": 1}
    assert len(summary["problems"]) == 1 and "push_failed" in summary["problems"][0]


@pytest.mark.slow
def test_a_tiny_drop_runs_every_strategy_on_both_splits() -> None:
    plan = DropPlan(units=10, buyers=24, burst_s=0.6, settle_s=0.6, webhook_delay_ms=(20, 40))
    report = run_drop(plan)
    labels = [r["strategy"] for r in report["results"]]
    per_split = len(labels) // 2
    assert [r["split"]["name"] for r in report["results"]] == ["even"] * per_split + [
        "skewed"
    ] * per_split
    assert labels[:2] == ["stocksync (SQLite)", "stocksync pooled (SQLite)"]
    assert any("N=60" in label for label in labels) and any("N=300" in label for label in labels)
    assert any("event-driven" in label for label in labels)
    for result in report["results"]:
        sold = result["units_sold_total"]
        assert sold == result["buyer_units_sold"]  # the shops and the buyers agree
        assert result["oversold"] == max(sold - plan.units, 0)
        assert result["checkouts"]["attempted"] == plan.buyers
        assert result["error_count"] == 0, result["errors"]
        assert result["refusals"]["refused"] == result["checkouts"]["refused"]
    for result in (r for r in report["results"] if "pooled" in r["strategy"]):
        pool = result["details"]["ledger"]["pool"]
        assert pool["entries"]["start"] == 1
        assert pool["audit"][0]["action"] == "pool.start"
        assert pool["audit"][0]["at_s"] < 0  # the first allotments were out before the drop
        assert set(pool["shares"]) == {"shop", "woo"}
        assert result["propagation"]["meaningful"] is False
    text = table(report)
    pooled = sum("pooled" in label for label in labels)
    assert text.count("\n| ") == (len(labels) + 1) + (pooled + 1)  # drop table, pool table
