"""Suppliers measured on the ledger (issue #17), on SQLite and PostgreSQL: receipts recorded
with their ETA and time, `stocksync suppliers`, and `incoming_share: auto` taking each open PO
line's supplier's fill rate in offers, in the split of an order and in `explain` — read with
one statement per transaction, never one per SKU."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from backorders import orders
from backorders.orders import LineInput, OrderInput
from bench.statements import count_statements
from rules import parse_config
from stock import counts, offers, purchasing, supplier_stats, suppliers
from stock import models as m
from stock.tx import LedgerTx
from sync.cli import main
from sync.context import AppContext
from tests.support.ledger import config_head

T0 = datetime(2026, 9, 1, 9, tzinfo=UTC)
CONFIG = (
    config_head("shop", "popup")
    + """\
defaults:
  safety_buffer: 0
  backorders:
    enabled: true
    incoming_share: {share}
    incoming_share_floor: 0.5
    horizon_days: 400
channel_rules:
  popup: {{backorders: {{incoming_share: 1.0}}}}
"""
)


class Ledger:
    def __init__(self, url: str, share: str = "auto") -> None:
        self.text = CONFIG.format(url=url, share=share)
        self.ctx = AppContext.open(parse_config(self.text, "stocksync.yaml", {}))
        self.now = T0

    def at(self, when: datetime) -> AbstractContextManager[LedgerTx]:
        self.now = when
        return self.ctx.ledger(actor="test", now=when)

    def tx(self) -> AbstractContextManager[LedgerTx]:
        return self.at(self.now + timedelta(minutes=1))

    def po(self, ref: str, eta: date, supplier: str | None, **lines: int) -> None:
        with self.tx() as tx:
            purchasing.add_po(tx, ref, eta, lines, supplier)

    def receive(self, ref: str, when: datetime, **lines: int) -> None:
        with self.at(when) as tx:
            purchasing.receive_po(tx, ref, lines, allow_over=True)

    def cancel(self, ref: str) -> None:
        with self.tx() as tx:
            purchasing.cancel_po(tx, ref)

    def history(self, supplier: str | None, count: int, ordered: int, received: int) -> None:
        """`count` closed POs of `supplier` for SKU H: `received` of `ordered` units each, on
        the day of their ETA (a short one cancelled)."""
        for index in range(count):
            ref = f"{supplier or 'NONE'}-H{index}"
            eta = (self.now + timedelta(days=10)).date()
            self.po(ref, eta, supplier, H=ordered)
            self.receive(ref, datetime.combine(eta, T0.timetz()), H=received)
            if received < ordered:
                self.cancel(ref)

    def close(self) -> None:
        self.ctx.close()


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[Ledger]:
    opened = Ledger(ledger_url)
    yield opened
    opened.close()


def day(days: int) -> date:
    return (T0 + timedelta(days=days)).date()


def test_a_receipt_records_its_units_the_eta_it_was_due_by_and_when(ledger: Ledger) -> None:
    ledger.po("PO-1", day(10), "ACME", A=10, B=5)
    ledger.po("PO-1", day(20), None, A=12, B=5)  # the supplier moves the ETA: an edit
    ledger.receive("PO-1", T0 + timedelta(days=12), A=4, B=5)
    ledger.receive("PO-1", T0 + timedelta(days=21), A=8)
    with ledger.ctx.read() as session:
        po = session.scalars(select(m.PurchaseOrder)).one()
        assert (po.eta, po.original_eta, po.supplier, po.status) == (
            day(20), day(10), "ACME", "received",
        )  # fmt: skip
        rows = session.execute(
            select(m.Sku.code, m.PoReceipt.qty, m.PoReceipt.eta, m.PoReceipt.received_at)
            .join(m.Sku, m.Sku.id == m.PoReceipt.sku_id)
            .order_by(m.PoReceipt.id)
        ).all()
    assert [tuple(row) for row in rows] == [
        ("A", 4, day(20), T0 + timedelta(days=12)),
        ("B", 5, day(20), T0 + timedelta(days=12)),
        ("A", 8, day(20), T0 + timedelta(days=21)),
    ]


def test_supplier_figures_over_the_last_closed_pos(ledger: Ledger) -> None:
    # ACME: on time in full; 2 days late; cancelled after 6 of 10 (1 day early); over-received
    ledger.po("A-1", day(10), "ACME", A=10)
    ledger.receive("A-1", T0 + timedelta(days=10, hours=5), A=10)
    ledger.po("A-2", day(20), "ACME", A=10)
    ledger.po("A-2", day(25), "ACME", A=10)  # moved later: still judged by day 20
    ledger.receive("A-2", T0 + timedelta(days=22), A=10)
    ledger.po("A-3", day(30), "ACME", A=10)
    ledger.receive("A-3", T0 + timedelta(days=29), A=6)
    ledger.cancel("A-3")
    ledger.po("A-4", day(40), "ACME", A=10)
    ledger.receive("A-4", T0 + timedelta(days=40), A=12)  # 2 over: a fill rate stays <= 1
    ledger.po("A-5", day(50), "ACME", A=3)  # still open
    ledger.po("N-1", day(60), None, B=4)
    ledger.cancel("N-1")  # nothing came
    with count_statements(ledger.ctx.engine) as counted, ledger.ctx.read() as session:
        stats = {s.supplier: s.as_dict() for s in suppliers.read_stats(session)}
        last_two = suppliers.read_stats(session, last=2)[0]
    selects = sum(n for shape, n in counted.shapes.items() if shape.startswith("SELECT"))
    assert selects == 6  # 3 per read, whatever the number of POs
    acme = stats["ACME"]
    assert acme["refs"] == ["A-4", "A-3", "A-2", "A-1"]
    assert (acme["pos"], acme["open_pos"], acme["delivered_pos"], acme["on_time_pos"]) == (
        4, 1, 4, 3,
    )  # fmt: skip
    assert acme["on_time_pct"] == 75.0
    assert (acme["units_ordered"], acme["units_filled"], acme["fill_rate"]) == (40, 36, 0.9)
    # per unit: 10 x 0 + 10 x 2 + 6 x -1 + 12 x 0 over 38 units
    assert acme["mean_delay_days"] == round(14 / 38, 2)
    # created 1 min after each tx before it; lead = receipt time - creation, per unit
    assert 10 < acme["mean_lead_days"] < 12
    none = stats["(none)"]
    assert (none["pos"], none["delivered_pos"], none["fill_rate"], none["on_time_pct"]) == (
        1, 0, 0.0, None,
    )  # fmt: skip
    assert (last_two.refs, last_two.fill_rate) == (("A-4", "A-3"), 0.8)
    # the auto share's read sums in SQL what the figures sum in Python
    with ledger.ctx.read() as session:
        for last in (2, 10):
            expected = supplier_stats.fill_rates(suppliers.recent_closed(session, last), last)
            assert suppliers.read_fill_rates(session, last) == expected


def test_auto_share_takes_each_lines_suppliers_fill_rate(ledger: Ledger) -> None:
    ledger.history("ACME", 3, ordered=10, received=8)  # fill rate 0.8 over 3 POs
    ledger.history("Slow", 4, ordered=10, received=3)  # 0.3: bounded up to the floor 0.5
    ledger.history("New", 2, ordered=10, received=10)  # too little history: the floor
    ledger.po("PO-ACME", day(300), "ACME", A=10)
    ledger.po("PO-SLOW", day(300), "Slow", A=10)
    ledger.po("PO-NEW", day(300), "New", A=10)
    ledger.po("PO-NONE", day(300), None, A=1)  # no supplier, no history: the floor
    with ledger.ctx.read() as session:
        sku = {int(session.scalars(select(m.Sku.id).where(m.Sku.code == "A")).one()): "A"}
        auto = offers.breakdowns(session, ledger.ctx.config, "shop", sku, day(200))
        fixed = offers.breakdowns(session, ledger.ctx.config, "popup", sku, day(200))
    [shop] = auto.values()
    assert shop.inputs.incoming_shared == pytest.approx(8 + 5 + 5 + 0.5)
    assert (shop.incoming_capacity, shop.offered) == (18, 18)
    assert [b.offered for b in fixed.values()] == [31]

    # an order is split against the same capacity the offer shows
    with ledger.tx() as tx:
        outcome = orders.record_order(
            tx,
            OrderInput("shop", "O-1", ledger.now, ledger.now, "open", (LineInput("1", "A", 20),)),
        )
    assert (outcome.backordered, outcome.beyond_capacity) == ({"1": 20}, {"1": 2})

    with ledger.tx() as tx:
        explained = offers.explain(tx, "A", "shop")
    share = explained["channels"][0]["incoming_share"]
    assert share["mode"] == "auto"
    assert share["floor"] == {"value": 0.5, "source": "stocksync.yaml:10"}
    assert [(x["po"], x["share"], x["source"]) for x in share["lines"]] == [
        ("PO-ACME", 0.8, "auto: supplier ACME fill rate 0.80 over 3 POs, bounded to [0.5, 1]"),
        ("PO-NEW", 0.5, "auto: supplier New has 2 closed POs, fewer than 3: floor 0.5"),
        ("PO-NONE", 0.5, "auto: supplier (none) has 0 closed POs, fewer than 3: floor 0.5"),
        ("PO-SLOW", 0.5, "auto: supplier Slow fill rate 0.30 over 4 POs, bounded to [0.5, 1]"),
    ]


def test_a_po_closing_in_the_transaction_moves_the_fill_rate_it_reads(ledger: Ledger) -> None:
    ledger.history("ACME", 2, ordered=10, received=10)
    ledger.po("PO-3", day(300), "ACME", H=10)
    ledger.po("PO-OPEN", day(300), "ACME", A=10)
    with ledger.tx() as tx:
        [sku_id] = counts.ensure_skus(tx, ["A"]).values()
        before = offers.explain(tx, "A", "shop")["channels"][0]["terms"]["incoming_shared"]
        purchasing.receive_po(tx, "PO-3", {"H": 7})
        purchasing.cancel_po(tx, "PO-3")  # third closed PO: 27 of 30
        offers.read_incoming(tx, [sku_id])
        [(_ref, line)] = tx.incoming[sku_id]
    assert before == 5.0  # two POs: the floor
    assert line.fill is not None and line.fill.rate == pytest.approx(0.9)


def fills_read(counted: Any) -> int:
    """Reads of suppliers' fill rates (stock.suppliers.recent_closed) among the statements."""
    return sum(n for shape, n in counted.shapes.items() if shape.startswith("SELECT recent.supp"))


@pytest.mark.parametrize("share", ["auto", "0.8"])
def test_fill_rates_are_read_once_per_transaction_and_only_for_auto(
    ledger_url: str, share: str
) -> None:
    ledger = Ledger(ledger_url, share)
    try:
        ledger.history("ACME", 3, ordered=10, received=9)
        for index in range(20):
            ledger.po(f"PO-{index}", day(300), "ACME", **{f"S{index}": 10})
        with count_statements(ledger.ctx.engine) as counted, ledger.tx() as tx:
            for index in range(20):
                line = LineInput("1", f"S{index}", 3)
                order = OrderInput("shop", f"O-{index}", tx.now, tx.now, "open", (line,))
                orders.record_order(tx, order)
        with count_statements(ledger.ctx.engine) as planned, ledger.ctx.read() as session:
            ids = {int(i): str(c) for i, c in session.execute(select(m.Sku.id, m.Sku.code))}
            found = offers.breakdowns(session, ledger.ctx.config, "shop", ids, day(200))
            rows = offers.status_rows(session, ledger.ctx.config, ["shop"], day(200))
    finally:
        ledger.close()
    expected = 1 if share == "auto" else 0
    assert fills_read(counted) == expected  # 20 orders of 20 SKUs in one transaction
    assert fills_read(planned) == 2 * expected  # one per grouped read, whatever the SKUs
    offered = 9 - 3 if share == "auto" else 8 - 3  # floor(10 x 0.9) or floor(10 x 0.8), - 3
    assert {b.offered for sku_id, b in found.items() if ids[sku_id] != "H"} == {offered}
    assert {r["offered"]["shop"] for r in rows if r["sku"] != "H"} == {offered}


def run(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> tuple[int, str, str]:
    try:
        main(["--config", str(config), *args])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_suppliers_command_and_explain(
    ledger: Ledger, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger.history("ACME", 3, ordered=10, received=8)
    ledger.history(None, 1, ordered=5, received=5)
    ledger.po("PO-OPEN", day(300), "ACME", A=10)
    config = tmp_path / "stocksync.yaml"
    config.write_text(ledger.text, encoding="utf-8")

    code, out, _err = run(capsys, config, "suppliers", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["last"] == 10
    assert [
        (s["supplier"], s["pos"], s["open_pos"], s["fill_rate"]) for s in data["suppliers"]
    ] == [
        ("ACME", 3, 1, 0.8),
        ("(none)", 1, 0, 1.0),
    ]
    assert data["suppliers"][0]["on_time_pct"] == 100.0
    assert data["suppliers"][0]["mean_delay_days"] == 0.0

    code, out, _err = run(capsys, config, "suppliers", "--last", "2")
    assert code == 0
    assert "Suppliers (each over its last 2 closed POs)" in out
    assert "ACME" in out and "(none)" in out and "80%" in out and "100% (2/2)" in out

    code, _out, err = run(capsys, config, "suppliers", "--last", "0")
    assert code == 2 and "--last" in err

    code, out, _err = run(capsys, config, "explain", "A", "--channel", "shop")
    assert code == 0
    assert "auto: supplier ACME fill rate 0.80 over 3 POs, bounded to [0.5, 1]" in out
    assert "auto (~0.8)" in out
