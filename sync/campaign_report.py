"""`stocksync campaign report NAME`: how a campaign's waitlist converted (issue #15). Read only.

Every entry counts in exactly one (wave, SKU) group: the wave it was allocated in, or none
(`wave` null: never allocated — still waiting or in review, declined in review, or not
allocated at the close). Per group, from `campaign_entry` in one grouped query:

- `signups`: entries; `allocated`: entries given units in a wave (whatever happened next);
- `confirmed`: paid (a manual channel's `campaign confirm`); `confirmed_late`: of those, paid at
  or after their deadline (before a tick had expired them);
- `pending`: allocated and not yet paid, expired or cancelled;
- `expired`, `declined` (review rejected, or cancelled when stock went down), `waiting`,
  `review`, `not_allocated`: entries in that state now;
- `units_allocated`, `units_confirmed`: the same in units;
- `conversion` = confirmed ÷ allocated (null when nothing was allocated), rounded to 4 places.

An override (`campaign_service.allocate_entry`) is recorded under the wave the campaign had
reached (0 before the first), so it counts in that wave here.

`by_wave`, `by_sku` and `totals` are sums of the groups (`by_sku` lists every SKU of the
campaign, with zeros when nobody signed up for it).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from rules import Config
from stock import models as m
from sync.campaign_service import campaign_of

if TYPE_CHECKING:  # rich loads only when something is printed for humans
    from rich.console import Console

COUNTS = (
    "signups",
    "allocated",
    "confirmed",
    "confirmed_late",
    "pending",
    "expired",
    "declined",
    "waiting",
    "review",
    "not_allocated",
    "cancelled",
    "units_allocated",
    "units_confirmed",
)
# counted as they are
STATES = ("waiting", "review", "expired", "declined", "not_allocated", "cancelled")
CSV_COLUMNS = ("wave", "sku", *COUNTS, "conversion")
TOTAL = "total"


def _group() -> dict[str, int]:
    return dict.fromkeys(COUNTS, 0)


def add_rows(
    group: dict[str, int], status: str, allocated: bool, entries: int, units: int, late: int
) -> None:
    """Add `entries` entries (`units` units, `late` of them paid late) in `status` to `group`;
    `allocated`: they were allocated in a wave (a wave number is set)."""
    group["signups"] += entries
    if allocated:
        group["allocated"] += entries
        group["units_allocated"] += units
    if status == "confirmed":
        group["confirmed"] += entries
        group["confirmed_late"] += late
        group["units_confirmed"] += units
    elif status == "allocated":
        group["pending"] += entries
    elif status in STATES:
        group[status] += entries


def conversion(group: Mapping[str, int]) -> float | None:
    """Confirmed ÷ allocated entries; None when none was allocated."""
    return round(group["confirmed"] / group["allocated"], 4) if group["allocated"] else None


def _with_conversion(group: Mapping[str, int], **keys: Any) -> dict[str, Any]:
    return {**keys, **group, "conversion": conversion(group)}


def _wave_order(wave: int | None) -> tuple[int, int]:
    return (1, 0) if wave is None else (0, wave)


def summarise(
    campaign: str, skus: Iterable[str], rows: Iterable[tuple[int | None, str, str, int, int, int]]
) -> dict[str, Any]:
    """The report from grouped rows (wave, sku, status, entries, units, late payments): pure,
    so the sums are the same whatever database the rows came from."""
    cells: dict[tuple[int | None, str], dict[str, int]] = {}
    for wave, sku, status, entries, units, late in rows:
        group = cells.setdefault((wave, sku), _group())
        add_rows(group, status, wave is not None, int(entries), int(units or 0), int(late or 0))
    waves: dict[int | None, dict[str, int]] = {}
    by_sku: dict[str, dict[str, int]] = {code: _group() for code in skus}
    totals = _group()
    for (wave, sku), group in cells.items():
        for target in (
            waves.setdefault(wave, _group()),
            by_sku.setdefault(sku, _group()),
            totals,
        ):
            for key, value in group.items():
                target[key] += value
    return {
        "campaign": campaign,
        "totals": _with_conversion(totals),
        "by_wave": [_with_conversion(waves[w], wave=w) for w in sorted(waves, key=_wave_order)],
        "by_sku": [_with_conversion(group, sku=code) for code, group in by_sku.items()],
        "by_wave_sku": [
            _with_conversion(cells[key], wave=key[0], sku=key[1])
            for key in sorted(cells, key=lambda k: (_wave_order(k[0]), k[1]))
        ],
    }


def report(session: Session, config: Config, name: str) -> dict[str, Any]:
    """The campaign's report (LedgerInputError for a campaign the config does not name)."""
    campaign = campaign_of(config, name)
    entry = m.CampaignEntry
    late = case(
        (and_(entry.status == "confirmed", entry.updated_at >= entry.expires_at), 1), else_=0
    )
    rows = session.execute(
        select(
            entry.wave,
            m.Sku.code,
            entry.status,
            func.count(),
            func.sum(entry.qty),
            func.sum(late),
        )
        .join(m.Sku, m.Sku.id == entry.sku_id)
        .where(entry.campaign == name)
        .group_by(entry.wave, m.Sku.code, entry.status)
    ).all()
    found = [
        (None if wave is None else int(wave), str(code), str(status), int(n), int(u or 0),
         int(lt or 0))
        for wave, code, status, n, u, lt in rows
    ]  # fmt: skip
    data = summarise(name, (code for code, _units in campaign.skus), found)
    if campaign.payment is not None:  # the drop's money metrics (campaign payments: the detail)
        from sync import campaign_money_report

        money = campaign_money_report.report(session, config, name)
        data["money"] = {"currency": money["currency"], **money["metrics"],
                         "totals": money["totals"]}  # fmt: skip
    return data


def to_csv(data: Mapping[str, Any]) -> str:
    """One row per (wave, SKU) — wave empty for entries never allocated — then a totals row
    (`total` in the wave and sku columns)."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in [*data["by_wave_sku"], {**data["totals"], "wave": TOTAL, "sku": TOTAL}]:
        writer.writerow(["" if row.get(col) is None else row[col] for col in CSV_COLUMNS])
    return text.getvalue()


HUMAN = (
    ("sign-ups", "signups"),
    ("allocated", "allocated"),
    ("paid", "confirmed"),
    ("paid late", "confirmed_late"),
    ("pending", "pending"),
    ("expired", "expired"),
    ("declined", "declined"),
    ("waiting", "waiting"),
    ("review", "review"),
    ("not allocated", "not_allocated"),
    ("cancelled", "cancelled"),
    ("conversion", "conversion"),
)


def _cells(row: Mapping[str, Any]) -> list[str]:
    def said(key: str) -> str:
        value = row[key]
        if key == "conversion":
            return "—" if value is None else f"{100 * value:.1f} %"
        return str(value)

    return [said(key) for _label, key in HUMAN]


def render(console: Console, data: Mapping[str, Any]) -> None:
    """Two small tables, by wave and by SKU, each with its totals row."""
    from rich.markup import escape
    from rich.table import Table

    from sync.render import _print_table  # at its natural width: a pipe gets whole lines

    def table(title: str, first: str) -> Table:
        made = Table(title=title, title_justify="left", header_style="bold")
        made.add_column(first, no_wrap=True)
        for label, _key in HUMAN:
            made.add_column(label, justify="right", no_wrap=True)
        return made

    totals = data["totals"]
    console.print(
        f"campaign {data['campaign']}: {totals['signups']} sign-ups, "
        f"{totals['allocated']} allocated, {totals['confirmed']} paid",
        markup=False,
    )
    waves = table("By wave (— : never allocated)", "wave")
    for row in data["by_wave"]:
        waves.add_row("—" if row["wave"] is None else str(row["wave"]), *_cells(row))
    waves.add_row(TOTAL, *_cells(totals), style="bold")
    _print_table(console, waves)
    skus = table("By SKU", "sku")
    for row in data["by_sku"]:
        skus.add_row(escape(row["sku"]), *_cells(row))
    skus.add_row(TOTAL, *_cells(totals), style="bold")
    _print_table(console, skus)
    for key, value in (data.get("money") or {}).items():
        if key != "totals":
            console.print(f"{key}: {'-' if value is None else value}", markup=False)
