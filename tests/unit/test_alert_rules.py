"""Which merchant alerts hold (issue #17): the pure rules."""

from __future__ import annotations

from notify.alert_rules import AlertRules, Figures, conditions

RULES = AlertRules(spike_factor=3.0, spike_min_units=5, trailing_days=7)


def kinds(figures: Figures) -> list[tuple[str, str]]:
    return [(c.kind, c.subject) for c in conditions(figures, RULES)]


def test_a_spike_is_an_hour_above_k_times_the_daily_rate_and_above_the_floor() -> None:
    # 70 units in 7 days: 10 a day; 31 in the hour is above 3 x 10, 30 is not
    assert kinds(Figures(sold_last_hour={"A": 31}, sold_trailing={"A": 70})) == [("spike", "A")]
    assert kinds(Figures(sold_last_hour={"A": 30}, sold_trailing={"A": 70})) == []
    # a new SKU with no history: any hour of at least 5 units, never 4
    assert kinds(Figures(sold_last_hour={"B": 5})) == [("spike", "B")]
    assert kinds(Figures(sold_last_hour={"B": 4})) == []


def test_each_state_is_a_condition_per_subject() -> None:
    figures = Figures(
        oversold={"A": 2, "B": 0}, beyond_capacity={"C": 1}, auth_held={"shop": "401"},
        failed_events=3, drift={"woo": [{"sku": "A", "ours": 1, "channel": 2}], "shop": []},
    )  # fmt: skip
    assert kinds(figures) == [
        ("oversell", "A"), ("beyond_capacity", "C"), ("channel_auth", "shop"),
        ("exception_queue", "inbox"), ("drift", "woo"),
    ]  # fmt: skip


def test_the_exception_queue_alerts_above_its_threshold_only() -> None:
    assert kinds(Figures(failed_events=0)) == []
    lenient = AlertRules(exception_queue_threshold=10)
    assert conditions(Figures(failed_events=10), lenient) == []
