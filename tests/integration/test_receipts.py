"""A purchase-order receipt books the units and releases the waiting backorders in one
transaction: an order that arrives right after the receipt was answered cannot take the units
those backorders were promised (before, the release ran in a later job)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from backorders import orders
from backorders.orders import LineInput, OrderInput
from rules import parse_config
from stock import purchasing
from sync import queries
from sync.jobs import receipts
from sync.runtime import Runtime
from tests.support.ledger import config_head

CONFIG = (
    config_head("popup", "phone")
    + """\
defaults:
  safety_buffer: 2
  backorders: {{enabled: true, incoming_share: 0.75, horizon_days: 30}}
"""
)


@pytest.fixture
def runtime(tmp_path: Path, fresh_sqlite: Callable[[Path], str]) -> Iterator[Runtime]:
    config = parse_config(CONFIG.format(url=fresh_sqlite(tmp_path)), "stocksync.yaml", env={})
    built = Runtime.build(config)
    yield built
    built.close()


def order(runtime: Runtime, channel: str, ref: str, qty: int) -> None:
    now = datetime.now(UTC)
    with runtime.ctx.ledger(actor="test") as tx:
        orders.record_order(
            tx, OrderInput(channel, ref, now, now, "open", (LineInput("1", "A", qty),))
        )


def reserved(runtime: Runtime, channel: str, ref: str) -> int:
    with runtime.ctx.read() as session:
        return int(queries.order_detail(session, channel, ref)["lines"][0]["reserved"])


def test_an_order_after_a_receipt_cannot_take_units_promised_to_backorders(
    runtime: Runtime,
) -> None:
    with runtime.ctx.ledger(actor="test") as tx:
        purchasing.add_po(tx, "PO1", date(2026, 12, 1), {"A": 10})
    order(runtime, "phone", "B1", 7)  # waits for PO1
    released, followups = receipts.receive_purchase_order(runtime, "PO1", {"A": 10})
    assert [(r.order_external_id, r.qty) for r in released] == [("B1", 7)]
    assert not followups.releases  # nothing left for a later job
    # the receipt has been answered; no job has run yet: a new order sees 3 free units only
    order(runtime, "popup", "N1", 8)
    assert reserved(runtime, "phone", "B1") == 7
    assert reserved(runtime, "popup", "N1") == 3
