"""Human output of the CLI: rich tables over the same dicts `--json` prints."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # rich loads only when something is printed for humans
    from rich.console import Console
    from rich.table import Table


# columns that name something (a SKU, an order): never wrapped, never cut
IDENTIFIERS = {"sku", "SKU", "channel", "order", "line", "ref", "customer", "id", "topic"}


def _table(title: str, *columns: str) -> Table:
    from rich.table import Table

    table = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        numeric = column.startswith("offered ") or column in {
            "on hand", "reserved", "backordered", "incoming", "offered", "qty", "open",
            "ordered", "received", "quantity", "shipped", "cancelled", "value", "oversold",
            "rank", "at risk",
        }  # fmt: skip
        table.add_column(
            column,
            justify="right" if numeric else "left",
            no_wrap=numeric or column in IDENTIFIERS,
            overflow="fold",  # a cell too long for its column goes on, never ends in "..."
        )
    return table


def _print_table(console: Console, table: Table) -> None:
    """The table at its natural width, however narrow the terminal (or 80 columns when the
    output is not one): rich would shrink columns and cut SKUs to fit. A terminal wraps the
    longer lines; a pipe or a file gets them whole."""
    from rich.measure import Measurement
    from rich.segment import Segments

    natural = Measurement.get(console, console.options.update(width=10**6), table).maximum
    if natural <= console.width:
        console.print(table)
        return
    console.print(Segments(list(console.render(table, console.options.update(width=natural)))))


def check(console: Console, data: dict[str, Any]) -> None:
    console.print(f"config {data['config']} is valid")
    revision = data["revision"]
    state = "up to date" if revision["current"] == revision["head"] else "needs `db upgrade`"
    console.print(f"database {data['database']}: revision {revision['current']} ({state})")
    online = data.get("online")
    for name, kind in data["channels"].items():
        result = online.get(name) if online is not None else None
        if result is None:
            console.print(f"  channel {name}: {kind}")
            continue
        verdict = "ok" if result["ok"] else "FAILED"
        line = result.get("error") or result.get("summary", "")
        console.print(f"  channel {name} ({kind}): {verdict}: {line}", markup=False)
        for problem in result.get("problems", []):
            console.print(f"    problem: {problem}", markup=False)
    for warning in data["settings"]["warnings"]:
        console.print(f"warning: {warning}", markup=False)
    if "diff" in data:
        _offer_diff(console, data["diff"])


DIFF_SHOWN = 500  # rows printed; --json lists every one


def _offer_diff(console: Console, moved: list[dict[str, Any]]) -> None:
    if not moved:
        console.print("no offered number moves: every channel shows what these rules give")
        return
    table = _table(
        f"{len(moved)} offered numbers move (last given -> these rules)",
        "SKU", "channel", "before", "after", "note",
    )  # fmt: skip
    for row in moved[:DIFF_SHOWN]:
        before = "-" if row["before"] is None else str(row["before"])
        note = "push pending" if row["push_pending"] else ""
        table.add_row(row["sku"], row["channel"], before, str(row["after"]), note)
    _print_table(console, table)
    if len(moved) > DIFF_SHOWN:
        console.print(f"... and {len(moved) - DIFF_SHOWN} more (--json lists them all)")


def stock_change(console: Console, data: dict[str, Any]) -> None:
    console.print(f"{data['sku']}: {data['on_hand']} on hand")
    _released(console, data)
    for sku, units in data["oversold"].items():
        console.print(f"  {sku}: {units} reserved units no longer covered, moved to backorder")


def _released(console: Console, data: dict[str, Any]) -> None:
    for item in data["released"]:
        whole = "complete" if item["complete"] else "partial"
        console.print(
            f"  released {item['qty']} x {item['sku']} to {item['channel']}/{item['order']} "
            f"line {item['line']} ({whole})"
        )


def purchase_orders(console: Console, pos: list[dict[str, Any]]) -> None:
    table = _table("Purchase orders", "ref", "supplier", "eta", "status", "sku", "ordered",
                   "received", "open")  # fmt: skip
    for po in pos:
        for i, line in enumerate(po["lines"]):
            first = i == 0
            table.add_row(
                po["ref"] if first else "",
                (po["supplier"] or "") if first else "",
                po["eta"] if first else "",
                po["status"] if first else "",
                line["sku"],
                str(line["ordered"]),
                str(line["received"]),
                str(line["open"]),
            )
    _print_table(console, table)


def receipt(console: Console, data: dict[str, Any]) -> None:
    purchase_orders(console, [data])
    for sku, units in data.get("over_received", {}).items():
        console.print(f"  {sku}: {units} units received beyond the ordered quantity (allowed)")
    if not data["released"]:
        console.print("No backorders were waiting for these units.")
    _released(console, data)


def po_cancel(console: Console, data: dict[str, Any]) -> None:
    purchase_orders(console, [data])
    cancelled = data["cancelled"]
    if cancelled:
        units = ", ".join(f"{sku} {qty}" for sku, qty in cancelled.items())
        console.print(f"No longer incoming: {units}.", markup=False)
    else:
        console.print("Nothing was still open on it.")
    if not data["at_risk"]:
        console.print("No backorder relied on these units.")
        return
    table = _table(
        "Backorders now AT RISK (what is still coming does not cover them)",
        "sku", "channel", "order", "line", "customer", "rank", "open", "at risk",
    )  # fmt: skip
    for row in data["at_risk"]:
        table.add_row(
            row["sku"], row["channel"], row["order"], row["line"], row["customer"] or "",
            str(row["rank"]), str(row["qty_open"]), str(row["at_risk_units"]),
        )  # fmt: skip
    _print_table(console, table)


def order(console: Console, data: dict[str, Any]) -> None:
    table = _table(
        f"{data['channel']}/{data['order']} ({data['status']})",
        "line", "sku", "quantity", "reserved", "backordered", "shipped", "cancelled",
    )  # fmt: skip
    for line in data["lines"]:
        table.add_row(
            line["line"], line["sku"], str(line["quantity"]), str(line["reserved"]),
            str(line["backordered"]), str(line["shipped"]), str(line["cancelled"]),
        )  # fmt: skip
    _print_table(console, table)
    for line, units in data.get("shipped", {}).items():
        console.print(f"  line {line}: {units} units shipped now")
    for line, units in data["beyond_capacity"].items():
        console.print(f"  line {line}: {units} units backordered BEYOND incoming capacity")
    _released(console, data)


def explain(console: Console, data: dict[str, Any]) -> None:
    console.print(
        f"[bold]{data['sku']}[/]: {data['on_hand']} on hand, {data['reserved']} reserved, "
        f"{data['backordered']} backordered (today {data['today']})"
    )
    if data["oversold"]:
        console.print(f"  oversold so far: {data['oversold']} units")
    for item in data["incoming"]:
        console.print(f"  incoming: PO {item['po']} eta {item['eta']}: {item['open']} open")
    for promise in data.get("promises", ()):
        moved = f" ({promise['moved_later']} moved later)" if promise["moved_later"] else ""
        day = promise["date"] or "no date (beyond what is on order)"
        console.print(f"  backordered, promised {day}: {promise['units']} units{moved}")
    for offer in data["channels"]:
        terms, rule = offer["terms"], offer["rule"]
        table = _table(f"channel {offer['channel']}: offered {offer['offered']}", "term",
                       "value", "from")  # fmt: skip
        table.add_row("on_hand", str(terms["on_hand"]), "ledger")
        table.add_row("- reserved", str(terms["reserved"]), "ledger")
        table.add_row("= sellable_now", str(terms["sellable_now"]), "")
        table.add_row(
            "incoming_open", str(terms["incoming_open"]),
            f"open POs with eta <= today + {rule['horizon_days']['value']} days "
            f"({rule['horizon_days']['source']})",
        )  # fmt: skip
        _incoming_share_rows(table, terms, rule, offer.get("incoming_share"))
        table.add_row("- backordered", str(terms["backordered"]), "ledger")
        enabled = rule["backorders_enabled"]
        table.add_row(
            "= incoming_capacity", str(terms["incoming_capacity"]),
            f"backorders {'enabled' if enabled['value'] else 'disabled'} ({enabled['source']})",
        )  # fmt: skip
        table.add_row(
            "- safety_buffer", str(terms["safety_buffer"]), rule["safety_buffer"]["source"]
        )
        formula = "clamp(sellable + max(capacity, 0) - buffer, 0, cap)"
        if terms.get("campaign_hold"):
            table.add_row(
                "- campaign_hold", str(terms["campaign_hold"]),
                "units campaigns set aside, not confirmed yet (stocksync campaign show)",
            )  # fmt: skip
            formula = "clamp(sellable + max(capacity, 0) - buffer - campaign_hold, 0, cap)"
        cap = terms["cap"]
        table.add_row("cap", "none" if cap is None else str(cap), rule["cap"]["source"])
        if "pool_allotted" in terms:
            source = rule["pool"]["source"]
            table.add_row("pool allotment", str(terms["pool_allotted"]), f"pool ({source})")
            table.add_row("- sold of it", str(terms["pool_sold"]), "ledger: this channel's lines")
            table.add_row("= left of it", str(terms["pool_remaining"]), "")
            table.add_row(
                "pool reserve", str(terms["pool_reserve"]),
                f"held back from every channel until the end ({source})",
            )  # fmt: skip
            formula = f"min({formula}, left of the allotment)"
        table.add_row("= offered", str(offer["offered"]), formula)
        pushed = offer["last_pushed"]
        table.add_row(
            "last pushed", "never" if pushed is None else str(pushed), offer["pushed_at"] or ""
        )
        _print_table(console, table)


def _incoming_share_rows(
    table: Table, terms: dict[str, Any], rule: dict[str, Any], share: dict[str, Any] | None
) -> None:
    """The share row of `explain`: the rule's number, or under `incoming_share: auto` one row
    per open PO line (its supplier's measured fill rate, bounded) and their sum."""
    if share is None or share["mode"] != "auto":
        table.add_row(
            "x incoming_share", str(terms["incoming_share"]), rule["incoming_share"]["source"]
        )
        return
    floor, cap = share["floor"], share["cap"]
    table.add_row(
        "x incoming_share", f"auto (~{terms['incoming_share']})",
        f"{share['source']}; floor {floor['value']:g} ({floor['source']}), "
        f"cap {cap['value']:g} ({cap['source']})",
    )  # fmt: skip
    for line in share["lines"]:
        table.add_row(f"  PO {line['po']}", f"{line['open']} x {line['share']:g}", line["source"])
    table.add_row("= incoming_shared", str(terms.get("incoming_shared", 0)), "floored below")


def backorders(console: Console, rows: list[dict[str, Any]], after: str | None = None) -> None:
    if not rows:
        console.print("No open backorders.")
        return
    table = _table("Backorders (in release order per SKU)", "sku", "channel", "order", "line",
                   "customer", "tier", "placed at", "open", "promised", "flag")  # fmt: skip
    for row in rows:
        promised = row.get("promised_on") or ("unknown" if row["qty_open"] else "")
        table.add_row(
            row["sku"], row["channel"], row["order"], row["line"], row["customer"] or "",
            row["tier"] or "", row["placed_at"][:19], str(row["qty_open"]), promised,
            _flags(row),
        )  # fmt: skip
    _print_table(console, table)
    if after is not None:
        console.print(
            f"More backorders follow: stocksync backorders --after-sku {after}", markup=False
        )


def _flags(row: dict[str, Any]) -> str:
    flags = ["BEYOND CAPACITY"] if row["beyond_capacity"] else []
    if row.get("at_risk"):
        flags.append(f"AT RISK ({row['at_risk_units']})")
    if row.get("promise_moved_from"):
        flags.append(f"DATE MOVED (was {row['promise_moved_from']})")
    return ", ".join(flags)


# a rich table measures every cell: beyond this many rows it takes seconds (100,000: minutes),
# so longer lists are printed as plain aligned text
PLAIN_ROWS = 200


def status(console: Console, data: dict[str, Any]) -> None:
    channels = list(data["channels"])
    headers = ["sku", "on hand", "reserved", "backordered", "incoming", "oversold",
               *[f"offered {c}" for c in channels]]  # fmt: skip
    numbers = ("on_hand", "reserved", "backordered", "incoming", "oversold")
    cells = [
        [f"{row['sku']} (pool)" if row.get("pooled") else row["sku"],
         *[str(row[key]) for key in numbers],
         *[str(row["offered"].get(c, "")) for c in channels]]
        for row in data["skus"]
    ]  # fmt: skip
    if len(cells) > PLAIN_ROWS:
        _plain_table(console, "Stock", headers, cells)
    else:
        table = _table("Stock", *headers)
        for line in cells:
            table.add_row(*line)
        _print_table(console, table)
    db = data["database"]
    console.print(
        f"database {db['url']} (revision {db['current']}); open orders {data['orders_open']}; "
        f"open backorders {data['backorders_open']} "
        f"({data['backorders_beyond_capacity']} beyond capacity); "
        f"inbox pending {data['inbox_pending']}, failed {data['inbox_failed']}; "
        f"dirty listings {data['listings_dirty']}",
        markup=False,
    )
    for name, health in data.get("channel_health", {}).items():
        if health["state"] != "ok":
            console.print(f"channel {name}: {health['error']}", markup=False)
    for name, state in data.get("channel_state", {}).items():
        adopted = f"adopted {state['adopted_at']}" if state["adopted_at"] else "not adopted"
        text = f"{name}: {adopted}"
        if state["listings_held_unknown"]:
            text += (
                f"; {state['listings_held_unknown']} listings held back (SKUs never counted: "
                f"{', '.join(state['held_skus'])}"
                + (", ..." if state["listings_held_unknown"] > len(state["held_skus"]) else "")
                + "): count them or `stocksync adopt "
                + name
                + "`"
            )
        console.print(text, markup=False)


def _plain_table(console: Console, title: str, headers: list[str], rows: list[list[str]]) -> None:
    """Columns aligned with spaces (numbers to the right), written straight to the console's
    file: 100,000 rows in well under a second."""
    widths = [
        max([len(header), *(len(row[i]) for row in rows)]) for i, header in enumerate(headers)
    ]
    right = [i > 0 for i in range(len(headers))]  # every column but the first is a number

    def line(cells: list[str]) -> str:
        return "  ".join(
            cell.rjust(width) if numeric else cell.ljust(width)
            for cell, width, numeric in zip(cells, widths, right, strict=True)
        ).rstrip()

    lines = [title, line(headers), line(["-" * width for width in widths])]
    lines += [line(row) for row in rows]
    console.file.write("\n".join(lines) + "\n")


def inbox(console: Console, rows: list[dict[str, Any]]) -> None:
    if not rows:
        console.print("The inbox is empty.")
        return
    table = _table("Inbox (newest first)", "id", "channel", "topic", "received", "state",
                   "attempts", "error")  # fmt: skip
    for row in rows:
        state = "processed" if row["processed_at"] else ("FAILED" if row["error"] else "pending")
        table.add_row(
            str(row["id"]), row["channel"], row["topic"], row["received_at"][:19], state,
            str(row["attempts"]), (row["error"] or "")[:80],
        )  # fmt: skip
    _print_table(console, table)


def _adopt_action(row: dict[str, Any]) -> str:
    if row["action"] == "refused":
        return "refused: differs, use --overwrite"
    if row["action"] == "skipped":
        return f"skipped: {row['reason']}"
    if row["action"] == "set" and row["ledger"] is not None:
        return f"set ({row['reason']})" if row["reason"] else "set"
    return str(row["action"])


def adopt(console: Console, data: dict[str, Any]) -> None:
    """The diff `stocksync adopt` shows before it writes: every SKU that is not the same."""
    rows = [row for row in data["rows"] if row["action"] != "same"]
    headers = ["sku", "channel", "ledger", "action"]
    cells = [
        [
            row["sku"],
            "" if row["channel"] is None else str(row["channel"]),
            "new" if row["ledger"] is None else str(row["ledger"]),
            _adopt_action(row),
        ]
        for row in rows
    ]
    title = f"{data['channel']}: what adopting changes"
    if len(cells) > PLAIN_ROWS:
        _plain_table(console, title, headers, cells)
    elif cells:
        table = _table(title, *headers)
        table.columns[1].justify = table.columns[2].justify = "right"
        for line in cells:
            table.add_row(*line)
        _print_table(console, table)
    tally = data["summary"]
    console.print(
        f"{data['channel']}: {len(data['rows'])} SKUs read; set {tally['set']}, "
        f"same {tally['same']}, refused {tally['refused']}, skipped {tally['skipped']}"
        + (" (dry run: nothing written)" if data["dry_run"] else ""),
        markup=False,
    )


def adopted(console: Console, data: dict[str, Any]) -> None:
    tally = data["summary"]
    console.print(
        f"Adopted {data['channel']}: on hand set for {tally['set']} SKUs "
        f"({data['released_units']} units released); the daemon now pushes to it.",
        markup=False,
    )
    if tally["refused"]:
        refused = [row["sku"] for row in data["rows"] if row["action"] == "refused"]
        console.print(
            f"Refused {tally['refused']} SKUs the ledger counted differently: "
            f"{', '.join(refused[:20])}{', ...' if len(refused) > 20 else ''} "
            "(kept the ledger's count; --overwrite takes the channel's)",
            markup=False,
        )
    if tally["skipped"]:
        console.print(
            f"Skipped {tally['skipped']} SKUs (see the list above): count them with "
            "`stocksync stock set`",
            markup=False,
        )
