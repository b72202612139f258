"""The audit log (`audit_entry`): who changed what, when, and why; its only writer."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

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
