"""The push benchmark: its bound arithmetic, the metered bucket, and a small run."""

from __future__ import annotations

import pytest

from bench.push import MeteredBucket, Phase, PushPlan, changed_quantities, run_push, table


def test_throttle_bound_minimum_counts_what_the_bucket_held() -> None:
    phase = Phase("p", seconds=12.0, calls=40, throttled=0, billed=2400.0,
                  bucket_at_start=400.0, restore_rate=100.0, minimal_calls=40)  # fmt: skip
    assert phase.minimum_s == 20.0
    assert phase.as_dict()["time_vs_min"] == 0.6
    free = Phase("p", 1.0, 4, 0, 40.0, 2000.0, 100.0, 4)
    assert free.minimum_s == 0.0
    assert free.as_dict()["time_vs_min"] is None  # nothing to compare with


def test_metered_bucket_bills_the_requested_cost_minus_refunds() -> None:
    bucket = MeteredBucket(100.0)
    ok, _status = bucket.take(402)
    assert ok
    bucket.refund(2)
    assert bucket.billed == 400.0
    assert not bucket.take(10_000)[0]
    assert (bucket.granted, bucket.throttled) == (1, 1)


def test_every_sku_gets_a_different_quantity() -> None:
    skus = [f"S{i}" for i in range(20)]
    wanted = changed_quantities(skus, 50)
    assert all(q != 50 and q >= 0 for q in wanted.values())
    assert any(q < 50 for q in wanted.values()) and any(q > 50 for q in wanted.values())


@pytest.mark.slow
def test_a_small_push_lands_every_quantity_in_the_minimal_calls() -> None:
    report = run_push(PushPlan(skus=300, restore_rate=2000.0))
    assert report["quantities_landed"] == 300
    assert report["pushed_ok"] == 300
    mapping, pushing, _both = report["phases"]
    assert (mapping["calls"], mapping["minimal_calls"]) == (3, 3)
    assert (pushing["calls"], pushing["minimal_calls"]) == (2, 2)
    assert pushing["points_billed"] == 20.0  # 10 points per mutation call
    assert "| pushing (push_offers) |" in table(report)
