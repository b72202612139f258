"""The audit log (`audit_entry`): who changed what, when, and why; its only writer."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    JSON,
    String,
    Text,
    cast,
    func,
    insert,
    literal,
    literal_column,
    select,
    true,
)
from sqlalchemy.orm import Session

from stock import models as m


def record(
    session: Session,
    at: datetime,
    actor: str,
    action: str,
    subject: str,
    detail: Mapping[str, Any],
) -> None:
    session.add(
        m.AuditEntry(at=at, actor=actor, action=action, subject=subject, detail=dict(detail))
    )


def record_many(
    session: Session,
    at: datetime,
    actor: str,
    entries: Sequence[tuple[str, str, Mapping[str, Any]]],
) -> None:
    """Many entries (action, subject, detail) in one INSERT ... SELECT, whatever their number.

    The entries travel as one parameter per column on PostgreSQL (arrays) and as one JSON array
    on SQLite, so 100,000 rows (a stock take) are one short statement to build, send and plan,
    not 500,000 bound parameters or 100,000 objects (~10 s).
    """
    if not entries:
        return
    table = m.AuditEntry.__table__
    if session.get_bind().dialect.name == "postgresql":

        def array(items: list[str]) -> Any:
            return func.unnest(cast(literal(items, ARRAY(Text)), ARRAY(Text)))

        rows = select(
            array([a for a, _s, _d in entries]).label("action"),
            array([s for _a, s, _d in entries]).label("subject"),
            array([json.dumps(d) for _a, _s, d in entries]).label("detail"),
        ).subquery()
        columns: list[Any] = [rows.c.action, rows.c.subject, cast(rows.c.detail, JSON)]
        source: Any = rows
    else:
        value: Any = literal_column("value")
        columns = [func.json_extract(value, f"$[{i}]") for i in range(3)]
        source = func.json_each(literal(json.dumps([[a, s, d] for a, s, d in entries])))
    session.execute(
        insert(m.AuditEntry).from_select(
            ["at", "actor", "action", "subject", "detail"],
            select(literal(at, table.c.at.type), literal(actor, String), *columns)
            .select_from(source)
            .where(true()),
        )
    )
