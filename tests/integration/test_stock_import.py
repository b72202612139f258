"""`stock import` counts many SKUs set-based (stock.counts.import_counts); the ledger must end
as after `set_stock` per SKU: the same stock, reservations, backorders, releases, demotions,
write-backs, dirty listings and audited units, on SQLite and PostgreSQL, whatever the chunk
size."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from backorders import orders
from backorders.orders import LineInput, OrderInput
from rules import parse_config
from stock import counts, purchasing
from stock import models as m
from stock.db import upgrade
from stock.tx import LedgerInputError
from sync.context import AppContext

CONFIG = """\
database: {url}
channels:
  popup: {{kind: manual}}
  shop: {{kind: shopify, shop: s.myshopify.com, token: ${{TOKEN}}, webhook_secret: ${{WHS}}}}
defaults:
  safety_buffer: 0
  backorders: {{enabled: true, incoming_share: 1.0, horizon_days: 30}}
"""
NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)
COUNT = {
    "A": 10,  # was 5, all reserved, 3 more waiting: the count releases them
    "B": 1,  # was 6, 4 reserved: 3 reserved units go back to backorder (newest order first)
    "C": 3,  # unchanged
    "D": 7,  # new SKU
    "E": 0,  # new SKU, counted empty: its listings are still created (and pushed as 0)
    "F": 9,  # was 2, nothing waits
}


def open_ctx(url: str) -> AppContext:
    upgrade(url)
    env = {"TOKEN": "shpat_x", "WHS": "secret"}
    return AppContext.open(parse_config(CONFIG.format(url=url), "stocksync.yaml", env=env))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def urls(
    request: pytest.FixtureRequest, tmp_path: Path, fresh_sqlite: Callable[[Path], str]
) -> Iterator[tuple[str, str]]:
    """Two empty ledgers: one counted row by row, one imported."""
    if request.param == "sqlite":
        yield fresh_sqlite(tmp_path), fresh_sqlite(tmp_path)
        return
    from sync.stack import fresh_postgres
    from tests.conftest import PG_ADMIN_URL

    with (
        fresh_postgres(PG_ADMIN_URL, prefix="stocksync_t_") as first,
        fresh_postgres(PG_ADMIN_URL, prefix="stocksync_t_") as second,
    ):
        yield first, second


def build(ctx: AppContext) -> None:
    with ctx.ledger(actor="test", now=NOW) as tx:
        for sku, qty in {"A": 5, "B": 6, "C": 3, "F": 2}.items():
            counts.set_stock(tx, sku, qty)
        purchasing.add_po(tx, "PO1", date(2026, 12, 5), {"A": 10})
    for ref, lines, minutes in [
        ("P1", {"A": 8, "B": 1}, 1),  # A: 5 reserved, 3 backordered; B: 1 reserved
        ("P2", {"B": 3}, 2),  # the newest: demoted first
    ]:
        placed = NOW + timedelta(minutes=minutes)
        with ctx.ledger(actor="test", now=placed) as tx:
            orders.record_order(
                tx,
                OrderInput(
                    "popup",
                    ref,
                    placed,
                    placed,
                    "open",
                    tuple(LineInput(str(i), s, q) for i, (s, q) in enumerate(lines.items(), 1)),
                ),
            )


def ledger(ctx: AppContext) -> dict[str, Any]:
    """Everything a count may change, keyed by codes (ids and times differ between ledgers)."""
    with ctx.read() as session:
        code = dict(session.execute(select(m.Sku.id, m.Sku.code)).all())
        line = {
            row.id: (order, row.external_line_id)
            for row, order in session.execute(
                select(m.OrderLine, m.ChannelOrder.external_id).join(m.ChannelOrder)
            ).all()
        }
        units: dict[str, int] = {}
        for subject, detail in session.execute(
            select(m.AuditEntry.subject, m.AuditEntry.detail).where(
                m.AuditEntry.action == "stock.set"
            )
        ).all():
            units[subject] = units.get(subject, 0) + detail["after"] - detail["before"]
        return {
            "stock": sorted(
                (code[r.sku_id], r.on_hand, r.oversold, r.reserved, r.backordered)
                for r in session.scalars(select(m.StockLevel))
            ),
            "reservations": sorted(
                (line[r.order_line_id], code[r.sku_id], r.qty)
                for r in session.scalars(select(m.Reservation))
            ),
            "backorders": sorted(
                (line[r.order_line_id], r.qty_open, r.qty_released, r.accepted_within_capacity)
                for r in session.scalars(select(m.Backorder))
            ),
            "writebacks": sorted(
                (r.channel, r.status, r.version) for r in session.scalars(select(m.Writeback))
            ),
            "listings": sorted(
                (r.channel, code[r.sku_id], r.dirty, r.dirty_version)
                for r in session.scalars(select(m.Listing))
            ),
            # units counted in, per SKU (what the fault checker sums); a count of 0 of a new SKU
            # is audited by set_stock, not by the import: both add nothing
            "units_counted": {sku: n for sku, n in units.items() if n},
        }


def test_import_ends_as_set_stock_per_sku(
    urls: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(counts, "IMPORT_CHUNK", 2)  # several chunks of every statement
    per_row, imported = open_ctx(urls[0]), open_ctx(urls[1])
    try:
        build(per_row)
        build(imported)
        later = NOW + timedelta(hours=1)
        with per_row.ledger(actor="test", now=later) as tx:
            for sku, qty in COUNT.items():
                counts.set_stock(tx, sku, qty, "import")
        expected_effects = tx.effects
        with imported.ledger(actor="test", now=later) as tx:
            result = counts.import_counts(tx, COUNT, "import")
        assert result == counts.ImportedCounts(skus=6, created=2, changed=4)
        effects = tx.effects

        assert [(r.order_external_id, r.sku, r.qty) for r in effects.released] == [("P1", "A", 3)]
        assert [(r.order_external_id, r.sku, r.qty) for r in expected_effects.released] == [
            ("P1", "A", 3)
        ]
        assert effects.oversold == expected_effects.oversold == {"B": 3}
        want, got = ledger(per_row), ledger(imported)
        # a count that changes nothing is not written: set_stock bumps C's listing anyway
        want["listings"] = [row for row in want["listings"] if row[1] != "C"]
        got["listings"] = [row for row in got["listings"] if row[1] != "C"]
        assert got == want
        assert got["units_counted"] == {"A": 10, "B": 1, "C": 3, "D": 7, "F": 9}
        assert ("A", 10, 0, 8, 0) in got["stock"]
        assert ("B", 1, 0, 1, 3) in got["stock"]
        assert ("shop", "E", True, 1) in got["listings"]
    finally:
        per_row.close()
        imported.close()


def test_import_is_all_or_nothing(urls: tuple[str, str]) -> None:
    ctx = open_ctx(urls[0])
    try:
        with pytest.raises(LedgerInputError), ctx.ledger(actor="test", now=NOW) as tx:
            counts.import_counts(tx, {"A": 1, "B": -1})
        with pytest.raises(LedgerInputError), ctx.ledger(actor="test", now=NOW) as tx:
            counts.import_counts(tx, {"A": 1, "x" * 256: 1})
        with ctx.read() as session:
            assert session.scalars(select(m.Sku)).all() == []
            assert session.scalars(select(m.AuditEntry)).all() == []
    finally:
        ctx.close()


def test_a_sku_created_meanwhile_is_counted_like_the_others(
    urls: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another transaction created the SKU between the import's lookup and its insert."""
    ctx = open_ctx(urls[0])
    try:
        with ctx.ledger(actor="test", now=NOW) as tx:
            counts.set_stock(tx, "A", 3)
        real_ids = counts._ids
        calls: list[list[str]] = []

        def late_ids(tx: Any, codes: Any) -> dict[str, int]:
            calls.append(list(codes))
            return {} if len(calls) == 1 else real_ids(tx, codes)  # the first lookup misses A

        monkeypatch.setattr(counts, "_ids", late_ids)
        with ctx.ledger(actor="test", now=NOW) as tx:
            result = counts.import_counts(tx, {"A": 5, "N": 2})
        assert result == counts.ImportedCounts(skus=2, created=1, changed=2)
        assert calls == [["A", "N"], ["A"]]
        got = ledger(ctx)
        assert [row[:2] for row in got["stock"]] == [("A", 5), ("N", 2)]
        assert got["units_counted"] == {"A": 5, "N": 2}
    finally:
        ctx.close()
