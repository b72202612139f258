"""`stocksync demo` end to end, and the pure parts it is built from."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sync.demo.customers import SalesLog
from sync.demo.lag import LagStats, LagTracker
from sync.demo.ledger import LedgerTotals, SkuLedger
from sync.demo.plan import CATALOG, CHANNELS, percentile, plan_traffic, timeline
from sync.demo.plan import Checkout as Buy
from sync.demo.report import PushCounter, summarize, summary_lines
from sync.demo.watch import ShopView


# ------------------------------------------------------------------------------ end to end
def _stocksync() -> list[str]:
    found = shutil.which("stocksync")
    if found:
        return [found]
    return [sys.executable, "-c", "from sync.cli import main; main()"]


def _number(text: str, key: str) -> int:
    found = re.search(rf"^{re.escape(key)}: (\d+)", text, re.MULTILINE)
    assert found is not None, f"no '{key}:' line in:\n{text}"
    return int(found.group(1))


@pytest.mark.slow
def test_demo_runs_a_balanced_day(tmp_path: Path) -> None:
    started = time.monotonic()
    result = subprocess.run(
        [*_stocksync(), "demo", "--duration", "8", "--seed", "3"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,  # nothing configured here: the demo needs no config and no database
        check=False,
    )
    took = time.monotonic() - started
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert _number(out, "orders taken") > 0
    assert _number(out, "orders in ledger") == _number(out, "orders taken")
    assert _number(out, "pushes") > 0
    assert _number(out, "oversold units") == 0
    assert "shops settled: yes" in out
    assert "PO-1 due in 3 days" in out  # off a terminal: snapshots of the table
    assert "day over" in out
    assert "Traceback" not in out + result.stderr
    # duration + ~5 s on an idle machine; a loaded one starts slowly and settles longer
    assert took < 30, f"demo took {took:.1f} s"
    assert list(tmp_path.iterdir()) == []  # the ledger lived in a temporary folder


# ------------------------------------------------------------------------------ traffic plan
def test_plan_is_repeatable_and_in_bounds() -> None:
    plan = plan_traffic(11, 10.0)
    assert plan == plan_traffic(11, 10.0)
    assert plan != plan_traffic(12, 10.0)
    assert 25 <= len(plan) <= 80  # about 5 per second
    assert all(0 <= b.at < 10.0 for b in plan)
    assert [b.at for b in plan] == sorted(b.at for b in plan)
    assert {b.channel for b in plan} == set(CHANNELS)
    assert {b.sku for b in plan} <= set(CATALOG)
    assert {b.quantity for b in plan} <= {1, 2, 3}


def test_plan_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="rate"):
        plan_traffic(1, 5.0, rate=0)
    with pytest.raises(ValueError, match="at least one"):
        plan_traffic(1, 5.0, skus=())


def test_timeline_keeps_within_duration_and_receives_halfway() -> None:
    times = timeline(20.0, 3.0)
    assert times.traffic_start == 3.0
    assert times.traffic_end == 18.0
    assert times.receipt_at == pytest.approx(10.5)
    assert times.settled_by == 20.0 + 3.0  # a grace period; settling ends when it is done
    short = timeline(3.0, 2.5)  # setup ate the duration: still a little traffic
    assert short.traffic_end - short.traffic_start == pytest.approx(2.0)
    assert short.settled_by > short.traffic_end
    loaded = timeline(8.0, 7.5)  # a slow start: settling may take as long
    assert loaded.settled_by == pytest.approx(loaded.traffic_end + 1.0 + 7.5)


def test_percentile_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0], 95) == 3.0
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 95) == 95.0
    assert percentile([5.0, 1.0, 3.0], 50) == 3.0
    with pytest.raises(ValueError):
        percentile(values, 101)


# ------------------------------------------------------------------------------ lag probes
def test_lag_resolves_when_the_other_shop_drops() -> None:
    tracker = LagTracker(CHANNELS)
    tracker.sale_started("shop", "A", 2, 10.0, {"woo": 5})
    tracker.observe({"woo": {"A": 5}, "shop": {"A": 3}}, 10.5)
    assert tracker.pending() == 1
    tracker.observe({"woo": {"A": 3}, "shop": {"A": 3}}, 11.2)
    assert tracker.pending() == 0
    assert tracker.snapshot().resolved == {"A": [pytest.approx(1.2)]}


def test_lag_adds_back_the_other_shops_own_sales() -> None:
    tracker = LagTracker(CHANNELS)
    tracker.sale_started("shop", "A", 1, 0.0, {"woo": 5})
    tracker.sale_started("woo", "A", 1, 0.1, {"shop": 4})  # woo's own sale lowers woo to 4
    tracker.observe({"woo": {"A": 4}, "shop": {"A": 4}}, 0.2)
    resolved = tracker.snapshot().resolved
    assert "A" not in resolved  # woo's drop was its own sale, not the shop's
    tracker.observe({"woo": {"A": 3}, "shop": {"A": 3}}, 0.9)
    assert sorted(tracker.snapshot().resolved["A"]) == [pytest.approx(0.8), pytest.approx(0.9)]


def test_lag_counts_sales_in_flight_in_order() -> None:
    tracker = LagTracker(CHANNELS)
    tracker.sale_started("shop", "A", 2, 0.0, {"woo": 6})
    tracker.sale_started("shop", "A", 2, 0.1, {"woo": 6})  # the first has not landed yet
    tracker.observe({"woo": {"A": 4}, "shop": {"A": 2}}, 0.5)
    assert tracker.pending() == 1  # only the first sale shows
    tracker.observe({"woo": {"A": 2}, "shop": {"A": 2}}, 0.7)
    assert tracker.pending() == 0


def test_lag_skips_refused_unobservable_and_discarded_sales() -> None:
    tracker = LagTracker(CHANNELS, timeout=1.0)
    keys = tracker.sale_started("shop", "A", 1, 0.0, {"woo": 3})
    tracker.sale_refused("shop", "A", 1, keys)
    tracker.sale_started("shop", "B", 1, 0.0, {"woo": 0})  # nothing to lower on woo
    tracker.sale_started("shop", "C", 1, 0.0, {"woo": 2})
    tracker.discard("woo", "C")
    tracker.sale_started("shop", "D", 1, 0.0, {"woo": 2})
    tracker.observe({"woo": {"D": 2}, "shop": {"D": 2}}, 2.0)  # never dropped: expired
    stats = tracker.snapshot()
    assert (stats.unobservable, stats.discarded, stats.expired) == (1, 1, 1)
    assert stats.resolved == {}
    assert tracker.pending() == 0


# ------------------------------------------------------------------------------ summary
def _row(sku: str, offered: int, incoming: int = 0, pushed: str | None = None) -> SkuLedger:
    return SkuLedger(
        sku, on_hand=5, reserved=0, backordered=0, incoming=incoming, oversold=0,
        offered={"shop": offered, "woo": offered}, pushed_at={"shop": pushed, "woo": None},
    )  # fmt: skip


def _totals(units: dict[str, dict[str, int]], received: dict[str, int]) -> LedgerTotals:
    return LedgerTotals(
        orders=dict.fromkeys(units, 1), units=units, received=received, backorders_created=2,
        backordered_units=3, released_units=3, backorders_open=0, beyond_capacity=0,
        inbox_failed=0,
    )  # fmt: skip


def _sales(**by_channel: dict[str, int]) -> SalesLog:
    log = SalesLog()
    for channel, by_sku in by_channel.items():
        for sku, qty in by_sku.items():
            log.record(Buy(0.0, channel, sku, qty, "a@example.com"), 201)
    log.record(Buy(0.0, "woo", "A", 9, "b@example.com"), 409)
    return log


def _view(shown: int) -> ShopView:
    return ShopView({"shop": {"A": shown}, "woo": {"A": shown}}, 0, 2, 0, 1)


def test_summary_of_a_balanced_day() -> None:
    sales = _sales(shop={"A": 4}, woo={"A": 3})
    summary = summarize(
        opening={"A": 5}, sales=sales, totals=_totals({"shop": {"A": 4}, "woo": {"A": 3}},
        {"A": 2}), rows=[_row("A", 0)], view=_view(0), lag=LagStats({"A": [0.2, 0.4, 1.0]}),
        pushes={"shop": 3, "woo": 4},
    )  # fmt: skip
    assert summary.problems() == []
    assert summary.oversold_units == 0
    assert summary.holds_placed == 2 and summary.holds_released == 2
    lines = "\n".join(summary_lines(summary))
    assert "orders taken: 2 (shop 1, woo 1)" in lines
    assert "refused checkouts: 1 (woo 1)" in lines
    assert "units sold: 7 of 7 (stock 5 + received 2; still incoming 0)" in lines
    assert "oversold units: 0" in lines
    assert "pushes: 7 (shop 3, woo 4)" in lines
    assert "propagation lag: p50 0.40 s, p95 1.00 s" in lines
    assert "shops settled: yes" in lines


def test_summary_flags_oversold_mismatch_and_unsettled() -> None:
    sales = _sales(shop={"A": 6}, woo={"A": 3})
    summary = summarize(
        opening={"A": 5}, sales=sales, totals=_totals({"shop": {"A": 6}}, {"A": 2}),
        rows=[_row("A", 0, incoming=1)], view=_view(1), lag=LagStats(), pushes={},
    )  # fmt: skip
    assert summary.oversold == {"A": 1}  # 9 sold; 5 + 2 received + 1 still on order
    problems = "\n".join(summary.problems())
    assert "1 units oversold" in problems
    assert "woo: shops sold {'A': 3}, ledger has {}" in problems
    assert "not settled: shop A: shows 1, ledger offers 0" in problems
    assert "shops settled: no" in summary_lines(summary)


def test_push_counter_counts_each_landing_once() -> None:
    counter = PushCounter()
    counter.update([_row("A", 1, pushed="t1")])
    counter.update([_row("A", 1, pushed="t1")])
    counter.update([_row("A", 1, pushed="t2"), _row("B", 1)])
    assert counter.by_sku() == {"A": 2}
