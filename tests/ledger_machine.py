"""A hypothesis state machine over the ledger, checking the invariants of DESIGN §2.

Used by tests/unit (SQLite) and tests/integration (PostgreSQL). Every operation is logged, and at
the end the log is replayed into a fresh database: the rebuilt ledger must equal the ledger.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    rule,
)
from sqlalchemy import func, select

from backorders import orders as order_flow
from backorders.orders import LineInput, OrderInput, Outcome
from rules import Config, parse_config
from stock import commitments, counts, purchasing
from stock import models as m
from stock.db import make_engine, session_factory, upgrade
from stock.tx import Effects, LedgerInputError
from sync.context import AppContext

SKUS = ("A", "B", "C")
CHANNELS = ("popup", "phone")
CONFIG_TEXT = """\
database: sqlite:///unused.db
channels:
  popup: {kind: manual}
  phone: {kind: manual}
tiers: [vip, regular]
defaults:
  safety_buffer: 1
  backorders: {enabled: true, incoming_share: 0.5, horizon_days: 30}
  release: {order: [priority, tier, placed_at], partial: true}
channel_rules:
  popup: {priority: 1}
  phone: {priority: 2}
sku_rules:
  - {match: "B", release: {partial: false}}
  - {match: "C", backorders: {enabled: false}}
"""
T0 = datetime(2026, 11, 23, 9, tzinfo=UTC)

Snapshot = dict[str, Any]


_TEMPLATE: list[Path] = []


def migrated_sqlite(folder: Path) -> str:
    """A migrated SQLite file in `folder`, copied from one migrated once per process."""
    if not _TEMPLATE:
        template = Path(tempfile.mkdtemp(prefix="ledger-template-")) / "ledger.db"
        upgrade(f"sqlite:///{template}")
        _TEMPLATE.append(template)
    target = folder / "ledger.db"
    shutil.copyfile(_TEMPLATE[0], target)
    return f"sqlite:///{target}"


def load_rules() -> Config:
    return parse_config(CONFIG_TEXT, "machine.yaml", env={})


def snapshot(ctx: AppContext) -> Snapshot:
    """Everything the ledger owes and holds, by business keys (ids may differ after replay)."""
    with ctx.sessions() as session:
        codes = dict(session.execute(select(m.Sku.id, m.Sku.code)).all())
        stock = {
            codes[row.sku_id]: (row.on_hand, row.oversold)
            for row in session.scalars(select(m.StockLevel))
        }
        lines: dict[tuple[str, str, str], tuple[int, ...]] = {}
        for line, order in session.execute(
            select(m.OrderLine, m.ChannelOrder).join(
                m.ChannelOrder, m.ChannelOrder.id == m.OrderLine.order_id
            )
        ).all():
            reserved = session.scalar(
                select(func.coalesce(func.sum(m.Reservation.qty), 0)).where(
                    m.Reservation.order_line_id == line.id
                )
            )
            backordered = session.scalar(
                select(func.coalesce(func.sum(m.Backorder.qty_open), 0)).where(
                    m.Backorder.order_line_id == line.id
                )
            )
            lines[(order.channel, order.external_id, line.external_line_id)] = (
                line.quantity,
                int(reserved or 0),
                int(backordered or 0),
                line.shipped,
                line.cancelled,
            )
        orders = {
            (o.channel, o.external_id): (o.status, o.source_updated_at)
            for o in session.scalars(select(m.ChannelOrder))
        }
        pos = {
            (po.ref, codes[line.sku_id]): (line.ordered, line.received, po.status)
            for po in session.scalars(select(m.PurchaseOrder))
            for line in po.lines
        }
    return {"stock": stock, "lines": lines, "orders": orders, "pos": pos}


# the ledger operations the machine drives, by the name its log records
OPERATIONS: dict[str, Callable[..., Any]] = {
    "set_stock": counts.set_stock,
    "adjust_stock": counts.adjust_stock,
    "record_order": order_flow.record_order,
    "cancel_order": order_flow.cancel_order,
    "add_po": purchasing.add_po,
    "receive_po": purchasing.receive_po,
    "receive_po_over": lambda tx, ref, lines: purchasing.receive_po(
        tx, ref, lines, allow_over=True
    ),
    "cancel_po": purchasing.cancel_po,
}


class LedgerMachine(RuleBasedStateMachine):
    """Subclasses set `make_url(folder) -> database URL` (a migrated, empty database)."""

    make_url: Callable[[Path], str]

    orders = Bundle("orders")
    pos = Bundle("pos")

    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="ledger-machine-"))
        self.rules = load_rules()
        self.ctx = self._open()
        self.now = T0
        self.log: list[tuple[str, tuple[Any, ...], datetime]] = []
        self.order_versions: dict[tuple[str, str], OrderInput] = {}
        self.counter = 0

    def _open(self) -> AppContext:
        engine = make_engine(type(self).make_url(self.folder))
        return AppContext(self.rules, engine, session_factory(engine))

    # ----------------------------------------------------------------- helpers
    def _apply(
        self, ctx: AppContext, op: str, args: tuple[Any, ...], now: datetime
    ) -> tuple[Outcome, Effects]:
        with ctx.ledger(actor="machine", now=now) as tx:
            result = OPERATIONS[op](tx, *args)
        return (result if isinstance(result, Outcome) else Outcome()), tx.effects

    def run(self, op: str, *args: Any) -> tuple[Outcome, Effects]:
        self.now += timedelta(minutes=1)
        done = self._apply(self.ctx, op, args, self.now)
        self.log.append((op, args, self.now))
        return done

    def _sellable(self, sku: str) -> int:
        snap = snapshot(self.ctx)
        on_hand = snap["stock"].get(sku, (0, 0))[0]
        reserved = sum(
            v[1] for (c, o, line), v in snap["lines"].items() if self._sku_of(c, o, line) == sku
        )
        return on_hand - reserved

    def _sku_of(self, channel: str, order: str, line: str) -> str:
        version = self.order_versions[(channel, order)]
        return next(x.sku for x in version.lines if x.external_line_id == line)

    # ----------------------------------------------------------------- stock
    @rule(sku=st.sampled_from(SKUS), qty=st.integers(0, 12))
    def set_stock(self, sku: str, qty: int) -> None:
        self.run("set_stock", sku, qty, "count")

    @rule(sku=st.sampled_from(SKUS), delta=st.integers(-6, 8))
    def adjust_stock(self, sku: str, delta: int) -> None:
        try:
            self.run("adjust_stock", sku, delta, "adjust")
        except LedgerInputError:
            snap = snapshot(self.ctx)
            assert snap["stock"].get(sku, (0, 0))[0] + delta < 0  # refused only when it must be

    # ----------------------------------------------------------------- orders
    @rule(
        target=orders,
        channel=st.sampled_from(CHANNELS),
        lines=st.lists(st.tuples(st.sampled_from(SKUS), st.integers(1, 6)), min_size=1, max_size=3),
        tier=st.sampled_from(["vip", "regular", None]),
    )
    def place_order(
        self, channel: str, lines: list[tuple[str, int]], tier: str | None
    ) -> tuple[str, str]:
        self.counter += 1
        ref = f"O{self.counter}"
        order = OrderInput(
            channel=channel,
            external_id=ref,
            placed_at=self.now,
            updated_at=self.now,
            status="open",
            lines=tuple(LineInput(str(i), sku, qty) for i, (sku, qty) in enumerate(lines)),
            tier=tier,
        )
        self.record(order)
        return (channel, ref)

    def record(self, order: OrderInput) -> Outcome:
        self.order_versions[(order.channel, order.external_id)] = order
        return self.run("record_order", order)[0]

    def _next_version(self, key: tuple[str, str], **changes: Any) -> OrderInput:
        old = self.order_versions[key]
        values = {
            "channel": old.channel,
            "external_id": old.external_id,
            "placed_at": old.placed_at,
            "updated_at": self.now + timedelta(minutes=1),
            "status": old.status,
            "lines": old.lines,
            "tier": old.tier,
        }
        values.update(changes)
        return OrderInput(**values)

    @rule(key=orders, data=st.data())
    def edit_order(self, key: tuple[str, str], data: st.DataObject) -> None:
        old = self.order_versions[key]
        if old.status != "open":
            return
        lines = tuple(
            LineInput(x.external_line_id, x.sku, data.draw(st.integers(0, 7), label="qty"))
            for x in old.lines
        )
        self.record(self._next_version(key, lines=lines))

    @rule(key=consumes(orders))
    def cancel_order(self, key: tuple[str, str]) -> None:
        if self.order_versions[key].status != "open":
            return
        self.record(self._next_version(key, status="cancelled"))

    @rule(key=consumes(orders))
    def fulfill_order(self, key: tuple[str, str]) -> None:
        if self.order_versions[key].status != "open":
            return
        self.record(self._next_version(key, status="fulfilled"))

    @rule(key=orders)
    def stale_version_is_ignored(self, key: tuple[str, str]) -> None:
        current = self.order_versions[key]
        before = snapshot(self.ctx)
        older = OrderInput(
            channel=current.channel,
            external_id=current.external_id,
            placed_at=current.placed_at,
            updated_at=current.updated_at - timedelta(seconds=30),
            status="cancelled" if current.status == "open" else "open",
            lines=current.lines,
            tier=current.tier,
        )
        outcome, _ = self.run("record_order", older)
        assert not outcome.applied
        assert snapshot(self.ctx) == before

    @rule(key=orders)
    def same_version_twice_is_once(self, key: tuple[str, str]) -> None:
        before = snapshot(self.ctx)
        self.run("record_order", self.order_versions[key])
        after = snapshot(self.ctx)
        assert after == before

    # ----------------------------------------------------------------- purchase orders
    @rule(
        target=pos,
        sku=st.sampled_from(SKUS),
        qty=st.integers(1, 12),
        eta_days=st.integers(-2, 40),
    )
    def add_po(self, sku: str, qty: int, eta_days: int) -> str:
        self.counter += 1
        ref = f"PO{self.counter}"
        eta = (self.now + timedelta(days=eta_days)).date()
        self.run("add_po", ref, eta, {sku: qty}, None)
        return ref

    @rule(ref=pos, qty=st.integers(0, 15), data=st.data())
    def edit_po(self, ref: str, qty: int, data: st.DataObject) -> None:
        _ordered, received, status = self._po_line(ref)
        if status != "open":
            return
        sku = self._po_sku(ref)
        eta = date(2026, 12, 1) + timedelta(days=data.draw(st.integers(0, 10), label="eta"))
        try:
            self.run("add_po", ref, eta, {sku: qty}, None)
        except LedgerInputError:
            assert qty < received

    @rule(ref=pos, qty=st.integers(1, 8), allow_over=st.booleans())
    def receive_po(self, ref: str, qty: int, allow_over: bool) -> None:
        sku = self._po_sku(ref)
        ordered, received, status = self._po_line(ref)
        sellable_before = max(self._sellable(sku), 0)
        if status == "cancelled":
            return
        try:
            _, effects = self.run(
                "receive_po_over" if allow_over else "receive_po", ref, {sku: qty}
            )
        except purchasing.OverReceipt:
            assert not allow_over and received + qty > ordered  # refused only when it must be
            assert self._po_line(ref) == (ordered, received, status)  # and nothing booked
            return
        # release never gives more than the receipt plus what was already free
        assert sum(r.qty for r in effects.released) <= qty + sellable_before
        # SKU B's rule says `partial: false`: a line is released whole or not at all
        assert all(r.complete for r in effects.released if r.sku == "B")

    @rule(ref=pos)
    def cancel_po(self, ref: str) -> None:
        status = self._po_line(ref)[2]
        try:
            self.run("cancel_po", ref)
        except LedgerInputError:
            assert status != "open"  # refused only for a cancelled or fully received PO
            return
        assert self._po_line(ref)[2] == "cancelled"

    def _po_line(self, ref: str) -> tuple[int, int, str]:
        found = [v for (r, _sku), v in snapshot(self.ctx)["pos"].items() if r == ref]
        return found[0]

    def _po_sku(self, ref: str) -> str:
        return next(sku for (r, sku) in snapshot(self.ctx)["pos"] if r == ref)

    # ----------------------------------------------------------------- invariants
    @invariant()
    def ledger_invariants(self) -> None:
        snap = snapshot(self.ctx)
        reserved: dict[str, int] = {}
        backordered: dict[str, int] = {}
        for (channel, ref, line_id), values in snap["lines"].items():
            quantity, res, back, shipped, cancelled = values
            # quantities are conserved per line
            assert quantity == res + back + shipped + cancelled, (channel, ref, line_id, values)
            sku = self._sku_of(channel, ref, line_id)
            reserved[sku] = reserved.get(sku, 0) + res
            backordered[sku] = backordered.get(sku, 0) + back
            version = self.order_versions[(channel, ref)]
            owed = next(x.quantity for x in version.lines if x.external_line_id == line_id)
            status, _updated = snap["orders"][(channel, ref)]
            if status == "open":
                assert res + back == max(owed - shipped, 0), (channel, ref, line_id, values)
            elif status == "cancelled":
                assert res + back == 0
        for sku, (on_hand, oversold) in snap["stock"].items():
            assert on_hand >= 0 and oversold >= 0
            assert reserved.get(sku, 0) <= on_hand, (sku, reserved.get(sku), on_hand)
            if backordered.get(sku, 0) and sku != "B":
                # release is eager: free stock never sits beside a fillable backorder
                assert on_hand - reserved.get(sku, 0) <= 0, (sku, snap)
        # the per-SKU counters on the stock row equal the rows they summarise
        with self.ctx.sessions() as session:
            assert commitments.counter_drift(session) == {}

    def teardown(self) -> None:
        try:
            if self.log:
                self._check_replay()
        finally:
            self.ctx.close()
            shutil.rmtree(self.folder, ignore_errors=True)

    def _check_replay(self) -> None:
        """Replaying every operation into a fresh ledger rebuilds the same ledger."""
        folder = self.folder / "replay"
        folder.mkdir()
        engine = make_engine(type(self).make_url(folder))
        replay = AppContext(self.rules, engine, session_factory(engine))
        try:
            for op, args, now in self.log:  # the log holds only operations that succeeded
                self._apply(replay, op, args, now)
            assert snapshot(replay) == snapshot(self.ctx)
        finally:
            replay.close()
