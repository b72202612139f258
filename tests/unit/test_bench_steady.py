"""The steady-load benchmark: its order plan, its propagation rule, and a tiny run."""

from __future__ import annotations

import pytest

from bench.steady import PropagationBook, SteadyPlan, plan_orders, run_steady, table


def test_orders_are_evenly_spaced_seeded_and_on_both_shops() -> None:
    plan = SteadyPlan(rate=50.0, duration_s=2.0, skus=5, max_lines=2, seed=3)
    orders = plan_orders(plan)
    assert orders == plan_orders(plan)
    assert len(orders) == 100 and orders[1].at == pytest.approx(0.02)
    assert {o.channel for o in orders} == {"shop", "woo"}
    assert all(1 <= len(o.lines) <= 2 and len({s for s, _q in o.lines}) == len(o.lines)
               for o in orders)  # fmt: skip


def test_a_sale_lands_when_the_other_shop_shows_it_and_all_earlier_ones() -> None:
    book = PropagationBook(initial=100)
    first = book.begin(0, "shop", [("A", 2)])
    second = book.begin(1, "shop", [("A", 1)])
    book.finish(first, "shop", [("A", 2)], True, 10.0)
    book.finish(second, "shop", [("A", 1)], True, 10.1)
    book.observe({("A", "woo"): 99, ("A", "shop"): 97}, 10.3)
    assert book.lags == []  # woo knows of 1 unit: not even the first sale (2 units)
    book.observe({("A", "woo"): 98, ("A", "shop"): 97}, 10.4)
    assert book.lags == [pytest.approx(0.4)]
    book.observe({("A", "woo"): 97, ("A", "shop"): 97}, 10.6)
    assert sorted(book.lags) == [pytest.approx(0.4), pytest.approx(0.5)]
    assert book.unresolved() == 0


def test_the_other_shops_own_sales_and_sales_in_flight_never_advance_a_landing() -> None:
    book = PropagationBook(initial=10)
    sale = book.begin(0, "shop", [("A", 1)])
    book.finish(sale, "shop", [("A", 1)], True, 1.0)
    own = book.begin(1, "woo", [("A", 1)])  # woo sells one itself, still in flight
    book.observe({("A", "woo"): 9, ("A", "shop"): 9}, 1.2)
    assert book.lags == []  # woo at 9 is its own sale, not the shop's
    book.finish(own, "woo", [("A", 1)], True, 1.3)
    book.observe({("A", "woo"): 8, ("A", "shop"): 8}, 1.5)
    assert book.lags == [pytest.approx(0.5), pytest.approx(0.2)]


def test_a_refused_checkout_opens_no_probe_and_stops_counting() -> None:
    book = PropagationBook(initial=10)
    refused = book.begin(0, "shop", [("A", 3)])
    sold = book.begin(1, "shop", [("A", 1)])
    book.finish(refused, "shop", [("A", 3)], False, 1.0)
    book.finish(sold, "shop", [("A", 1)], True, 1.0)
    book.observe({("A", "woo"): 9, ("A", "shop"): 9}, 1.25)
    assert book.lags == [pytest.approx(0.25)]
    assert book.sold_units() == {("A", "shop"): 1}


@pytest.mark.slow
def test_a_tiny_steady_run_loses_nothing() -> None:
    plan = SteadyPlan(
        rate=10.0, duration_s=1.0, skus=3, settle_s=20.0, buyer_threads=4, ceiling_seconds=0.2
    )
    report = run_steady(plan)
    assert report["checkouts"]["sent"] == 10
    assert report["nothing_lost"], report
    assert report["propagation"]["unresolved"] == 0
    assert report["propagation"]["count"] >= 10
    assert "| sqlite | 10/s x 1 s |" in table(report)
