"""The per-SKU counters on the stock row (reserved, backordered) equal the rows they summarise,
also after a process dies in the middle of a transaction that had already written some of them.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from backorders import orders
from backorders.orders import LineInput, OrderInput
from stock import commitments, counts, purchasing
from stock import models as m
from stock.db import make_engine, session_factory, upgrade
from sync.context import AppContext
from tests.ledger_machine import load_rules


def _open(url: str) -> AppContext:
    engine = make_engine(url)
    return AppContext(load_rules(), engine, session_factory(engine))


def _die_mid_transaction(url: str) -> None:
    """Record orders, flush (the database holds the new rows and counters, uncommitted),
    then die without committing or rolling back."""
    ctx = _open(url)
    now = datetime.now(UTC)
    with ctx.ledger(actor="doomed", now=now) as tx:
        for i in range(5):
            orders.record_order(
                tx,
                OrderInput(
                    "popup", f"D{i}", now, now, "open",
                    (LineInput("1", "A", 3), LineInput("2", "B", 2)),
                ),
            )  # fmt: skip
        tx.session.flush()
        os._exit(3)


def _seed(ctx: AppContext) -> None:
    now = datetime.now(UTC)
    with ctx.ledger(actor="test", now=now) as tx:
        counts.set_stock(tx, "A", 4)
        purchasing.add_po(tx, "PO1", now.date() + timedelta(days=3), {"A": 10, "B": 10})
        orders.record_order(
            tx, OrderInput("phone", "KEEP", now, now, "open", (LineInput("1", "A", 6),))
        )


def _check_after_crash(url: str) -> None:
    upgrade(url)
    ctx = _open(url)
    _seed(ctx)
    child = multiprocessing.get_context("spawn").Process(target=_die_mid_transaction, args=(url,))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 3
    with ctx.sessions() as session:
        assert commitments.counter_drift(session) == {}
        assert session.scalar(select(func.count()).select_from(m.ChannelOrder)) == 1
        level = session.get(m.StockLevel, session.scalar(select(m.Sku.id).where(m.Sku.code == "A")))
        assert level is not None and (level.reserved, level.backordered) == (4, 2)
    ctx.close()


def test_counters_equal_rows_after_a_crash_mid_transaction_on_sqlite(
    tmp_path: Path, fresh_sqlite: Callable[[Path], str]
) -> None:
    _check_after_crash(fresh_sqlite(tmp_path))


@pytest.mark.postgres
def test_counters_equal_rows_after_a_crash_mid_transaction_on_postgresql(pg_url: str) -> None:
    _check_after_crash(pg_url)


def test_a_drifted_counter_is_reported(tmp_path: Path, fresh_sqlite: Callable[[Path], str]) -> None:
    url = fresh_sqlite(tmp_path)
    ctx = _open(url)
    _seed(ctx)
    with ctx.sessions.begin() as session:
        level = session.get(m.StockLevel, session.scalar(select(m.Sku.id).where(m.Sku.code == "A")))
        assert level is not None
        level.reserved += 1  # what a writer that skipped stock.commitments would leave
    with ctx.sessions() as session:
        drift = commitments.counter_drift(session)
    ctx.close()
    assert list(drift.values()) == [(5, 4, 2, 2)]
