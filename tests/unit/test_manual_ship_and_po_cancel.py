"""Manual channels and POs, in the ledger: shipping a manual order's reserved units, cancelling
a purchase order (and which backorders are then at risk), refusing receipts beyond what was
ordered. On a real SQLite file, one operation per transaction, as test_ledger_rules does."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from backorders import orders, settle
from backorders.orders import LineInput, NotShippable, OrderInput
from rules import parse_config
from stock import commitments, counts, offers, purchasing
from stock import models as m
from stock.db import make_engine, session_factory
from stock.tx import LedgerInputError, LedgerTx
from sync import queries
from sync.context import AppContext
from sync.metrics import Metrics, refresh_gauges

T0 = datetime(2026, 11, 23, 9, tzinfo=UTC)
ETA = date(2026, 12, 1)
CONFIG = """\
database: sqlite:///unused.db
channels:
  popup: {kind: manual}
  phone: {kind: manual}
tiers: [vip, regular]
defaults:
  safety_buffer: 0
  backorders: {enabled: true, incoming_share: 1.0, horizon_days: 30}
channel_rules:
  popup: {priority: 1}
  phone: {priority: 2}
"""


class Ledger:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.now = T0

    def tx(self) -> AbstractContextManager[LedgerTx]:
        self.now += timedelta(minutes=1)
        return self.ctx.ledger(actor="test", now=self.now)

    def stock(self, sku: str, qty: int) -> None:
        with self.tx() as tx:
            counts.set_stock(tx, sku, qty)

    def po(self, ref: str, **lines: int) -> None:
        with self.tx() as tx:
            purchasing.add_po(tx, ref, ETA, lines)

    def order(self, channel: str, ref: str, *lines: tuple[str, int]) -> None:
        self.now += timedelta(minutes=1)
        order = OrderInput(
            channel=channel,
            external_id=ref,
            placed_at=self.now,
            updated_at=self.now,
            status="open",
            lines=tuple(LineInput(str(i), sku, qty) for i, (sku, qty) in enumerate(lines, 1)),
        )
        with self.tx() as tx:
            orders.record_order(tx, order)

    def detail(self, channel: str, ref: str) -> dict[str, Any]:
        with self.ctx.read() as session:
            return queries.order_detail(session, channel, ref)

    def lines(self, channel: str, ref: str) -> list[tuple[str, int, int, int, int]]:
        """(sku, reserved, backordered, shipped, cancelled) per line."""
        return [
            (x["sku"], x["reserved"], x["backordered"], x["shipped"], x["cancelled"])
            for x in self.detail(channel, ref)["lines"]
        ]

    def level(self, sku: str) -> tuple[int, int, int, int]:
        """(on_hand, oversold, reserved counter, backordered counter) of a SKU."""
        with self.ctx.read() as session:
            row = session.execute(
                select(
                    m.StockLevel.on_hand,
                    m.StockLevel.oversold,
                    m.StockLevel.reserved,
                    m.StockLevel.backordered,
                )
                .join(m.Sku, m.Sku.id == m.StockLevel.sku_id)
                .where(m.Sku.code == sku)
            ).one()
        return (int(row[0]), int(row[1]), int(row[2]), int(row[3]))

    def drift(self) -> dict[int, tuple[int, int, int, int]]:
        with self.ctx.read() as session:
            return commitments.counter_drift(session)

    def audit(self, action: str) -> list[tuple[str, dict[str, Any]]]:
        with self.ctx.read() as session:
            rows = session.execute(
                select(m.AuditEntry.subject, m.AuditEntry.detail)
                .where(m.AuditEntry.action == action)
                .order_by(m.AuditEntry.id)
            ).all()
        return [(str(subject), dict(detail)) for subject, detail in rows]

    def po_state(self, ref: str) -> tuple[str, list[tuple[str, int, int, int]]]:
        with self.ctx.read() as session:
            data = queries.po_detail(session, ref)
        return data["status"], [
            (x["sku"], x["ordered"], x["received"], x["open"]) for x in data["lines"]
        ]

    def backorders(self, sku: str | None = None) -> list[dict[str, Any]]:
        with self.ctx.read() as session:
            return queries.backorders(session, self.ctx.config, sku, False)[0]

    def offered(self, channel: str, sku: str) -> int:
        with self.ctx.ledger(now=self.now) as tx:
            return offers.offer(tx, channel, sku)[0]


@pytest.fixture
def ledger(tmp_path: Path, fresh_sqlite: Callable[[Path], str]) -> Iterator[Ledger]:
    engine = make_engine(fresh_sqlite(tmp_path))
    ctx = AppContext(parse_config(CONFIG, "rules.yaml", env={}), engine, session_factory(engine))
    yield Ledger(ctx)
    ctx.close()


# ---------------------------------------------------------------------------- order ship
def test_shipping_moves_reserved_units_to_shipped_and_off_on_hand(ledger: Ledger) -> None:
    ledger.stock("A", 5)
    ledger.stock("B", 1)
    ledger.po("PO1", B=10)
    ledger.order("popup", "P1", ("A", 3), ("B", 3))  # A: 3 reserved; B: 1 reserved, 2 waiting
    with ledger.tx() as tx:
        shipped = orders.ship_order(tx, "popup", "P1", {"A": 2})
    assert shipped == {"1": 2}
    assert ledger.lines("popup", "P1") == [("A", 1, 0, 2, 0), ("B", 1, 2, 0, 0)]
    assert ledger.level("A") == (3, 0, 1, 0)  # on hand 5 - 2, one unit still reserved
    assert ledger.detail("popup", "P1")["status"] == "open"
    assert ledger.drift() == {}
    assert ledger.audit("order.ship") == [("popup/P1", {"shipped": {"A": 2}, "status": "open"})]


def test_shipping_everything_reserved_by_default_and_fulfilling_the_order(ledger: Ledger) -> None:
    ledger.stock("A", 5)
    ledger.stock("B", 1)
    ledger.po("PO1", B=10)
    ledger.order("popup", "P1", ("A", 3), ("B", 3))
    with ledger.tx() as tx:
        assert orders.ship_order(tx, "popup", "P1") == {"1": 3, "2": 1}
    assert ledger.lines("popup", "P1") == [("A", 0, 0, 3, 0), ("B", 0, 2, 1, 0)]
    assert ledger.detail("popup", "P1")["status"] == "open"  # B's backorder still waits
    assert (ledger.level("A"), ledger.level("B")) == ((2, 0, 0, 0), (0, 0, 0, 2))
    # the PO arrives: the backorder is released, then shipped; the order is fulfilled
    with ledger.tx() as tx:
        purchasing.receive_po(tx, "PO1", {"B": 2})
    with ledger.tx() as tx:
        assert orders.ship_order(tx, "popup", "P1") == {"2": 2}
    assert ledger.detail("popup", "P1")["status"] == "fulfilled"
    assert ledger.level("B") == (0, 0, 0, 0)
    assert ledger.drift() == {}
    match = "order is fulfilled; nothing to ship"
    with pytest.raises(LedgerInputError, match=match), ledger.tx() as tx:
        orders.ship_order(tx, "popup", "P1")
    match = "order is fulfilled: its units were shipped"
    with pytest.raises(LedgerInputError, match=match), ledger.tx() as tx:
        orders.cancel_order(tx, "popup", "P1")


def test_a_shelf_count_after_shipping_books_no_phantom_oversell(ledger: Ledger) -> None:
    ledger.stock("A", 10)
    ledger.order("popup", "DAY", ("A", 4))  # the pop-up day sold 4, handed over at the stall
    with ledger.tx() as tx:
        orders.ship_order(tx, "popup", "DAY")
    with ledger.tx() as tx:
        counts.set_stock(tx, "A", 6)  # the shelf count that evening
    assert tx.effects.oversold == {}
    assert ledger.level("A") == (6, 0, 0, 0)
    assert ledger.lines("popup", "DAY") == [("A", 0, 0, 4, 0)]
    assert ledger.audit("stock.oversell") == []


def test_a_ship_request_is_refused_as_a_whole_with_every_problem(ledger: Ledger) -> None:
    ledger.stock("A", 2)
    ledger.po("PO1", A=10)
    ledger.order("popup", "P1", ("A", 5), ("B", 1))  # A: 2 reserved, 3 backordered
    before = (ledger.lines("popup", "P1"), ledger.level("A"), ledger.level("B"))
    with pytest.raises(NotShippable) as refused, ledger.tx() as tx:
        orders.ship_order(tx, "popup", "P1", {"B": 0, "A": 3, "C": 1})
    assert refused.value.message == (
        "B: quantity must be positive, got 0; A: cannot ship 3, only 2 reserved "
        "(3 backordered); C is not on this order; nothing shipped"
    )
    assert [(i.sku, i.requested, i.reserved, i.backordered) for i in refused.value.items] == [
        ("A", 3, 2, 3),
        ("C", 1, 0, 0),
    ]
    assert (ledger.lines("popup", "P1"), ledger.level("A"), ledger.level("B")) == before
    assert ledger.audit("order.ship") == []
    with pytest.raises(LedgerInputError, match="popup/NOPE: no such order"), ledger.tx() as tx:
        orders.ship_order(tx, "popup", "NOPE")
    with pytest.raises(LedgerInputError, match="unknown channel 'market'"), ledger.tx() as tx:
        orders.ship_order(tx, "market", "P1")


def test_nothing_reserved_to_ship_says_what_waits(ledger: Ledger) -> None:
    ledger.po("PO1", A=10)
    ledger.order("phone", "T1", ("A", 2))
    match = r"nothing is reserved to ship \(2 units backo"
    with pytest.raises(LedgerInputError, match=match), ledger.tx() as tx:
        orders.ship_order(tx, "phone", "T1")


def test_orders_of_pushed_channels_are_not_shipped_here(ledger: Ledger) -> None:
    ledger.stock("A", 2)
    ledger.order("popup", "P1", ("A", 1))
    session = ledger.ctx.sessions()
    try:
        tx = LedgerTx(
            session, ledger.ctx.config, ["popup", "phone"], now=T0, listed_channels=["popup"]
        )
        with pytest.raises(LedgerInputError, match="shipped by the channel"):
            orders.ship_order(tx, "popup", "P1")
    finally:
        session.rollback()
        session.close()


# ---------------------------------------------------------------------------- po cancel
def test_cancelling_a_po_stops_its_open_lines_counting_as_incoming(ledger: Ledger) -> None:
    ledger.po("PO1", A=6, B=4)
    with ledger.tx() as tx:
        purchasing.receive_po(tx, "PO1", {"A": 2})
    assert ledger.offered("popup", "A") == 2 + 4  # 2 on hand + 4 incoming
    with ledger.tx() as tx:
        assert purchasing.cancel_po(tx, "PO1") == {"A": 4, "B": 4}
    assert ledger.offered("popup", "A") == 2  # the received units stay
    assert ledger.offered("popup", "B") == 0
    assert ledger.po_state("PO1") == ("cancelled", [("A", 6, 2, 0), ("B", 4, 0, 0)])
    with ledger.ctx.ledger(now=ledger.now) as tx:
        explained = offers.explain(tx, "A")
    assert explained["incoming"] == []
    assert explained["channels"][0]["terms"]["incoming_open"] == 0
    assert ledger.audit("po.cancel") == [
        ("PO1", {"cancelled": {"A": 4, "B": 4}, "received": {"A": 2, "B": 0}})
    ]
    with ledger.ctx.read() as session:
        assert queries.po_list(session, include_closed=False) == []


def test_a_cancelled_po_cannot_be_cancelled_again_received_or_edited(ledger: Ledger) -> None:
    ledger.po("PO1", A=6)
    with ledger.tx() as tx:
        purchasing.cancel_po(tx, "PO1")
    refusals: dict[str, Callable[[LedgerTx], object]] = {
        "already cancelled": lambda tx: purchasing.cancel_po(tx, "PO1"),
        "a cancelled PO cannot be received": lambda tx: purchasing.receive_po(tx, "PO1", {"A": 1}),
        "cannot be edited": lambda tx: purchasing.add_po(tx, "PO1", ETA, {"A": 9}),
        "PO9: no such purchase order": lambda tx: purchasing.cancel_po(tx, "PO9"),
    }
    for message, attempt in refusals.items():
        with pytest.raises(LedgerInputError, match=message), ledger.tx() as tx:
            attempt(tx)
    assert ledger.po_state("PO1") == ("cancelled", [("A", 6, 0, 0)])
    assert ledger.level("A")[0] == 0


def test_a_fully_received_po_has_nothing_to_cancel(ledger: Ledger) -> None:
    ledger.po("PO1", A=2)
    with ledger.tx() as tx:
        purchasing.receive_po(tx, "PO1", {"A": 2})
    match = "fully received; nothing is left to cancel"
    with pytest.raises(LedgerInputError, match=match), ledger.tx() as tx:
        purchasing.cancel_po(tx, "PO1")
    assert ledger.po_state("PO1")[0] == "received"


def test_backorders_the_cancelled_incoming_covered_are_at_risk_in_release_order(
    ledger: Ledger,
) -> None:
    ledger.po("PO1", A=5)
    ledger.po("PO2", A=3)
    ledger.order("phone", "T1", ("A", 2))  # priority 2
    ledger.order("popup", "P1", ("A", 3))  # priority 1: released first
    ledger.order("popup", "P2", ("A", 2))
    assert not any(row["at_risk"] for row in ledger.backorders())
    with ledger.tx() as tx:
        cancelled = purchasing.cancel_po(tx, "PO1")
        at_risk = settle.flag_at_risk(tx, "po.cancel PO1", cancelled)
    # PO2's 3 units still come: P1 (rank 1) is covered; P2 and T1 are not
    assert [(r["order"], r["rank"], r["qty_open"], r["at_risk_units"]) for r in at_risk] == [
        ("P2", 2, 2, 2),
        ("T1", 3, 2, 2),
    ]
    listed = ledger.backorders("A")
    assert [(r["order"], r["at_risk"], r["at_risk_units"]) for r in listed] == [
        ("P1", False, 0),
        ("P2", True, 2),
        ("T1", True, 2),
    ]
    assert ledger.audit("backorder.at_risk") == [
        (
            "A",
            {
                "cause": "po.cancel PO1",
                "units": 4,
                "backorders": [
                    {"order": "popup/P2", "line": "1", "units": 2},
                    {"order": "phone/T1", "line": "1", "units": 2},
                ],
            },
        )
    ]
    metrics = Metrics()
    with ledger.ctx.read() as session:
        refresh_gauges(metrics, session, [])
    assert metrics.backorders_at_risk._value.get() == 4
    # a new PO covers them again: nothing to clear, the risk is read from the ledger
    ledger.po("PO3", A=10)
    assert not any(row["at_risk"] for row in ledger.backorders())
    with ledger.ctx.read() as session:
        refresh_gauges(metrics, session, [])
    assert metrics.backorders_at_risk._value.get() == 0


def test_a_backorder_partly_covered_has_only_its_uncovered_units_at_risk(ledger: Ledger) -> None:
    ledger.stock("A", 1)
    ledger.po("PO1", A=4)
    ledger.po("PO2", A=2)
    ledger.order("popup", "P1", ("A", 7))  # 1 reserved, 6 backordered
    with ledger.tx() as tx:
        at_risk = settle.flag_at_risk(tx, "po.cancel PO1", purchasing.cancel_po(tx, "PO1"))
    assert [(r["order"], r["qty_open"], r["at_risk_units"]) for r in at_risk] == [("P1", 6, 4)]
    with ledger.ctx.read() as session:
        assert commitments.cover(session) == {"A": commitments.Cover(6, 2, 0)}


def test_no_backorder_at_risk_when_the_remaining_pos_cover_them(ledger: Ledger) -> None:
    ledger.po("PO1", A=5)
    ledger.po("PO2", A=5)
    ledger.order("popup", "P1", ("A", 4))
    with ledger.tx() as tx:
        assert settle.flag_at_risk(tx, "po.cancel PO1", purchasing.cancel_po(tx, "PO1")) == []
    assert ledger.audit("backorder.at_risk") == []


def test_mark_at_risk_walks_each_sku_in_the_listed_order() -> None:
    rows: list[dict[str, Any]] = [
        {"sku": "A", "qty_open": 2},
        {"sku": "A", "qty_open": 0},  # released: never at risk
        {"sku": "A", "qty_open": 3},
        {"sku": "B", "qty_open": 1},
        {"sku": "C", "qty_open": 1},
    ]
    settle.mark_at_risk(rows, {"A": 3, "B": 1})
    assert [(r["at_risk"], r["at_risk_units"]) for r in rows] == [
        (False, 0), (False, 0), (True, 2), (False, 0), (True, 1),
    ]  # fmt: skip


# ---------------------------------------------------------------------------- over-receipts
def test_a_receipt_beyond_what_was_ordered_is_refused_and_books_nothing(ledger: Ledger) -> None:
    ledger.po("PO1", A=10, B=5)
    with ledger.tx() as tx:
        assert purchasing.receive_po(tx, "PO1", {"A": 8}) == {}
    with pytest.raises(purchasing.OverReceipt) as refused, ledger.tx() as tx:
        purchasing.receive_po(tx, "PO1", {"A": 3, "B": 6})
    assert refused.value.message == (
        "more than ordered (A: 10 ordered, 8 received before, receiving 3 would be 1 over; "
        "B: 5 ordered, 0 received before, receiving 6 would be 1 over); nothing booked"
    )
    assert [(i.sku, i.over) for i in refused.value.items] == [("A", 1), ("B", 1)]
    assert ledger.po_state("PO1") == ("open", [("A", 10, 8, 2), ("B", 5, 0, 5)])
    assert (ledger.level("A")[0], ledger.level("B")[0]) == (8, 0)


def test_an_allowed_over_receipt_is_booked_and_audited(ledger: Ledger) -> None:
    ledger.po("PO1", A=10)
    with ledger.tx() as tx:
        purchasing.receive_po(tx, "PO1", {"A": 8})
    with ledger.tx() as tx:
        assert purchasing.receive_po(tx, "PO1", {"A": 3}, allow_over=True) == {"A": 1}
    assert ledger.po_state("PO1") == ("received", [("A", 10, 11, 0)])
    assert ledger.level("A")[0] == 11
    assert ledger.audit("po.receive")[-1] == (
        "PO1",
        {"received": {"A": 3}, "status": "received", "over_received": {"A": 1}},
    )
    # a received PO takes more only as an over-receipt too
    with pytest.raises(purchasing.OverReceipt), ledger.tx() as tx:
        purchasing.receive_po(tx, "PO1", {"A": 1})
    with ledger.tx() as tx:
        assert purchasing.receive_po(tx, "PO1", {"A": 2}, allow_over=True) == {"A": 2}
