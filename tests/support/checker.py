"""Shared by the fault suite: ONE checker, run after every scenario.

The checker compares what the channels (the sandboxes' `/_sandbox/state`) say with the ledger, and
states the guarantees of issue #6 precisely:

1. No order lost: every order a sandbox accepted is a `channel_order` with the channel's status
   (Shopify: cancelled_at / fulfillment_status; WooCommerce: STATUS_MAP of the connector) and, per
   line, the channel's current quantity live (reserved + backordered) when open, nothing live when
   cancelled, everything shipped when fulfilled. The ledger holds no order the channels do not.
2. No unit allocated twice, checked on every sample (these hold at every instant, mid-flight too):
   - per line: quantity == reserved + backordered + shipped + cancelled;
   - per line: Σ backorder.qty_released <= reserved + shipped + cancelled (a released unit became
     a reservation of that same line, and nothing else did);
   - per SKU: Σ reservations <= on_hand, on_hand >= 0, no negative open backorder;
   - per SKU, conservation: on_hand == units in (stock set/adjust deltas from the audit trail
     + Σ po_line.received) - Σ shipped + oversold (no unit appears or vanishes);
   - per SKU: Σ qty_released <= units in + Σ cancelled (a release only hands out received or
     freed units);
   and, once settled, per SKU: Σ over the channels' open orders of the line quantities (the units
   owed) == Σ reserved + Σ backordered of those orders' lines.
3. Convergence: each sandbox's quantity for each SKU equals `Ledger.offer(channel, sku)`; no inbox
   event pending (failed ones only as many as the scenario deliberately made), no write-back
   pending or failed, no listing dirty; Shopify holds exist exactly for orders with open
   backorders, and a WooCommerce open order is on-hold exactly when it has open backorders.

`Checker.wait_consistent` samples until (1)-(3) hold or a deadline passes, failing at once when a
sample breaks (2), or when a channel has shown more than the ledger offers for longer than
OVERSHOW_BOUND across its samples (issue #13: the shop must not keep selling units the ledger
no longer has).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from connectors.base import OrderStatus
from connectors.woocommerce import LATE_WRITE_TIMEOUTS, offered_quantity
from connectors.woocommerce_parse import STATUS_MAP
from rules import Config
from stock import inbox, offers
from stock import models as m
from sync.context import AppContext
from sync.stack import DAEMON_INTERVALS

SHOP = "shop"
WOO = "woo"
# How long a channel may show more than the ledger offers once a fault is over: the stacks'
# push interval, plus the window in which an unanswered WooCommerce write may still land
# (a few request timeouts: connectors/woocommerce.py), plus the sampling period and a margin.
CHANNEL_TIMEOUT_S = 10.0  # sync.runtime.build_channel's default
SAMPLE_SLACK_S = 1.0
OVERSHOW_BOUND = (
    DAEMON_INTERVALS["push_interval_s"] + LATE_WRITE_TIMEOUTS * CHANNEL_TIMEOUT_S + SAMPLE_SLACK_S
)
_LEDGER_STATUS = {
    OrderStatus.OPEN: "open",
    OrderStatus.FULFILLED: "fulfilled",
    OrderStatus.CANCELLED: "cancelled",
}


# ------------------------------------------------------------------------------ channel side
@dataclass(frozen=True)
class ChannelLine:
    external_line_id: str
    sku: str
    quantity: int  # the channel's current quantity (after edits and refunds)


@dataclass(frozen=True)
class ChannelOrderView:
    channel: str
    external_id: str
    status: str  # open, fulfilled, cancelled: the ledger's words
    lines: tuple[ChannelLine, ...]
    on_hold: bool  # Shopify: a fulfillment hold exists; WooCommerce: status on-hold


@dataclass(frozen=True)
class ChannelView:
    orders: dict[tuple[str, str], ChannelOrderView]
    quantities: dict[str, dict[str, int]]  # channel -> sku -> quantity the channel offers


def _get_json(url: str) -> Any:
    reply = requests.get(url, timeout=10)
    reply.raise_for_status()
    return reply.json()


def shopify_view(state: Mapping[str, Any], channel: str = SHOP) -> ChannelView:
    held = {int(fo["order_id"]) for fo in state["fulfillment_orders"] if fo["holds"]}
    orders: dict[tuple[str, str], ChannelOrderView] = {}
    for order in state["orders"]:
        if order.get("cancelled_at") is not None:
            status = "cancelled"
        elif order.get("fulfillment_status") == "fulfilled":
            status = "fulfilled"
        else:
            status = "open"
        lines = tuple(
            ChannelLine(str(li["id"]), str(li["sku"]), int(li["current_quantity"]))
            for li in order["line_items"]
            if li.get("sku")
        )
        key = (channel, str(order["id"]))
        orders[key] = ChannelOrderView(channel, key[1], status, lines, int(order["id"]) in held)
    quantities = {sku: int(level["available"]) for sku, level in state["inventory"].items()}
    return ChannelView(orders, {channel: quantities})


def woo_view(state: Mapping[str, Any], channel: str = WOO) -> ChannelView:
    orders: dict[tuple[str, str], ChannelOrderView] = {}
    for order in state["orders"]:
        status = _LEDGER_STATUS[STATUS_MAP[order["status"]]]
        lines = tuple(
            ChannelLine(str(li["id"]), str(li["sku"]), int(li["quantity"]))
            for li in order["lines"]
            if li.get("sku")
        )
        key = (channel, str(order["id"]))
        orders[key] = ChannelOrderView(channel, key[1], status, lines, order["status"] == "on-hold")
    return ChannelView(orders, {channel: woo_offered(state)})


def woo_offered(state: Mapping[str, Any]) -> dict[str, int]:
    """What the WooCommerce sandbox offers per SKU as stocksync reads it: stock_quantity plus
    the incoming units a product on backorder leaves out of it (issue #17)."""
    found: dict[str, int] = {}
    for product in state["products"]:
        quantity = offered_quantity(product)
        if product["sku"] and product["type"] != "variable" and quantity is not None:
            found[str(product["sku"])] = quantity
    return found


def fetch_channels(shop_url: str, woo_url: str) -> ChannelView:
    shop = shopify_view(_get_json(f"{shop_url}/_sandbox/state"))
    woo = woo_view(_get_json(f"{woo_url}/_sandbox/state"))
    return ChannelView({**shop.orders, **woo.orders}, {**shop.quantities, **woo.quantities})


# ------------------------------------------------------------------------------ ledger side
@dataclass
class LineRow:
    order_key: tuple[str, str]
    external_line_id: str
    sku: str
    quantity: int
    reserved: int
    backordered: int
    released: int
    shipped: int
    cancelled: int

    @property
    def live(self) -> int:
        return self.reserved + self.backordered


@dataclass
class SkuRow:
    on_hand: int
    oversold: int
    units_in: int  # stock set/adjust deltas + units received on POs


@dataclass
class LedgerView:
    orders: dict[tuple[str, str], str]  # (channel, external id) -> status
    lines: list[LineRow]
    skus: dict[str, SkuRow]
    offers: dict[str, dict[str, int]]  # channel -> sku -> offered
    inbox_pending: int
    inbox_failed: int
    inbox_total: int
    writebacks_open: dict[str, int]  # status -> count, for pending and failed
    dirty_listings: list[str]

    def fingerprint(self) -> tuple[Any, ...]:
        """What must not change when a duplicate, replayed or forged webhook arrives."""
        lines = sorted(
            (
                line.order_key,
                line.external_line_id,
                line.quantity,
                line.reserved,
                line.backordered,
                line.released,
                line.shipped,
                line.cancelled,
            )
            for line in self.lines
        )
        skus = sorted((sku, row.on_hand, row.oversold) for sku, row in self.skus.items())
        return (sorted(self.orders.items()), lines, skus, self.inbox_total)


def read_ledger(ctx: AppContext, channels: tuple[str, ...]) -> LedgerView:
    """Everything the checker needs, read in ONE snapshot (REPEATABLE READ on PostgreSQL)."""
    with ctx.sessions() as session, session.begin():
        if session.get_bind().dialect.name == "postgresql":
            session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        return _read(session, ctx.config, channels)


def _sum_by(session: Session, column: Any, key: Any) -> dict[int, int]:
    rows = session.execute(select(key, func.coalesce(func.sum(column), 0)).group_by(key)).all()
    return {int(k): int(v) for k, v in rows}


def _read(session: Session, config: Config, channels: tuple[str, ...]) -> LedgerView:
    codes = {int(i): str(c) for i, c in session.execute(select(m.Sku.id, m.Sku.code)).all()}
    orders = {
        (str(ch), str(ext)): str(status)
        for ch, ext, status in session.execute(
            select(m.ChannelOrder.channel, m.ChannelOrder.external_id, m.ChannelOrder.status)
        ).all()
    }
    reserved = _sum_by(session, m.Reservation.qty, m.Reservation.order_line_id)
    backordered = _sum_by(session, m.Backorder.qty_open, m.Backorder.order_line_id)
    released = _sum_by(session, m.Backorder.qty_released, m.Backorder.order_line_id)
    lines = [
        LineRow(
            (str(ch), str(ext)),
            str(line.external_line_id),
            codes[line.sku_id],
            line.quantity,
            reserved.get(line.id, 0),
            backordered.get(line.id, 0),
            released.get(line.id, 0),
            line.shipped,
            line.cancelled,
        )
        for line, ch, ext in session.execute(
            select(m.OrderLine, m.ChannelOrder.channel, m.ChannelOrder.external_id).join(
                m.ChannelOrder, m.ChannelOrder.id == m.OrderLine.order_id
            )
        ).all()
    ]
    units_in: dict[str, int] = defaultdict(int)
    for subject, detail in session.execute(
        select(m.AuditEntry.subject, m.AuditEntry.detail).where(
            m.AuditEntry.action.in_(("stock.set", "stock.adjust"))
        )
    ).all():
        units_in[str(subject)] += int(detail["after"]) - int(detail["before"])
    for sku_id, received in _sum_by(session, m.PoLine.received, m.PoLine.sku_id).items():
        units_in[codes[sku_id]] += received
    skus = {
        codes[level.sku_id]: SkuRow(level.on_hand, level.oversold, units_in[codes[level.sku_id]])
        for level in session.scalars(select(m.StockLevel))
    }
    today = datetime.now(UTC).date()
    listed = {sku_id: code for sku_id, code in codes.items() if code in skus}
    offered = {
        ch: {
            codes[sku_id]: breakdown.offered
            for sku_id, breakdown in offers.breakdowns(session, config, ch, listed, today).items()
        }
        for ch in channels
    }
    events = inbox.counts(session)
    inbox_pending, inbox_failed = events["pending"], events["failed"]
    inbox_total = session.scalar(select(func.count()).select_from(m.InboxEvent))
    writebacks = dict(
        session.execute(
            select(m.Writeback.status, func.count())
            .where(m.Writeback.status != "done")
            .group_by(m.Writeback.status)
        ).all()
    )
    dirty = [
        f"{ch}:{codes[sku_id]}"
        for ch, sku_id in session.execute(
            select(m.Listing.channel, m.Listing.sku_id).where(m.Listing.dirty.is_(True))
        ).all()
    ]
    return LedgerView(
        orders,
        lines,
        skus,
        offered,
        int(inbox_pending or 0),
        int(inbox_failed or 0),
        int(inbox_total or 0),
        {str(k): int(v) for k, v in writebacks.items()},
        sorted(dirty),
    )


# ------------------------------------------------------------------------------ the checks
def safety_problems(view: LedgerView) -> list[str]:
    """(2): must hold in every snapshot, while faults are still going on."""
    problems: list[str] = []
    reserved: dict[str, int] = defaultdict(int)
    released: dict[str, int] = defaultdict(int)
    shipped: dict[str, int] = defaultdict(int)
    cancelled: dict[str, int] = defaultdict(int)
    for line in view.lines:
        where = f"{line.order_key[0]}/{line.order_key[1]} line {line.external_line_id}"
        total = line.reserved + line.backordered + line.shipped + line.cancelled
        if line.quantity != total:
            problems.append(
                f"{where}: quantity {line.quantity} != reserved {line.reserved} + backordered "
                f"{line.backordered} + shipped {line.shipped} + cancelled {line.cancelled}"
            )
        if line.released > line.reserved + line.shipped + line.cancelled:
            problems.append(f"{where}: {line.released} released but only {total} allocated")
        if min(line.reserved, line.backordered, line.shipped, line.cancelled) < 0:
            problems.append(f"{where}: a negative count {line}")
        reserved[line.sku] += line.reserved
        released[line.sku] += line.released
        shipped[line.sku] += line.shipped
        cancelled[line.sku] += line.cancelled
    for sku, row in view.skus.items():
        if row.on_hand < 0:
            problems.append(f"{sku}: on_hand {row.on_hand} < 0")
        if reserved[sku] > row.on_hand:
            problems.append(f"{sku}: {reserved[sku]} reserved > {row.on_hand} on hand")
        expected = row.units_in - shipped[sku] + row.oversold
        if row.on_hand != expected:
            problems.append(
                f"{sku}: on_hand {row.on_hand} != units in {row.units_in} - shipped "
                f"{shipped[sku]} + oversold {row.oversold} (a unit appeared or vanished)"
            )
        if released[sku] > row.units_in + cancelled[sku]:
            problems.append(
                f"{sku}: {released[sku]} released > {row.units_in} units in + "
                f"{cancelled[sku]} freed"
            )
    return problems


def order_problems(view: LedgerView, channels: ChannelView) -> list[str]:
    """(1) and the units owed: every channel order in the ledger, with its status and lines."""
    problems: list[str] = []
    by_order: dict[tuple[str, str], dict[str, LineRow]] = defaultdict(dict)
    for line in view.lines:
        by_order[line.order_key][line.external_line_id] = line
    owed: dict[str, int] = defaultdict(int)
    held: dict[str, int] = defaultdict(int)
    for key, order in channels.orders.items():
        name = f"{key[0]}/{key[1]}"
        status = view.orders.get(key)
        if status is None:
            problems.append(f"{name}: the channel has it ({order.status}), the ledger does not")
            continue
        if status != order.status:
            problems.append(f"{name}: ledger status {status}, channel {order.status}")
        rows = dict(by_order.get(key, {}))
        for line in order.lines:
            row = rows.pop(line.external_line_id, None)
            if row is None:
                problems.append(f"{name} line {line.external_line_id}: missing in the ledger")
                continue
            if row.sku != line.sku:
                problems.append(f"{name} line {line.external_line_id}: sku {row.sku}/{line.sku}")
            want_live = line.quantity - row.shipped if order.status == "open" else 0
            if row.live != want_live:
                problems.append(
                    f"{name} line {line.external_line_id} ({order.status}): "
                    f"{row.live} live in the ledger, channel owes {want_live}"
                )
            if order.status == "fulfilled" and row.shipped != line.quantity:
                problems.append(f"{name} line {line.external_line_id}: shipped {row.shipped}")
            if order.status == "open":
                owed[line.sku] += line.quantity - row.shipped
        for row in rows.values():
            if row.live:
                problems.append(f"{name} line {row.external_line_id}: live, not on the channel")
        for row in by_order.get(key, {}).values():
            held[row.sku] += row.live
    extra = set(view.orders) - set(channels.orders)
    problems.extend(f"{ch}/{ext}: in the ledger, unknown to the channel" for ch, ext in extra)
    for sku in sorted(set(owed) | set(held)):
        if owed[sku] != held[sku]:
            problems.append(
                f"{sku}: channels' open orders owe {owed[sku]}, ledger holds {held[sku]} "
                "reserved + backordered"
            )
    return problems


def convergence_problems(
    view: LedgerView, channels: ChannelView, expected_failed: int = 0
) -> list[str]:
    """(3): channels show the offers, nothing left to do, holds match backorders."""
    problems: list[str] = []
    for channel, channel_offers in view.offers.items():
        shown = channels.quantities.get(channel, {})
        for sku, offered in sorted(channel_offers.items()):
            if sku in shown and shown[sku] != offered:
                problems.append(f"{channel}:{sku} shows {shown[sku]}, ledger offers {offered}")
    if view.inbox_pending:
        problems.append(f"{view.inbox_pending} inbox events unprocessed")
    if view.inbox_failed != expected_failed:
        problems.append(f"{view.inbox_failed} inbox events failed, expected {expected_failed}")
    if view.writebacks_open:
        problems.append(f"write-backs not done: {view.writebacks_open}")
    if view.dirty_listings:
        problems.append(f"dirty listings: {view.dirty_listings}")
    waiting: dict[tuple[str, str], int] = defaultdict(int)
    for line in view.lines:
        waiting[line.order_key] += line.backordered
    for key, order in channels.orders.items():
        if order.status == "open" and order.on_hold != bool(waiting[key]):
            problems.append(
                f"{key[0]}/{key[1]}: on hold {order.on_hold} on the channel, "
                f"{waiting[key]} units backordered in the ledger"
            )
    return problems


@dataclass
class Report:
    samples: int
    seconds: float
    orders: int
    skus: int


@dataclass
class Checker:
    """The one checker: `ctx` reads the ledger, the sandbox URLs give the channels' truth."""

    ctx: AppContext
    shop_url: str
    woo_url: str
    channels: tuple[str, ...] = (SHOP, WOO)
    history: list[str] = field(default_factory=list)

    # Once a fault is over, no channel may show more than the ledger offers for longer than
    # this (seconds): one push interval plus the in-flight window of a late write, plus the
    # sampling period. None: not checked.
    overshow_bound: float | None = field(default_factory=lambda: OVERSHOW_BOUND)
    _over_since: dict[tuple[str, str], float] = field(default_factory=dict)

    def problems(self, expected_failed: int = 0) -> tuple[list[str], list[str]]:
        """(safety problems, other problems) of one sample."""
        view = read_ledger(self.ctx, self.channels)
        channels = fetch_channels(self.shop_url, self.woo_url)
        broken = safety_problems(view) + self._overshown_too_long(view, channels)
        return broken, order_problems(view, channels) + convergence_problems(
            view, channels, expected_failed
        )

    def _overshown_too_long(self, view: LedgerView, channels: ChannelView) -> list[str]:
        """Channel quantities above the ledger's offer for longer than `overshow_bound`, over
        the samples of one `wait_consistent` (each sample, not only the last)."""
        if self.overshow_bound is None:
            return []
        now = time.monotonic()
        over: set[tuple[str, str]] = set()
        for channel, channel_offers in view.offers.items():
            shown = channels.quantities.get(channel, {})
            for sku, offered in channel_offers.items():
                if sku in shown and shown[sku] > offered:
                    over.add((channel, sku))
        self._over_since = {key: self._over_since.get(key, now) for key in over}
        return [
            f"{channel}:{sku} has shown more than the ledger offers for {now - since:.1f}s "
            f"(bound {self.overshow_bound}s)"
            for (channel, sku), since in sorted(self._over_since.items())
            if now - since > self.overshow_bound
        ]

    def assert_safe(self) -> None:
        """(2) alone, on one snapshot: for use while faults are going on."""
        broken = safety_problems(read_ledger(self.ctx, self.channels))
        assert not broken, "a unit was allocated twice or lost:\n" + "\n".join(broken)

    def wait_consistent(
        self, timeout: float = 60.0, expected_failed: int = 0, what: str = "scenario"
    ) -> Report:
        started = time.monotonic()
        deadline = started + timeout
        samples = 0
        self._over_since = {}
        last: list[str] = []
        while True:
            samples += 1
            try:
                broken, pending = self.problems(expected_failed)
            except (OperationalError, requests.RequestException) as exc:
                broken, pending = [], [f"cannot read yet: {exc!r:.300}"]
            assert not broken, f"{what}: invariant broken:\n" + "\n".join(broken)
            if not pending:
                view = read_ledger(self.ctx, self.channels)
                report = Report(
                    samples, time.monotonic() - started, len(view.orders), len(view.skus)
                )
                self.history.append(f"{what}: {report}")
                return report
            last = pending
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{what}: not consistent after {timeout}s ({samples} samples):\n"
                    + "\n".join(last[:40])
                )
            time.sleep(0.25)
