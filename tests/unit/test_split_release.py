"""Pure split and release policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from backorders.release import OpenBackorder, plan_release
from backorders.split import Availability, LineDemand, split_lines

T0 = datetime(2026, 11, 23, 12, tzinfo=UTC)


def test_split_reserves_then_backorders_within_then_beyond() -> None:
    result = split_lines(
        [LineDemand("a", "X", 5), LineDemand("b", "X", 4), LineDemand("c", "Y", 1)],
        {"X": Availability(sellable_now=3, backorder_capacity=4)},
    )
    a, b, c = result
    assert (a.reserve, a.backorder_within, a.backorder_beyond) == (3, 2, 0)
    assert (b.reserve, b.backorder_within, b.backorder_beyond) == (0, 2, 2)
    # an unknown SKU has nothing: everything is kept as a flagged backorder, never dropped
    assert (c.reserve, c.backorder_within, c.backorder_beyond) == (0, 0, 1)


def test_split_treats_negative_availability_as_none() -> None:
    (line,) = split_lines([LineDemand("a", "X", 2)], {"X": Availability(-3, -1)})
    assert (line.reserve, line.backorder_within, line.backorder_beyond) == (0, 0, 2)


@given(
    st.lists(st.integers(0, 20), max_size=8),
    st.integers(-5, 30),
    st.integers(-5, 30),
)
def test_split_conserves_every_unit(quantities: list[int], sellable: int, capacity: int) -> None:
    lines = [LineDemand(str(i), "X", q) for i, q in enumerate(quantities)]
    result = split_lines(lines, {"X": Availability(sellable, capacity)})
    for line, split in zip(lines, result, strict=True):
        assert split.reserve + split.backorder_within + split.backorder_beyond == line.quantity
    assert sum(s.reserve for s in result) <= max(sellable, 0)
    assert sum(s.backorder_within for s in result) <= max(capacity, 0)


def bo(
    id_: int,
    qty: int,
    *,
    priority: int = 100,
    tier: int = 0,
    minutes: int = 0,
    partial: bool = True,
) -> OpenBackorder:
    return OpenBackorder(id_, "X", qty, priority, tier, T0 + timedelta(minutes=minutes), partial)


def test_release_follows_priority_then_tier_then_time_then_id() -> None:
    backorders = [
        bo(1, 2, priority=2, tier=0, minutes=0),
        bo(2, 2, priority=1, tier=1, minutes=5),
        bo(3, 2, priority=1, tier=0, minutes=9),
        bo(4, 2, priority=1, tier=0, minutes=9),
    ]
    plan = plan_release(backorders, {"X": 7}, ("priority", "tier", "placed_at"))
    assert [(a.backorder_id, a.qty, a.complete) for a in plan] == [
        (3, 2, True), (4, 2, True), (2, 2, True), (1, 1, False),
    ]  # fmt: skip


def test_release_order_is_configurable() -> None:
    backorders = [bo(1, 1, priority=2, minutes=0), bo(2, 1, priority=1, minutes=5)]
    plan = plan_release(backorders, {"X": 1}, ("placed_at", "priority"))
    assert [a.backorder_id for a in plan] == [1]


def test_no_partial_fill_skips_to_a_smaller_one() -> None:
    backorders = [bo(1, 5, partial=False), bo(2, 2, minutes=1, partial=False)]
    plan = plan_release(backorders, {"X": 3}, ("placed_at",))
    assert [(a.backorder_id, a.qty) for a in plan] == [(2, 2)]


@given(
    st.lists(st.tuples(st.integers(0, 10), st.integers(1, 3), st.booleans()), max_size=12),
    st.integers(-3, 40),
)
def test_release_never_gives_more_than_available(
    rows: list[tuple[int, int, bool]], available: int
) -> None:
    backorders = [bo(i, q, priority=p, partial=partial) for i, (q, p, partial) in enumerate(rows)]
    plan = plan_release(backorders, {"X": available}, ("priority", "placed_at"))
    assert sum(a.qty for a in plan) <= max(available, 0)
    by_id = {b.backorder_id: b for b in backorders}
    for allocation in plan:
        backorder = by_id[allocation.backorder_id]
        assert 0 < allocation.qty <= backorder.qty_open
        if not backorder.partial_allowed:
            assert allocation.qty == backorder.qty_open
