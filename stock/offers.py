"""The offered quantity, read for one SKU or many (read only; DESIGN §3).

The figures of a set of SKUs come from four grouped reads (stock rows, Σ reservations,
Σ open backorders, open PO lines), whatever the number of SKUs; the formula is the pure
stock.engine applied per (channel, SKU) with the rule resolved for it.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from rules import DEFAULT_SOURCE, EffectiveRule, RuleSet, Sourced
from stock import campaigns, counts, pools, supplier_stats, suppliers
from stock import models as m
from stock.engine import (
    IncomingLine,
    OfferBreakdown,
    OfferInputs,
    PoolTerms,
    SupplierFill,
    auto_share,
    auto_shared,
    compute_offer,
    incoming_open,
)
from stock.tx import LedgerInputError, LedgerTx, RuleBook

# SQL engines cap bound parameters per statement; larger sets are read in chunks of this size
IN_CHUNK = 5000


@dataclass(frozen=True)
class StockFigures:
    """What the ledger holds of one SKU, every channel together."""

    on_hand: int = 0
    oversold: int = 0
    reserved: int = 0
    backordered: int = 0
    incoming: tuple[tuple[str, IncomingLine], ...] = ()  # (PO ref, open line), eta order
    pool: tuple[pools.Share, ...] = ()  # a pooled SKU's shares, channel order
    campaign_confirmed: tuple[tuple[str, int], ...] = ()  # (campaign, units confirmed)
    closed_campaigns: frozenset[str] = frozenset()

    def offer(self, rule: EffectiveRule, today: date) -> OfferBreakdown:
        """The rule's channel's offer. A pooled SKU's channel without a share yet (the pool
        has not started) is offered nothing: only an allotment may be sold."""
        terms = None
        if rule.pool is not None:
            share = next((s for s in self.pool if s.channel == rule.channel), None)
            terms = PoolTerms(
                share.allotted if share else 0, share.sold if share else 0, rule.pool.reserve
            )
        horizon = rule.horizon_days.value
        units = incoming_open((line for _ref, line in self.incoming), today, horizon)
        setting = rule.incoming_share.value
        shared: float | None = None
        if isinstance(setting, int | float):
            fraction = float(setting)
        else:  # auto: per PO line, its supplier's measured fill rate, bounded
            floor, cap = rule.incoming_share_floor.value, rule.incoming_share_cap.value
            shared = auto_shared((line for _ref, line in self.incoming), today, horizon, floor, cap)
            fraction = round(shared / units, 4) if units else auto_share(None, floor, cap)
        return compute_offer(
            OfferInputs(
                on_hand=self.on_hand,
                reserved=self.reserved,
                backordered=self.backordered,
                incoming_open=units,
                safety_buffer=rule.safety_buffer.value,
                cap=rule.cap.value,
                backorders_enabled=rule.backorders_enabled.value,
                incoming_share=fraction,
                campaign_hold=self.campaign_hold(rule),
                incoming_shared=shared,
            ),
            terms,
        )

    def campaign_hold(self, rule: EffectiveRule) -> int:
        """Units the open campaigns holding this SKU still set aside: all they hold less what
        was confirmed (an order's reservation now)."""
        if not rule.campaign_units:
            return 0
        confirmed = dict(self.campaign_confirmed)
        return sum(
            max(units - confirmed.get(name, 0), 0)
            for name, units in rule.campaign_units
            if name not in self.closed_campaigns
        )


Fills = Mapping[str | None, SupplierFill]


def wants_fills(rules: RuleBook) -> bool:
    """Whether offers under these rules need suppliers' measured fill rates (some rule has
    `incoming_share: auto`); a rule book that is not a `rules.Config` gets none (the floor)."""
    ruleset = getattr(rules, "rules", None)
    return isinstance(ruleset, RuleSet) and ruleset.uses_auto_share


def read_fills(session: Session, rules: RuleBook) -> Fills | None:
    """Suppliers' measured fill rates when the rules need them (one statement), else None."""
    return suppliers.read_fill_rates(session) if wants_fills(rules) else None


def tx_fills(tx: LedgerTx) -> Fills | None:
    """`read_fills`, once per transaction (stock.purchasing forgets them when a PO closes)."""
    if not wants_fills(tx.rules):
        return None
    if tx.supplier_fills is None:
        with tx.session.no_autoflush:
            tx.supplier_fills = dict(suppliers.read_fill_rates(tx.session))
    return tx.supplier_fills


def figures(
    session: Session, sku_ids: Iterable[int] | None = None, *, fills: Fills | None = None
) -> dict[int, StockFigures]:
    """Figures per SKU id; all SKUs when `sku_ids` is None. `fills` (suppliers' measured fill
    rates, `read_fills`) are attached to the incoming lines for `incoming_share: auto`."""
    if sku_ids is None:
        return _figures(session, None, fills)
    ids = sorted(set(sku_ids))
    result: dict[int, StockFigures] = {}
    for start in range(0, len(ids), IN_CHUNK):
        result.update(_figures(session, ids[start : start + IN_CHUNK], fills))
    return result


def _figures(
    session: Session, ids: list[int] | None, fills: Fills | None
) -> dict[int, StockFigures]:
    levels_q = select(
        m.StockLevel.sku_id,
        m.StockLevel.on_hand,
        m.StockLevel.oversold,
        m.StockLevel.reserved,
        m.StockLevel.backordered,
    )
    if ids is not None:
        levels_q = levels_q.where(m.StockLevel.sku_id.in_(ids))
    incoming = _incoming(session, ids, fills)
    shares = pools.shares(session, ids)
    confirmed = campaigns.confirmed_units(session, ids)
    closed = campaigns.closed_campaigns(session)
    result = {
        int(sku_id): StockFigures(
            on_hand=on_hand,
            oversold=oversold,
            reserved=reserved,
            backordered=backordered,
            incoming=tuple(incoming.get(int(sku_id), ())),
            pool=shares.get(int(sku_id), ()),
            campaign_confirmed=confirmed.get(int(sku_id), ()),
            closed_campaigns=closed,
        )
        for sku_id, on_hand, oversold, reserved, backordered in session.execute(levels_q).all()
    }
    for sku_id in ids or ():
        result.setdefault(sku_id, StockFigures())
    return result


def _incoming(
    session: Session, ids: list[int] | None, fills: Fills | None = None
) -> dict[int, list[tuple[str, IncomingLine]]]:
    """Open purchase-order lines per SKU, in eta order, each with its supplier (and that
    supplier's measured fill, from `fills`, when given)."""
    query = (
        select(
            m.PoLine.sku_id,
            m.PurchaseOrder.ref,
            m.PoLine.ordered,
            m.PoLine.received,
            m.PurchaseOrder.eta,
            m.PurchaseOrder.supplier,
        )
        .join(m.PurchaseOrder, m.PurchaseOrder.id == m.PoLine.po_id)
        .where(m.PurchaseOrder.status == "open")
        .order_by(m.PurchaseOrder.eta, m.PurchaseOrder.ref)
    )
    if ids is not None:
        query = query.where(m.PoLine.sku_id.in_(ids))
    found: dict[int, list[tuple[str, IncomingLine]]] = defaultdict(list)
    measured = fills if fills is not None else {}
    for sku_id, ref, ordered, received, eta, supplier in session.execute(query).all():
        fill = measured.get(supplier) if fills is not None else None
        if fills is not None and fill is None:  # no closed PO yet: nothing measured
            fill = SupplierFill(supplier, None, 0)
        line = IncomingLine(ordered, received, eta, supplier, fill)
        found[int(sku_id)].append((str(ref), line))
    return found


def read_incoming(tx: LedgerTx, sku_ids: Iterable[int]) -> None:
    """Read the open PO lines of these SKUs into the transaction, once (a batch asks first)."""
    unread = sorted({sku_id for sku_id in sku_ids if sku_id not in tx.incoming})
    if not unread:
        return
    found: dict[int, list[tuple[str, IncomingLine]]] = {}
    fills = tx_fills(tx)
    with tx.session.no_autoflush:  # PO lines are not what a batch of orders is writing
        for start in range(0, len(unread), IN_CHUNK):
            found.update(_incoming(tx.session, unread[start : start + IN_CHUNK], fills))
    for sku_id in unread:
        tx.incoming[sku_id] = tuple(found.get(sku_id, ()))


def locked_figures(tx: LedgerTx, sku_ids: Iterable[int]) -> dict[int, StockFigures]:
    """Figures of SKUs whose stock rows this transaction holds locked, from the rows in the
    session (their counters are current) and the open PO lines read once per transaction:
    no query for a SKU seen before, and no flush of the rows the transaction is building."""
    ids = sorted(set(sku_ids))
    read_incoming(tx, ids)
    result: dict[int, StockFigures] = {}
    for sku_id in ids:
        level = tx.levels.get(sku_id)
        if level is None:
            raise LookupError(f"sku {sku_id}: its stock row is not locked by this transaction")
        result[sku_id] = StockFigures(
            on_hand=level.on_hand,
            oversold=level.oversold,
            reserved=level.reserved,
            backordered=level.backordered,
            incoming=tx.incoming[sku_id],
        )
    return result


def breakdowns(
    session: Session,
    rules: RuleBook,
    channel: str,
    skus: Mapping[int, str],
    today: date,
) -> dict[int, OfferBreakdown]:
    """The channel's offer for each SKU (id -> code), from one set of grouped reads."""
    found = figures(session, skus, fills=read_fills(session, rules))
    return {
        sku_id: found[sku_id].offer(rules.rule_for(channel, code), today)
        for sku_id, code in skus.items()
    }


@dataclass(frozen=True)
class PushTerms:
    """What a push sends for one listing: the offered number and, for the shop page, how many
    of those units are incoming and when the first of them is expected (issue #17)."""

    offered: int
    incoming: int = 0  # of `offered`, units not on hand yet
    expected_on: date | None = None  # the first incoming unit's ETA; None when incoming is 0


def incoming_offered(breakdown: OfferBreakdown) -> int:
    """Of the offered units, those not on hand yet. The offer counts what is on hand first
    (after the safety buffer and campaign holds, which come out of stock first), then the
    incoming capacity: a buffer larger than what is sellable eats into the incoming units."""
    terms = breakdown.inputs
    from_stock = max(breakdown.sellable_now - terms.safety_buffer - terms.campaign_hold, 0)
    return max(breakdown.offered - from_stock, 0)


def first_incoming_eta(
    lines: Iterable[IncomingLine],
    today: date,
    horizon_days: int,
    incoming_share: float,
    backordered: int,
) -> date | None:
    """The ETA of the open PO line (ETA order, within the horizon; late lines too) holding the
    first incoming unit the offer counts: the channel's share of the lines' open units, counted
    line by line, after the units open backorders already wait for. None when no such unit."""
    last_day = today + timedelta(days=horizon_days)
    cumulative = 0
    for line in lines:
        still_open = max(line.ordered - line.received, 0)
        if still_open == 0 or line.eta > last_day:
            continue
        cumulative += still_open
        # floor with the tolerance of stock.engine.incoming_capacity
        if math.floor(cumulative * incoming_share + 1e-9) > backordered:
            return line.eta
    return None


def push_terms(
    session: Session,
    rules: RuleBook,
    channel: str,
    skus: Mapping[int, str],
    today: date,
) -> dict[int, PushTerms]:
    """The channel's push terms for each SKU (id -> code): `breakdowns`, and the open PO lines
    (one more grouped read) of the SKUs whose offer counts incoming units."""
    found = breakdowns(session, rules, channel, skus, today)
    incoming = {sku_id: incoming_offered(b) for sku_id, b in found.items()}
    waiting = sorted(sku_id for sku_id, units in incoming.items() if units)
    lines: dict[int, list[tuple[str, IncomingLine]]] = {}
    for start in range(0, len(waiting), IN_CHUNK):
        lines.update(_incoming(session, waiting[start : start + IN_CHUNK]))
    result: dict[int, PushTerms] = {}
    for sku_id, code in skus.items():
        breakdown = found[sku_id]
        if not incoming[sku_id]:
            result[sku_id] = PushTerms(breakdown.offered)
            continue
        open_lines = [line for _ref, line in lines.get(sku_id, ())]
        horizon = rules.rule_for(channel, code).horizon_days.value
        # the share the offer used (under `incoming_share: auto`, its mean over the lines)
        terms = breakdown.inputs
        eta = first_incoming_eta(
            open_lines, today, horizon, terms.incoming_share, terms.backordered
        )
        if eta is None:  # rounding of a mean share: the last line the offer counted
            due = [line.eta for line in open_lines if line.eta <= today + timedelta(days=horizon)]
            eta = max(due, default=None)
        result[sku_id] = PushTerms(breakdown.offered, incoming[sku_id], eta)
    return result


def offer(tx: LedgerTx, channel: str, code: str) -> tuple[int, dict[str, Any]]:
    """The offered number of one SKU on one channel, with its terms."""
    sku_id = counts.sku_id(tx, code)
    result = breakdowns(tx.session, tx.rules, channel, {sku_id: code}, tx.now.date())[sku_id]
    return result.offered, result.as_dict()


def explain(tx: LedgerTx, code: str, channel: str | None = None) -> dict[str, Any]:
    """Every term of the formula for one SKU, per channel, with each rule value's source."""
    sku_id = counts.sku_id(tx, code)
    channels = [channel] if channel else list(tx.channels)
    for name in channels:
        if name not in tx.channels:
            raise LedgerInputError(name, "unknown channel")
    found = figures(tx.session, [sku_id], fills=tx_fills(tx))[sku_id]
    listed = {
        listing.channel: listing
        for listing in tx.session.scalars(select(m.Listing).where(m.Listing.sku_id == sku_id))
    }
    today = tx.now.date()
    offers: list[dict[str, Any]] = []
    for name in channels:
        rule = tx.rules.rule_for(name, code)
        breakdown = found.offer(rule, today).as_dict()
        listing = listed.get(name)
        offers.append(
            {
                "channel": name,
                "offered": breakdown["offered"],
                "terms": breakdown,
                "rule": rule_dict(rule),
                "incoming_share": share_sources(found, rule, today),
                "last_pushed": listing.last_pushed if listing else None,
                "last_seen": listing.last_seen if listing else None,
                "pushed_at": listing.pushed_at.isoformat()
                if listing and listing.pushed_at
                else None,
            }
        )
    return {
        "sku": code,
        "on_hand": found.on_hand,
        "oversold": found.oversold,
        "reserved": found.reserved,
        "backordered": found.backordered,
        "incoming": [
            {"po": ref, "eta": line.eta.isoformat(), "open": max(line.ordered - line.received, 0)}
            for ref, line in found.incoming
        ],
        "today": today.isoformat(),
        "channels": offers,
        "promises": promises(tx.session, sku_id),
    }


def promises(session: Session, sku_id: int) -> list[dict[str, Any]]:
    """The SKU's waiting backorder units by the date promised (None: unknown), earliest first,
    with how many of them were promised an earlier date first (moved later)."""
    rows = session.execute(
        select(
            m.Backorder.promised_on,
            func.sum(m.Backorder.qty_open),
            func.sum(
                case((m.Backorder.promise_moved_from.is_not(None), m.Backorder.qty_open), else_=0)
            ),
        )
        .where(m.Backorder.sku_id == sku_id, m.Backorder.qty_open > 0)
        .group_by(m.Backorder.promised_on)
    ).all()
    ordered = sorted(rows, key=lambda row: (row[0] is None, row[0] or date.min))
    return [
        {"date": day.isoformat() if day else None, "units": int(units), "moved_later": int(late)}
        for day, units, late in ordered
    ]


def status_rows(
    session: Session,
    rules: RuleBook,
    channels: Iterable[str],
    today: date,
    *,
    sku_glob: str | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """One row per SKU (code order): the figures and the offered number per channel.

    `sku_glob` keeps the SKUs it matches (case-sensitive, as `sku_rules`' `match`), `limit`
    the first so many. The figures come from the grouped reads of `figures`; the offer of a
    (figures, rule) pair is computed once, so 100,000 SKUs cost a few distinct computations,
    not 100,000 x channels rule resolutions. Rows with the same offers share their `offered`
    dict: treat the rows as read only.
    """
    query = select(m.Sku.id, m.Sku.code).order_by(m.Sku.code)
    if sku_glob is not None:
        prefix = re.split(r"[*?\[]", sku_glob, maxsplit=1)[0]
        if prefix:  # narrow in SQL (a superset: SQLite's LIKE ignores case), match exactly below
            escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(m.Sku.code.like(escaped + "%", escape="\\"))
    elif limit is not None:
        query = query.limit(limit)
    selected = [(int(sku_id), str(code)) for sku_id, code in session.execute(query).all()]
    if sku_glob is not None:
        matches = re.compile(fnmatch.translate(sku_glob)).match
        selected = [(sku_id, code) for sku_id, code in selected if matches(code)]
    if limit is not None:
        selected = selected[:limit]
    ids = [sku_id for sku_id, _code in selected]
    found = figures(
        session, ids if len(ids) <= IN_CHUNK else None, fills=read_fills(session, rules)
    )
    offers = _OfferTable(rules, list(channels), today)
    globs, memo, compute = offers.globs, offers.memo, offers.compute
    campaign_skus = offers.campaign_skus
    by_fields = offers.by_fields
    empty = StockFigures()
    rows: list[dict[str, Any]] = []
    for sku_id, code in selected:
        fig = found.get(sku_id, empty)
        # what the offers depend on: which sku_rules globs match the code, and the figures
        hits: Any = (
            tuple([match(code) is not None for match in globs]) if globs is not None else code
        )
        if code in campaign_skus:  # its rules also hold campaign units of this very SKU
            hits = (hits, code)
        key = (
            (
                hits,
                fig.on_hand,
                fig.oversold,
                fig.reserved,
                fig.backordered,
                fig.incoming,
                fig.pool,
                fig.campaign_confirmed,
                fig.closed_campaigns,
            )
            if by_fields
            else (hits, fig)
        )
        offered = memo.get(key)
        if offered is None:
            offered = memo[key] = compute(code, fig, hits)
        rows.append(
            {
                "sku": code,
                "on_hand": fig.on_hand,
                "reserved": fig.reserved,
                "backordered": fig.backordered,
                "incoming": sum(max(line.ordered - line.received, 0) for _r, line in fig.incoming)
                if fig.incoming
                else 0,
                "oversold": fig.oversold,
                "pooled": bool(fig.pool),  # split into allotments per channel (a drop)
                "offered": offered,  # shared by the rows with these offers: read only
            }
        )
    return rows


_FIGURE_FIELDS = {
    "on_hand", "oversold", "reserved", "backordered", "incoming", "pool", "campaign_confirmed",
    "closed_campaigns",
}  # fmt: skip


class _OfferTable:
    """Offered numbers per channel for many SKUs, each distinct computation done once.

    A SKU's rules depend on it only through which `sku_rules` globs match its code (DESIGN §8:
    the first matching rule, optionally per channel), so SKUs matching the same globs share
    their rules, and SKUs that also hold the same figures share their offers. A rule book that
    is not a `rules.Config` is asked per SKU and channel.
    """

    def __init__(self, rules: RuleBook, channels: list[str], today: date) -> None:
        self.rules = rules
        self.channels = channels
        self.today = today
        ruleset = getattr(rules, "rules", None)
        self.globs = (
            [re.compile(fnmatch.translate(rule.match)).match for rule in ruleset.sku_rules]
            if isinstance(ruleset, RuleSet)
            else None
        )
        # key the memo by the figures' values (hashed in C) while they are all the offer reads
        self.by_fields = {f.name for f in dataclasses.fields(StockFigures)} == _FIGURE_FIELDS
        self.memo: dict[tuple[Any, ...], dict[str, int]] = {}
        self.resolved: dict[tuple[str, Any], EffectiveRule] = {}
        held = getattr(rules, "campaigns", None) or {}
        self.campaign_skus = {code for c in held.values() for code, _units in c.skus}

    def compute(self, code: str, fig: StockFigures, hits: Any) -> dict[str, int]:
        return {c: fig.offer(self._rule(c, code, hits), self.today).offered for c in self.channels}

    def _rule(self, channel: str, code: str, hits: Any) -> EffectiveRule:
        rule = self.resolved.get((channel, hits))
        if rule is None:
            rule = self.resolved[channel, hits] = self.rules.rule_for(channel, code)
        return rule


def rule_dict(rule: EffectiveRule) -> dict[str, dict[str, Any]]:
    def item(value: Sourced[Any]) -> dict[str, Any]:
        raw = value.value
        return {"value": list(raw) if isinstance(raw, tuple) else raw, "source": value.source}

    return {
        "safety_buffer": item(rule.safety_buffer),
        "cap": item(rule.cap),
        "priority": item(rule.priority),
        "backorders_enabled": item(rule.backorders_enabled),
        "incoming_share": item(rule.incoming_share),
        "incoming_share_floor": item(rule.incoming_share_floor),
        "incoming_share_cap": item(rule.incoming_share_cap),
        "horizon_days": item(rule.horizon_days),
        "release_order": item(rule.release_order),
        "release_partial": item(rule.release_partial),
        "pool": (
            {"value": rule.pool.as_dict(), "source": rule.pool.source}
            if rule.pool is not None
            else {"value": None, "source": DEFAULT_SOURCE}
        ),
    }


def share_sources(fig: StockFigures, rule: EffectiveRule, today: date) -> dict[str, Any]:
    """Where the channel's incoming share came from, for `explain`: the rule's number, or
    under `incoming_share: auto` each open PO line within the horizon with its supplier's
    measured fill rate and the share it got."""
    setting = rule.incoming_share
    if not rule.auto_share:
        return {"mode": "fixed", "value": setting.value, "source": setting.source, "lines": []}
    floor, cap = rule.incoming_share_floor, rule.incoming_share_cap
    bounds = f"bounded to [{floor.value:g}, {cap.value:g}]"
    last_day = today + timedelta(days=rule.horizon_days.value)
    lines: list[dict[str, Any]] = []
    for ref, line in fig.incoming:
        if line.eta > last_day:
            continue
        fill = line.fill
        share = auto_share(fill, floor.value, cap.value)
        who = f"supplier {supplier_stats.NONE if line.supplier is None else line.supplier}"
        if fill is None or fill.rate is None:
            pos = fill.pos if fill is not None else 0
            why = (
                f"auto: {who} has {pos} closed PO{'s' if pos != 1 else ''}, fewer than "
                f"{supplier_stats.MIN_POS}: floor {floor.value:g}"
            )
        else:
            why = f"auto: {who} fill rate {fill.rate:.2f} over {fill.pos} POs, {bounds}"
        lines.append(
            {
                "po": ref,
                "supplier": line.supplier,
                "open": max(line.ordered - line.received, 0),
                "fill_rate": round(fill.rate, 4)
                if fill is not None and fill.rate is not None
                else None,
                "pos": fill.pos if fill is not None else 0,
                "share": round(share, 4),
                "source": why,
            }
        )
    return {
        "mode": "auto",
        "source": setting.source,
        "floor": {"value": floor.value, "source": floor.source},
        "cap": {"value": cap.value, "source": cap.source},
        "lines": lines,
    }
