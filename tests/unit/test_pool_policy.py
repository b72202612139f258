"""The pool plan (stock/pool_policy.py): allotments never exceed what the ledger can fill, units
go from slow sellers to fast ones, the last units go to a safe channel."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from stock.pool_policy import (
    PoolChannel,
    PoolInputs,
    PoolPlan,
    committed,
    first_allotments,
    plan,
)


def channel(name: str, remaining: int, rate: float = 0.0, weight: int = 1, safe: bool = True):  # type: ignore[no-untyped-def]
    return PoolChannel(name, remaining, rate, weight, safe)


def applied(inputs: PoolInputs, result: PoolPlan, *, deliver: bool) -> PoolInputs:
    """The inputs after the plan: grants and moves' shrinks at once; with `deliver`, the moves
    given to their recipients too (their donors' shops showed less)."""
    remaining = {c.name: c.remaining for c in inputs.channels}
    for grant in result.grants:
        remaining[grant.channel] += grant.units
    in_transit = inputs.in_transit
    for move in result.moves:
        remaining[move.source] -= move.units
        if deliver:
            remaining[move.target] += move.units
        else:
            in_transit += move.units
    return replace(
        inputs,
        in_transit=in_transit,
        channels=tuple(replace(c, remaining=remaining[c.name]) for c in inputs.channels),
    )


def test_first_allotments_follow_the_weights_and_add_up() -> None:
    assert first_allotments(["shop", "woo"], {"shop": 3, "woo": 1}, 498) == {
        "shop": 374,
        "woo": 124,
    }
    assert first_allotments(["shop", "woo"], None, 7) == {"shop": 4, "woo": 3}
    assert first_allotments(["shop", "woo", "b2b"], {"shop": 1}, 5) == {
        "shop": 5,
        "woo": 0,
        "b2b": 0,
    }


def test_units_move_from_the_quiet_shop_to_the_busy_one() -> None:
    inputs = PoolInputs(
        free=24, reserve=2, in_transit=0,  # all handed out: 20 + 2
        channels=(channel("shop", 20, rate=0.2), channel("woo", 2, rate=3.0, safe=False)),
    )  # fmt: skip
    result = plan(inputs)
    assert not result.grants
    [move] = result.moves
    assert (move.source, move.target) == ("shop", "woo") and move.units >= 15


def test_unallocated_units_are_granted_before_anything_moves() -> None:
    inputs = PoolInputs(
        free=30, reserve=2, in_transit=0, channels=(channel("shop", 0, 1.0), channel("woo", 0, 1.0))
    )
    result = plan(inputs)
    assert not result.moves
    assert sorted((g.channel, g.units) for g in result.grants) == [("shop", 14), ("woo", 14)]


def test_allotments_above_what_the_ledger_holds_are_taken_back_from_the_slowest() -> None:
    inputs = PoolInputs(
        free=10, reserve=2, in_transit=0,
        channels=(channel("shop", 8, rate=2.0), channel("woo", 6, rate=0.1)),
    )  # fmt: skip
    result = plan(inputs)
    assert [(g.channel, g.units) for g in result.grants] == [("woo", -6)]
    assert committed(applied(inputs, result, deliver=False)) == 8


def test_the_reserve_goes_last_to_the_compare_and_set_channel() -> None:
    inputs = PoolInputs(
        free=2, reserve=2, in_transit=0,
        channels=(channel("shop", 0, rate=0.5, safe=True), channel("woo", 0, rate=5.0, safe=False)),
    )  # fmt: skip
    result = plan(inputs)
    assert [(g.channel, g.units) for g in result.grants] == [("shop", 2)]
    # and it stays there: the next plan changes nothing
    assert not plan(applied(inputs, result, deliver=True))


pools = st.builds(
    PoolInputs,
    free=st.integers(0, 500),
    reserve=st.integers(0, 10),
    in_transit=st.integers(0, 20),
    channels=st.lists(
        st.builds(
            PoolChannel,
            name=st.sampled_from(["shop", "woo", "eu", "us"]),
            remaining=st.integers(-5, 300),
            rate=st.floats(0, 50, allow_nan=False),
            weight=st.integers(1, 5),
            safe=st.booleans(),
        ),
        min_size=1,
        max_size=4,
        unique_by=lambda c: c.name,
    ).map(tuple),
)


@settings(max_examples=400, deadline=None)
@given(pools)
def test_a_plan_never_hands_out_more_than_the_ledger_can_fill(inputs: PoolInputs) -> None:
    result = plan(inputs)
    end = inputs.free <= inputs.reserve
    reserve = 0 if end else inputs.reserve
    before, after = committed(inputs), committed(applied(inputs, result, deliver=False))
    # whatever was handed out, after the plan it fits, unless units already on their way
    # between channels (never taken back: a shop may be selling them) exceed it alone
    assert after <= max(inputs.free - reserve, inputs.in_transit)
    # grants only from unallocated units; none while over-committed
    granted = sum(g.units for g in result.grants if g.units > 0 and not g.covers_sold)
    assert granted <= max(inputs.free - reserve - before, 0)
    # a move never takes more than the donor has left, and moves keep the units
    remaining = {c.name: c.remaining for c in inputs.channels}
    for grant in result.grants:
        remaining[grant.channel] += grant.units
    assert all(units >= 0 for units in remaining.values())
    for move in result.moves:
        assert move.source != move.target and 0 < move.units <= remaining[move.source]
        remaining[move.source] -= move.units
    delivered = applied(inputs, result, deliver=True)
    assert committed(delivered) == after


@settings(max_examples=300, deadline=None)
@given(pools)
def test_with_the_same_demand_a_pool_settles_within_three_plans(inputs: PoolInputs) -> None:
    """No churn: taking back, granting and moving each settle; moves then stop."""
    current = replace(inputs, in_transit=0)
    for _round in range(3):
        result = plan(current)
        if not result.moves and not result.grants:
            return
        current = applied(current, result, deliver=True)
    assert not plan(current).moves, plan(current)


def test_a_sold_out_shop_sold_at_the_rate_of_the_time_it_had_stock() -> None:
    from datetime import UTC, datetime, timedelta

    from stock.pools import RecentSales
    from sync.jobs.rebalance import sell_rate

    since = datetime(2026, 12, 1, 12, tzinfo=UTC)
    sales = RecentSales(units=20, last_at=since + timedelta(seconds=2))
    # 20 units in a 10 s window, but it ran out after 2 s: 10 a second, not 2
    assert sell_rate(sales, 0, since, window=10.0, every=1.0) == 10.0
    assert sell_rate(sales, 5, since, window=10.0, every=1.0) == 2.0  # still selling
    assert sell_rate(None, 0, since, window=10.0, every=1.0) == 0.0
    instant = RecentSales(units=3, last_at=since)  # at least one interval
    assert sell_rate(instant, 0, since, window=10.0, every=1.0) == 3.0
