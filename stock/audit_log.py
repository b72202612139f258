"""Reading the audit log (`audit_entry`; read only — stock/audit.py is its only writer).

`page` answers `stocksync audit`: the entries matching a filter, newest first (by time, then
id), a page at a time after a cursor (`before_id`: the last entry of the previous page). One
statement per page, plus a short one for the cursor's time and one for the distinct actions
when the filter names actions by a glob or filters on the subject.

How the filters meet the indexes:
- time order, since/until: `at >= since`, `at < until`, ordered by (at, id) — the order of
  `ix_audit_entry_at`, read backwards; the cursor adds `at <= the cursor's time`.
- action: an exact name is `action = A`; a glob (`campaign.*`, fnmatch, case-sensitive) is
  first resolved against the distinct actions (a handful) and becomes `action IN (...)`; both
  are the leading column of `ix_audit_entry_action (action, subject)`.
- subject: `subject = X` with the action list (every distinct action when none was named), so
  the same index finds (action, subject) pairs directly — a skip scan done by hand.
- sku: `subject = S OR detail.sku = S`. The SKU-keyed entries (stock changes, releases,
  oversells, pool moves, promise moves, beyond-capacity and at-risk flags) have the SKU as
  subject; campaign entries name it in their detail (`{"sku": ...}`). Nothing else is matched:
  orders and POs name SKUs inside nested detail (per line), which this does not search. The
  detail half is not indexed: it reads newest first until the page is full (narrow a long log
  with since/until or an action).
- user: `actor = U` (not indexed; a filter on what the other terms read).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from stock import models as m

GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """What `stocksync audit` narrows the log to; None: no filter on that field."""

    sku: str | None = None
    action: str | None = None  # a name or a glob
    subject: str | None = None
    user: str | None = None  # the actor
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    before_id: int | None = None  # the cursor: only entries after this one (older)


@dataclass(frozen=True, slots=True)
class AuditRow:
    id: int
    at: datetime
    actor: str
    action: str
    subject: str
    detail: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "subject": self.subject,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class AuditPage:
    entries: list[AuditRow]
    next: int | None  # the `before_id` of the next page; None on the last page


def is_glob(pattern: str) -> bool:
    return not GLOB_CHARS.isdisjoint(pattern)


def matching(pattern: str, actions: Sequence[str]) -> list[str]:
    """The actions a name or glob selects (fnmatch, case-sensitive)."""
    return [action for action in actions if fnmatchcase(action, pattern)]


def actions(session: Session) -> list[str]:
    """The distinct actions in the log, sorted: a recursive walk of the (action, subject) index,
    one seek per distinct action, instead of a scan of every entry."""
    e = m.AuditEntry
    walk = select(func.min(e.action).label("action")).cte("walk", recursive=True)
    following = select(e.action).where(e.action > walk.c.action).order_by(e.action).limit(1)
    walk = walk.union_all(select(following.scalar_subquery()).where(walk.c.action.is_not(None)))
    return [a for a in session.scalars(select(walk.c.action)) if a is not None]


class NoSuchEntry(LookupError):
    """The `before_id` cursor names no entry."""


def page(session: Session, where: AuditFilter, limit: int) -> AuditPage:
    """At most `limit` entries matching `where`, newest first, and the cursor of the next page.

    Newest first is by time, then id (entries of one transaction share their time): the order
    `ix_audit_entry_at` keeps, so a page of the whole log or of a time window reads the index
    backwards and stops; a page after the cursor starts where the cursor's entry sits in it.
    Raises NoSuchEntry when `before_id` names no entry."""
    conditions = _conditions(session, where)
    if conditions is None:
        return AuditPage([], None)
    e = m.AuditEntry
    if where.before_id is not None:
        cursor_at = session.scalar(select(e.at).where(e.id == where.before_id))
        if cursor_at is None:
            raise NoSuchEntry(where.before_id)
        # `at <= t` for the index, then the entries of that same instant older than the cursor
        conditions += [e.at <= cursor_at, or_(e.at < cursor_at, e.id < where.before_id)]
    found = session.execute(
        select(e.id, e.at, e.actor, e.action, e.subject, e.detail)
        .where(*conditions)
        .order_by(e.at.desc(), e.id.desc())
        .limit(limit + 1)
    ).all()
    rows = [AuditRow(int(i), at, actor, action, subject, dict(detail or {}))
            for i, at, actor, action, subject, detail in found[:limit]]  # fmt: skip
    return AuditPage(rows, rows[-1].id if len(found) > limit else None)


def _conditions(session: Session, where: AuditFilter) -> list[ColumnElement[bool]] | None:
    """The WHERE terms of a filter; None when it can match nothing (a glob no action fits)."""
    e = m.AuditEntry
    named: list[str] | None = None
    if where.action is not None:
        pattern = where.action
        named = matching(pattern, actions(session)) if is_glob(pattern) else [pattern]
    if where.subject is not None and named is None:
        named = actions(session)  # so `subject = X` seeks the (action, subject) index
    if named is not None and not named:
        return None
    terms: list[ColumnElement[bool]] = []
    if named is not None:
        terms.append(e.action == named[0] if len(named) == 1 else e.action.in_(named))
    if where.subject is not None:
        terms.append(e.subject == where.subject)
    if where.sku is not None:
        # not `action IN (every action)` here: the detail half reads the entries anyway
        terms.append(or_(e.subject == where.sku, e.detail["sku"].as_string() == where.sku))
    if where.user is not None:
        terms.append(e.actor == where.user)
    if where.since is not None:
        terms.append(e.at >= where.since)
    if where.until is not None:
        terms.append(e.at < where.until)
    return terms
