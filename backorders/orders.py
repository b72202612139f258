"""The order workflow (`channel_order`, `order_line`; their only writer): record a version of a
channel order, cancel, ship — reserving, backordering and freeing through stock's owners.

Order changes are applied as *target states* (the channel's current quantity and status), so
applying the same order version twice changes nothing, and an older version never overwrites a
newer one. Every call leaves a line's quantity = reserved + backordered + shipped + cancelled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Literal, cast

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from backorders.settle import settle
from backorders.split import Availability, LineDemand, split_lines
from stock import commitments, counts, listings, offers
from stock import models as m
from stock.tx import LedgerInputError, LedgerTx

OrderState = Literal["open", "fulfilled", "cancelled"]


@dataclass(frozen=True, slots=True)
class LineInput:
    external_line_id: str
    sku: str
    quantity: int


@dataclass(frozen=True, slots=True)
class OtherLineInput:
    """A line that is not stock (no SKU): kept with the order, never counted."""

    external_line_id: str
    title: str
    quantity: int
    # a pre-order line (a Shopify selling plan's deposit): units of this SKU, held as money
    # until its campaign entry is paid in full, then recorded as a stock line (stock_plan_lines)
    plan_sku: str | None = None


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
    other_lines: tuple[OtherLineInput, ...] = ()
    # the shop order pays for a campaign allocation: the attribute our payment request put on
    # it ("<entry id>:<proof>", connectors.base.PAYMENT_ATTRIBUTE); None for other orders
    payment_proof: str | None = None
    # the order pays a campaign deposit (a WooCommerce deposit product, a Shopify pre-order):
    # the sign-up it makes
    campaign_deposit: CampaignDeposit | None = None
    outstanding: Decimal | None = None  # what the customer still owes on it; None: not told
    email: str | None = None  # the customer's, for messages (issue #17)
    language: str | None = None


@dataclass(frozen=True, slots=True)
class CampaignDeposit:
    """A sign-up paid as a deposit on a shop: which campaign and variant, how many units, who,
    and whether the customer ticked acceptance of the payment terms at checkout."""

    campaign: str
    sku: str
    qty: int
    email: str
    accepted_terms: bool
    # a pre-order: the order's own plan lines are the units (stock once paid in full), not a
    # deposit product
    pre_order: bool = False
    mixed: bool = False  # plan lines of more than one variant or campaign (refused)


@dataclass
class Outcome:
    """What recording one order version did to it (per external line id)."""

    order_id: int | None = None
    applied: bool = True  # False when an older order version was ignored
    repeated: bool = False  # the version already held came again: nothing to do
    reserved: dict[str, int] = field(default_factory=dict)  # units reserved now
    backordered: dict[str, int] = field(default_factory=dict)  # new backorders
    beyond_capacity: dict[str, int] = field(default_factory=dict)


def prepare(tx: LedgerTx, orders: Sequence[OrderInput]) -> None:
    """Read what recording these orders needs, once for all of them: their SKUs (created when
    new), the stock rows (locked, in sku-id order), the stored orders with their lines and
    commitments. A batch of orders then records without a query per order."""
    codes = {line.sku for order in orders for line in order.lines}
    ids = counts.ensure_skus(tx, codes)
    # Lock first, read second: two versions of one new order (a webhook and a poll) share
    # SKUs, so the second waits here and then sees the order the first one created.
    counts.lock(tx, ids.values())
    offers.read_incoming(tx, ids.values())
    keys = {key for order in orders if (key := (order.channel, order.external_id)) not in tx.orders}
    if not keys:
        return
    tx.orders.update(dict.fromkeys(keys))
    by_channel: dict[str, list[str]] = {}
    for channel, external_id in keys:
        by_channel.setdefault(channel, []).append(external_id)
    for channel, external_ids in by_channel.items():
        for start in range(0, len(external_ids), 2000):
            for stored in tx.session.scalars(
                select(m.ChannelOrder)
                .where(
                    m.ChannelOrder.channel == channel,
                    m.ChannelOrder.external_id.in_(external_ids[start : start + 2000]),
                )
                .options(
                    selectinload(m.ChannelOrder.lines).selectinload(m.OrderLine.reservation),
                    selectinload(m.ChannelOrder.lines).selectinload(m.OrderLine.backorders),
                )
                .execution_options(populate_existing=True)
            ):
                tx.orders[(stored.channel, stored.external_id)] = stored
    # an edit may have dropped a line of another SKU: lock that too (a rare out-of-order
    # lock; PostgreSQL turns a resulting deadlock into an error the job retries)
    old_skus = {
        line.sku_id for key in keys if (stored := tx.orders[key]) is not None
        for line in stored.lines
    }  # fmt: skip
    counts.lock(tx, old_skus)
    missing = {sku_id for sku_id in old_skus if sku_id not in tx.codes}
    if missing:
        tx.remember_skus({code: sku_id for sku_id, code in counts.codes_of(tx, missing).items()})


def record_order(tx: LedgerTx, order: OrderInput) -> Outcome:
    """Apply one version of a channel order; older versions than the stored one are ignored."""
    _check_order(tx, order)
    prepare(tx, [order])
    sku_ids = {line.sku: tx.sku_ids[line.sku] for line in order.lines}
    existing = tx.orders[(order.channel, order.external_id)]
    old_lines: list[m.OrderLine] = list(existing.lines) if existing is not None else []
    all_sku_ids = set(sku_ids.values()) | {line.sku_id for line in old_lines}
    if existing is not None and _is_older(order, existing):
        tx.audit(
            "order.stale_ignored",
            f"{order.channel}/{order.external_id}",
            {"received": order.updated_at.isoformat()},
        )
        return Outcome(order_id=existing.id, applied=False)
    if existing is not None and _same_version(order, existing, old_lines, sku_ids):
        # the version we hold, again (a webhook and a poll of one change, a redelivery)
        return Outcome(order_id=existing.id, applied=False, repeated=True)
    db_order = _store_order(tx, order, existing)
    outcome = Outcome(order_id=db_order.id)
    growth: list[tuple[m.OrderLine, int]] = []
    for db_line, current_quantity in _target_lines(order, db_order, old_lines, sku_ids):
        if order.status == "fulfilled":
            _ship_line(tx, db_line, current_quantity, tx.codes[db_line.sku_id])
            continue
        target_live = 0 if order.status == "cancelled" else current_quantity - db_line.shipped
        target_live = max(target_live, 0)
        live = commitments.live_units(db_line)
        if target_live > live:
            growth.append((db_line, target_live - live))
        elif target_live < live:
            commitments.cancel_units(tx, db_line, live - target_live)
            db_line.cancelled += live - target_live
            tx.effects.release_due.add(db_line.sku_id)  # freed units may fill others' backorders
    if growth:
        _split_growth(tx, order.channel, growth, outcome)
    # settle now, not only at commit: the next order of a batch must not take units this one
    # freed for the backorders waiting on them
    settle(tx)
    listings.mark_dirty(tx, all_sku_ids)
    tx.audit(
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
    return outcome


def cancel_order(tx: LedgerTx, channel: str, external_id: str) -> Outcome:
    db_order = find(tx, channel, external_id)
    if db_order is None:
        raise LedgerInputError(f"{channel}/{external_id}", "no such order")
    if db_order.status == "fulfilled":
        raise LedgerInputError(
            f"{channel}/{external_id}", "order is fulfilled: its units were shipped"
        )
    codes = counts.codes_of(tx, {line.sku_id for line in db_order.lines})
    return record_order(
        tx,
        OrderInput(
            channel=channel,
            external_id=external_id,
            placed_at=db_order.placed_at,
            updated_at=max(tx.now, db_order.source_updated_at),
            status="cancelled",
            lines=tuple(
                LineInput(line.external_line_id, codes[line.sku_id], line.quantity)
                for line in db_order.lines
            ),
            customer_key=db_order.customer_key,
            tier=db_order.tier,
            source_status="cancelled",
        ),
    )


def plan_lines_as_stock(order: OrderInput) -> OrderInput:
    """The order with its pre-order lines (held as money) as stock lines. Pure."""
    return replace(
        order,
        lines=order.lines
        + tuple(
            LineInput(o.external_line_id, o.plan_sku, o.quantity)
            for o in order.other_lines
            if o.plan_sku
        ),
        other_lines=tuple(o for o in order.other_lines if not o.plan_sku),
    )


def stock_plan_lines(tx: LedgerTx, channel: str, external_id: str) -> Outcome:
    """The pre-order lines of a stored order (held as money) become stock lines, reserving
    their units now: its campaign entry was paid in full. The same order version otherwise."""
    db_order = find(tx, channel, external_id)
    if db_order is None:
        raise LedgerInputError(f"{channel}/{external_id}", "no such order")
    codes = counts.codes_of(tx, {line.sku_id for line in db_order.lines})
    stored = OrderInput(
        channel=channel, external_id=external_id, placed_at=db_order.placed_at,
        updated_at=db_order.source_updated_at, status=cast(OrderState, db_order.status),
        lines=tuple(LineInput(line.external_line_id, codes[line.sku_id], line.quantity)
                    for line in db_order.lines),
        customer_key=db_order.customer_key, tier=db_order.tier,
        source_status=db_order.source_status,
        other_lines=tuple(OtherLineInput(o["line"], o["title"], o["quantity"], o.get("plan_sku"))
                          for o in db_order.other_lines or ()),
    )  # fmt: skip
    return record_order(tx, plan_lines_as_stock(stored))


@dataclass(frozen=True, slots=True)
class ShipShortfall:
    """A SKU of a ship request the order cannot ship from its reservations."""

    sku: str
    requested: int
    reserved: int
    backordered: int
    on_order: bool = True


class NotShippable(LedgerInputError):
    """A ship request refused as a whole (nothing booked); carries every SKU it could not ship."""

    def __init__(self, subject: str, message: str, items: Sequence[ShipShortfall] = ()) -> None:
        super().__init__(subject, message)
        self.items = tuple(items)


def ship_order(
    tx: LedgerTx, channel: str, external_id: str, units: Mapping[str, int] | None = None
) -> dict[str, int]:
    """Ship reserved units of an order we record ourselves (a manual channel): SKU -> units, or
    every reserved unit. Each shipped unit leaves its reservation for the line's `shipped` and
    leaves on_hand (counts.ship_units, as a fulfilled channel order does), so a count taken
    afterwards finds no phantom oversell. Backordered units stay waiting. The order becomes
    fulfilled when nothing of it is left reserved or backordered. Refused as a whole (nothing
    booked) when a SKU is not on the order or asks for more than its lines reserve. Returns
    the units shipped per external line id.
    """
    subject = f"{channel}/{external_id}"
    if channel not in tx.channels:
        raise LedgerInputError(subject, f"unknown channel {channel!r}")
    if channel in tx.listed_channels:
        raise LedgerInputError(subject, "orders of this channel are shipped by the channel")
    found = find(tx, channel, external_id)
    if found is None:
        raise LedgerInputError(subject, "no such order")
    # lock the stock rows (sku-id order) before reading the commitments they count
    sku_ids = {line.sku_id for line in found.lines}
    counts.lock(tx, sku_ids)
    tx.remember_skus({code: sku_id for sku_id, code in counts.codes_of(tx, sku_ids).items()})
    db_order = _reload(tx, found.id)
    if db_order.status != "open":
        raise LedgerInputError(subject, f"order is {db_order.status}; nothing to ship")
    plan = _ship_plan(subject, db_order, units, tx.codes)
    shipped: dict[str, int] = {}
    by_sku: dict[str, int] = {}
    for db_line, qty in plan:
        code = tx.codes[db_line.sku_id]
        commitments.unreserve(tx, db_line, qty)
        _ship_units(tx, db_line, qty, code)
        shipped[db_line.external_line_id] = qty
        by_sku[code] = by_sku.get(code, 0) + qty
    if all(commitments.live_units(line) == 0 for line in db_order.lines):
        db_order.status = "fulfilled"
        db_order.source_status = "fulfilled"
    # a later version of this order (a cancel) must count as newer than this change
    db_order.source_updated_at = max(tx.now, db_order.source_updated_at)
    settle(tx)
    listings.mark_dirty(tx, sku_ids)
    tx.audit("order.ship", subject, {"shipped": by_sku, "status": db_order.status})
    return shipped


def _reload(tx: LedgerTx, order_id: int) -> m.ChannelOrder:
    """The order with its lines and their commitments as the database holds them now."""
    order = tx.session.scalar(
        select(m.ChannelOrder)
        .where(m.ChannelOrder.id == order_id)
        .options(
            selectinload(m.ChannelOrder.lines).selectinload(m.OrderLine.reservation),
            selectinload(m.ChannelOrder.lines).selectinload(m.OrderLine.backorders),
        )
        .execution_options(populate_existing=True)
    )
    if order is None:
        raise LookupError(f"order {order_id} vanished")
    return order


def _ship_plan(
    subject: str,
    db_order: m.ChannelOrder,
    units: Mapping[str, int] | None,
    codes: Mapping[int, str],
) -> list[tuple[m.OrderLine, int]]:
    """(line, units to ship) in line order; every problem of the request raised at once."""
    lines_of: dict[str, list[m.OrderLine]] = {}
    for line in db_order.lines:
        lines_of.setdefault(codes[line.sku_id], []).append(line)

    def backordered(lines: Sequence[m.OrderLine]) -> int:
        return sum(row.qty_open for line in lines for row in line.backorders)

    if units is None:
        plan = [
            (line, commitments.reserved_units(line))
            for line in db_order.lines
            if commitments.reserved_units(line) > 0
        ]
        if not plan:
            waiting = backordered(db_order.lines)
            raise NotShippable(
                subject,
                "nothing is reserved to ship"
                + (f" ({waiting} units backordered, waiting for stock)" if waiting else ""),
            )
        return plan
    if not units:
        raise NotShippable(
            subject, "name at least one SKU=QTY, or none to ship every reserved unit"
        )
    problems: list[str] = []
    short: list[ShipShortfall] = []
    plan = []
    for code, qty in units.items():
        lines = lines_of.get(code)
        if lines is None:
            problems.append(f"{code} is not on this order")
            short.append(ShipShortfall(code, qty, 0, 0, on_order=False))
            continue
        reserved = sum(commitments.reserved_units(line) for line in lines)
        if qty <= 0:
            problems.append(f"{code}: quantity must be positive, got {qty}")
            continue
        if qty > reserved:
            waiting = backordered(lines)
            problems.append(
                f"{code}: cannot ship {qty}, only {reserved} reserved ({waiting} backordered)"
            )
            short.append(ShipShortfall(code, qty, reserved, waiting))
            continue
        left = qty
        for line in lines:
            take = min(left, commitments.reserved_units(line))
            if take:
                plan.append((line, take))
                left -= take
    if problems:
        raise NotShippable(subject, "; ".join(problems) + "; nothing shipped", short)
    plan.sort(key=lambda item: item[0].id)
    return plan


def known_versions(
    session: Session, channel: str, external_ids: Sequence[str]
) -> dict[str, tuple[datetime, OrderState]]:
    """The version (channel's update stamp, state) the ledger holds of each of these orders."""
    if not external_ids:
        return {}
    rows = session.execute(
        select(
            m.ChannelOrder.external_id, m.ChannelOrder.source_updated_at, m.ChannelOrder.status
        ).where(m.ChannelOrder.channel == channel, m.ChannelOrder.external_id.in_(external_ids))
    ).all()
    return {external_id: (at, cast(OrderState, status)) for external_id, at, status in rows}


def find(tx: LedgerTx, channel: str, external_id: str) -> m.ChannelOrder | None:
    return tx.session.scalar(
        select(m.ChannelOrder).where(
            m.ChannelOrder.channel == channel, m.ChannelOrder.external_id == external_id
        )
    )


def _check_order(tx: LedgerTx, order: OrderInput) -> None:
    subject = f"{order.channel}/{order.external_id}"
    if order.channel not in tx.channels:
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


def _store_order(
    tx: LedgerTx, order: OrderInput, existing: m.ChannelOrder | None
) -> m.ChannelOrder:
    other_lines = [
        {"line": o.external_line_id, "title": o.title, "quantity": o.quantity}
        | ({"plan_sku": o.plan_sku} if o.plan_sku else {})
        for o in order.other_lines
    ] or None
    if existing is not None:
        existing.status = order.status
        existing.source_status = order.source_status
        existing.other_lines = other_lines
        existing.source_updated_at = order.updated_at.astimezone(UTC)
        existing.customer_key = order.customer_key or existing.customer_key
        existing.tier = order.tier or existing.tier
        existing.email = order.email or existing.email
        existing.language = order.language or existing.language
        return existing
    db_order = m.ChannelOrder(
        channel=order.channel,
        external_id=order.external_id,
        placed_at=order.placed_at.astimezone(UTC),  # as the database returns it
        customer_key=order.customer_key,
        tier=order.tier,
        status=order.status,
        source_status=order.source_status,
        source_updated_at=order.updated_at.astimezone(UTC),
        other_lines=other_lines,
        email=order.email,
        language=order.language,
    )
    tx.session.add(db_order)
    tx.orders[(order.channel, order.external_id)] = db_order
    return db_order


def _target_lines(
    order: OrderInput,
    db_order: m.ChannelOrder,
    old_lines: Sequence[m.OrderLine],
    sku_ids: Mapping[str, int],
) -> list[tuple[m.OrderLine, int]]:
    """Each stored line with the quantity the channel now says; new lines are created."""
    by_external = {line.external_line_id: line for line in old_lines}
    targets: list[tuple[m.OrderLine, int]] = []
    for line in order.lines:
        db_line = by_external.pop(line.external_line_id, None)
        if db_line is None:
            db_line = m.OrderLine(
                external_line_id=line.external_line_id,
                sku_id=sku_ids[line.sku],
                quantity=0,
                shipped=0,
                cancelled=0,
            )
            db_order.lines.append(db_line)
        elif db_line.sku_id != sku_ids[line.sku]:
            raise LedgerInputError(
                f"{order.channel}/{order.external_id}",
                f"line {line.external_line_id} changed SKU; the ledger keeps one SKU per line",
            )
        targets.append((db_line, line.quantity))
    # lines that disappeared from the order were removed by an edit
    targets.extend((db_line, 0) for db_line in by_external.values())
    return targets


def _split_growth(
    tx: LedgerTx,
    channel: str,
    growth: Sequence[tuple[m.OrderLine, int]],
    outcome: Outcome,
) -> None:
    skus = {line.sku_id for line, _ in growth}
    today = tx.now.date()
    availability = {}
    for sku_id, figures in offers.locked_figures(tx, skus).items():
        offer = figures.offer(tx.rules.rule_for(channel, tx.codes[sku_id]), today)
        availability[tx.codes[sku_id]] = Availability(
            offer.sellable_now, max(offer.incoming_capacity, 0)
        )
    by_key = {str(index): line for index, (line, _) in enumerate(growth)}
    demand = [
        LineDemand(str(index), tx.codes[line.sku_id], extra)
        for index, (line, extra) in enumerate(growth)
    ]
    for split in split_lines(demand, availability):
        db_line = by_key[split.key]
        db_line.quantity += split.reserve + split.backordered
        ext = db_line.external_line_id
        if split.reserve:
            commitments.reserve(tx, db_line, split.reserve)
            outcome.reserved[ext] = outcome.reserved.get(ext, 0) + split.reserve
        if split.backorder_within:
            commitments.backorder(tx, db_line, split.backorder_within, within_capacity=True)
            outcome.backordered[ext] = outcome.backordered.get(ext, 0) + split.backorder_within
        if split.backorder_beyond:
            commitments.backorder(tx, db_line, split.backorder_beyond, within_capacity=False)
            outcome.backordered[ext] = outcome.backordered.get(ext, 0) + split.backorder_beyond
            outcome.beyond_capacity[ext] = split.backorder_beyond
            tx.audit(
                "backorder.beyond_capacity",
                tx.codes[db_line.sku_id],
                {"channel": channel, "line": ext, "units": split.backorder_beyond},
            )


def _ship_line(tx: LedgerTx, db_line: m.OrderLine, current_quantity: int, code: str) -> None:
    """Fulfilled: live units become shipped; units beyond the live ones ship from on_hand."""
    to_ship = max(current_quantity - db_line.shipped, 0)
    live = commitments.live_units(db_line)
    if live > to_ship:  # the channel shipped less than was live: the rest was refunded
        commitments.cancel_units(tx, db_line, live - to_ship)
        db_line.cancelled += live - to_ship
        live = to_ship
    commitments.unreserve(tx, db_line, min(commitments.reserved_units(db_line), to_ship))
    commitments.close_backorders(tx, db_line)
    db_line.quantity += max(to_ship - live, 0)
    _ship_units(tx, db_line, to_ship, code)


def _ship_units(tx: LedgerTx, db_line: m.OrderLine, units: int, code: str) -> None:
    """Units of the line (already out of its commitments) left the warehouse: counted shipped,
    taken off on_hand (reserved units leave on_hand, and so do the rest: unreserved stock;
    beyond it, oversold)."""
    db_line.shipped += units
    counts.ship_units(tx, db_line.sku_id, code, units)


def _same_version(
    order: OrderInput,
    stored: m.ChannelOrder,
    old_lines: list[m.OrderLine],
    sku_ids: Mapping[str, int],
) -> bool:
    """Is `order` exactly the version the ledger holds (stamp, state and every line)?"""
    if order.updated_at != stored.source_updated_at or order.status != stored.status:
        return False
    held = {line.external_line_id: (line.sku_id, line.quantity) for line in old_lines}
    given = {line.external_line_id: (sku_ids[line.sku], line.quantity) for line in order.lines}
    return held == given


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
