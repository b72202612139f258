"""Ledger operations: every change to stock, orders, backorders and POs, in one transaction.

Each public method runs inside one unit of work (see stock.db.unit_of_work), locks the stock rows
it touches in sku-id order first, and leaves the invariants of DESIGN §2 true when it returns:
a line's quantity = reserved + backordered + shipped + cancelled; Σ reservations ≤ on_hand;
on_hand ≥ 0 (units shipped beyond it are recorded as `oversold`).

Order changes are applied as *target states* (the channel's current quantity and status), so
applying the same order version twice changes nothing, and an older version never overwrites a
newer one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal, Protocol

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from backorders.release import OpenBackorder, ReleaseKey, plan_release
from backorders.split import Availability, LineDemand, split_lines
from rules import EffectiveRule, Sourced
from stock import models as m
from stock.db import lock_stock_rows
from stock.engine import IncomingLine, OfferInputs, compute_offer, incoming_open

OrderState = Literal["open", "fulfilled", "cancelled"]
DEFAULT_RELEASE_ORDER: tuple[ReleaseKey, ...] = ("priority", "tier", "placed_at")


class RuleBook(Protocol):
    """What the ledger needs of the configuration (rules.Config satisfies it)."""

    @property
    def tiers(self) -> tuple[str, ...]: ...

    def rule_for(self, channel: str, sku: str) -> EffectiveRule: ...


class LedgerInputError(ValueError):
    """A request the ledger refuses (bad quantity, unknown PO or SKU); carries the subject."""

    def __init__(self, subject: str, message: str) -> None:
        super().__init__(f"{subject}: {message}")
        self.subject = subject
        self.message = message


@dataclass(frozen=True, slots=True)
class LineInput:
    external_line_id: str
    sku: str
    quantity: int


@dataclass(frozen=True, slots=True)
class OrderInput:
    channel: str
    external_id: str
    placed_at: datetime
    updated_at: datetime
    status: OrderState
    lines: tuple[LineInput, ...]
    customer_key: str | None = None
    tier: str | None = None
    source_status: str = ""


@dataclass(frozen=True, slots=True)
class ReleasedUnits:
    backorder_id: int
    order_id: int
    channel: str
    order_external_id: str
    external_line_id: str
    sku: str
    qty: int
    complete: bool


@dataclass
class Outcome:
    """What a ledger operation did, for the caller's write-back and push jobs."""

    order_id: int | None = None
    applied: bool = True  # False when an older order version was ignored
    reserved: dict[str, int] = field(default_factory=dict)  # external_line_id -> units reserved now
    backordered: dict[str, int] = field(default_factory=dict)  # external_line_id -> new backorders
    beyond_capacity: dict[str, int] = field(default_factory=dict)
    released: list[ReleasedUnits] = field(default_factory=list)
    oversold: dict[str, int] = field(default_factory=dict)  # sku -> units shipped beyond on_hand
    dirty_skus: set[str] = field(default_factory=set)

    def merge(self, other: Outcome) -> None:
        self.released.extend(other.released)
        for sku, units in other.oversold.items():
            self.oversold[sku] = self.oversold.get(sku, 0) + units
        self.dirty_skus |= other.dirty_skus


@dataclass(frozen=True, slots=True)
class ChannelOffer:
    channel: str
    breakdown: dict[str, Any]
    rule: dict[str, dict[str, Any]]
    last_pushed: int | None
    last_seen: int | None
    pushed_at: datetime | None


class Ledger:
    """Ledger operations bound to one session (one transaction), one rule book and one clock."""

    def __init__(
        self,
        session: Session,
        rules: RuleBook,
        channels: Sequence[str],
        *,
        now: datetime,
        actor: str = "cli",
        listed_channels: Sequence[str] | None = None,
    ) -> None:
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        self.session = session
        self.rules = rules
        self.channels = tuple(channels)
        # channels whose listings we push (not manual ones); default: all
        self.listed_channels = tuple(channels if listed_channels is None else listed_channels)
        self._touched: set[int] = set()  # orders whose write-back was queued in this transaction
        self.now = now
        self.actor = actor

    @property
    def touched_orders(self) -> frozenset[int]:
        """Orders whose channel write-back was queued in this transaction."""
        return frozenset(self._touched)

    # ------------------------------------------------------------------ SKUs and stock counts
    def ensure_skus(self, codes: Iterable[str]) -> dict[str, int]:
        """SKU code -> id, creating missing SKUs (and their zero stock row) race-free."""
        wanted = sorted(set(codes))
        if not wanted:
            return {}
        for code in wanted:
            if not code or len(code) > 255:
                raise LedgerInputError(code or "(empty)", "a SKU code must be 1-255 characters")
        known = {
            str(code): int(sku_id)
            for code, sku_id in self.session.execute(
                select(m.Sku.code, m.Sku.id).where(m.Sku.code.in_(wanted))
            ).all()
        }
        if len(known) == len(wanted):
            return known  # the common case: no insert, no conflict handling
        insert = pg_insert if self._dialect() == "postgresql" else sqlite_insert
        ins = insert(m.Sku).values([{"code": code, "created_at": self.now} for code in wanted])
        self.session.execute(ins.on_conflict_do_nothing(index_elements=["code"]))
        ids = dict(
            self.session.execute(select(m.Sku.code, m.Sku.id).where(m.Sku.code.in_(wanted))).all()
        )
        stock_ins = insert(m.StockLevel).values(
            [
                {"sku_id": sku_id, "on_hand": 0, "oversold": 0, "updated_at": self.now}
                for sku_id in ids.values()
            ]
        )
        self.session.execute(stock_ins.on_conflict_do_nothing(index_elements=["sku_id"]))
        return {str(code): int(sku_id) for code, sku_id in ids.items()}

    def _dialect(self) -> str:
        bind = self.session.get_bind()
        return bind.dialect.name

    def sku_id(self, code: str) -> int:
        found = self.session.scalar(select(m.Sku.id).where(m.Sku.code == code))
        if found is None:
            raise LedgerInputError(code, "unknown SKU")
        return int(found)

    def set_stock(self, code: str, on_hand: int, reason: str | None = None) -> Outcome:
        if on_hand < 0:
            raise LedgerInputError(code, f"on hand cannot be negative, got {on_hand}")
        sku_id = self.ensure_skus([code])[code]
        row = lock_stock_rows(self.session, [sku_id])[sku_id]
        return self._change_on_hand(code, row, on_hand - row.on_hand, "stock.set", reason)

    def adjust_stock(self, code: str, delta: int, reason: str | None = None) -> Outcome:
        sku_id = self.ensure_skus([code])[code]
        row = lock_stock_rows(self.session, [sku_id])[sku_id]
        if row.on_hand + delta < 0:
            raise LedgerInputError(
                code, f"adjusting {row.on_hand} by {delta} would leave {row.on_hand + delta}"
            )
        return self._change_on_hand(code, row, delta, "stock.adjust", reason)

    def _change_on_hand(
        self, code: str, row: m.StockLevel, delta: int, action: str, reason: str | None
    ) -> Outcome:
        before = row.on_hand
        row.on_hand = before + delta
        row.updated_at = self.now
        self.session.flush()
        self.audit(action, code, {"before": before, "after": row.on_hand, "reason": reason})
        outcome = Outcome(dirty_skus={code})
        if delta < 0:
            self._demote_excess_reservations(row.sku_id, code, outcome)
        elif delta > 0:
            outcome.merge(self.release([row.sku_id]))
        self.mark_dirty([row.sku_id])
        return outcome

    def _demote_excess_reservations(self, sku_id: int, code: str, outcome: Outcome) -> None:
        """A count below what is reserved: the newest reservations wait for stock again."""
        on_hand = self._on_hand(sku_id)
        excess = self._reserved(sku_id) - on_hand
        if excess <= 0:
            return
        rows = self.session.execute(
            select(m.Reservation, m.ChannelOrder.placed_at)
            .join(m.OrderLine, m.OrderLine.id == m.Reservation.order_line_id)
            .join(m.ChannelOrder, m.ChannelOrder.id == m.OrderLine.order_id)
            .where(m.Reservation.sku_id == sku_id)
            .order_by(m.ChannelOrder.placed_at.desc(), m.Reservation.id.desc())
        ).all()
        demoted = 0
        for reservation, _placed in rows:
            if excess <= 0:
                break
            take = min(excess, reservation.qty)
            self._reduce_reservation(reservation, take)
            self._add_backorder(reservation.order_line_id, sku_id, take, within=False)
            excess -= take
            demoted += take
        self.audit("stock.oversell", code, {"moved_to_backorder": demoted, "on_hand": on_hand})
        outcome.oversold[code] = outcome.oversold.get(code, 0) + demoted

    # ------------------------------------------------------------------ orders
    def record_order(self, order: OrderInput) -> Outcome:
        """Apply one version of a channel order; older versions than the stored one are ignored."""
        self._check_order(order)
        codes = {line.sku for line in order.lines}
        sku_ids = self.ensure_skus(codes)
        # Lock first, read second: two versions of one new order (a webhook and a poll) share
        # SKUs, so the second waits here and then sees the order the first one created.
        lock_stock_rows(self.session, sku_ids.values())
        existing = self.session.scalar(
            select(m.ChannelOrder)
            .where(
                m.ChannelOrder.channel == order.channel,
                m.ChannelOrder.external_id == order.external_id,
            )
            .execution_options(populate_existing=True)
        )
        old_lines: list[m.OrderLine] = list(existing.lines) if existing else []
        all_sku_ids = set(sku_ids.values()) | {line.sku_id for line in old_lines}
        # an edit may have dropped a line of another SKU: lock that too (a rare out-of-order
        # lock; PostgreSQL turns a resulting deadlock into an error the job retries)
        lock_stock_rows(self.session, all_sku_ids - set(sku_ids.values()))
        if existing is not None:
            if _is_older(order, existing):
                self.audit(
                    "order.stale_ignored",
                    f"{order.channel}/{order.external_id}",
                    {"received": order.updated_at.isoformat()},
                )
                return Outcome(order_id=existing.id, applied=False)
            db_order = existing
            db_order.status = order.status
            db_order.source_status = order.source_status
            db_order.source_updated_at = order.updated_at
            db_order.customer_key = order.customer_key or db_order.customer_key
            db_order.tier = order.tier or db_order.tier
        else:
            db_order = m.ChannelOrder(
                channel=order.channel,
                external_id=order.external_id,
                placed_at=order.placed_at,
                customer_key=order.customer_key,
                tier=order.tier,
                status=order.status,
                source_status=order.source_status,
                source_updated_at=order.updated_at,
            )
            self.session.add(db_order)
            self.session.flush()

        outcome = Outcome(order_id=db_order.id)
        by_external = {line.external_line_id: line for line in old_lines}
        targets: list[tuple[m.OrderLine, int]] = []
        for line in order.lines:
            db_line = by_external.pop(line.external_line_id, None)
            if db_line is None:
                db_line = m.OrderLine(
                    order_id=db_order.id,
                    external_line_id=line.external_line_id,
                    sku_id=sku_ids[line.sku],
                    quantity=0,
                    shipped=0,
                    cancelled=0,
                )
                self.session.add(db_line)
                self.session.flush()
            elif db_line.sku_id != sku_ids[line.sku]:
                raise LedgerInputError(
                    f"{order.channel}/{order.external_id}",
                    f"line {line.external_line_id} changed SKU; the ledger keeps one SKU per line",
                )
            targets.append((db_line, line.quantity))
        # lines that disappeared from the order were removed by an edit
        targets.extend((db_line, 0) for db_line in by_external.values())

        code_of = {sku_id: code for code, sku_id in sku_ids.items()}
        code_of.update(self._codes({line.sku_id for line in old_lines} - set(code_of)))
        growth: list[tuple[m.OrderLine, int]] = []
        freed: set[int] = set()
        for db_line, current_quantity in targets:
            code = code_of[db_line.sku_id]
            if order.status == "fulfilled":
                self._ship_line(db_line, current_quantity, code, outcome)
                continue
            target_live = 0 if order.status == "cancelled" else current_quantity - db_line.shipped
            target_live = max(target_live, 0)
            live = self._live(db_line.id)
            if target_live > live:
                growth.append((db_line, target_live - live))
            elif target_live < live:
                self._shrink_line(db_line, live - target_live)
                freed.add(db_line.sku_id)
        if growth:
            self._split_growth(order.channel, growth, code_of, outcome)
        outcome.dirty_skus |= {code_of[s] for s in all_sku_ids}
        if freed:
            outcome.merge(self.release(freed))
        self.mark_dirty(all_sku_ids)
        self.audit(
            "order.recorded",
            f"{order.channel}/{order.external_id}",
            {
                "status": order.status,
                "updated_at": order.updated_at.isoformat(),
                "reserved": outcome.reserved,
                "backordered": outcome.backordered,
                "beyond_capacity": outcome.beyond_capacity,
            },
        )
        self.session.flush()
        return outcome

    def _check_order(self, order: OrderInput) -> None:
        subject = f"{order.channel}/{order.external_id}"
        if order.channel not in self.channels:
            raise LedgerInputError(subject, f"unknown channel {order.channel!r}")
        if not order.external_id:
            raise LedgerInputError(subject, "an order needs an id")
        if order.placed_at.tzinfo is None or order.updated_at.tzinfo is None:
            raise LedgerInputError(subject, "order times must be timezone-aware")
        seen: set[str] = set()
        for line in order.lines:
            if line.quantity < 0:
                raise LedgerInputError(subject, f"line {line.external_line_id}: negative quantity")
            if line.external_line_id in seen:
                raise LedgerInputError(subject, f"line {line.external_line_id} appears twice")
            seen.add(line.external_line_id)

    def cancel_order(self, channel: str, external_id: str) -> Outcome:
        db_order = self.session.scalar(
            select(m.ChannelOrder).where(
                m.ChannelOrder.channel == channel, m.ChannelOrder.external_id == external_id
            )
        )
        if db_order is None:
            raise LedgerInputError(f"{channel}/{external_id}", "no such order")
        codes = self._codes({line.sku_id for line in db_order.lines})
        return self.record_order(
            OrderInput(
                channel=channel,
                external_id=external_id,
                placed_at=db_order.placed_at,
                updated_at=max(self.now, db_order.source_updated_at),
                status="cancelled",
                lines=tuple(
                    LineInput(line.external_line_id, codes[line.sku_id], line.quantity)
                    for line in db_order.lines
                ),
                customer_key=db_order.customer_key,
                tier=db_order.tier,
                source_status="cancelled",
            )
        )

    def _split_growth(
        self,
        channel: str,
        growth: Sequence[tuple[m.OrderLine, int]],
        code_of: Mapping[int, str],
        outcome: Outcome,
    ) -> None:
        sku_ids = {line.sku_id for line, _ in growth}
        availability: dict[str, Availability] = {}
        for sku_id in sku_ids:
            terms, capacity = self._offer_inputs(channel, sku_id, code_of[sku_id])
            availability[code_of[sku_id]] = Availability(terms["sellable_now"], capacity)
        by_key = {str(line.id): line for line, _ in growth}
        demand = [LineDemand(str(line.id), code_of[line.sku_id], extra) for line, extra in growth]
        for split in split_lines(demand, availability):
            db_line = by_key[split.key]
            db_line.quantity += split.reserve + split.backordered
            ext = db_line.external_line_id
            if split.reserve:
                self._add_reservation(db_line, split.reserve)
                outcome.reserved[ext] = outcome.reserved.get(ext, 0) + split.reserve
            if split.backorder_within:
                self._add_backorder(db_line.id, db_line.sku_id, split.backorder_within, True)
                outcome.backordered[ext] = outcome.backordered.get(ext, 0) + split.backorder_within
            if split.backorder_beyond:
                self._add_backorder(db_line.id, db_line.sku_id, split.backorder_beyond, False)
                outcome.backordered[ext] = outcome.backordered.get(ext, 0) + split.backorder_beyond
                outcome.beyond_capacity[ext] = split.backorder_beyond
                self.audit(
                    "backorder.beyond_capacity",
                    code_of[db_line.sku_id],
                    {"channel": channel, "line": ext, "units": split.backorder_beyond},
                )
        self.session.flush()

    def _shrink_line(self, db_line: m.OrderLine, units: int) -> None:
        """Cancel units of a line: open backorders first (newest first), then the reservation."""
        left = units
        for backorder in self.session.scalars(
            select(m.Backorder)
            .where(m.Backorder.order_line_id == db_line.id, m.Backorder.qty_open > 0)
            .order_by(m.Backorder.id.desc())
        ):
            if left == 0:
                break
            take = min(left, backorder.qty_open)
            backorder.qty_open -= take
            left -= take
            self._touch_writeback_for_line(db_line.id)
        if left:
            reservation = self._reservation(db_line.id)
            if reservation is None or reservation.qty < left:
                raise AssertionError(f"line {db_line.id}: cannot cancel {units} live units")
            self._reduce_reservation(reservation, left)
        db_line.cancelled += units
        self.session.flush()

    def _ship_line(
        self, db_line: m.OrderLine, current_quantity: int, code: str, outcome: Outcome
    ) -> None:
        """Fulfilled: live units become shipped; units beyond the live ones ship from on_hand."""
        to_ship = max(current_quantity - db_line.shipped, 0)
        live = self._live(db_line.id)
        if live > to_ship:  # the channel shipped less than was live: the rest was refunded
            self._shrink_line(db_line, live - to_ship)
            live = to_ship
        reservation = self._reservation(db_line.id)
        from_reservation = min(reservation.qty if reservation else 0, to_ship)
        if reservation is not None and from_reservation:
            self._reduce_reservation(reservation, from_reservation)
        rest = to_ship - from_reservation
        for backorder in self.session.scalars(
            select(m.Backorder).where(
                m.Backorder.order_line_id == db_line.id, m.Backorder.qty_open > 0
            )
        ):
            backorder.qty_open = 0  # shipped anyway: the merchant had units we did not know of
            self._touch_writeback_for_line(db_line.id)
        extra = max(to_ship - live, 0)
        db_line.quantity += extra
        db_line.shipped += to_ship
        if to_ship:
            row = lock_stock_rows(self.session, [db_line.sku_id])[db_line.sku_id]
            # stock that was unreserved (rest) leaves on_hand; beyond on_hand is an oversell
            take_from_hand = from_reservation + rest
            short = max(take_from_hand - row.on_hand, 0)
            row.on_hand = max(row.on_hand - take_from_hand, 0)
            row.oversold += short
            row.updated_at = self.now
            if short:
                outcome.oversold[code] = outcome.oversold.get(code, 0) + short
                self.audit("stock.oversell", code, {"shipped_beyond_on_hand": short})
        self.session.flush()
        # stock may now be below what others reserve (it shipped from unreserved units)
        self._demote_excess_reservations(db_line.sku_id, code, outcome)

    # ------------------------------------------------------------------ purchase orders
    def add_po(
        self, ref: str, eta: date, lines: Mapping[str, int], supplier: str | None = None
    ) -> m.PurchaseOrder:
        """Create a PO, or edit an open one: each given SKU's ordered quantity is set."""
        if not lines:
            raise LedgerInputError(ref, "a purchase order needs at least one SKU=QTY")
        for code, qty in lines.items():
            if qty < 0:
                raise LedgerInputError(ref, f"{code}: ordered quantity cannot be negative")
        sku_ids = self.ensure_skus(lines)
        po = self.session.scalar(select(m.PurchaseOrder).where(m.PurchaseOrder.ref == ref))
        if po is None:
            po = m.PurchaseOrder(
                ref=ref, supplier=supplier, eta=eta, status="open", created_at=self.now
            )
            self.session.add(po)
            self.session.flush()
            action = "po.add"
        else:
            if po.status != "open":
                raise LedgerInputError(ref, f"purchase order is {po.status}; it cannot be edited")
            po.eta = eta
            po.supplier = supplier or po.supplier
            action = "po.edit"
        existing = {line.sku_id: line for line in po.lines}
        for code, qty in lines.items():
            line = existing.get(sku_ids[code])
            if line is None:
                self.session.add(m.PoLine(po_id=po.id, sku_id=sku_ids[code], ordered=qty))
            else:
                if qty < line.received:
                    raise LedgerInputError(
                        ref, f"{code}: cannot order {qty}, {line.received} already received"
                    )
                line.ordered = qty
        self.session.flush()
        self.session.refresh(po)
        self.mark_dirty(sku_ids.values())
        self.audit(action, ref, {"eta": eta.isoformat(), "lines": dict(lines)})
        return po

    def receive_po(self, ref: str, received: Mapping[str, int], *, release: bool = True) -> Outcome:
        """Book received units into on_hand and (unless a worker will) release backorders."""
        if not received:
            raise LedgerInputError(ref, "a receipt needs at least one SKU=QTY")
        po = self.session.scalar(select(m.PurchaseOrder).where(m.PurchaseOrder.ref == ref))
        if po is None:
            raise LedgerInputError(ref, "no such purchase order")
        if po.status == "cancelled":
            raise LedgerInputError(ref, "purchase order is cancelled")
        lines = {line.sku_id: line for line in po.lines}
        codes = self._codes(lines)
        by_code = {code: sku_id for sku_id, code in codes.items()}
        for code, qty in received.items():
            if code not in by_code:
                raise LedgerInputError(ref, f"{code} is not on this purchase order")
            if qty <= 0:
                raise LedgerInputError(ref, f"{code}: received quantity must be positive")
        sku_ids = [by_code[code] for code in received]
        rows = lock_stock_rows(self.session, sku_ids)
        for code, qty in received.items():
            sku_id = by_code[code]
            lines[sku_id].received += qty
            rows[sku_id].on_hand += qty
            rows[sku_id].updated_at = self.now
        if all(line.received >= line.ordered for line in po.lines):
            po.status = "received"
        self.session.flush()
        self.audit("po.receive", ref, {"received": dict(received), "status": po.status})
        outcome = self.release(sku_ids) if release else Outcome()
        outcome.dirty_skus |= set(received)
        self.mark_dirty(sku_ids)
        return outcome

    # ------------------------------------------------------------------ release
    def release_codes(self, codes: Iterable[str]) -> Outcome:
        """Release by SKU code (what jobs carry); unknown codes are ignored."""
        wanted = sorted(set(codes))
        ids = self.session.scalars(select(m.Sku.id).where(m.Sku.code.in_(wanted))).all()
        outcome = self.release(ids)
        self.mark_dirty(ids)
        return outcome

    def releasable_skus(self) -> list[str]:
        """SKUs with sellable stock beside open backorders: a release is due (sweeper)."""
        reserved = (
            select(m.Reservation.sku_id, func.sum(m.Reservation.qty).label("units"))
            .group_by(m.Reservation.sku_id)
            .subquery()
        )
        waiting = select(m.Backorder.sku_id).where(m.Backorder.qty_open > 0).distinct().subquery()
        rows = self.session.execute(
            select(m.Sku.code)
            .join(m.StockLevel, m.StockLevel.sku_id == m.Sku.id)
            .join(waiting, waiting.c.sku_id == m.Sku.id)
            .outerjoin(reserved, reserved.c.sku_id == m.Sku.id)
            .where(m.StockLevel.on_hand - func.coalesce(reserved.c.units, 0) > 0)
            .order_by(m.Sku.code)
        ).all()
        return [str(code) for (code,) in rows]

    def release(self, sku_ids: Iterable[int]) -> Outcome:
        """Fill open backorders of these SKUs from sellable stock, in the configured order."""
        ids = sorted(set(sku_ids))
        outcome = Outcome()
        if not ids:
            return outcome
        lock_stock_rows(self.session, ids)
        codes = self._codes(ids)
        available = {codes[s]: self._on_hand(s) - self._reserved(s) for s in ids}
        rows = self.session.execute(
            select(m.Backorder, m.OrderLine, m.ChannelOrder)
            .join(m.OrderLine, m.OrderLine.id == m.Backorder.order_line_id)
            .join(m.ChannelOrder, m.ChannelOrder.id == m.OrderLine.order_id)
            .where(m.Backorder.sku_id.in_(ids), m.Backorder.qty_open > 0)
        ).all()
        if not rows or all(units <= 0 for units in available.values()):
            return outcome
        tiers = self.rules.tiers
        # One candidate per order line: a line may hold several backorder rows (within and
        # beyond capacity), and `partial: false` speaks of the line, not of a row.
        per_line: dict[int, list[m.Backorder]] = defaultdict(list)
        context: dict[int, tuple[m.OrderLine, m.ChannelOrder]] = {}
        for backorder, line, order in rows:
            per_line[line.id].append(backorder)
            context[line.id] = (line, order)
        candidates: list[OpenBackorder] = []
        orders: set[tuple[ReleaseKey, ...]] = set()
        by_candidate: dict[int, int] = {}  # candidate id (first row id) -> line id
        for line_id, line_rows in per_line.items():
            line, order = context[line_id]
            code = codes[line.sku_id]
            rule = self.rules.rule_for(order.channel, code)
            orders.add(tuple(rule.release_order.value))
            first_id = min(row.id for row in line_rows)
            by_candidate[first_id] = line_id
            candidates.append(
                OpenBackorder(
                    backorder_id=first_id,
                    sku=code,
                    qty_open=sum(row.qty_open for row in line_rows),
                    channel_priority=rule.priority.value,
                    tier_rank=tiers.index(order.tier) if order.tier in tiers else len(tiers),
                    placed_at=order.placed_at,
                    partial_allowed=rule.release_partial.value,
                )
            )
        # one total order is needed to rank across channels; rules normally set it in `defaults`
        release_order = orders.pop() if len(orders) == 1 else DEFAULT_RELEASE_ORDER
        for allocation in plan_release(candidates, available, release_order):
            line_id = by_candidate[allocation.backorder_id]
            line, order = context[line_id]
            left = allocation.qty
            # promises made within capacity are settled first, then the flagged ones
            for backorder in sorted(
                per_line[line_id], key=lambda b: (not b.accepted_within_capacity, b.id)
            ):
                take = min(left, backorder.qty_open)
                backorder.qty_open -= take
                backorder.qty_released += take
                left -= take
            self._touch_writeback(order.id, order.channel)
            self._add_reservation(line, allocation.qty)
            outcome.released.append(
                ReleasedUnits(
                    backorder_id=allocation.backorder_id,
                    order_id=order.id,
                    channel=order.channel,
                    order_external_id=order.external_id,
                    external_line_id=line.external_line_id,
                    sku=allocation.sku,
                    qty=allocation.qty,
                    complete=allocation.complete,
                )
            )
            self.audit(
                "backorder.release",
                allocation.sku,
                {
                    "order": f"{order.channel}/{order.external_id}",
                    "line": line.external_line_id,
                    "units": allocation.qty,
                    "rank_by": list(release_order),
                },
            )
        outcome.dirty_skus |= set(codes.values())
        self.session.flush()
        return outcome

    # ------------------------------------------------------------------ offers
    def offer(self, channel: str, code: str) -> tuple[int, dict[str, Any]]:
        sku_id = self.sku_id(code)
        breakdown, _capacity = self._offer_inputs(channel, sku_id, code)
        return breakdown["offered"], breakdown

    def _offer_inputs(self, channel: str, sku_id: int, code: str) -> tuple[dict[str, Any], int]:
        rule = self.rules.rule_for(channel, code)
        today = self.now.date()
        lines = [
            IncomingLine(ordered, received, eta)
            for ordered, received, eta in self.session.execute(
                select(m.PoLine.ordered, m.PoLine.received, m.PurchaseOrder.eta)
                .join(m.PurchaseOrder, m.PurchaseOrder.id == m.PoLine.po_id)
                .where(m.PoLine.sku_id == sku_id, m.PurchaseOrder.status == "open")
            ).all()
        ]
        inputs = OfferInputs(
            on_hand=self._on_hand(sku_id),
            reserved=self._reserved(sku_id),
            backordered=self._backordered(sku_id),
            incoming_open=incoming_open(lines, today, rule.horizon_days.value),
            safety_buffer=rule.safety_buffer.value,
            cap=rule.cap.value,
            backorders_enabled=rule.backorders_enabled.value,
            incoming_share=rule.incoming_share.value,
        )
        result = compute_offer(inputs)
        return result.as_dict(), max(result.incoming_capacity, 0)

    def explain(self, code: str, channel: str | None = None) -> dict[str, Any]:
        sku_id = self.sku_id(code)
        channels = [channel] if channel else list(self.channels)
        for name in channels:
            if name not in self.channels:
                raise LedgerInputError(name, "unknown channel")
        level = self.session.get(m.StockLevel, sku_id)
        offers: list[dict[str, Any]] = []
        for name in channels:
            breakdown, _ = self._offer_inputs(name, sku_id, code)
            rule = self.rules.rule_for(name, code)
            listing = self.session.scalar(
                select(m.Listing).where(m.Listing.channel == name, m.Listing.sku_id == sku_id)
            )
            offers.append(
                {
                    "channel": name,
                    "offered": breakdown["offered"],
                    "terms": breakdown,
                    "rule": _rule_dict(rule),
                    "last_pushed": listing.last_pushed if listing else None,
                    "last_seen": listing.last_seen if listing else None,
                    "pushed_at": listing.pushed_at.isoformat()
                    if listing and listing.pushed_at
                    else None,
                }
            )
        incoming = [
            {"po": ref, "eta": eta.isoformat(), "open": max(ordered - received, 0)}
            for ref, eta, ordered, received in self.session.execute(
                select(
                    m.PurchaseOrder.ref, m.PurchaseOrder.eta, m.PoLine.ordered, m.PoLine.received
                )
                .join(m.PurchaseOrder, m.PurchaseOrder.id == m.PoLine.po_id)
                .where(m.PoLine.sku_id == sku_id, m.PurchaseOrder.status == "open")
                .order_by(m.PurchaseOrder.eta, m.PurchaseOrder.ref)
            ).all()
        ]
        return {
            "sku": code,
            "on_hand": level.on_hand if level else 0,
            "oversold": level.oversold if level else 0,
            "reserved": self._reserved(sku_id),
            "backordered": self._backordered(sku_id),
            "incoming": incoming,
            "today": self.now.date().isoformat(),
            "channels": offers,
        }

    # ------------------------------------------------------------------ listings and audit
    def mark_dirty(self, sku_ids: Iterable[int]) -> None:
        """Flag the listings of these SKUs on every configured channel for the next push."""
        ids = sorted(set(sku_ids))
        if not ids:
            return
        existing = {
            (listing.channel, listing.sku_id): listing
            for listing in self.session.scalars(select(m.Listing).where(m.Listing.sku_id.in_(ids)))
        }
        for channel in self.listed_channels:
            for sku_id in ids:
                listing = existing.get((channel, sku_id))
                if listing is None:
                    listing = m.Listing(
                        channel=channel, sku_id=sku_id, external_ids={}, dirty_version=0
                    )
                    self.session.add(listing)
                listing.dirty_version = (listing.dirty_version or 0) + 1
                if not listing.dirty or listing.dirty_since is None:
                    listing.dirty = True
                    listing.dirty_since = self.now
        self.session.flush()

    def audit(self, action: str, subject: str, detail: Mapping[str, Any]) -> None:
        self.session.add(
            m.AuditEntry(
                at=self.now, actor=self.actor, action=action, subject=subject, detail=dict(detail)
            )
        )

    # ------------------------------------------------------------------ small reads and writes
    def _codes(self, sku_ids: Iterable[int]) -> dict[int, str]:
        ids = list(set(sku_ids))
        if not ids:
            return {}
        return {
            int(sku_id): str(code)
            for sku_id, code in self.session.execute(
                select(m.Sku.id, m.Sku.code).where(m.Sku.id.in_(ids))
            ).all()
        }

    def _on_hand(self, sku_id: int) -> int:
        return int(
            self.session.scalar(select(m.StockLevel.on_hand).where(m.StockLevel.sku_id == sku_id))
            or 0
        )

    def _reserved(self, sku_id: int) -> int:
        return int(
            self.session.scalar(
                select(func.coalesce(func.sum(m.Reservation.qty), 0)).where(
                    m.Reservation.sku_id == sku_id
                )
            )
            or 0
        )

    def _backordered(self, sku_id: int) -> int:
        return int(
            self.session.scalar(
                select(func.coalesce(func.sum(m.Backorder.qty_open), 0)).where(
                    m.Backorder.sku_id == sku_id
                )
            )
            or 0
        )

    def _live(self, order_line_id: int) -> int:
        reservation = self._reservation(order_line_id)
        backordered = self.session.scalar(
            select(func.coalesce(func.sum(m.Backorder.qty_open), 0)).where(
                m.Backorder.order_line_id == order_line_id
            )
        )
        return (reservation.qty if reservation else 0) + int(backordered or 0)

    def _reservation(self, order_line_id: int) -> m.Reservation | None:
        return self.session.scalar(
            select(m.Reservation).where(m.Reservation.order_line_id == order_line_id)
        )

    def _add_reservation(self, db_line: m.OrderLine, qty: int) -> None:
        reservation = self._reservation(db_line.id)
        if reservation is None:
            self.session.add(
                m.Reservation(order_line_id=db_line.id, sku_id=db_line.sku_id, qty=qty)
            )
        else:
            reservation.qty += qty
        self.session.flush()

    def _reduce_reservation(self, reservation: m.Reservation, qty: int) -> None:
        if qty >= reservation.qty:
            self.session.delete(reservation)
        else:
            reservation.qty -= qty
        self.session.flush()

    def _touch_writeback_for_line(self, order_line_id: int) -> None:
        row = self.session.execute(
            select(m.ChannelOrder.id, m.ChannelOrder.channel)
            .join(m.OrderLine, m.OrderLine.order_id == m.ChannelOrder.id)
            .where(m.OrderLine.id == order_line_id)
        ).one()
        self._touch_writeback(int(row[0]), str(row[1]))

    def _touch_writeback(self, order_id: int, channel: str) -> None:
        """The order's backorder state changed: queue a write-back to its channel (outbox)."""
        if channel not in self.listed_channels or order_id in self._touched:
            return
        self._touched.add(order_id)
        row = self.session.scalar(select(m.Writeback).where(m.Writeback.order_id == order_id))
        if row is None:
            self.session.add(
                m.Writeback(
                    order_id=order_id,
                    channel=channel,
                    status="pending",
                    version=1,
                    attempts=0,
                    updated_at=self.now,
                )
            )
        else:
            row.status = "pending"
            row.version += 1
            row.attempts = 0
            row.error = None
            row.updated_at = self.now
        self.session.flush()

    def _add_backorder(self, order_line_id: int, sku_id: int, qty: int, within: bool) -> None:
        self._touch_writeback_for_line(order_line_id)
        self.session.add(
            m.Backorder(
                order_line_id=order_line_id,
                sku_id=sku_id,
                qty_open=qty,
                qty_released=0,
                accepted_within_capacity=within,
                created_at=self.now,
            )
        )
        self.session.flush()


def _is_older(order: OrderInput, stored: m.ChannelOrder) -> bool:
    """Is `order` an older version than the stored one?

    Both channels stamp orders to the second, so two versions can share a stamp (a sale cancelled
    within its second). Orders only move forward (Shopify cannot reopen a cancelled order), so on
    a tie the version that would reopen a closed order is the older one; without this a late
    create re-reserves a cancelled order's units for good (its poll has the same event key).
    """
    if order.updated_at != stored.source_updated_at:
        return order.updated_at < stored.source_updated_at
    return stored.status != "open" and order.status == "open"


def _rule_dict(rule: EffectiveRule) -> dict[str, dict[str, Any]]:
    def item(value: Sourced[Any]) -> dict[str, Any]:
        raw = value.value
        return {"value": list(raw) if isinstance(raw, tuple) else raw, "source": value.source}

    return {
        "safety_buffer": item(rule.safety_buffer),
        "cap": item(rule.cap),
        "priority": item(rule.priority),
        "backorders_enabled": item(rule.backorders_enabled),
        "incoming_share": item(rule.incoming_share),
        "horizon_days": item(rule.horizon_days),
        "release_order": item(rule.release_order),
        "release_partial": item(rule.release_partial),
    }


def group_by_channel(released: Iterable[ReleasedUnits]) -> dict[str, list[ReleasedUnits]]:
    grouped: dict[str, list[ReleasedUnits]] = defaultdict(list)
    for item in released:
        grouped[item.channel].append(item)
    return dict(grouped)
