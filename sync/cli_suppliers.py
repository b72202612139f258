"""`stocksync suppliers [--last N] [--json]`: how each supplier delivers (issue #17).

Per supplier, over its last N closed purchase orders: on-time %, mean delay, fill rate and
lead time (stock.supplier_stats defines each). Registered on the main app by the line in
sync/cli.py that imports this module.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from stock.supplier_stats import DEFAULT_LAST
from stock.suppliers import read_stats
from sync.cli import JsonFlag, app, emit, handled, opened, out


@app.command()
def suppliers(
    last: Annotated[
        int, typer.Option("--last", min=1, help="Closed POs measured per supplier, newest first.")
    ] = DEFAULT_LAST,
    as_json: JsonFlag = False,
) -> None:
    """Per supplier, over its last N closed POs: on-time %, mean delay, fill rate, lead time."""
    with handled(as_json):
        with opened() as ctx, ctx.read() as session:
            stats = read_stats(session, last)
        data = {"last": last, "suppliers": [row.as_dict() for row in stats]}
        emit(data, as_json, lambda: render(data))


def _shown(value: float | None, suffix: str = "", digits: int = 1, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.{digits}f}{suffix}" if signed else f"{value:.{digits}f}{suffix}"


def render(data: dict[str, Any]) -> None:
    rows = data["suppliers"]
    if not rows:
        out.print("No purchase orders yet.")
        return
    from rich.table import Table

    table = Table(
        title=f"Suppliers (each over its last {data['last']} closed POs)",
        title_justify="left",
        header_style="bold",
    )
    table.add_column("supplier", no_wrap=True, overflow="fold")
    for column in ("POs", "open", "on time", "mean delay", "fill rate", "lead time"):
        table.add_column(column, justify="right", no_wrap=True)
    for row in rows:
        on_time = row["on_time_pct"]
        table.add_row(
            row["supplier"],
            str(row["pos"]),
            str(row["open_pos"]),
            "-"
            if on_time is None
            else f"{on_time:.0f}% ({row['on_time_pos']}/{row['delivered_pos']})",
            _shown(row["mean_delay_days"], " d", signed=True),
            "-" if row["fill_rate"] is None else f"{row['fill_rate']:.0%}",
            _shown(row["mean_lead_days"], " d"),
        )
    out.print(table)
    out.print(
        "on time: every receipt on or before the original ETA; mean delay: receipt day - "
        "original ETA, per unit (negative: early); fill rate: received / ordered (cancelled "
        "units not filled); lead time: order to receipt, per unit",
        markup=False,
    )
