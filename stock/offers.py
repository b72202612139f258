"""The offered quantity, read for one SKU or many (read only; DESIGN §3).

The figures of a set of SKUs come from four grouped reads (stock rows, Σ reservations,
Σ open backorders, open PO lines), whatever the number of SKUs; the formula is the pure
stock.engine applied per (channel, SKU) with the rule resolved for it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from rules import EffectiveRule, Sourced
from stock import commitments, counts
from stock import models as m
from stock.engine import IncomingLine, OfferBreakdown, OfferInputs, compute_offer, incoming_open
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

    def offer(self, rule: EffectiveRule, today: date) -> OfferBreakdown:
        return compute_offer(
            OfferInputs(
                on_hand=self.on_hand,
                reserved=self.reserved,
                backordered=self.backordered,
                incoming_open=incoming_open(
                    (line for _ref, line in self.incoming), today, rule.horizon_days.value
                ),
                safety_buffer=rule.safety_buffer.value,
                cap=rule.cap.value,
                backorders_enabled=rule.backorders_enabled.value,
                incoming_share=rule.incoming_share.value,
            )
        )


def figures(session: Session, sku_ids: Iterable[int] | None = None) -> dict[int, StockFigures]:
    """Figures per SKU id; all SKUs when `sku_ids` is None."""
    if sku_ids is None:
        return _figures(session, None)
    ids = sorted(set(sku_ids))
    result: dict[int, StockFigures] = {}
    for start in range(0, len(ids), IN_CHUNK):
        result.update(_figures(session, ids[start : start + IN_CHUNK]))
    return result


def _figures(session: Session, ids: list[int] | None) -> dict[int, StockFigures]:
    levels_q = select(m.StockLevel.sku_id, m.StockLevel.on_hand, m.StockLevel.oversold)
    incoming_q = (
        select(
            m.PoLine.sku_id,
            m.PurchaseOrder.ref,
            m.PoLine.ordered,
            m.PoLine.received,
            m.PurchaseOrder.eta,
        )
        .join(m.PurchaseOrder, m.PurchaseOrder.id == m.PoLine.po_id)
        .where(m.PurchaseOrder.status == "open")
        .order_by(m.PurchaseOrder.eta, m.PurchaseOrder.ref)
    )
    if ids is not None:
        levels_q = levels_q.where(m.StockLevel.sku_id.in_(ids))
        incoming_q = incoming_q.where(m.PoLine.sku_id.in_(ids))
    levels = {int(s): (int(h), int(o)) for s, h, o in session.execute(levels_q).all()}
    totals = commitments.totals(session, ids)
    incoming: dict[int, list[tuple[str, IncomingLine]]] = defaultdict(list)
    for sku_id, ref, ordered, received, eta in session.execute(incoming_q).all():
        incoming[int(sku_id)].append((str(ref), IncomingLine(ordered, received, eta)))
    keys = set(levels) if ids is None else set(ids)
    result: dict[int, StockFigures] = {}
    for sku_id in keys:
        on_hand, oversold = levels.get(sku_id, (0, 0))
        total = totals.get(sku_id)
        result[sku_id] = StockFigures(
            on_hand=on_hand,
            oversold=oversold,
            reserved=total.reserved if total else 0,
            backordered=total.backordered if total else 0,
            incoming=tuple(incoming.get(sku_id, ())),
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
    found = figures(session, skus)
    return {
        sku_id: found[sku_id].offer(rules.rule_for(channel, code), today)
        for sku_id, code in skus.items()
    }


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
    found = figures(tx.session, [sku_id])[sku_id]
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
    }


def status_rows(
    session: Session, rules: RuleBook, channels: Iterable[str], today: date
) -> list[dict[str, Any]]:
    """One row per SKU (code order): the figures and the offered number per channel."""
    names = list(channels)
    codes = dict(session.execute(select(m.Sku.id, m.Sku.code).order_by(m.Sku.code)).all())
    found = figures(session, None)
    rows: list[dict[str, Any]] = []
    for sku_id, code in codes.items():
        fig = found.get(sku_id, StockFigures())
        rows.append(
            {
                "sku": code,
                "on_hand": fig.on_hand,
                "reserved": fig.reserved,
                "backordered": fig.backordered,
                "incoming": sum(max(line.ordered - line.received, 0) for _r, line in fig.incoming),
                "oversold": fig.oversold,
                "offered": {c: fig.offer(rules.rule_for(c, code), today).offered for c in names},
            }
        )
    return rows


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


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
        "horizon_days": item(rule.horizon_days),
        "release_order": item(rule.release_order),
        "release_partial": item(rule.release_partial),
    }
