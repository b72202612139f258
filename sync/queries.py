"""Read models for the CLI and the HTTP API: plain dicts, the shapes `--json` documents."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backorders.release import OpenBackorder, rank_key
from stock import models as m
from stock.db import current_revision, head_revision, safe_url
from stock.ledger import DEFAULT_RELEASE_ORDER, Ledger, LedgerInputError
from sync.context import AppContext


def revision(ctx: AppContext) -> dict[str, str | None]:
    return {"current": current_revision(ctx.engine), "head": head_revision()}


def order_exists(session: Session, channel: str, ref: str) -> bool:
    return (
        session.scalar(
            select(m.ChannelOrder.id).where(
                m.ChannelOrder.channel == channel, m.ChannelOrder.external_id == ref
            )
        )
        is not None
    )


def order_detail(session: Session, channel: str, ref: str) -> dict[str, Any]:
    order = session.scalar(
        select(m.ChannelOrder).where(
            m.ChannelOrder.channel == channel, m.ChannelOrder.external_id == ref
        )
    )
    if order is None:
        raise LookupError(f"{channel}/{ref}")
    lines = []
    for line in order.lines:
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
        code = session.scalar(select(m.Sku.code).where(m.Sku.id == line.sku_id))
        lines.append(
            {
                "line": line.external_line_id,
                "sku": code,
                "quantity": line.quantity,
                "reserved": int(reserved or 0),
                "backordered": int(backordered or 0),
                "shipped": line.shipped,
                "cancelled": line.cancelled,
            }
        )
    return {
        "channel": order.channel,
        "order": order.external_id,
        "status": order.status,
        "placed_at": order.placed_at.isoformat(),
        "customer": order.customer_key,
        "tier": order.tier,
        "lines": lines,
    }


def po_detail(session: Session, ref: str) -> dict[str, Any]:
    po = session.scalar(select(m.PurchaseOrder).where(m.PurchaseOrder.ref == ref))
    if po is None:
        raise LookupError(ref)
    codes = dict(session.execute(select(m.Sku.id, m.Sku.code)).all())
    return {
        "ref": po.ref,
        "supplier": po.supplier,
        "eta": po.eta.isoformat(),
        "status": po.status,
        "lines": [
            {
                "sku": codes[line.sku_id],
                "ordered": line.ordered,
                "received": line.received,
                "open": max(line.ordered - line.received, 0),
            }
            for line in po.lines
        ],
    }


def po_list(session: Session, include_closed: bool) -> list[dict[str, Any]]:
    query = select(m.PurchaseOrder.ref).order_by(m.PurchaseOrder.eta, m.PurchaseOrder.ref)
    if not include_closed:
        query = query.where(m.PurchaseOrder.status == "open")
    return [po_detail(session, ref) for ref in session.scalars(query)]


def backorders(ledger: Ledger, sku: str | None, include_closed: bool) -> list[dict[str, Any]]:
    """Backorders in the order a release would fill them now."""
    session = ledger.session
    query = (
        select(m.Backorder, m.OrderLine, m.ChannelOrder, m.Sku.code)
        .join(m.OrderLine, m.OrderLine.id == m.Backorder.order_line_id)
        .join(m.ChannelOrder, m.ChannelOrder.id == m.OrderLine.order_id)
        .join(m.Sku, m.Sku.id == m.Backorder.sku_id)
    )
    if sku is not None:
        query = query.where(m.Sku.code == sku)
    if not include_closed:
        query = query.where(m.Backorder.qty_open > 0)
    tiers = ledger.rules.tiers
    ranked: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    for backorder, line, order, code in session.execute(query).all():
        rule = ledger.rules.rule_for(order.channel, code)
        candidate = OpenBackorder(
            backorder_id=backorder.id,
            sku=code,
            qty_open=backorder.qty_open,
            channel_priority=rule.priority.value,
            tier_rank=tiers.index(order.tier) if order.tier in tiers else len(tiers),
            placed_at=order.placed_at,
            partial_allowed=rule.release_partial.value,
        )
        key = (code, *rank_key(candidate, tuple(rule.release_order.value) or DEFAULT_RELEASE_ORDER))
        ranked.append(
            (
                key,
                {
                    "id": backorder.id,
                    "sku": code,
                    "channel": order.channel,
                    "order": order.external_id,
                    "line": line.external_line_id,
                    "customer": order.customer_key,
                    "tier": order.tier,
                    "placed_at": order.placed_at.isoformat(),
                    "qty_open": backorder.qty_open,
                    "qty_released": backorder.qty_released,
                    "beyond_capacity": not backorder.accepted_within_capacity,
                    "priority": rule.priority.value,
                    "partial": rule.release_partial.value,
                    "created_at": backorder.created_at.isoformat(),
                },
            )
        )
    ranked.sort(key=lambda pair: pair[0])
    return [row for _key, row in ranked]


def status(ctx: AppContext, ledger: Ledger, db_revision: dict[str, str | None]) -> dict[str, Any]:
    """`db_revision` is read before the ledger's transaction (SQLite allows one writer)."""
    session = ledger.session
    skus: list[dict[str, Any]] = []
    for code in session.scalars(select(m.Sku.code).order_by(m.Sku.code)):
        detail = ledger.explain(code)
        skus.append(
            {
                "sku": code,
                "on_hand": detail["on_hand"],
                "reserved": detail["reserved"],
                "backordered": detail["backordered"],
                "incoming": sum(item["open"] for item in detail["incoming"]),
                "oversold": detail["oversold"],
                "offered": {c["channel"]: c["offered"] for c in detail["channels"]},
            }
        )

    def count(query: Any) -> int:
        return int(session.scalar(query) or 0)

    return {
        "database": {"url": safe_url(ctx.config.database), **db_revision},
        "channels": {name: ch.kind for name, ch in ctx.config.channels.items()},
        "orders_open": count(
            select(func.count()).select_from(m.ChannelOrder).where(m.ChannelOrder.status == "open")
        ),
        "backorders_open": count(
            select(func.count()).select_from(m.Backorder).where(m.Backorder.qty_open > 0)
        ),
        "backorders_beyond_capacity": count(
            select(func.count())
            .select_from(m.Backorder)
            .where(m.Backorder.qty_open > 0, m.Backorder.accepted_within_capacity.is_(False))
        ),
        "inbox_pending": count(
            select(func.count())
            .select_from(m.InboxEvent)
            .where(m.InboxEvent.processed_at.is_(None), m.InboxEvent.error.is_(None))
        ),
        "inbox_failed": count(
            select(func.count())
            .select_from(m.InboxEvent)
            .where(m.InboxEvent.processed_at.is_(None), m.InboxEvent.error.is_not(None))
        ),
        "listings_dirty": count(
            select(func.count()).select_from(m.Listing).where(m.Listing.dirty.is_(True))
        ),
        "skus": skus,
    }


def inbox(
    session: Session,
    *,
    failed_only: bool = False,
    limit: int = 50,
    event_ids: list[int] | None = None,
) -> list[dict[str, Any]]:
    query = select(m.InboxEvent).order_by(m.InboxEvent.id.desc()).limit(limit)
    if failed_only:
        query = query.where(m.InboxEvent.processed_at.is_(None), m.InboxEvent.error.is_not(None))
    if event_ids is not None:
        query = query.where(m.InboxEvent.id.in_(event_ids))
    return [
        {
            "id": event.id,
            "channel": event.channel,
            "topic": event.topic,
            "event_key": event.event_key,
            "received_at": event.received_at.isoformat(),
            "processed_at": event.processed_at.isoformat() if event.processed_at else None,
            "attempts": event.attempts,
            "error": event.error,
        }
        for event in session.scalars(query)
    ]


def retryable_events(session: Session, event_ids: list[int], all_failed: bool) -> list[int]:
    """Unprocessed events among those named (or every failed one); unknown ids are an error."""
    if all_failed:
        query = select(m.InboxEvent.id).where(
            m.InboxEvent.processed_at.is_(None), m.InboxEvent.error.is_not(None)
        )
        return list(session.scalars(query.order_by(m.InboxEvent.id)))
    found = dict(
        session.execute(
            select(m.InboxEvent.id, m.InboxEvent.processed_at).where(m.InboxEvent.id.in_(event_ids))
        ).all()
    )
    missing = sorted(set(event_ids) - set(found))
    if missing:
        raise LedgerInputError(f"inbox {missing}", "no such event")
    return [event_id for event_id in event_ids if found[event_id] is None]
