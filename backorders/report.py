"""The backorder report (`stocksync report backorders`, issue #18): pure figures, no I/O.

backorders/reporting.py reads the rows; this module turns them into the report. Times are UTC;
a day is a UTC date. What the ledger keeps, and so what each figure can say:

- A `backorder` row keeps when it was created, the units still open (`qty_open`) and the units
  released to a reservation (`qty_released`). Units that left it otherwise — the order was
  cancelled or edited down, or the channel shipped it anyway — are not kept per row: its first
  quantity is not stored. So **backordered = open + released** (units of the backorders that
  are still waiting or were filled; cancelled units are not in it), and **cancelled** counts
  backorders (rows, not units) that closed with nothing released.
- A release is not timestamped on the row: the time of a release is the `at` of its
  `backorder.release` audit entry (written by backorders/releasing.py: SKU as subject, detail
  `order` "channel/external id", `line`, `units`). An entry names the order line, not the row;
  a line with several rows (a split within/beyond capacity, a demotion, an order that grew) is
  played again as the release filled it (stock.commitments.fill_lines: rows within capacity
  first, then oldest), each entry over the rows that existed at its time, up to each row's
  final `qty_released`. Units no row can take are counted `unmatched_units`.

Figures:
- `days`: per UTC day from `since` to `now`: `backordered` — open + released units of the
  backorders created that day; `released` — units of the release entries of that day (of any
  backorder, also older ones).
- `open_age`: open backorders (qty_open > 0, whenever created) by age (now - created_at), in
  AGE_BUCKETS ([lower, upper) in days): count and open units.
- `time_to_release`: over the releases since `since`, per released unit, the hours from its
  backorder's creation to the release entry: mean, median and p90 (nearest rank, weighted by
  units: the smallest wait that at least that share of the units did not exceed).
- `fill_rate`: over the backorders created since `since` (released whenever), per SKU, per
  channel and in total: backordered, released, open, beyond_capacity (units of backorders
  accepted beyond capacity), cancelled, and fill_rate = released / backordered (None when 0).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

RELEASE_ACTION = "backorder.release"  # the audit entry backorders/releasing.py writes
DEFAULT_DAYS = 30  # the report's window when no `since` is given
# (label, upper bound in days, exclusive; None: no bound); each bucket starts where the last ends
AGE_BUCKETS: tuple[tuple[str, float | None], ...] = (
    ("<1d", 1),
    ("1-3d", 3),
    ("3-7d", 7),
    ("7-14d", 14),
    (">14d", None),
)
_HOUR = 3600.0


@dataclass(frozen=True, slots=True)
class BackorderGroup:
    """Backorder rows that share SKU, channel, creation time and capacity flag, summed."""

    sku: str
    channel: str
    created_at: datetime
    within_capacity: bool
    backorders: int  # rows
    open_backorders: int  # rows with qty_open > 0
    cancelled: int  # rows closed with nothing released (qty_open = 0 and qty_released = 0)
    qty_open: int
    qty_released: int


@dataclass(frozen=True, slots=True)
class ReleaseEntry:
    """One `backorder.release` audit entry: units released to one order line."""

    id: int
    at: datetime
    sku: str
    order: str  # "channel/external id"
    line: str  # external line id
    units: int


@dataclass(frozen=True, slots=True)
class ReleasedRow:
    """A backorder row with released units, named as release entries name its line."""

    id: int
    order: str  # "channel/external id"
    line: str
    created_at: datetime
    within_capacity: bool
    qty_released: int


@dataclass(frozen=True, slots=True)
class Wait:
    """Units one release entry gave one backorder row, and how long they had waited."""

    hours: float
    units: int


def age_bucket(age: timedelta) -> int:
    """The index in AGE_BUCKETS of an age (negative ages — clock skew — count as new)."""
    days = age.total_seconds() / 86400.0
    for index, (_label, upper) in enumerate(AGE_BUCKETS):
        if upper is None or days < upper:
            return index
    raise AssertionError("the last bucket has no upper bound")


def percentile(values: Iterable[Wait], pct: float) -> float | None:
    """The nearest-rank `pct` percentile (0 < pct <= 100) of waits weighted by their units:
    the smallest wait such that at least pct % of the units waited no longer. None: no units."""
    ordered = sorted((w for w in values if w.units > 0), key=lambda w: w.hours)
    total = sum(w.units for w in ordered)
    if total == 0:
        return None
    rank = max(math.ceil(pct / 100.0 * total), 1)
    seen = 0
    for wait in ordered:
        seen += wait.units
        if seen >= rank:
            return wait.hours
    return ordered[-1].hours


def waits(
    releases: Sequence[ReleaseEntry], rows: Sequence[ReleasedRow], since: datetime
) -> tuple[list[Wait], int]:
    """The waits of the releases at or after `since`, and the units no row could take.

    `releases` may hold entries before `since` for the same lines: they are played too (they
    filled rows first) but not measured."""
    by_line: dict[tuple[str, str], list[ReleasedRow]] = defaultdict(list)
    for row in rows:
        by_line[(row.order, row.line)].append(row)
    for line_rows in by_line.values():
        line_rows.sort(key=lambda r: (not r.within_capacity, r.id))  # the order fill_lines fills
    left = {row.id: row.qty_released for row in rows}
    found: list[Wait] = []
    unmatched = 0
    for entry in sorted(releases, key=lambda e: (e.at, e.id)):
        measured = entry.at >= since
        units = entry.units
        for row in by_line.get((entry.order, entry.line), ()):
            if units == 0:
                break
            if row.created_at > entry.at:
                continue  # not created yet when this release ran
            take = min(units, left[row.id])
            if take <= 0:
                continue
            left[row.id] -= take
            units -= take
            if measured:
                found.append(Wait((entry.at - row.created_at).total_seconds() / _HOUR, take))
        if measured:
            unmatched += units
    return found, unmatched


def time_to_release(
    releases: Sequence[ReleaseEntry], rows: Sequence[ReleasedRow], since: datetime
) -> dict[str, Any]:
    measured, unmatched = waits(releases, rows, since)
    units = sum(w.units for w in measured)
    mean = sum(w.hours * w.units for w in measured) / units if units else None
    return {
        "releases": sum(1 for e in releases if e.at >= since),
        "units": units,
        "unmatched_units": unmatched,
        "mean_hours": _hours(mean),
        "median_hours": _hours(percentile(measured, 50)),
        "p90_hours": _hours(percentile(measured, 90)),
    }


def open_age(groups: Iterable[BackorderGroup], now: datetime) -> list[dict[str, Any]]:
    counts = [[0, 0] for _ in AGE_BUCKETS]
    for group in groups:
        if group.open_backorders:
            bucket = counts[age_bucket(now - group.created_at)]
            bucket[0] += group.open_backorders
            bucket[1] += group.qty_open
    return [
        {"age": label, "backorders": n, "units": units}
        for (label, _upper), (n, units) in zip(AGE_BUCKETS, counts, strict=True)
    ]


def days(
    groups: Iterable[BackorderGroup],
    releases: Iterable[ReleaseEntry],
    since: datetime,
    now: datetime,
) -> list[dict[str, Any]]:
    """One row per UTC day from since to now (none when since is after now)."""
    if since > now:
        return []
    backordered: dict[date, int] = defaultdict(int)
    released: dict[date, int] = defaultdict(int)
    for group in groups:
        if group.created_at >= since:
            backordered[_day(group.created_at)] += group.qty_open + group.qty_released
    for entry in releases:
        if entry.at >= since:
            released[_day(entry.at)] += entry.units
    first, last = _day(since), _day(now)
    return [
        {"day": day.isoformat(), "backordered": backordered[day], "released": released[day]}
        for day in (first + timedelta(days=n) for n in range((last - first).days + 1))
    ]


def fill_rate(groups: Iterable[BackorderGroup], since: datetime) -> dict[str, Any]:
    by_sku: dict[str, list[int]] = defaultdict(_zeros)
    by_channel: dict[str, list[int]] = defaultdict(_zeros)
    total = _zeros()
    for group in groups:
        if group.created_at < since:
            continue
        units = group.qty_open + group.qty_released
        added = (
            units,
            group.qty_released,
            group.qty_open,
            0 if group.within_capacity else units,
            group.cancelled,
        )
        for sums in (by_sku[group.sku], by_channel[group.channel], total):
            for index, value in enumerate(added):
                sums[index] += value
    return {
        "total": _rate(total),
        "by_sku": [{"sku": key, **_rate(sums)} for key, sums in sorted(by_sku.items())],
        "by_channel": [{"channel": key, **_rate(sums)} for key, sums in sorted(by_channel.items())],
    }


def summarise(
    groups: Sequence[BackorderGroup],
    releases: Sequence[ReleaseEntry],
    rows: Sequence[ReleasedRow],
    since: datetime,
    now: datetime,
) -> dict[str, Any]:
    """The whole report. `groups`: the backorder rows created since `since` and every open
    one; `releases`: the release entries since `since` (and earlier ones of lines with several
    released rows); `rows`: the released rows of the lines those entries name."""
    return {
        "since": since.isoformat(),
        "now": now.isoformat(),
        "days": days(groups, releases, since, now),
        "open_age": open_age(groups, now),
        "time_to_release": time_to_release(releases, rows, since),
        "fill_rate": fill_rate(groups, since),
    }


def default_since(now: datetime) -> datetime:
    """The start of the UTC day DEFAULT_DAYS days before `now`."""
    start = now - timedelta(days=DEFAULT_DAYS)
    return start.replace(hour=0, minute=0, second=0, microsecond=0)


def csv_rows(data: Mapping[str, Any]) -> list[tuple[str, str, str, Any]]:
    """The report as (section, key, metric, value) rows: one long table that a spreadsheet
    pivots. Sections: day, open_age, time_to_release, fill_total, fill_sku, fill_channel."""
    found: list[tuple[str, str, str, Any]] = []
    for row in data["days"]:
        found += [("day", row["day"], k, row[k]) for k in ("backordered", "released")]
    for row in data["open_age"]:
        found += [("open_age", row["age"], k, row[k]) for k in ("backorders", "units")]
    found += [("time_to_release", "all", k, v) for k, v in data["time_to_release"].items()]
    fill = data["fill_rate"]
    found += [("fill_total", "all", k, v) for k, v in fill["total"].items()]
    for section, key, items in (
        ("fill_sku", "sku", fill["by_sku"]),
        ("fill_channel", "channel", fill["by_channel"]),
    ):
        for item in items:
            found += [(section, item[key], k, v) for k, v in item.items() if k != key]
    return found


FILL_KEYS = ("backordered", "released", "open", "beyond_capacity", "cancelled")


def _zeros() -> list[int]:
    return [0] * len(FILL_KEYS)


def _rate(sums: Sequence[int]) -> dict[str, Any]:
    figures: dict[str, Any] = dict(zip(FILL_KEYS, sums, strict=True))
    backordered = figures["backordered"]
    figures["fill_rate"] = round(figures["released"] / backordered, 4) if backordered else None
    return figures


def _hours(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _day(at: datetime) -> date:
    return at.astimezone(UTC).date()
