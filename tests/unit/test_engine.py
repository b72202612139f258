"""The offered-quantity formula of DESIGN §3 with worked numbers."""

from __future__ import annotations

from datetime import date

import pytest

from stock.engine import IncomingLine, OfferInputs, compute_offer, incoming_open


def inputs(**overrides: object) -> OfferInputs:
    base: dict[str, object] = {
        "on_hand": 10,
        "reserved": 3,
        "backordered": 0,
        "incoming_open": 0,
        "safety_buffer": 2,
        "cap": None,
        "backorders_enabled": True,
        "incoming_share": 0.75,
    }
    base.update(overrides)
    return OfferInputs(**base)  # type: ignore[arg-type]


def test_sellable_minus_buffer_without_incoming() -> None:
    result = compute_offer(inputs())
    assert result.sellable_now == 7
    assert result.incoming_capacity == 0
    assert result.offered == 5  # 10 - 3 - 2


def test_incoming_share_is_floored_and_backorders_consume_it() -> None:
    # 13 incoming x 0.75 = 9.75 -> 9; 4 already backordered -> 5 more may be promised
    result = compute_offer(inputs(incoming_open=13, backordered=4))
    assert result.incoming_capacity == 5
    assert result.offered == 7 + 5 - 2


def test_exact_products_are_not_lost_to_float_error() -> None:
    # 0.7 * 10 = 7.000000000000001 and 0.29 * 100 = 28.999999999999996 in binary floats
    assert compute_offer(inputs(incoming_open=100, incoming_share=0.29)).incoming_capacity == 29
    assert compute_offer(inputs(incoming_open=10, incoming_share=0.7)).incoming_capacity == 7


def test_negative_capacity_does_not_eat_sellable_stock() -> None:
    # more was backordered than the share allows (a channel oversold): the term is negative,
    # but stock on hand is still offered
    result = compute_offer(inputs(incoming_open=4, backordered=10))
    assert result.incoming_capacity == 3 - 10
    assert result.offered == 5


def test_disabled_backorders_ignore_incoming() -> None:
    result = compute_offer(inputs(incoming_open=100, backorders_enabled=False))
    assert result.incoming_capacity == 0
    assert result.offered == 5


def test_clamped_at_zero_and_cap() -> None:
    assert compute_offer(inputs(on_hand=3, reserved=3)).offered == 0
    assert compute_offer(inputs(on_hand=2, reserved=5)).offered == 0  # count fell below reserved
    assert compute_offer(inputs(on_hand=500, reserved=0, cap=100)).offered == 100
    assert compute_offer(inputs(cap=0)).offered == 0


def test_breakdown_lists_every_term() -> None:
    data = compute_offer(inputs(incoming_open=8)).as_dict()
    assert data == {
        "on_hand": 10,
        "reserved": 3,
        "sellable_now": 7,
        "incoming_open": 8,
        "incoming_share": 0.75,
        "backorders_enabled": True,
        "backordered": 0,
        "incoming_capacity": 6,
        "safety_buffer": 2,
        "cap": None,
        "offered": 11,
    }


@pytest.mark.parametrize(
    ("horizon", "expected"),
    [(0, 5), (6, 5), (7, 5 + 4), (30, 5 + 4 + 2)],
)
def test_incoming_counts_open_units_due_within_the_horizon(horizon: int, expected: int) -> None:
    today = date(2026, 11, 23)
    lines = [
        IncomingLine(ordered=10, received=5, eta=date(2026, 11, 20)),  # late: still counts
        IncomingLine(ordered=4, received=0, eta=date(2026, 11, 30)),
        IncomingLine(ordered=2, received=0, eta=date(2026, 12, 20)),
        IncomingLine(ordered=3, received=4, eta=date(2026, 11, 23)),  # over-received: 0, not -1
    ]
    assert incoming_open(lines, today, horizon) == expected
