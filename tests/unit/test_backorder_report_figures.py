"""The backorder report's pure figures (backorders/report.py): weighted nearest-rank
percentiles, age buckets and their edges, the replay of releases over a line's rows, days
without gaps, fill rates, and every figure on empty data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from backorders import report
from backorders.report import BackorderGroup, ReleasedRow, ReleaseEntry, Wait

T0 = datetime(2026, 3, 1, 10, tzinfo=UTC)


def h(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def group(
    sku: str = "TEE",
    channel: str = "shop",
    at: float = 0,
    *,
    within: bool = True,
    rows: int = 1,
    open_rows: int = 0,
    cancelled: int = 0,
    qty_open: int = 0,
    released: int = 0,
) -> BackorderGroup:
    return BackorderGroup(sku, channel, h(at), within, rows, open_rows, cancelled, qty_open,
                          released)  # fmt: skip


def test_percentiles_are_nearest_rank_and_weighted_by_units() -> None:
    assert report.percentile([], 50) is None
    assert report.percentile([Wait(5.0, 0)], 50) is None  # no units
    assert report.percentile([Wait(7.0, 1)], 50) == 7.0
    assert report.percentile([Wait(7.0, 1)], 90) == 7.0
    waits = [Wait(2.0, 1), Wait(1.0, 1)]  # order does not matter
    assert report.percentile(waits, 50) == 1.0  # no interpolation: one of the values
    assert report.percentile(waits, 51) == 2.0
    assert report.percentile(waits, 100) == 2.0
    # 9 units waited 1 h, 1 unit 100 h: the median and p90 are 1 h, p91 is 100 h
    skewed = [Wait(100.0, 1), Wait(1.0, 9)]
    assert (report.percentile(skewed, 50), report.percentile(skewed, 90)) == (1.0, 1.0)
    assert report.percentile(skewed, 91) == 100.0
    ten = [Wait(float(n), 1) for n in range(1, 11)]
    assert [report.percentile(ten, p) for p in (10, 50, 90, 95)] == [1.0, 5.0, 9.0, 10.0]


@pytest.mark.parametrize(
    ("age", "label"),
    [
        (timedelta(0), "<1d"),
        (timedelta(hours=-2), "<1d"),  # a clock a little behind: new
        (timedelta(hours=23, minutes=59), "<1d"),
        (timedelta(days=1), "1-3d"),
        (timedelta(days=3) - timedelta(seconds=1), "1-3d"),
        (timedelta(days=3), "3-7d"),
        (timedelta(days=7), "7-14d"),
        (timedelta(days=14) - timedelta(microseconds=1), "7-14d"),
        (timedelta(days=14), ">14d"),
        (timedelta(days=400), ">14d"),
    ],
)
def test_age_buckets_include_their_lower_edge(age: timedelta, label: str) -> None:
    assert report.AGE_BUCKETS[report.age_bucket(age)][0] == label


def test_open_age_counts_only_open_rows_and_lists_every_bucket() -> None:
    now = h(24 * 10)
    groups = [
        group(at=24 * 10 - 2, rows=2, open_rows=2, qty_open=5),  # 2 h old
        group(at=24 * 8, rows=1, open_rows=1, qty_open=1),  # 2 days
        group(at=24 * 8, rows=3, open_rows=1, cancelled=1, qty_open=4, released=2),
        group(at=0, rows=1, open_rows=0, released=3),  # 10 days old, but closed
        group(at=-24 * 30, rows=1, open_rows=1, qty_open=7),  # 40 days
    ]
    assert report.open_age(groups, now) == [
        {"age": "<1d", "backorders": 2, "units": 5},
        {"age": "1-3d", "backorders": 2, "units": 5},
        {"age": "3-7d", "backorders": 0, "units": 0},
        {"age": "7-14d", "backorders": 0, "units": 0},
        {"age": ">14d", "backorders": 1, "units": 7},
    ]


def entry(
    entry_id: int, at: float, units: int, order: str = "shop/1", line: str = "1"
) -> ReleaseEntry:
    return ReleaseEntry(entry_id, h(at), "TEE", order, line, units)


def row(row_id: int, at: float, released: int, *, within: bool = True, order: str = "shop/1",
        line: str = "1") -> ReleasedRow:  # fmt: skip
    return ReleasedRow(row_id, order, line, h(at), within, released)


def test_a_line_with_one_row_waits_from_its_creation_to_each_release() -> None:
    waits, unmatched = report.waits([entry(2, 30, 1), entry(1, 10, 2)], [row(1, 0, 3)], since=h(0))
    assert waits == [Wait(10.0, 2), Wait(30.0, 1)] and unmatched == 0


def test_releases_fill_within_capacity_rows_first_then_the_oldest() -> None:
    rows = [row(1, 0, 2, within=False), row(2, 1, 1), row(3, 5, 3)]
    # one release of 6 at 10 h: rows within capacity (2, then 3), then row 1 — as
    # stock.commitments.fill_lines fills them
    waits, _ = report.waits([entry(1, 10, 6)], rows, since=h(0))
    assert waits == [Wait(9.0, 1), Wait(5.0, 3), Wait(10.0, 2)]


def test_a_release_skips_rows_created_after_it_and_rows_already_filled() -> None:
    # row 1 (1 unit) filled at 2 h; row 2 created at 3 h (the order grew), filled at 10 h
    rows = [row(1, 0, 1), row(2, 3, 2)]
    waits, unmatched = report.waits([entry(1, 2, 1), entry(2, 10, 2)], rows, since=h(0))
    assert waits == [Wait(2.0, 1), Wait(7.0, 2)] and unmatched == 0
    # measured from `since` on, but the earlier release is still played first
    waits, _ = report.waits([entry(1, 2, 1), entry(2, 10, 2)], rows, since=h(5))
    assert waits == [Wait(7.0, 2)]
    # without the earlier entry the replay would give row 1 to the later release
    waits, _ = report.waits([entry(2, 10, 2)], rows, since=h(5))
    assert waits == [Wait(10.0, 1), Wait(7.0, 1)]


def test_units_no_row_can_take_are_counted_unmatched() -> None:
    waits, unmatched = report.waits(
        [entry(1, 5, 3), entry(2, 6, 2, order="shop/9")], [row(1, 0, 2)], since=h(0)
    )
    assert waits == [Wait(5.0, 2)] and unmatched == 1 + 2
    figures = report.time_to_release([entry(1, 5, 3)], [row(1, 0, 2)], h(0))
    assert figures["unmatched_units"] == 1 and figures["units"] == 2


def test_time_to_release_mean_median_p90() -> None:
    rows = [row(1, 0, 3), row(2, 0, 1, order="shop/2"), row(3, 0, 4, order="shop/3")]
    releases = [entry(1, 2, 3), entry(2, 10, 1, order="shop/2"), entry(3, 30, 4, order="shop/3")]
    figures = report.time_to_release(releases, rows, h(0))
    # 3 units x 2 h, 1 x 10 h, 4 x 30 h: mean 136 / 8 = 17; the 4th unit waited 10 h; 8th 30 h
    assert figures == {"releases": 3, "units": 8, "unmatched_units": 0, "mean_hours": 17.0,
                       "median_hours": 10.0, "p90_hours": 30.0}  # fmt: skip


def test_days_run_from_since_to_now_without_gaps() -> None:
    groups = [
        group(at=-1, qty_open=9),  # before since: not in the days
        group(at=1, qty_open=2, released=1),
        group(at=50, released=4, cancelled=1),
    ]
    releases = [entry(1, -1, 5), entry(2, 20, 1), entry(3, 60, 4)]
    assert report.days(groups, releases, since=h(0), now=h(60)) == [
        {"day": "2026-03-01", "backordered": 3, "released": 0},
        {"day": "2026-03-02", "backordered": 0, "released": 1},
        {"day": "2026-03-03", "backordered": 4, "released": 4},
    ]
    assert report.days([], [], since=h(1), now=h(0)) == []  # since after now


def test_fill_rate_per_sku_channel_and_total() -> None:
    groups = [
        group("TEE", "shop", 1, qty_open=1, released=3),
        group("TEE", "woo", 2, within=False, qty_open=2, cancelled=1),
        group("CAP", "shop", 3, cancelled=2),
        group("CAP", "shop", -5, qty_open=4),  # before since: only its age counts
    ]
    fill = report.fill_rate(groups, h(0))
    assert fill["by_sku"] == [
        {"sku": "CAP", "backordered": 0, "released": 0, "open": 0, "beyond_capacity": 0,
         "cancelled": 2, "fill_rate": None},
        {"sku": "TEE", "backordered": 6, "released": 3, "open": 3, "beyond_capacity": 2,
         "cancelled": 1, "fill_rate": 0.5},
    ]  # fmt: skip
    assert [(c["channel"], c["fill_rate"]) for c in fill["by_channel"]] == [
        ("shop", 0.75), ("woo", 0.0),
    ]  # fmt: skip
    assert fill["total"] == {"backordered": 6, "released": 3, "open": 3, "beyond_capacity": 2,
                             "cancelled": 3, "fill_rate": 0.5}  # fmt: skip


def test_empty_data() -> None:
    data = report.summarise([], [], [], since=h(0), now=h(30))
    assert data == {
        "since": h(0).isoformat(),
        "now": h(30).isoformat(),
        "days": [
            {"day": "2026-03-01", "backordered": 0, "released": 0},
            {"day": "2026-03-02", "backordered": 0, "released": 0},
        ],
        "open_age": [{"age": age, "backorders": 0, "units": 0} for age, _ in report.AGE_BUCKETS],
        "time_to_release": {"releases": 0, "units": 0, "unmatched_units": 0, "mean_hours": None,
                            "median_hours": None, "p90_hours": None},
        "fill_rate": {"total": {"backordered": 0, "released": 0, "open": 0, "beyond_capacity": 0,
                                "cancelled": 0, "fill_rate": None},
                      "by_sku": [], "by_channel": []},
    }  # fmt: skip
    rows = report.csv_rows(data)
    assert rows[0] == ("day", "2026-03-01", "backordered", 0)
    assert ("time_to_release", "all", "median_hours", None) in rows
    assert ("fill_total", "all", "fill_rate", None) in rows
    assert {section for section, *_ in rows} == {"day", "open_age", "time_to_release",
                                                 "fill_total"}  # fmt: skip


def test_default_since_is_the_start_of_the_day_30_days_before() -> None:
    assert report.default_since(datetime(2026, 3, 31, 17, 5, 3, 9, tzinfo=UTC)) == datetime(
        2026, 3, 1, tzinfo=UTC
    )
