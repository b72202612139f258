"""Campaign decisions (stock/campaign_policy.py): who is reviewed, who gets a wave's units (fcfs,
a re-checkable lottery, tiers' reserves first), never more than is free, nobody twice."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stock.campaign_policy import (
    Allocation,
    Entry,
    WaveInputError,
    allocate_wave,
    expired,
    needs_review,
    payment_deadline,
    wave_due,
)

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
NO_TIERS: Mapping[str, int] = {}


def entry(
    entry_id: int,
    sku: str = "TEE-M",
    qty: int = 1,
    minute: int | None = None,
    tier: str | None = None,
    **keys: str,
) -> Entry:
    """Entry `entry_id`, signed up at minute `minute` (default: `entry_id`) after T0."""
    at = T0 + timedelta(minutes=entry_id if minute is None else minute)
    return Entry(entry_id, sku, qty, at, tier, keys)


def wave(
    waiting: Sequence[Entry],
    free: Mapping[str, int],
    method: str = "fcfs",
    *,
    seed: int | None = None,
    tier_units: Mapping[str, int] = NO_TIERS,
    tier_taken: Mapping[str, int] = NO_TIERS,
) -> list[Allocation]:
    return allocate_wave(
        waiting, free, method, seed=seed, tier_units=tier_units, tier_taken=tier_taken
    )


def ids(allocations: Sequence[Allocation]) -> list[int]:
    return [a.entry_id for a in allocations]


# needs_review


def test_an_entry_alone_within_the_limit_queues() -> None:
    assert needs_review(entry(1, qty=2, email="a@x.com"), [], per_customer=2) is None
    assert needs_review(entry(1, qty=5, email="a@x.com"), [], per_customer=None) is None


def test_an_entry_over_the_limit_by_itself_is_reviewed() -> None:
    assert needs_review(entry(1, qty=3), [], per_customer=2) == (
        "asks for 3 units, over the limit of 2 per customer"
    )


def test_a_shared_key_is_reviewed_naming_the_kind_not_the_value() -> None:
    earlier = [entry(1, email="ann@gmail.com", phone="+31201234567"), entry(2, email="b@x.com")]
    reason = needs_review(
        entry(3, email="ann@gmail.com", phone="+31201234567"), earlier, per_customer=None
    )
    assert reason == "same email and phone as entry 1"
    assert "ann" not in reason


def test_a_shared_key_is_reviewed_even_within_the_limit() -> None:
    # a second sign-up doubles the chances in a lottery, whatever the units
    reason = needs_review(entry(2, address="12 main st"), [entry(1, address="12 main st")], 5)
    assert reason == "same address as entry 1"


def test_a_shared_key_over_the_limit_together_says_so() -> None:
    earlier = [entry(1, qty=1, email="a@x.com"), entry(2, qty=1, phone="+46812345678")]
    reason = needs_review(entry(3, qty=1, email="a@x.com", phone="+46812345678"), earlier, 2)
    assert reason == (
        "same email and phone as entries 1 and 2; together 3 units, over the limit of 2 per "
        "customer"
    )


def test_keys_of_different_kinds_never_match() -> None:
    # the same text as an email and as an address is not the same customer
    assert needs_review(entry(2, address="x"), [entry(1, email="x")], per_customer=1) is None


def test_the_entry_itself_among_the_others_is_ignored() -> None:
    me = entry(1, email="a@x.com")
    assert needs_review(me, [me, entry(2, email="b@x.com")], per_customer=1) is None


# allocate_wave: fcfs


def test_fcfs_serves_in_sign_up_order_then_id() -> None:
    waiting = [entry(3, minute=1), entry(1, minute=2), entry(2, minute=1), entry(4, minute=3)]
    result = wave(waiting, {"TEE-M": 3})
    assert ids(result) == [2, 3, 1]
    assert result[0] == Allocation(
        2, "TEE-M", 1, "first come, first served: in line 1st of 4 for TEE-M"
    )


def test_fcfs_skips_an_entry_that_does_not_fit_and_serves_a_smaller_later_one() -> None:
    waiting = [entry(1, qty=2), entry(2, qty=3), entry(3, qty=1), entry(4, qty=1)]
    assert ids(wave(waiting, {"TEE-M": 3})) == [1, 3]


def test_each_sku_has_its_own_pool() -> None:
    waiting = [entry(1, "TEE-M"), entry(2, "TEE-L"), entry(3, "TEE-M"), entry(4, "TEE-S")]
    result = wave(waiting, {"TEE-M": 1, "TEE-L": 5})
    assert [(a.sku, a.entry_id) for a in result] == [("TEE-L", 2), ("TEE-M", 1)]


def test_nothing_free_allocates_nothing() -> None:
    assert wave([entry(1), entry(2)], {"TEE-M": 0}) == []
    assert wave([], {"TEE-M": 5}) == []


# allocate_wave: lottery


def test_the_lottery_can_be_rechecked_by_anyone_with_the_seed_and_the_ids() -> None:
    waiting = [entry(i) for i in (7, 3, 9, 1, 5)]
    result = wave(waiting, {"TEE-M": 2}, "lottery", seed=2026)
    drawn = sorted(e.id for e in waiting)
    random.Random(2026).shuffle(drawn)
    assert ids(result) == drawn[:2]
    assert result[0].why == "lottery (seed 2026): drawn 1st of 5 for TEE-M"


def test_the_lottery_needs_a_seed() -> None:
    with pytest.raises(WaveInputError, match="needs a seed"):
        wave([entry(1)], {"TEE-M": 1}, "lottery")


def test_different_seeds_draw_differently() -> None:
    waiting = [entry(i) for i in range(1, 21)]
    draws = {tuple(ids(wave(waiting, {"TEE-M": 5}, "lottery", seed=s))) for s in range(10)}
    assert len(draws) > 1


# allocate_wave: tiers


def test_a_tiers_reserve_goes_to_its_entries_first_then_everyone_in_order() -> None:
    waiting = [entry(1), entry(2), entry(3, tier="gold"), entry(4, tier="gold"), entry(5)]
    result = wave(waiting, {"TEE-M": 3}, "tiers", tier_units={"gold": 1})
    assert [(a.entry_id, a.tier_reserve) for a in result] == [(1, None), (2, None), (3, "gold")]
    assert [a.why for a in result] == [
        "after the tiers' reserved units, in line 1st of 4 for TEE-M",
        "after the tiers' reserved units, in line 2nd of 4 for TEE-M",
        "tier gold's reserved units: 1st of 2 in line",
    ]


def test_a_tier_entry_beyond_the_reserve_waits_in_the_common_line() -> None:
    waiting = [entry(1, tier="gold"), entry(2, tier="gold"), entry(3), entry(4, tier="gold")]
    result = wave(waiting, {"TEE-M": 3}, "tiers", tier_units={"gold": 1})
    assert [(a.entry_id, a.tier_reserve) for a in result] == [(1, "gold"), (2, None), (3, None)]


def test_units_a_tier_took_in_earlier_waves_are_not_reserved_again() -> None:
    waiting = [entry(1), entry(2, tier="gold")]
    result = wave(waiting, {"TEE-M": 1}, "tiers", tier_units={"gold": 2}, tier_taken={"gold": 2})
    assert ids(result) == [1]
    result = wave(waiting, {"TEE-M": 1}, "tiers", tier_units={"gold": 2}, tier_taken={"gold": 1})
    assert ids(result) == [2]


def test_a_reserve_spreads_over_skus_as_entries_ask() -> None:
    waiting = [entry(1, "TEE-M", tier="gold"), entry(2, "TEE-L", 2, tier="gold"), entry(3, "TEE-L")]
    result = wave(waiting, {"TEE-M": 1, "TEE-L": 2}, "tiers", tier_units={"gold": 3})
    assert [(a.entry_id, a.tier_reserve) for a in result] == [(2, "gold"), (1, "gold")]


def test_the_better_tier_comes_first_when_units_are_short() -> None:
    waiting = [entry(1, tier="silver"), entry(2, tier="gold")]
    result = wave(waiting, {"TEE-M": 1}, "tiers", tier_units={"gold": 1, "silver": 1})
    assert [(a.entry_id, a.tier_reserve) for a in result] == [(2, "gold")]


# allocate_wave: refused inputs


@pytest.mark.parametrize(
    ("waiting", "free", "method", "tier_units", "subject"),
    [
        ([entry(1)], {"TEE-M": 1}, "random", {}, "method 'random'"),
        ([entry(1), entry(1)], {"TEE-M": 1}, "fcfs", {}, "entry 1"),
        ([entry(1, qty=0)], {"TEE-M": 1}, "fcfs", {}, "entry 1"),
        ([entry(1)], {"TEE-M": -1}, "fcfs", {}, "sku TEE-M"),
        ([entry(1)], {"TEE-M": 1}, "tiers", {"gold": -1}, "tier gold"),
    ],
)
def test_inputs_a_wave_cannot_decide_on_are_refused_with_their_subject(
    waiting: list[Entry],
    free: dict[str, int],
    method: str,
    tier_units: dict[str, int],
    subject: str,
) -> None:
    with pytest.raises(WaveInputError) as refused:
        wave(waiting, free, method, seed=1, tier_units=tier_units)
    assert refused.value.subject == subject


# time helpers


def test_a_wave_is_due_first_and_then_every_so_many_hours() -> None:
    assert wave_due(None, T0, 2)
    assert not wave_due(T0, T0 + timedelta(hours=1, minutes=59), 2)
    assert wave_due(T0, T0 + timedelta(hours=2), 2)
    with pytest.raises(WaveInputError):
        wave_due(T0, T0, 0)


def test_an_allocation_expires_at_its_deadline() -> None:
    deadline = payment_deadline(T0, 24)
    assert deadline == T0 + timedelta(hours=24)
    assert not expired(deadline, deadline - timedelta(seconds=1))
    assert expired(deadline, deadline)


# properties

SKUS = ("TEE-S", "TEE-M", "TEE-L")
TIERS = (None, "gold", "silver")


@st.composite
def waitlists(draw: st.DrawFn) -> list[Entry]:
    entry_ids = draw(st.lists(st.integers(1, 500), unique=True, max_size=25))
    return [
        Entry(
            i,
            draw(st.sampled_from(SKUS)),
            draw(st.integers(1, 3)),
            T0 + timedelta(minutes=draw(st.integers(0, 10))),  # ties: the id decides
            draw(st.sampled_from(TIERS)),
            {},
        )
        for i in entry_ids
    ]


frees = st.fixed_dictionaries({sku: st.integers(0, 12) for sku in SKUS})
reserves = st.fixed_dictionaries({"gold": st.integers(0, 6), "silver": st.integers(0, 6)})
takens = st.fixed_dictionaries({"gold": st.integers(0, 6)})


@settings(max_examples=150)
@given(
    waitlists(),
    frees,
    st.sampled_from(["fcfs", "lottery", "tiers"]),
    st.integers(),
    reserves,
    takens,
)
def test_never_more_than_free_per_sku_and_nobody_twice(
    waiting: list[Entry],
    free: dict[str, int],
    method: str,
    seed: int,
    tier_units: dict[str, int],
    tier_taken: dict[str, int],
) -> None:
    result = wave(waiting, free, method, seed=seed, tier_units=tier_units, tier_taken=tier_taken)
    by_id = {e.id: e for e in waiting}
    assert len(ids(result)) == len(set(ids(result)))
    given_units: dict[str, int] = defaultdict(int)
    for a in result:
        asked = by_id[a.entry_id]
        assert (a.sku, a.qty) == (asked.sku, asked.qty)  # whole entries, of their own SKU
        given_units[a.sku] += a.qty
    for sku, units in given_units.items():
        assert units <= free[sku]


@given(waitlists(), frees, st.integers(), st.randoms(use_true_random=False))
def test_the_same_seed_draws_the_same_whatever_the_order_of_the_list(
    waiting: list[Entry], free: dict[str, int], seed: int, rng: random.Random
) -> None:
    shuffled = list(waiting)
    rng.shuffle(shuffled)
    first = wave(waiting, free, "lottery", seed=seed)
    assert wave(shuffled, free, "lottery", seed=seed) == first
    assert wave(waiting, free, "lottery", seed=seed) == first


@given(waitlists(), frees)
def test_fcfs_never_passes_over_an_earlier_entry_that_fits(
    waiting: list[Entry], free: dict[str, int]
) -> None:
    served = {a.entry_id for a in wave(waiting, free)}
    for waits in (e for e in waiting if e.id not in served):
        earlier_taken = sum(
            e.qty
            for e in waiting
            if e.id in served
            and e.sku == waits.sku
            and (e.signed_up_at, e.id) < (waits.signed_up_at, waits.id)
        )
        assert waits.qty > free[waits.sku] - earlier_taken  # it did not fit at its turn


@given(waitlists(), frees, st.integers(0, 8), st.integers(0, 4))
def test_a_tiers_reserve_goes_to_its_entries_before_anyone_else(
    waiting: list[Entry], free: dict[str, int], units: int, taken: int
) -> None:
    waiting = [e for e in waiting if e.tier in (None, "gold")]  # one tier: no tier before it
    result = wave(waiting, free, "tiers", tier_units={"gold": units}, tier_taken={"gold": taken})
    reserve = max(units - taken, 0)
    from_reserve = {a.entry_id for a in result if a.tier_reserve == "gold"}
    assert sum(a.qty for a in result if a.tier_reserve) <= reserve
    gold = sorted((e for e in waiting if e.tier == "gold"), key=lambda e: (e.signed_up_at, e.id))
    for position, waits in enumerate(gold):
        if waits.id in from_reserve:
            continue
        before = [e for e in gold[:position] if e.id in from_reserve]
        # left out of the reserve only when, at its turn, the reserve or the SKU's free units
        # (less what earlier gold entries took) were too few: nobody else came first
        sku_left = free[waits.sku] - sum(e.qty for e in before if e.sku == waits.sku)
        assert waits.qty > reserve - sum(e.qty for e in before) or waits.qty > sku_left
