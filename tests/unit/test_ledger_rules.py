"""The ledger's rules, one example each, on a real SQLite file (no database server needed).

Each test names the rule it shows; the hypothesis machine (test_ledger_machine) checks the
invariants over random sequences, these pin the policies a maintainer may change on purpose.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from backorders import orders, releasing
from backorders.orders import LineInput, OrderInput
from rules import parse_config
from stock import counts, models, offers, purchasing
from stock.db import make_engine, session_factory
from stock.tx import LedgerInputError, LedgerTx
from sync import queries
from sync.context import AppContext

T0 = datetime(2026, 11, 23, 9, tzinfo=UTC)
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
sku_rules:
  - {match: "WHOLE-*", release: {partial: false}}
  - {match: "NOBO-*", backorders: {enabled: false}}
"""


class Ledger:
    """A test's view: run one operation per transaction at a given time, read the results."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.now = T0

    def tx(self, minutes: int = 1) -> AbstractContextManager[LedgerTx]:
        self.now += timedelta(minutes=minutes)
        return self.ctx.ledger(actor="test", now=self.now)

    def order(
        self, channel: str, ref: str, *lines: tuple[str, int], status: str = "open",
        tier: str | None = None, placed: datetime | None = None, updated: datetime | None = None,
    ) -> orders.Outcome:  # fmt: skip
        order = OrderInput(
            channel=channel,
            external_id=ref,
            placed_at=placed or self.now,
            updated_at=updated or self.now + timedelta(minutes=1),
            status=status,  # type: ignore[arg-type]
            lines=tuple(LineInput(str(i), sku, qty) for i, (sku, qty) in enumerate(lines, 1)),
            tier=tier,
        )
        with self.tx() as tx:
            return orders.record_order(tx, order)

    def line(self, channel: str, ref: str, line: str = "1") -> tuple[int, int, int, int]:
        """(reserved, backordered, shipped, cancelled) of one order line."""
        with self.ctx.read() as session:
            detail = queries.order_detail(session, channel, ref)
        found = next(x for x in detail["lines"] if x["line"] == line)
        return found["reserved"], found["backordered"], found["shipped"], found["cancelled"]

    def on_hand(self, sku: str) -> tuple[int, int]:
        with self.ctx.ledger(now=self.now) as tx:
            data = offers.explain(tx, sku)
        return data["on_hand"], data["oversold"]

    def offered(self, channel: str, sku: str) -> int:
        with self.ctx.ledger(now=self.now) as tx:
            return offers.offer(tx, channel, sku)[0]


@pytest.fixture
def ledger(tmp_path: Path, fresh_sqlite: Callable[[Path], str]) -> Iterator[Ledger]:
    engine = make_engine(fresh_sqlite(tmp_path))
    ctx = AppContext(parse_config(CONFIG, "rules.yaml", env={}), engine, session_factory(engine))
    yield Ledger(ctx)
    ctx.close()


def stock(ledger: Ledger, **on_hand: int) -> None:
    with ledger.tx() as tx:
        for sku, qty in on_hand.items():
            counts.set_stock(tx, sku.replace("_", "-"), qty)


def po(ledger: Ledger, ref: str, **lines: int) -> None:
    with ledger.tx() as tx:
        purchasing.add_po(
            tx, ref, date(2026, 12, 1), {k.replace("_", "-"): v for k, v in lines.items()}
        )


def test_an_order_reserves_what_stock_covers_and_backorders_the_rest(ledger: Ledger) -> None:
    stock(ledger, A=3)
    po(ledger, "PO1", A=10)
    outcome = ledger.order("popup", "O1", ("A", 5))
    assert (outcome.reserved, outcome.backordered, outcome.beyond_capacity) == (
        {"1": 3}, {"1": 2}, {},
    )  # fmt: skip
    assert ledger.line("popup", "O1") == (3, 2, 0, 0)


def test_demand_beyond_incoming_capacity_is_kept_and_flagged(ledger: Ledger) -> None:
    stock(ledger, NOBO_1=1)  # backorders disabled: no capacity at all
    outcome = ledger.order("popup", "O1", ("NOBO-1", 4))
    assert outcome.reserved == {"1": 1}
    assert outcome.beyond_capacity == {"1": 3}
    assert ledger.line("popup", "O1") == (1, 3, 0, 0)


def test_the_same_order_version_twice_changes_nothing(ledger: Ledger) -> None:
    stock(ledger, A=5)
    updated = ledger.now + timedelta(minutes=5)
    ledger.order("popup", "O1", ("A", 2), updated=updated)
    ledger.order("popup", "O1", ("A", 2), updated=updated)
    assert ledger.line("popup", "O1") == (2, 0, 0, 0)


def test_an_older_version_is_ignored(ledger: Ledger) -> None:
    stock(ledger, A=5)
    ledger.order("popup", "O1", ("A", 2), updated=T0 + timedelta(hours=2))
    stale = ledger.order("popup", "O1", ("A", 4), updated=T0 + timedelta(hours=1))
    assert not stale.applied
    assert ledger.line("popup", "O1") == (2, 0, 0, 0)


def test_a_stale_version_within_the_same_second_cannot_reopen_a_cancelled_order(
    ledger: Ledger,
) -> None:
    stock(ledger, A=5)
    stamp = T0 + timedelta(hours=1)
    ledger.order("popup", "O1", ("A", 2), status="cancelled", updated=stamp)
    late_create = ledger.order("popup", "O1", ("A", 2), updated=stamp)
    assert not late_create.applied
    assert ledger.line("popup", "O1")[:2] == (0, 0)


def test_an_edit_that_lowers_a_line_cancels_backorders_first_then_reservations(
    ledger: Ledger,
) -> None:
    stock(ledger, A=3)
    po(ledger, "PO1", A=10)
    ledger.order("popup", "O1", ("A", 6))  # 3 reserved, 3 backordered
    ledger.order("popup", "O1", ("A", 4))
    assert ledger.line("popup", "O1") == (3, 1, 0, 2)
    ledger.order("popup", "O1", ("A", 1))
    assert ledger.line("popup", "O1") == (1, 0, 0, 5)


def test_cancelling_an_order_frees_units_for_waiting_backorders(ledger: Ledger) -> None:
    stock(ledger, A=2)
    po(ledger, "PO1", A=10)
    ledger.order("popup", "O1", ("A", 2))
    ledger.order("phone", "O2", ("A", 2))  # waits for stock
    with ledger.tx() as tx:
        orders.cancel_order(tx, "popup", "O1")
    assert tx.effects.released and tx.effects.released[0].order_external_id == "O2"
    assert ledger.line("phone", "O2") == (2, 0, 0, 0)


def test_fulfilment_ships_reserved_units_from_on_hand(ledger: Ledger) -> None:
    stock(ledger, A=5)
    ledger.order("popup", "O1", ("A", 2))
    ledger.order("popup", "O1", ("A", 2), status="fulfilled")
    assert ledger.line("popup", "O1") == (0, 0, 2, 0)
    assert ledger.on_hand("A") == (3, 0)


def test_shipping_beyond_on_hand_is_recorded_as_an_oversell(ledger: Ledger) -> None:
    stock(ledger, A=1)
    po(ledger, "PO1", A=10)
    ledger.order("popup", "O1", ("A", 3))  # 1 reserved, 2 backordered
    ledger.order("popup", "O1", ("A", 3), status="fulfilled")  # the shop shipped all 3
    assert ledger.line("popup", "O1") == (0, 0, 3, 0)
    assert ledger.on_hand("A") == (0, 2)


def test_a_stock_count_below_reservations_demotes_the_newest(ledger: Ledger) -> None:
    stock(ledger, A=4)
    ledger.order("popup", "OLD", ("A", 2))
    ledger.order("phone", "NEW", ("A", 2))
    with ledger.tx() as tx:
        counts.set_stock(tx, "A", 3)
    assert tx.effects.oversold == {"A": 1}
    assert ledger.line("popup", "OLD") == (2, 0, 0, 0)
    assert ledger.line("phone", "NEW") == (1, 1, 0, 0)


def test_a_stock_count_above_reservations_releases_waiting_backorders(ledger: Ledger) -> None:
    po(ledger, "PO1", A=10)
    ledger.order("phone", "O1", ("A", 2))
    with ledger.tx() as tx:
        counts.set_stock(tx, "A", 5)
    assert [r.qty for r in tx.effects.released] == [2]
    assert ledger.line("phone", "O1") == (2, 0, 0, 0)


def test_release_ranks_by_priority_then_tier_then_placed_at(ledger: Ledger) -> None:
    po(ledger, "PO1", A=10)
    ledger.order("phone", "P-VIP", ("A", 1), tier="vip")
    ledger.order("popup", "Q-REG", ("A", 1), tier="regular")
    ledger.order("popup", "Q-VIP-LATE", ("A", 1), tier="vip")
    ledger.order("popup", "Q-VIP-EARLY", ("A", 1), tier="vip", placed=T0 - timedelta(days=1))
    with ledger.tx() as tx:
        purchasing.receive_po(tx, "PO1", {"A": 3})
    assert [r.order_external_id for r in tx.effects.released] == [
        "Q-VIP-EARLY", "Q-VIP-LATE", "Q-REG",
    ]  # fmt: skip


def test_partial_false_fills_a_line_whole_or_skips_it_for_a_smaller_one(ledger: Ledger) -> None:
    po(ledger, "PO1", WHOLE_1=10)
    ledger.order("popup", "BIG", ("WHOLE-1", 3))
    ledger.order("phone", "SMALL", ("WHOLE-1", 2))
    with ledger.tx() as tx:
        purchasing.receive_po(tx, "PO1", {"WHOLE-1": 2})
    assert [(r.order_external_id, r.qty, r.complete) for r in tx.effects.released] == [
        ("SMALL", 2, True)
    ]
    assert ledger.line("popup", "BIG") == (0, 3, 0, 0)


def test_a_release_settles_promises_within_capacity_before_flagged_ones(ledger: Ledger) -> None:
    stock(ledger, A=2)
    po(ledger, "PO1", A=1)
    ledger.order("popup", "O1", ("A", 4))  # 2 reserved, 1 within capacity, 1 beyond
    assert backorder_rows(ledger) == [(True, 1), (False, 1)]
    with ledger.tx() as tx:
        purchasing.receive_po(tx, "PO1", {"A": 1})
    assert backorder_rows(ledger) == [(True, 0), (False, 1)]


def backorder_rows(ledger: Ledger) -> list[tuple[bool, int]]:
    """(accepted within capacity, units open) of every backorder row, oldest first."""
    with ledger.ctx.read() as session:
        rows = session.execute(
            select(models.Backorder.accepted_within_capacity, models.Backorder.qty_open).order_by(
                models.Backorder.id
            )
        ).all()
    return [(bool(within), int(units)) for within, units in rows]


def test_a_receipt_releases_in_its_own_transaction_so_no_new_order_jumps_the_queue(
    ledger: Ledger,
) -> None:
    # the numbers of ../shared/notes/architecture.md §3.3: PO of 10, a backorder of 7
    po(ledger, "PO1", A=10)
    ledger.order("phone", "B1", ("A", 7))
    with ledger.tx() as tx:
        purchasing.receive_po(tx, "PO1", {"A": 10})
    assert ledger.line("phone", "B1") == (7, 0, 0, 0)
    ledger.order("popup", "N1", ("A", 8))  # after the receipt: only 3 are left
    assert ledger.line("popup", "N1")[0] == 3
    assert ledger.line("phone", "B1") == (7, 0, 0, 0)


def test_offered_is_on_hand_plus_incoming_capacity_minus_reserved(ledger: Ledger) -> None:
    stock(ledger, A=4)
    po(ledger, "PO1", A=6)
    ledger.order("popup", "O1", ("A", 5))  # 4 reserved, 1 backordered
    # sellable 0 + capacity (6 x 1.0 - 1) - buffer 0
    assert ledger.offered("phone", "A") == 5


def test_bad_requests_are_refused_with_their_subject(ledger: Ledger) -> None:
    with pytest.raises(LedgerInputError, match="A: on hand cannot be negative"), ledger.tx() as tx:
        counts.set_stock(tx, "A", -1)
    with pytest.raises(LedgerInputError, match="PO9: no such purchase order"), ledger.tx() as tx:
        purchasing.receive_po(tx, "PO9", {"A": 1})
    with pytest.raises(LedgerInputError, match="unknown channel"):
        ledger.order("nowhere", "O1", ("A", 1))


def test_the_backorders_listing_shows_the_order_a_release_fills(ledger: Ledger) -> None:
    po(ledger, "PO1", A=10)
    ledger.order("phone", "P1", ("A", 1), tier="regular")
    ledger.order("popup", "Q1", ("A", 1), tier="regular")
    ledger.order("popup", "Q0", ("A", 1), tier="vip")
    with ledger.ctx.read() as session:
        listed = releasing.listing(session, ledger.ctx.config, None, include_closed=False)
    assert [(row["order"], row["rank"]) for row in listed] == [("Q0", 1), ("Q1", 2), ("P1", 3)]
    with ledger.tx() as tx:
        purchasing.receive_po(tx, "PO1", {"A": 3})
    assert [r.order_external_id for r in tx.effects.released] == ["Q0", "Q1", "P1"]
    with ledger.ctx.read() as session:
        waiting = session.scalar(
            select(func.count()).select_from(models.Backorder).where(models.Backorder.qty_open > 0)
        )
    assert waiting == 0


def test_the_full_listing_breaks_ties_as_the_release_does(ledger: Ledger) -> None:
    # X's first row was released; its waiting units are in a newer row than Y's
    po(ledger, "PO1", A=10)
    ledger.order("popup", "X", ("A", 1), placed=T0)
    ledger.order("popup", "Y", ("A", 1), placed=T0)
    with ledger.tx() as tx:
        purchasing.receive_po(tx, "PO1", {"A": 1})
    assert [r.order_external_id for r in tx.effects.released] == ["X"]
    ledger.order("popup", "X", ("A", 2), placed=T0)  # grows: a new backorder row
    with ledger.ctx.read() as session:
        listed = releasing.listing(session, ledger.ctx.config, None, include_closed=True)
    assert [(row["order"], row["rank"]) for row in listed if row["qty_open"]] == [
        ("Y", 1), ("X", 2),
    ]  # fmt: skip
    with ledger.tx() as tx:
        purchasing.receive_po(tx, "PO1", {"A": 1})
    assert [r.order_external_id for r in tx.effects.released] == ["Y"]
