"""`stocksync audit`: the audit log, filtered, newest first, a page at a time (issue #18).

Registered on the main app by the line in sync/cli.py that imports this module; the reads
(and how each filter meets the indexes) are stock/audit_log.py's.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from typing import Annotated, Any

import typer

from stock import audit_log
from sync.cli import EXIT_BAD_INPUT, JsonFlag, app, emit, fail, handled, opened, out, parse_time

CSV_COLUMNS = ("id", "at", "actor", "action", "subject", "detail")
DETAIL_SHOWN = 120  # characters of an entry's detail in the table (--json/--csv: all of it)


@app.command()
def audit(
    sku: Annotated[
        str | None,
        typer.Option(help="Entries about this SKU: its subject, or detail.sku (campaign entries)."),
    ] = None,
    action: Annotated[
        str | None,
        typer.Option(help="An action, or a case-sensitive glob such as 'campaign.*'."),
    ] = None,
    subject: Annotated[
        str | None, typer.Option(help="Exactly this subject (a SKU, PO ref, channel/order...).")
    ] = None,
    user: Annotated[str | None, typer.Option(help="Entries written by this actor.")] = None,
    since: Annotated[
        str | None, typer.Option(help="From this ISO time on (inclusive; no zone: UTC).")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Before this ISO time (exclusive; no zone: UTC).")
    ] = None,
    limit: Annotated[int, typer.Option(help="Entries per page.", min=1)] = 100,
    before_id: Annotated[
        int | None,
        typer.Option(
            "--before-id", help="The page after this entry (`next` of the last page).", min=1
        ),
    ] = None,
    as_csv: Annotated[
        bool, typer.Option("--csv", help="CSV: a header, then a row per entry (detail as JSON).")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """The audit log, newest first: who changed what, when, and why."""
    with handled(as_json):
        if as_csv and as_json:
            fail("--csv and --json: choose one", EXIT_BAD_INPUT)
        where = audit_log.AuditFilter(
            sku=sku, action=action, subject=subject, user=user,
            since=parse_time(since) if since is not None else None,
            until=parse_time(until) if until is not None else None,
            before_id=before_id,
        )  # fmt: skip
        if where.since and where.until and where.since >= where.until:
            fail("--since must be before --until", EXIT_BAD_INPUT)
        with opened() as ctx, ctx.read() as session:
            try:
                found = audit_log.page(session, where, limit)
            except audit_log.NoSuchEntry:
                fail(f"--before-id {before_id}: no audit entry has this id", EXIT_BAD_INPUT)
        rows = [row.as_dict() for row in found.entries]
        if as_csv:
            print(to_csv(rows), end="")
            if found.next is not None:  # stdout stays one CSV document
                print(f"next page: --before-id {found.next}", file=sys.stderr)
            return
        emit({"entries": rows, "next": found.next}, as_json, lambda: render(rows, found.next))


def compact(detail: Any) -> str:
    return json.dumps(detail, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def to_csv(rows: list[dict[str, Any]]) -> str:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow([*(row[c] for c in CSV_COLUMNS[:-1]), compact(row["detail"])])
    return text.getvalue()


def render(rows: list[dict[str, Any]], after: int | None) -> None:
    if not rows:
        out.print("No audit entries.")
        return
    from rich.markup import escape
    from rich.table import Table

    from sync.render import _print_table  # at its natural width: a pipe gets whole lines

    table = Table(title="Audit log (newest first)", title_justify="left", header_style="bold")
    table.add_column("id", justify="right", no_wrap=True)
    for column in ("at (UTC)", "actor", "action", "subject", "detail"):
        table.add_column(column, no_wrap=True)
    for row in rows:
        detail = compact(row["detail"])
        if len(detail) > DETAIL_SHOWN:
            detail = detail[: DETAIL_SHOWN - 1] + "…"
        table.add_row(
            str(row["id"]), row["at"][:19].replace("T", " "), escape(row["actor"]),
            escape(row["action"]), escape(row["subject"]), escape(detail),
        )  # fmt: skip
    _print_table(out, table)
    if after is not None:
        out.print(f"next page: --before-id {after}", markup=False)
