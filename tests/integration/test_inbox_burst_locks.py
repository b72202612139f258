"""A burst of webhooks applied by several workers at once, on real PostgreSQL: no deadlock
(issue #13).

Applying a batch of inbox events once locked stock rows event by event, in each order's line
order: a 500-webhook burst hit 85 deadlocks (all retried, nothing lost, 73 s to apply). A batch
now locks all its SKUs once, in sku-id order, before it reads or writes anything
(backorders/orders.py `prepare`), and listings are bumped in the same order. Here four workers,
each a runtime of its own (its own connections and batch memory, as worker processes have),
apply 500 stored events of two or three lines over 12 SKUs in random line order, every worker
asking for the events in its own shuffled order.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from connectors.base import ChannelOrder, OrderLine, OrderStatus
from rules import parse_config
from stock import models as m
from stock.counts import set_stock
from stock.db import upgrade
from sync.jobs import inbox
from sync.runtime import Runtime

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
SKUS = [f"B-{i:02d}" for i in range(12)]
EVENTS = 500
WORKERS = 4
ON_HAND = 200  # more than the burst sells of any SKU: every unit is reserved


@dataclass
class LinesShop:
    """Orders as `{"id", "lines": [[sku, qty], ...]}`."""

    name: str = "shop"

    def parse_order(self, topic: str, body: bytes) -> ChannelOrder:
        data = json.loads(body)
        lines = tuple(OrderLine(str(i), sku, qty) for i, (sku, qty) in enumerate(data["lines"]))
        return ChannelOrder(self.name, data["id"], T0, T0, OrderStatus.OPEN, lines)

    def needs_fetch(self, topic: str, body: bytes) -> bool:
        return False

    def close(self) -> None:
        pass


def worker_runtime(url: str) -> Runtime:
    config = parse_config(
        f"database: {url}\nchannels:\n  shop: {{kind: manual}}\n", "stocksync.yaml", {}
    )
    runtime = Runtime.build(config)
    runtime.channels["shop"] = LinesShop()  # type: ignore[assignment]  # a partial connector
    return runtime


@pytest.fixture
def workers(pg_url: str) -> Iterator[list[Runtime]]:
    upgrade(pg_url)
    runtimes = [worker_runtime(pg_url) for _ in range(WORKERS)]
    with runtimes[0].ctx.ledger(actor="test") as tx:
        for sku in SKUS:
            set_stock(tx, sku, ON_HAND)
    yield runtimes
    for runtime in runtimes:
        runtime.close()


def test_four_workers_apply_a_500_event_burst_without_a_deadlock(workers: list[Runtime]) -> None:
    rng = random.Random(20261130)
    ids = []
    units = 0
    for n in range(EVENTS):
        lines = [[sku, 1] for sku in rng.sample(SKUS, rng.choice((2, 3)))]  # random line order
        units += len(lines)
        body = json.dumps({"id": f"O{n}", "lines": lines}).encode()
        event_id = inbox.store_event(workers[0], "shop", f"evt-{n}", "orders/create", body)
        assert event_id is not None
        ids.append(event_id)

    deadlocks: list[str] = []
    other_errors: list[BaseException] = []

    def work(runtime: Runtime, seed: int) -> None:
        todo = ids[:]
        random.Random(seed).shuffle(todo)
        while todo:
            event_id = todo.pop()
            try:
                asked = inbox.process_event(runtime, event_id)
            except Exception as exc:  # the actor would retry: count what it was
                if "deadlock detected" in str(exc):
                    deadlocks.append(str(exc).splitlines()[0])
                else:
                    other_errors.append(exc)
                todo.insert(0, event_id)
                continue
            todo[:0] = asked.held_events  # held by another worker's batch: ask again later

    threads = [threading.Thread(target=work, args=(rt, i)) for i, rt in enumerate(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads)
    assert not other_errors, other_errors[:3]
    assert deadlocks == []

    with workers[0].ctx.read() as session:
        applied = session.scalar(
            select(func.count())
            .select_from(m.InboxEvent)
            .where(m.InboxEvent.processed_at.is_not(None), m.InboxEvent.error.is_(None))
        )
        reserved = session.scalar(select(func.coalesce(func.sum(m.Reservation.qty), 0)))
    assert applied == EVENTS
    assert reserved == units  # each unit reserved once
