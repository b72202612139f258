"""Merchant alerts (`alert_incident`, issue #17): the only writer.

Each run reads the ledger's figures, decides which conditions hold (notify.alert_rules) and
keeps one incident per condition and subject: opened when it starts (an audit entry
`alert.<kind>`, which the notifier sends to the merchant by email and webhook), kept while it
lasts, closed when it ends (`alert.resolved`). One alert per incident, not per sample.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from notify.alert_rules import AlertRules, Condition, Figures, conditions
from stock import audit, channel_state, inbox
from stock import models as m

ACTOR = "alerts"


def read_figures(session: Session, now: datetime, rules: AlertRules) -> Figures:
    """The ledger's figures the alert rules look at: a query each, none per SKU."""
    hour_ago = now - timedelta(hours=1)
    since = now - timedelta(days=rules.trailing_days)
    return Figures(
        sold_last_hour=_sold(session, hour_ago, now),
        sold_trailing=_sold(session, since, hour_ago),
        oversold=_per_sku(
            session,
            select(m.Sku.code, m.StockLevel.oversold)
            .join(m.Sku, m.Sku.id == m.StockLevel.sku_id)
            .where(m.StockLevel.oversold > 0),
        ),
        beyond_capacity=_per_sku(
            session,
            select(m.Sku.code, func.sum(m.Backorder.qty_open))
            .join(m.Sku, m.Sku.id == m.Backorder.sku_id)
            .where(m.Backorder.qty_open > 0, m.Backorder.accepted_within_capacity.is_(False))
            .group_by(m.Sku.code),
        ),
        auth_held={name: hold.error for name, hold in channel_state.auth_holds(session).items()},
        failed_events=inbox.counts(session)["failed"],
        drift=_last_drift(session),
    )


def run(session: Session, now: datetime, rules: AlertRules) -> dict[str, list[dict[str, Any]]]:
    """Open, keep and close incidents as the conditions now say; returns what opened and
    closed (the caller's transaction commits them with their audit entries)."""
    current = {(c.kind, c.subject): c for c in conditions(read_figures(session, now, rules), rules)}
    open_rows = {
        (row.kind, row.subject): row
        for row in session.scalars(
            select(m.AlertIncident).where(m.AlertIncident.closed_at.is_(None)).with_for_update()
        )
    }
    opened: list[dict[str, Any]] = []
    closed: list[dict[str, Any]] = []
    for key, condition in sorted(current.items()):
        row = open_rows.get(key)
        if row is not None:
            row.last_seen_at = now
            row.details = dict(condition.details)
            continue
        opened.append(_open(session, now, condition))
    for key, row in sorted(open_rows.items()):
        if key in current:
            continue
        row.closed_at = now
        detail = {"incident": row.id, "kind": row.kind, "opened_at": row.opened_at.isoformat()}
        audit.record(session, now, ACTOR, "alert.resolved", row.subject, detail)
        closed.append({"subject": row.subject, **detail})
    return {"opened": opened, "closed": closed}


def open_incidents(session: Session) -> list[dict[str, Any]]:
    """The incidents that last (`stocksync status`, the console)."""
    return [
        {"id": row.id, "kind": row.kind, "subject": row.subject, "details": row.details,
         "opened_at": row.opened_at.isoformat(), "last_seen_at": row.last_seen_at.isoformat()}
        for row in session.scalars(
            select(m.AlertIncident)
            .where(m.AlertIncident.closed_at.is_(None))
            .order_by(m.AlertIncident.opened_at, m.AlertIncident.id)
        )
    ]  # fmt: skip


def _open(session: Session, now: datetime, condition: Condition) -> dict[str, Any]:
    row = m.AlertIncident(
        kind=condition.kind, subject=condition.subject, details=dict(condition.details),
        opened_at=now, last_seen_at=now,
    )  # fmt: skip
    session.add(row)
    session.flush()
    detail = {"incident": row.id, **condition.details}
    audit.record(session, now, ACTOR, f"alert.{condition.kind}", condition.subject, detail)
    return {"kind": condition.kind, "subject": condition.subject, **detail}


def _sold(session: Session, start: datetime, end: datetime) -> dict[str, int]:
    """Units ordered per SKU with the order placed in [start, end)."""
    return _per_sku(
        session,
        select(m.Sku.code, func.sum(m.OrderLine.quantity))
        .join(m.OrderLine, m.OrderLine.sku_id == m.Sku.id)
        .join(m.ChannelOrder, m.ChannelOrder.id == m.OrderLine.order_id)
        .where(m.ChannelOrder.placed_at >= start, m.ChannelOrder.placed_at < end)
        .group_by(m.Sku.code),
    )


def _per_sku(session: Session, query: Any) -> dict[str, int]:
    return {str(code): int(units or 0) for code, units in session.execute(query).all()}


def _last_drift(session: Session) -> Mapping[str, Sequence[Mapping[str, Any]]]:
    """Per channel, the drift its last reconcile found (empty: none)."""
    latest = (
        select(func.max(m.AuditEntry.id))
        .where(m.AuditEntry.action == "reconcile")
        .group_by(m.AuditEntry.subject)
    )
    found: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for entry in session.scalars(select(m.AuditEntry).where(m.AuditEntry.id.in_(latest))):
        found[entry.subject] = list((entry.detail or {}).get("drift") or [])
    return dict(found)
