"""`stocksync report backorders`: backorder volume, age, time to release, fill rate (issue #18).

Registered on the main app by the line in sync/cli.py that imports this module; the figures
and what the ledger lets them say are backorders/report.py's, the reads backorders/reporting.py's.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from sync.cli import EXIT_BAD_INPUT, JsonFlag, app, emit, fail, handled, opened, out, parse_time

report_app = typer.Typer(help="Reports over the ledger's history.", no_args_is_help=True)
app.add_typer(report_app, name="report")


@report_app.command("backorders")
def report_backorders(
    since: Annotated[
        str | None,
        typer.Option(help="From this ISO time on (no zone: UTC; default: 30 days ago, 00:00)."),
    ] = None,
    as_csv: Annotated[
        bool, typer.Option("--csv", help="CSV: one row per (section, key, metric, value).")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Backorders over time, age of the open ones, time to release, fill rate per SKU and
    channel."""
    from backorders import report, reporting

    with handled(as_json):
        if as_csv and as_json:
            fail("--csv and --json: choose one", EXIT_BAD_INPUT)
        now = datetime.now(UTC)
        start = parse_time(since) if since is not None else report.default_since(now)
        with opened() as ctx, ctx.read() as session:
            data = reporting.report(session, start, now)
        if as_csv:
            print(to_csv(data), end="")
            return
        emit(data, as_json, lambda: render(data))


def to_csv(data: dict[str, Any]) -> str:
    from backorders.report import csv_rows

    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(("section", "key", "metric", "value"))
    writer.writerows(
        (section, key, metric, "" if value is None else value)
        for section, key, metric, value in csv_rows(data)
    )
    return text.getvalue()


def _shown(value: Any, suffix: str = "") -> str:
    return "-" if value is None else f"{value}{suffix}"


def _fill_cells(row: dict[str, Any]) -> list[str]:
    rate = row["fill_rate"]
    return [
        *(str(row[k]) for k in ("backordered", "released", "open", "beyond_capacity", "cancelled")),
        "-" if rate is None else f"{rate:.0%}",
    ]


def render(data: dict[str, Any]) -> None:
    from rich.markup import escape
    from rich.table import Table

    from sync.render import _print_table  # at its natural width: a pipe gets whole lines

    def table(title: str, *columns: str) -> Table:
        made = Table(title=title, title_justify="left", header_style="bold")
        made.add_column(columns[0], no_wrap=True)
        for column in columns[1:]:
            made.add_column(column, justify="right", no_wrap=True)
        return made

    out.print(f"Backorders since {data['since'][:19]} UTC (now {data['now'][:19]} UTC)")
    days = [row for row in data["days"] if row["backordered"] or row["released"]]
    per_day = table("Per day (days with any backorders or releases)", "day", "backordered",
                    "released")  # fmt: skip
    for row in days:
        per_day.add_row(row["day"], str(row["backordered"]), str(row["released"]))
    if days:
        _print_table(out, per_day)
    else:
        out.print("No backorders created or released in this time.")

    ages = table("Open backorders by age", "age", "backorders", "units")
    for row in data["open_age"]:
        ages.add_row(row["age"], str(row["backorders"]), str(row["units"]))
    _print_table(out, ages)

    wait = data["time_to_release"]
    unmatched = wait["unmatched_units"]
    out.print(
        f"Time to release ({wait['units']} units in {wait['releases']} releases): "
        f"mean {_shown(wait['mean_hours'], ' h')}, median {_shown(wait['median_hours'], ' h')}, "
        f"p90 {_shown(wait['p90_hours'], ' h')}"
        + (f"; {wait['unmatched_units']} units matched no backorder" if unmatched else ""),
        markup=False,
    )

    fill = data["fill_rate"]
    columns = ("backordered", "released", "open", "beyond cap.", "cancelled", "fill rate")
    for title, key, rows in (
        ("Fill rate per SKU (backorders created in this time)", "sku", fill["by_sku"]),
        ("Fill rate per channel", "channel", fill["by_channel"]),
    ):
        made = table(title, key, *columns)
        for row in rows:
            made.add_row(escape(row[key]), *_fill_cells(row))
        made.add_row("total", *_fill_cells(fill["total"]), style="bold")
        _print_table(out, made)
    out.print(
        "backordered: units of the backorders still open or released (units cancelled off a "
        "backorder are not kept per backorder); cancelled: backorders closed with nothing "
        "released; fill rate: released / backordered",
        markup=False,
    )
