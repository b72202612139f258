"""Pacing from throttleStatus: pure, and never overdraws the bucket it was told about."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.pacing import ThrottleStatus, available_after, delay_for


def status(current: float, maximum: float = 2000.0, rate: float = 100.0) -> ThrottleStatus:
    return ThrottleStatus(maximum, current, rate)


def test_reads_shopify_extensions() -> None:
    cost = {
        "requestedQueryCost": 12,
        "throttleStatus": {
            "maximumAvailable": 2000.0,
            "currentlyAvailable": 1988,
            "restoreRate": 100.0,
        },
    }
    assert ThrottleStatus.from_cost(cost) == status(1988.0)
    assert ThrottleStatus.from_cost({}) is None
    assert ThrottleStatus.from_cost({"throttleStatus": {"maximumAvailable": "x"}}) is None


def test_no_wait_when_the_bucket_holds_the_cost() -> None:
    assert delay_for(50, status(100), 0.0) == 0.0
    assert delay_for(50, None, 0.0) == 0.0


def test_waits_for_the_missing_points_at_the_restore_rate() -> None:
    assert delay_for(300, status(100), 0.0) == pytest.approx(2.0)
    assert delay_for(300, status(100), 1.0) == pytest.approx(1.0)  # one second already refilled
    assert delay_for(300, status(100, rate=1000.0), 0.0) == pytest.approx(0.2)  # plan from server


def test_a_cost_above_the_bucket_waits_for_a_full_bucket_only() -> None:
    assert delay_for(5000, status(0, maximum=1000), 0.0) == pytest.approx(10.0)


@given(
    maximum=st.floats(10, 10_000),
    fraction=st.floats(0, 1),
    rate=st.floats(1, 2000),
    cost=st.floats(0, 20_000),
    elapsed=st.floats(0, 100),
)
def test_after_the_delay_the_bucket_holds_enough(
    maximum: float, fraction: float, rate: float, cost: float, elapsed: float
) -> None:
    s = status(maximum * fraction, maximum, rate)
    wait = delay_for(cost, s, elapsed)
    assert wait >= 0
    assert available_after(s, elapsed + wait) >= min(cost, maximum) - 1e-6
