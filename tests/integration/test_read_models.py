"""The read commands at catalogue scale keep their answers: `status` rows (offers computed once
per distinct figures and rules, `--sku`/`--limit`), their fast JSON, `backorders` pages, and the
revision check that no longer loads Alembic."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from backorders import orders
from backorders.orders import LineInput, OrderInput
from rules import parse_config
from stock import counts, offers, purchasing
from stock import models as m
from stock.db import current_revision, head_revision, upgrade
from sync import queries
from sync.cli import status_rows_json
from sync.context import AppContext, code_revision, database_revision

CONFIG = """\
database: {url}
channels:
  popup: {{kind: manual}}
  phone: {{kind: manual}}
tiers: [vip, regular]
defaults:
  safety_buffer: 1
  backorders: {{enabled: true, incoming_share: 0.5, horizon_days: 30}}
channel_rules:
  popup: {{priority: 1}}
  phone: {{priority: 2, cap: 4}}
sku_rules:
  - {{match: "TEE-*", channels: [phone], safety_buffer: 3}}
  - {{match: "TEE-[AB]*", backorders: {{enabled: false}}}}
  - {{match: "MUG-?", safety_buffer: 0}}
"""
NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)


@pytest.fixture
def ctx(tmp_path: Path, fresh_sqlite: Callable[[Path], str]) -> Iterator[AppContext]:
    url = fresh_sqlite(tmp_path)
    upgrade(url)
    opened = AppContext.open(parse_config(CONFIG.format(url=url), "stocksync.yaml", env={}))
    yield opened
    opened.close()


def seed(ctx: AppContext) -> None:
    """SKUs that share figures but not rules (and the reverse), POs, waiting backorders."""
    codes = ["TEE-A1", "TEE-B1", "TEE-C1", "TEE-C2", "MUG-1", "MUG-22", "CAP", "tee-a1"]
    with ctx.ledger(actor="test", now=NOW) as tx:
        counts.import_counts(tx, dict.fromkeys(codes, 5) | {"CAP": 0, "MUG-22": 2})
        purchasing.add_po(tx, "PO1", date(2026, 12, 5), {"CAP": 10, "TEE-C1": 8, "MUG-1": 4})
    placed = NOW
    waiting = [("P1", "CAP", 2), ("P2", "CAP", 1), ("P3", "TEE-C1", 7), ("P4", "CAP", 1)]
    for ref, sku, qty in waiting:
        placed += timedelta(minutes=1)
        with ctx.ledger(actor="test", now=placed) as tx:
            orders.record_order(
                tx, OrderInput("popup", ref, placed, placed, "open", (LineInput("1", sku, qty),))
            )


def test_status_rows_are_the_offers_of_each_sku(ctx: AppContext) -> None:
    seed(ctx)
    today = NOW.date()
    with ctx.read() as session:
        rows = offers.status_rows(session, ctx.config, ctx.channel_names, today)
        ids = {
            str(code): int(sku_id)
            for sku_id, code in session.execute(select(m.Sku.id, m.Sku.code)).all()
        }
        found = offers.figures(session, ids.values())
    assert [row["sku"] for row in rows] == sorted(ids)
    for row in rows:
        fig = found[ids[row["sku"]]]
        expected = {
            channel: fig.offer(ctx.config.rule_for(channel, row["sku"]), today).offered
            for channel in ctx.channel_names
        }
        assert row["offered"] == expected, row["sku"]
        assert (row["on_hand"], row["reserved"], row["backordered"]) == (
            fig.on_hand,
            fig.reserved,
            fig.backordered,
        )
    by_sku = {row["sku"]: row for row in rows}
    assert by_sku["TEE-C1"]["offered"] != by_sku["tee-a1"]["offered"]  # globs are case-sensitive
    assert by_sku["CAP"]["backordered"] == 4


def test_status_filters_by_glob_and_limit(ctx: AppContext) -> None:
    seed(ctx)
    revision = queries.revision(ctx)

    def skus(**options: object) -> list[str]:
        with ctx.read() as session:
            data = queries.status(ctx, session, revision, NOW.date(), **options)  # type: ignore[arg-type]
        assert data["backorders_open"] == 4  # the counts stay the whole ledger's
        return [row["sku"] for row in data["skus"]]

    assert skus(sku_glob="TEE-*") == ["TEE-A1", "TEE-B1", "TEE-C1", "TEE-C2"]
    assert skus(sku_glob="tee-*") == ["tee-a1"]
    assert skus(sku_glob="MUG-?") == ["MUG-1"]
    assert skus(sku_glob="*1") == ["MUG-1", "TEE-A1", "TEE-B1", "TEE-C1", "tee-a1"]
    assert skus(sku_glob="T%E*") == []  # SQL wildcards are plain characters
    assert skus(limit=2) == ["CAP", "MUG-1"]
    assert skus(sku_glob="TEE-*", limit=1) == ["TEE-A1"]
    assert skus(limit=0) == []


def test_status_rows_json_is_json_dumps(ctx: AppContext) -> None:
    seed(ctx)
    with ctx.read() as session:
        rows = offers.status_rows(session, ctx.config, ctx.channel_names, NOW.date())
    odd = {"sku": 'é"\\', "on_hand": 1, "reserved": 0, "backordered": 0, "incoming": 0}
    rows += [odd | {"oversold": 0, "offered": {"b": 1, "a": 2}}, {"sku": "x", "more": [1]}]
    rows.append({**odd, "oversold": None, "offered": {}})
    assert status_rows_json(rows) == json.dumps(rows, sort_keys=True)


def test_backorder_pages_hold_whole_skus_and_join_up(ctx: AppContext) -> None:
    seed(ctx)
    with ctx.ledger(actor="test", now=NOW + timedelta(hours=1)) as tx:
        for ref, sku in [("Q1", "MUG-22"), ("Q2", "MUG-22"), ("Q3", "MUG-1")]:
            orders.record_order(
                tx, OrderInput("phone", ref, tx.now, tx.now, "open", (LineInput("1", sku, 9),))
            )
    with ctx.read() as session:
        everything, last = queries.backorders(session, ctx.config, None, False)
        assert last is None
        pages = []
        after = None
        while True:
            rows, after = queries.backorders(
                session, ctx.config, None, False, limit=1, after_sku=after
            )
            pages.append(rows)
            if after is None:
                break
    assert [row for page in pages for row in page] == everything
    skus = [sorted({row["sku"] for row in page}) for page in pages]
    assert skus == [["CAP"], ["MUG-1"], ["MUG-22"], ["TEE-C1"]]
    assert [len(page) for page in pages] == [3, 2, 2, 1]  # a SKU is never split (MUG-1: 2 rows)
    assert [row["rank"] for row in pages[0]] == [1, 2, 3]


def test_revision_check_without_alembic(ctx: AppContext) -> None:
    assert code_revision() == head_revision()
    assert database_revision(ctx.engine) == current_revision(ctx.engine)
