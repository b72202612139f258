"""The campaign benchmark: its sign-up plan (customers, repeats, deliveries), the review index
that must answer as `needs_review` does, the extrapolation of the sign-up curve, and a tiny run
(which checks its own outcome and raises when the ledger ends up wrong)."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from bench.campaigns import (
    FULL,
    QUICK,
    CampaignPlan,
    ReviewIndex,
    campaign_units,
    curve_fills,
    customer,
    deliveries,
    expected_wave,
    interpolated_seconds,
    linear_fit,
    one_by_one_seconds,
    ratio_of,
    run_campaigns,
    split,
    tables,
)
from bench.common import PG_ADMIN_URL
from stock.campaign_policy import Entry, needs_review
from stock.identity import identity_keys

TINY = CampaignPlan(
    signups=120,
    units=20,
    waves=2,
    curve_fills=(0, 60),
    curve_batch=10,
    curve_seconds=2,
    curve_min=2,
    import_rows=10,
    ceiling_seconds=0.2,
    ceiling_again=False,
)


def test_units_are_split_evenly_and_arrive_in_as_many_deliveries_as_waves() -> None:
    assert split(10, 3) == [4, 3, 3] and split(0, 2) == [0, 0] and split(5, 1) == [5]
    with pytest.raises(ValueError, match="parts"):
        split(3, 0)
    assert campaign_units(FULL) == {"CAMP-1": 1667, "CAMP-2": 1667, "CAMP-3": 1666}
    arriving = deliveries(QUICK)
    assert len(arriving) == QUICK.waves
    assert {code: sum(d[code] for d in arriving) for code in arriving[0]} == campaign_units(QUICK)
    assert expected_wave({"A": 10, "B": 4}, {"A": 7}) == {"A": 3, "B": 4}


def test_customers_are_distinct_but_every_hundredth_repeats_the_one_before() -> None:
    people = [customer(i, QUICK) for i in range(1000)]
    keys = [identity_keys(p.email, p.phone, None, None, ("email", "phone")) for p in people]
    assert len({k["phone"] for k in keys}) == 1000  # valid, distinct phone numbers
    emails = Counter(k["email"] for k in keys)
    repeated = sorted(i for i, p in enumerate(people) if emails[keys[i]["email"]] > 1)
    assert repeated == sorted([*range(98, 1000, 100), *range(99, 1000, 100)])
    wanted = Counter(p.sku for p in people)
    assert wanted["CAMP-1"] > wanted["CAMP-2"] > wanted["CAMP-3"] > 0  # weights 3:2:1
    assert customer(7, QUICK) == customer(7, QUICK)  # the same plan, the same customers


def test_the_review_index_answers_as_needs_review_over_every_live_entry() -> None:
    rng = random.Random(4)
    t0 = datetime(2026, 12, 1, tzinfo=UTC)
    index = ReviewIndex(per_customer=2)
    live: list[Entry] = []
    for n in range(300):
        keys = {"email": f"e{rng.randrange(120)}", "phone": f"p{rng.randrange(200)}"}
        if n % 7 == 0:
            del keys["phone"]
        entry = Entry(n + 1, "A", rng.choice((1, 1, 2, 3)), t0 + timedelta(minutes=n), None, keys)
        assert index.reason(entry) == needs_review(entry, live, 2)
        index.add(entry)
        live.append(entry)
    assert sum(index.reason(e) is not None for e in live) > 50  # the case was exercised


def test_the_sign_up_curve_is_extrapolated_by_a_straight_line() -> None:
    intercept, slope = linear_fit([(0, 0.005), (1000, 0.04), (2000, 0.075)])
    assert intercept == pytest.approx(0.005) and slope == pytest.approx(3.5e-5)
    assert linear_fit([(10, 2.0)]) == (2.0, 0.0)
    line = [(50.0, 1.0), (150.0, 2.0), (350.0, 4.0)]
    assert interpolated_seconds(line, 400) == pytest.approx(
        sum(1.0 if f <= 50 else 1.0 + (f - 50) / 100 for f in range(400))
    )
    assert interpolated_seconds([(5.0, 0.5)], 4) == 2.0
    assert curve_fills(QUICK) == [0, 1000, 2500, 4900]  # the last batch fits
    assert one_by_one_seconds(1.0, 0.5, 4) == pytest.approx(sum(1.0 + 0.5 * f for f in range(4)))
    assert ratio_of(50.0, 1000.0) == 0.05 and ratio_of(None, 1000.0) is None
    assert ratio_of(3.0, None) is None


@pytest.mark.slow
def test_tiny_campaign_run_on_sqlite() -> None:
    report = run_campaigns(TINY, kinds=("sqlite",))
    (run,) = report["runs"]
    assert run["check"]["ok"] is True
    assert run["totals"]["signups"] == 120 and run["totals"]["review"] == 1
    assert [b["fill"] for b in run["signup"]["batches"]] == [0, 60]
    assert run["signup"]["through_sign_up"] == 20
    assert [w["delivered"] for w in run["waves"]] == [11, 9, 0]  # 7, 7, 6 over 2 deliveries
    assert run["waves"][0]["allocated"] == 11 and run["waves"][0]["statements"] > 0
    assert run["import"]["rows"] == 10 and run["import"]["rate"] > 0
    assert run["ceiling_tps"] > 0 and run["waves"][0]["ratio"] > 0
    assert "| 1 | 1 | 11 | 0 | 11 |" in tables(report)


@pytest.mark.postgres
@pytest.mark.slow
def test_tiny_campaign_run_on_postgresql() -> None:
    report = run_campaigns(TINY, kinds=("postgresql",), pg_admin=PG_ADMIN_URL)
    (run,) = report["runs"]
    assert (run["database"], run["check"]["ok"]) == ("postgresql", True)
    assert run["payments"]["confirmed"] > 0 and run["ceiling_tps"] > 0
