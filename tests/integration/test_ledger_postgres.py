"""The ledger on real PostgreSQL: row locks under a race, and the invariants machine."""

from __future__ import annotations

import multiprocessing
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, settings
from sqlalchemy import func, select

from stock import models as m
from stock.counts import set_stock
from stock.db import make_engine, session_factory, upgrade
from sync.context import AppContext
from tests.conftest import PG_ADMIN_URL
from tests.ledger_machine import LedgerMachine, load_rules

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

RACERS = 8


def _race_one(url: str, index: int, barrier: multiprocessing.synchronize.Barrier) -> None:
    from backorders.orders import LineInput, OrderInput, record_order

    engine = make_engine(url)
    ctx = AppContext(load_rules(), engine, session_factory(engine))
    now = datetime.now(UTC)
    barrier.wait(timeout=30)
    with ctx.ledger(actor=f"racer-{index}", now=now) as tx:
        record_order(
            tx, OrderInput("popup", f"R{index}", now, now, "open", (LineInput("1", "C", 1),))
        )
    ctx.close()


def test_eight_processes_race_for_the_last_three_units(pg_url: str) -> None:
    upgrade(pg_url)
    engine = make_engine(pg_url)
    ctx = AppContext(load_rules(), engine, session_factory(engine))
    with ctx.ledger() as tx:
        set_stock(tx, "C", 3)  # SKU C has backorders disabled: the rest must be flagged
    spawn = multiprocessing.get_context("spawn")
    barrier = spawn.Barrier(RACERS)
    racers = [spawn.Process(target=_race_one, args=(pg_url, i, barrier)) for i in range(RACERS)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(timeout=60)
    assert [racer.exitcode for racer in racers] == [0] * RACERS
    with ctx.sessions() as session:
        reserved = session.scalar(select(func.sum(m.Reservation.qty)))
        backordered = session.scalar(select(func.sum(m.Backorder.qty_open)))
        beyond = session.scalar(
            select(func.count()).where(m.Backorder.accepted_within_capacity.is_(False))
        )
        orders = session.scalar(select(func.count()).select_from(m.ChannelOrder))
        on_hand = session.scalar(select(m.StockLevel.on_hand))
    ctx.close()
    assert (orders, reserved, backordered, beyond, on_hand) == (8, 3, 5, 5, 3)


def _fresh_pg_database(_folder: Path) -> str:
    name = f"stocksync_m_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    url = f"{url}/{name}"
    upgrade(url)
    _CREATED.append(name)
    return url


_CREATED: list[str] = []


class PostgresLedgerMachine(LedgerMachine):
    make_url = staticmethod(_fresh_pg_database)

    def teardown(self) -> None:
        try:
            super().teardown()
        finally:
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
                while _CREATED:
                    conn.execute(f'DROP DATABASE IF EXISTS "{_CREATED.pop()}" WITH (FORCE)')


PostgresLedgerMachine.TestCase.settings = settings(
    max_examples=8,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestPostgresLedger = PostgresLedgerMachine.TestCase


def _record_same_order(url: str, index: int, barrier: multiprocessing.synchronize.Barrier) -> None:
    from datetime import timedelta

    from backorders.orders import LineInput, OrderInput, record_order

    engine = make_engine(url)
    ctx = AppContext(load_rules(), engine, session_factory(engine))
    placed = datetime(2026, 11, 23, 10, tzinfo=UTC)
    barrier.wait(timeout=30)
    # a webhook and polls deliver versions of one new order at the same moment
    with ctx.ledger(actor=f"writer-{index}") as tx:
        record_order(
            tx,
            OrderInput(
                "popup", "SAME", placed, placed + timedelta(seconds=index % 2), "open",
                (LineInput("1", "A", 2),),
            )
        )  # fmt: skip
    ctx.close()


def test_concurrent_versions_of_one_new_order_make_one_order(pg_url: str) -> None:
    upgrade(pg_url)
    engine = make_engine(pg_url)
    ctx = AppContext(load_rules(), engine, session_factory(engine))
    with ctx.ledger() as tx:
        set_stock(tx, "A", 5)
    spawn = multiprocessing.get_context("spawn")
    barrier = spawn.Barrier(4)
    writers = [
        spawn.Process(target=_record_same_order, args=(pg_url, i, barrier)) for i in range(4)
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=60)
    assert [w.exitcode for w in writers] == [0] * 4
    with ctx.sessions() as session:
        orders = session.scalar(select(func.count()).select_from(m.ChannelOrder))
        lines = session.scalar(select(func.count()).select_from(m.OrderLine))
        reserved = session.scalar(select(func.sum(m.Reservation.qty)))
    ctx.close()
    assert (orders, lines, reserved) == (1, 1, 2)
