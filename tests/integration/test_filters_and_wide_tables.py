"""`backorders --sku GLOB --channel C --limit N` and `status --channel C` filter what they list
(pages of whole SKUs still join up), and the human tables print long SKUs whole, however
narrow the terminal."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from backorders import orders
from backorders.orders import LineInput, OrderInput
from rules import parse_config
from stock import counts, purchasing
from stock.db import upgrade
from stock.tx import LedgerInputError
from sync import queries, render
from sync.context import AppContext

CONFIG = """\
database: {url}
channels:
  popup: {{kind: manual}}
  phone: {{kind: manual}}
defaults:
  backorders: {{enabled: true, incoming_share: 1.0, horizon_days: 30}}
channel_rules:
  popup: {{priority: 1}}
  phone: {{priority: 2}}
"""
NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)
LONG = "WINTER-PARKA-WATERPROOF-EXTRA-LONG-XXL-MIDNIGHT-BLUE-2026"


@pytest.fixture
def ctx(tmp_path: Path, fresh_sqlite: Callable[[Path], str]) -> Iterator[AppContext]:
    url = fresh_sqlite(tmp_path)
    upgrade(url)
    opened = AppContext.open(parse_config(CONFIG.format(url=url), "stocksync.yaml", env={}))
    seed(opened)
    yield opened
    opened.close()


def seed(ctx: AppContext) -> None:
    """Backorders of TEE-*, MUG-1 and a long SKU on both channels."""
    codes = ["TEE-A", "TEE-B", "TEE-C", "MUG-1", LONG]
    with ctx.ledger(actor="test", now=NOW) as tx:
        counts.import_counts(tx, dict.fromkeys(codes, 0))
        purchasing.add_po(tx, "PO1", date(2026, 12, 5), dict.fromkeys(codes, 20))
    placed = NOW
    waiting = [
        ("popup", "P1", "TEE-A"), ("phone", "F1", "TEE-A"), ("phone", "F2", "TEE-B"),
        ("popup", "P2", "TEE-C"), ("popup", "P3", "MUG-1"), ("phone", "F3", LONG),
    ]  # fmt: skip
    for channel, ref, sku in waiting:
        placed += timedelta(minutes=1)
        with ctx.ledger(actor="test", now=placed) as tx:
            orders.record_order(
                tx, OrderInput(channel, ref, placed, placed, "open", (LineInput("1", sku, 2),))
            )


def listed(ctx: AppContext, **options: Any) -> tuple[list[tuple[str, str, int | None]], Any]:
    with ctx.read() as session:
        rows, after = queries.backorders(session, ctx.config, **options)
    return [(row["sku"], row["order"], row["rank"]) for row in rows], after


def test_backorders_by_glob_and_channel(ctx: AppContext) -> None:
    everything = {"sku": None, "include_closed": False}
    assert listed(ctx, **everything)[0] == [
        ("MUG-1", "P3", 1), ("TEE-A", "P1", 1), ("TEE-A", "F1", 2), ("TEE-B", "F2", 1),
        ("TEE-C", "P2", 1), (LONG, "F3", 1),
    ]  # fmt: skip
    assert listed(ctx, sku="TEE-*", include_closed=False)[0] == [
        ("TEE-A", "P1", 1), ("TEE-A", "F1", 2), ("TEE-B", "F2", 1), ("TEE-C", "P2", 1),
    ]  # fmt: skip
    assert listed(ctx, sku="TEE-[AB]", include_closed=False, channel="phone")[0] == [
        ("TEE-A", "F1", 2),  # its rank among every channel's lines: popup's P1 goes first
        ("TEE-B", "F2", 1),
    ]
    assert listed(ctx, sku=None, include_closed=False, channel="popup")[0] == [
        ("MUG-1", "P3", 1), ("TEE-A", "P1", 1), ("TEE-C", "P2", 1),
    ]  # fmt: skip
    assert listed(ctx, sku="tee-*", include_closed=False)[0] == []  # case-sensitive
    assert listed(ctx, sku="TEE-A", include_closed=False)[0] == [
        ("TEE-A", "P1", 1), ("TEE-A", "F1", 2),
    ]  # fmt: skip
    with pytest.raises(LedgerInputError, match="unknown channel"):
        listed(ctx, sku=None, include_closed=False, channel="market")


def test_filtered_pages_hold_whole_skus_and_join_up(ctx: AppContext) -> None:
    whole, _ = listed(ctx, sku="TEE-*", include_closed=False)
    pages, after = [], None
    while True:
        rows, after = listed(ctx, sku="TEE-*", include_closed=False, limit=1, after_sku=after)
        pages.append(rows)
        if after is None:
            break
    assert pages == [[("TEE-A", "P1", 1), ("TEE-A", "F1", 2)], [("TEE-B", "F2", 1)],
                     [("TEE-C", "P2", 1)]]  # fmt: skip
    assert [row for page in pages for row in page] == whole


def test_status_of_one_channel(ctx: AppContext) -> None:
    revision = queries.revision(ctx)  # read before the transaction, as the CLI does
    with ctx.read() as session:
        data = queries.status(ctx, session, revision, NOW.date(), sku_glob="TEE-*", channel="phone")
        assert data["channels"] == {"phone": "manual"}
        assert {tuple(row["offered"]) for row in data["skus"]} == {("phone",)}
        with pytest.raises(LedgerInputError, match="unknown channel 'nope'"):
            queries.status(ctx, session, revision, NOW.date(), channel="nope")


def test_tables_print_long_skus_whole_on_a_narrow_terminal(ctx: AppContext) -> None:
    console = Console(width=60, highlight=False, soft_wrap=True, record=True, color_system=None)
    revision = queries.revision(ctx)
    with ctx.read() as session:
        data = queries.status(ctx, session, revision, NOW.date())
        rows, after = queries.backorders(session, ctx.config, LONG, False)
    render.status(console, data)
    render.backorders(console, rows, after)
    text = console.export_text()
    stock_row = next(line for line in text.splitlines() if LONG in line and "│" in line)
    assert "…" not in text
    # whole, on one line, with every number of its row
    assert stock_row.split("│")[1].strip() == LONG
    assert [cell.strip() for cell in stock_row.split("│")[2:-1]] == [
        "0", "0", "2", "20", "0", "18", "18",
    ]  # fmt: skip
    backorder_row = [line for line in text.splitlines() if LONG in line][-1]
    assert "F3" in backorder_row and "phone" in backorder_row
