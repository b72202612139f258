"""Read models for the CLI: plain dicts, the shapes `--json` documents."""

from __future__ import annotations

import fnmatch
import re
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from rules import Config
from stock import channel_state, commitments, inbox, listings, offers
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
    channel: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Backorders in exactly the order a release would fill them now, a page of whole SKUs
    (at most `limit` rows unless one SKU has more) after `after_sku`; and the next page's
    `after_sku`, None on the last page. Each row says whether its units are at risk
    (`at_risk`, `at_risk_units`: what is still coming no longer covers them; backorders.settle).

    `sku` is one SKU or a glob (`TEE-*`, case-sensitive like `sku_rules`' `match`); `channel`
    keeps that channel's orders (their `rank` is still their place among every channel's)."""
    from backorders import releasing, settle

    if channel is not None and channel not in config.channels:
        known = ", ".join(config.channels) or "none"
        raise LedgerInputError("--channel", f"unknown channel {channel!r}; configured: {known}")
    if channel is None and (sku is None or not _GLOB.search(sku)):
        rows, after = releasing.listing_page(
            session, config, sku, include_closed, limit=limit, after_sku=after_sku
        )
    else:
        rows, after = _backorders_filtered(
            session, config, sku, channel, include_closed, limit, after_sku
        )
    covers = commitments.cover(session, {row["sku"] for row in rows})
    settle.mark_at_risk(rows, {code: cover.units for code, cover in covers.items()})
    return rows, after


_GLOB = re.compile(r"[*?\[]")


def _backorders_filtered(
    session: Session,
    config: Config,
    sku_glob: str | None,
    channel: str | None,
    include_closed: bool,
    limit: int | None,
    after_sku: str | None,
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of the SKUs matching the glob that have (open) backorders of the channel: each
    SKU ranked whole (as a release ranks it), then its rows of other channels left out."""
    from backorders import releasing

    query = select(m.Sku.code, func.count()).join(m.Backorder, m.Backorder.sku_id == m.Sku.id)
    if channel is not None:
        query = (
            query.join(m.OrderLine, m.OrderLine.id == m.Backorder.order_line_id)
            .join(m.ChannelOrder, m.ChannelOrder.id == m.OrderLine.order_id)
            .where(m.ChannelOrder.channel == channel)
        )
    if not include_closed:
        query = query.where(m.Backorder.qty_open > 0)
    if after_sku is not None:
        query = query.where(m.Sku.code > after_sku)
    matches = None
    if sku_glob is not None:
        prefix = _GLOB.split(sku_glob, maxsplit=1)[0]
        if prefix:  # narrow in SQL (a superset: SQLite's LIKE ignores case), match below
            escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(m.Sku.code.like(escaped + "%", escape="\\"))
        matches = re.compile(fnmatch.translate(sku_glob)).match
    query = query.group_by(m.Sku.code).order_by(m.Sku.code)
    page: list[dict[str, Any]] = []
    last: str | None = None
    for code, count in session.execute(query):
        if matches is not None and not matches(code):
            continue
        if limit is not None and page and len(page) + int(count) > limit:
            return page, last  # more follow
        rows, _ = releasing.listing_page(session, config, str(code), include_closed)
        page.extend(row for row in rows if channel is None or row["channel"] == channel)
        last = str(code)
    return page, None


def status(
    ctx: AppContext,
    session: Session,
    db_revision: dict[str, str | None],
    today: date,
    *,
    sku_glob: str | None = None,
    limit: int | None = None,
    channel: str | None = None,
) -> dict[str, Any]:
    """`db_revision` is read before this transaction (SQLite allows one writer). The counts
    are the whole ledger's; `skus` lists the SKUs `sku_glob` matches, at most `limit`, with
    the offers of every channel or of `channel` alone (which must be configured)."""
    configured = ctx.config.channels
    if channel is not None and channel not in configured:
        known = ", ".join(configured) or "none"
        raise LedgerInputError("--channel", f"unknown channel {channel!r}; configured: {known}")
    shown = [channel] if channel is not None else list(configured)
    events = inbox.counts(session)
    waiting = commitments.counts(session)

    def count(query: Any) -> int:
        return int(session.scalar(query) or 0)

    data: dict[str, Any] = {
        "database": {"url": safe_url(ctx.config.database), **db_revision},
        "channels": {name: configured[name].kind for name in shown},
        "orders_open": count(
            select(func.count()).select_from(m.ChannelOrder).where(m.ChannelOrder.status == "open")
        ),
        "backorders_open": waiting["open"],
        "backorders_beyond_capacity": waiting["beyond_capacity"],
        "inbox_pending": events["pending"],
        "inbox_failed": events["failed"],
        "listings_dirty": sum(listings.dirty_counts(session).values()),
        "skus": offers.status_rows(
            session, ctx.config, shown, today, sku_glob=sku_glob, limit=limit
        ),
    }
    health = channel_health(session, ctx.config, shown)
    if health:  # manual channels have nothing to call
        data["channel_health"] = health
    if ctx.listed_channel_names:  # a ledger of manual channels only has nothing to say here
        data["channel_state"] = channel_sync(ctx, session)
    return data


HELD_SKUS_SHOWN = 20


def channel_sync(ctx: AppContext, session: Session) -> dict[str, dict[str, Any]]:
    """Per Shopify or WooCommerce channel: when it was adopted (None: never), and the listings
    the push holds back for SKUs never counted (their number and the first SKUs by code)."""
    adopted = channel_state.adopted(session)
    held = listings.held_counts(session)
    return {
        name: {
            "kind": ctx.config.channels[name].kind,
            "adopted_at": adopted[name].isoformat() if name in adopted else None,
            "listings_held_unknown": held.get(name, 0),
            "held_skus": (
                listings.held_skus(session, name, HELD_SKUS_SHOWN) if held.get(name) else []
            ),
        }
        for name in ctx.listed_channel_names
    }


def channel_health(session: Session, config: Config, names: list[str]) -> dict[str, Any]:
    """Per connected channel (manual ones have nothing to call): `ok`, or `auth_error` while
    its calls are held after a refusal (sync/channel_auth.py), with the error and the hold."""

    held = channel_state.auth_holds(session)
    now = datetime.now(UTC)
    found: dict[str, Any] = {}
    for name in names:
        if config.channels[name].kind == "manual":
            continue
        hold = held.get(name)
        found[name] = (
            {"state": "ok", "error": None, "held_until": None, "auth_failures": 0}
            if hold is None
            else {
                "state": "auth_error",
                "error": channel_state.describe_hold(hold, now),
                "held_until": hold.until.isoformat(),
                "auth_failures": hold.failures,
            }
        )
    return found


def retryable_events(session: Session, event_ids: list[int], all_failed: bool) -> list[int]:
    """Unprocessed events among those named (or every failed one); unknown ids are an error."""
    if all_failed:
        return inbox.failed_ids(session)
    found = inbox.processed_of(session, event_ids)
    missing = sorted(set(event_ids) - set(found))
    if missing:
        raise LedgerInputError(f"inbox {missing}", "no such event")
    return [event_id for event_id in event_ids if found[event_id] is None]
