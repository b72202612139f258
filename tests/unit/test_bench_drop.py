"""The drop benchmark: its propagation rule, buyer plan, baselines' arithmetic, and a tiny run."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench.baselines import remaining, units_of
from bench.drop import (
    DropPlan,
    Propagation,
    Sale,
    SaleLog,
    SaleState,
    landed,
    plan_buyers,
    run_drop,
    sold_through,
    table,
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


@pytest.mark.slow
def test_a_tiny_drop_runs_every_strategy(tmp_path: Path) -> None:
    plan = DropPlan(units=10, buyers=24, burst_s=0.6, settle_s=0.6, webhook_delay_ms=(20, 40))
    report = run_drop(plan)
    labels = [r["strategy"] for r in report["results"]]
    assert labels[0] == "stocksync"
    assert any("N=60" in label for label in labels) and any("N=300" in label for label in labels)
    assert any("event-driven" in label for label in labels)
    for result in report["results"]:
        sold = result["units_sold_total"]
        assert sold == result["buyer_units_sold"]  # the shops and the buyers agree
        assert result["oversold"] == max(sold - plan.units, 0)
        assert result["checkouts"]["attempted"] == plan.buyers
        assert result["error_count"] == 0, result["errors"]
    text = table(report)
    assert text.count("\n| ") == len(labels) + 1
