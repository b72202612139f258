"""Read models for the CLI: plain dicts, the shapes `--json` documents."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from rules import Config
from stock import commitments, inbox, listings, offers
from stock import models as m
from stock.db import safe_url
from stock.tx import LedgerInputError
from sync.context import AppContext, code_revision, database_revision


def revision(ctx: AppContext) -> dict[str, str | None]:
    return {"current": database_revision(ctx.engine), "head": code_revision()}


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
    units = commitments.units_by_line(session, [line.id for line in order.lines])
    codes = dict(
        session.execute(
            select(m.Sku.id, m.Sku.code).where(m.Sku.id.in_({line.sku_id for line in order.lines}))
        ).all()
    )
    lines = [
        {
            "line": line.external_line_id,
            "sku": codes[line.sku_id],
            "quantity": line.quantity,
            "reserved": units[line.id].reserved,
            "backordered": units[line.id].backordered,
            "shipped": line.shipped,
            "cancelled": line.cancelled,
        }
        for line in order.lines
    ]
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
    ids = {line.sku_id for line in po.lines}
    codes = dict(session.execute(select(m.Sku.id, m.Sku.code).where(m.Sku.id.in_(ids))).all())
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
                # a cancelled PO's lines bring nothing more
                "open": 0 if po.status == "cancelled" else max(line.ordered - line.received, 0),
            }
            for line in po.lines
        ],
    }


def po_list(session: Session, include_closed: bool) -> list[dict[str, Any]]:
    query = select(m.PurchaseOrder.ref).order_by(m.PurchaseOrder.eta, m.PurchaseOrder.ref)
    if not include_closed:
        query = query.where(m.PurchaseOrder.status == "open")
    return [po_detail(session, ref) for ref in session.scalars(query)]


def backorders(
    session: Session,
    config: Config,
    sku: str | None,
    include_closed: bool,
    *,
    limit: int | None = None,
    after_sku: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Backorders in exactly the order a release would fill them now, a page of whole SKUs
    (at most `limit` rows unless one SKU has more) after `after_sku`; and the next page's
    `after_sku`, None on the last page. Each row says whether its units are at risk
    (`at_risk`, `at_risk_units`: what is still coming no longer covers them; backorders.settle)."""
    from backorders import releasing, settle

    rows, after = releasing.listing_page(
        session, config, sku, include_closed, limit=limit, after_sku=after_sku
    )
    covers = commitments.cover(session, {row["sku"] for row in rows})
    settle.mark_at_risk(rows, {code: cover.units for code, cover in covers.items()})
    return rows, after


def status(
    ctx: AppContext,
    session: Session,
    db_revision: dict[str, str | None],
    today: date,
    *,
    sku_glob: str | None = None,
    limit: int | None = None,
) -> dict[str, Any]:
    """`db_revision` is read before this transaction (SQLite allows one writer). The counts
    are the whole ledger's; `skus` lists the SKUs `sku_glob` matches, at most `limit`."""
    events = inbox.counts(session)
    waiting = commitments.counts(session)

    def count(query: Any) -> int:
        return int(session.scalar(query) or 0)

    return {
        "database": {"url": safe_url(ctx.config.database), **db_revision},
        "channels": {name: ch.kind for name, ch in ctx.config.channels.items()},
        "orders_open": count(
            select(func.count()).select_from(m.ChannelOrder).where(m.ChannelOrder.status == "open")
        ),
        "backorders_open": waiting["open"],
        "backorders_beyond_capacity": waiting["beyond_capacity"],
        "inbox_pending": events["pending"],
        "inbox_failed": events["failed"],
        "listings_dirty": sum(listings.dirty_counts(session).values()),
        "skus": offers.status_rows(
            session, ctx.config, ctx.channel_names, today, sku_glob=sku_glob, limit=limit
        ),
    }


def retryable_events(session: Session, event_ids: list[int], all_failed: bool) -> list[int]:
    """Unprocessed events among those named (or every failed one); unknown ids are an error."""
    if all_failed:
        return inbox.failed_ids(session)
    found = inbox.processed_of(session, event_ids)
    missing = sorted(set(event_ids) - set(found))
    if missing:
        raise LedgerInputError(f"inbox {missing}", "no such event")
    return [event_id for event_id in event_ids if found[event_id] is None]
