"""The audit log is the event log: every ledger change writes its audit entries in its own
transaction. The notifier reads the entries after its cursor (`notify_cursor`, its only
writer), in id order, a batch at a time, and in one transaction turns them into messages
(notify.outbox, keyed `audit-<id>-<kind>-<target>`) and moves the cursor on: nothing is lost,
nothing is made twice.

Which audit actions tell a customer what (`classify`):

| audit action                          | message            | to                        |
|---------------------------------------|--------------------|---------------------------|
| order.recorded (some units backordered)| backorder_created | the order's email         |
| order.ship (units still to come)      | partly_shipped     |                           |
| backorder.release (per order)         | released_shipping  |                           |
| backorder.promise_moved (per order)   | date_moved         |                           |
| campaign.waiting                      | waitlist_confirmed | the entry's email         |
| campaign.allocated (no shop link)     | allocated          |                           |
| campaign.payment (link made / failed) | allocated          |                           |
| campaign.reminder                     | reminder           |                           |
| campaign.expired                      | expired            |                           |
| campaign.not_allocated                | not_allocated      |                           |
| campaign.refund_refunded / _by_hand   | deposit_refunded   |                           |

Entries of one transaction about one order (a release of several lines) make one message.
Every entry matching a webhook's `events` is posted to it (one message per entry and hook).

PostgreSQL hands out ids before commit, so an entry may become visible after higher ones: the
cursor stops before a gap in the ids until the gap is older than GAP_GRACE (a rolled-back
transaction leaves one for good); entries after the gap are turned into messages already (their
keys make that idempotent). SQLite writers take turns: no gaps.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parseaddr
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from notify import outbox
from notify.context import NothingToTell, Occasion, Prepared, prepare, split_order
from notify.render import Renderer, RenderError
from rules.notify_model import NotifyConfig
from stock import models as m
from stock.db import upsert_insert

CURSOR = "messages"  # the one cursor's name
BATCH = 500
GAP_GRACE = timedelta(minutes=5)
KEY_MAX = 255
TEMPLATE_FAILED = "template:"  # how a message whose template failed starts its last_error


@dataclass(frozen=True)
class Entry:
    """An audit entry as the notifier reads it."""

    id: int
    at: datetime
    actor: str
    action: str
    subject: str
    detail: dict[str, Any]


# ---- which entries tell what ------------------------------------------------------------------


def classify(entry: Entry) -> Occasion | None:
    """The customer message an audit entry calls for, if any (pure)."""
    action, detail = entry.action, entry.detail

    def told(
        message: str,
        *,
        order: str | None = None,
        entry_id: int | None = None,
        items: tuple[dict[str, Any], ...] | None = None,
    ) -> Occasion:
        return Occasion(message, entry.id, order, entry_id, items, entry.at)

    if action == "order.recorded":
        backordered = detail.get("backordered") or {}
        if detail.get("status") == "cancelled" or not backordered:
            return None
        lines = tuple({"line": line, "units": units} for line, units in backordered.items())
        return told("backorder_created", order=entry.subject, items=lines)
    if action == "order.ship":
        if detail.get("status") == "fulfilled":
            return None
        shipped = detail.get("shipped") or {}
        units = tuple({"sku": sku, "units": n} for sku, n in shipped.items())
        return told("partly_shipped", order=entry.subject, items=units)
    if action == "backorder.release" and detail.get("order"):
        item = {"line": detail.get("line"), "sku": entry.subject, "units": detail.get("units")}
        return told("released_shipping", order=str(detail["order"]), items=(item,))
    if action == "backorder.promise_moved" and detail.get("order"):
        item = {"line": detail.get("line"), "sku": entry.subject, "units": detail.get("units"),
                "from": detail.get("from"), "to": detail.get("to")}  # fmt: skip
        return told("date_moved", order=str(detail["order"]), items=(item,))
    entry_id = detail.get("entry")
    if not action.startswith("campaign.") or not isinstance(entry_id, int):
        return None
    simple = {
        "campaign.waiting": "waitlist_confirmed",
        "campaign.expired": "expired",
        "campaign.not_allocated": "not_allocated",
    }
    if action in simple:
        return told(simple[action], entry_id=entry_id)
    if action == "campaign.allocated":
        if detail.get("pay_state") == "requested":
            return None  # told once the shop made the payment link (campaign.payment)
        return told("allocated", entry_id=entry_id, items=({"via": "allocation"},))
    if action == "campaign.payment":
        if detail.get("payment") == "open" and detail.get("pay_url"):
            return told("allocated", entry_id=entry_id, items=({"via": "link"},))
        if detail.get("payment") == "failed":
            return told("allocated", entry_id=entry_id, items=({"via": "payment_failed"},))
        return None
    if action == "campaign.reminder":
        return told("reminder", entry_id=entry_id, items=({"deadline": detail.get("deadline")},))
    if action in ("campaign.refund_refunded", "campaign.refund_by_hand"):
        refund = {"amount": detail.get("amount"), "by_hand": action.endswith("by_hand")}
        return told("deposit_refunded", entry_id=entry_id, items=(refund,))
    return None


GROUPED = ("released_shipping", "date_moved")


def occasions(entries: Sequence[Entry]) -> list[Occasion]:
    """The messages a batch of entries calls for; a transaction's releases (or moved dates)
    of one order's lines are one message, keyed by the first entry."""
    found: list[Occasion] = []
    groups: dict[tuple[str, str, datetime, str], int] = {}
    for entry in entries:
        occasion = classify(entry)
        if occasion is None:
            continue
        if occasion.message in GROUPED and occasion.order is not None:
            group = (occasion.message, occasion.order, entry.at, entry.actor)
            index = groups.get(group)
            if index is not None:
                held = found[index]
                found[index] = Occasion(
                    held.message, held.audit_id, held.order, held.entry,
                    (*(held.items or ()), *(occasion.items or ())), held.at,
                )  # fmt: skip
                continue
            groups[group] = len(found)
        found.append(occasion)
    return found


def hooked(entry: Entry, events: Sequence[str]) -> bool:
    """Does a webhook listening to `events` (names or globs) want this entry?"""
    return any(fnmatch.fnmatchcase(entry.action, pattern) for pattern in events)


def message_key(audit_id: int, kind: str, target: str) -> str:
    """`audit-<id>-<kind>-<target>`; a target too long for the column by its digest."""
    key = f"audit-{audit_id}-{kind}-{target}"
    if len(key) <= KEY_MAX:
        return key
    return f"audit-{audit_id}-{kind}-sha256:{hashlib.sha256(target.encode()).hexdigest()}"


def webhook_body(entry: Entry, message: str | None) -> str:
    """The JSON posted to webhooks (the bytes that are signed)."""
    data: dict[str, Any] = {
        "id": entry.id, "event": entry.action, "at": entry.at.isoformat(),
        "actor": entry.actor, "subject": entry.subject, "detail": entry.detail,
    }  # fmt: skip
    if message is not None:
        data["message"] = message
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)


# ---- the cursor and a batch -------------------------------------------------------------------


@dataclass
class BatchReport:
    read: int = 0
    cursor: int = 0
    last_read: int = 0  # the highest id read
    more: bool = False  # the batch was full: more entries may follow
    started: bool = False  # the cursor was made now (at the end of the log)
    enqueued: dict[str, int] = field(default_factory=dict)  # kind -> messages
    skipped: dict[str, int] = field(default_factory=dict)  # why -> emails not made
    render_failed: int = 0

    def count(self, kind: str) -> None:
        self.enqueued[kind] = self.enqueued.get(kind, 0) + 1

    def skip(self, why: str) -> None:
        self.skipped[why] = self.skipped.get(why, 0) + 1


def lock_cursor(session: Session, now: datetime) -> tuple[m.NotifyCursor, bool]:
    """The cursor row, locked (one notifier at a time); made at the end of the audit log the
    first time (messages start when `notify:` is set up, not with the ledger's history).
    Returns (cursor, made now)."""
    made = False
    if session.get(m.NotifyCursor, CURSOR) is None:
        last = session.scalar(select(func.max(m.AuditEntry.id))) or 0
        insert = upsert_insert(session)
        done = session.execute(
            insert(m.NotifyCursor)
            .values(name=CURSOR, last_audit_id=int(last), updated_at=now)
            .on_conflict_do_nothing(index_elements=["name"])
        )
        made = bool(done.rowcount)  # type: ignore[attr-defined]
    cursor = session.get(m.NotifyCursor, CURSOR, with_for_update=True, populate_existing=True)
    if cursor is None:
        raise RuntimeError("the notify cursor vanished")
    return cursor, made


def read_after(session: Session, after: int, limit: int) -> tuple[list[Entry], bool]:
    """Up to `limit` entries after id `after`, and whether there may be more."""
    rows = session.execute(
        select(
            m.AuditEntry.id, m.AuditEntry.at, m.AuditEntry.actor, m.AuditEntry.action,
            m.AuditEntry.subject, m.AuditEntry.detail,
        )
        .where(m.AuditEntry.id > after)
        .order_by(m.AuditEntry.id)
        .limit(limit)
    ).all()  # fmt: skip
    entries = [Entry(int(r[0]), r[1], str(r[2]), str(r[3]), str(r[4]), dict(r[5] or {}))
               for r in rows]  # fmt: skip
    full = len(entries) == limit
    if full:
        # a full batch may end inside a transaction: leave its entries to the next batch,
        # so that one transaction's entries about an order make one message
        last = entries[-1]
        kept = [e for e in entries if (e.at, e.actor) != (last.at, last.actor)]
        if kept:
            entries = kept
    return entries, full


def safe_end(after: int, entries: Sequence[Entry], now: datetime) -> int:
    """How far the cursor may move: through ids that follow on, and over gaps whose next
    entry is older than GAP_GRACE (the gap's transaction rolled back, or is long gone)."""
    end = after
    for entry in entries:
        if entry.id != end + 1 and now - entry.at < GAP_GRACE:
            break
        end = entry.id
    return end


def run_batch(
    session: Session,
    config: NotifyConfig,
    renderer: Renderer,
    now: datetime,
    *,
    limit: int = BATCH,
    channel_kinds: Mapping[str, str] | None = None,
) -> BatchReport:
    """One batch, in the caller's transaction: read, enqueue, move the cursor."""
    cursor, made = lock_cursor(session, now)
    report = BatchReport(cursor=cursor.last_audit_id, started=made)
    if made:
        return report
    entries, report.more = read_after(session, cursor.last_audit_id, limit)
    report.read = len(entries)
    if not entries:
        return report
    report.last_read = entries[-1].id
    found = occasions(entries)
    for occasion in found:
        _tell(session, config, renderer, occasion, now, report, channel_kinds or {})
    if config.alert_email and config.smtp is not None:
        for entry in entries:
            if entry.action.startswith("alert."):
                _alert_mail(session, entry, config.alert_email, now, report)
    if config.webhooks:
        told = {e.id: o.message for e in entries if (o := classify(e)) is not None}
        for entry in entries:
            for hook in config.webhooks:
                if hooked(entry, hook.events):
                    _hook(session, entry, hook.url, told.get(entry.id), now, report)
    end = safe_end(cursor.last_audit_id, entries, now)
    if end != cursor.last_audit_id:
        cursor.last_audit_id = end
        cursor.updated_at = now
    report.cursor = end
    return report


def _alert_mail(
    session: Session, entry: Entry, address: str, now: datetime, report: BatchReport
) -> None:
    """A merchant alert (notify.alerts) by email: what opened or ended, and its figures."""
    what = entry.action.removeprefix("alert.")
    if what == "resolved":
        subject = f"[stocksync] resolved: {entry.detail.get('kind')} {entry.subject}"
    else:
        subject = f"[stocksync] alert: {what} {entry.subject}"
    lines = [f"{key}: {value}" for key, value in sorted(entry.detail.items())]
    body = "\n".join([subject.removeprefix("[stocksync] "), f"at {entry.at.isoformat()}", "",
                      *lines, ""])  # fmt: skip
    made = outbox.enqueue(
        session, key=message_key(entry.id, "email", address), event=entry.action, kind="email",
        target=address, body=body, subject=subject, now=now, payload={"audit_id": entry.id},
    )  # fmt: skip
    if made:
        report.count("email")


def _hook(
    session: Session,
    entry: Entry,
    url: str,
    message: str | None,
    now: datetime,
    report: BatchReport,
) -> None:
    made = outbox.enqueue(
        session, key=message_key(entry.id, "webhook", url), event=entry.action, kind="webhook",
        target=url, body=webhook_body(entry, message), now=now,
        payload={"audit_id": entry.id, "message": message},
    )  # fmt: skip
    if made:
        report.count("webhook")


def _tell(
    session: Session,
    config: NotifyConfig,
    renderer: Renderer,
    occasion: Occasion,
    now: datetime,
    report: BatchReport,
    channel_kinds: Mapping[str, str],
) -> None:
    """The email (and shop note) of one occasion, rendered now."""
    if config.smtp is None and not config.shop_notes:
        report.skip("no_smtp")  # nothing to send it by: not even read from the ledger
        return
    try:
        prepared = prepare(session, occasion, config)
    except NothingToTell:
        return
    targets: list[tuple[str, str]] = []
    address = mailbox(prepared.email)
    if config.smtp is None:
        report.skip("no_smtp")
    elif not prepared.email:
        report.skip("no_email")
    elif address is None:
        report.skip("bad_email")
    else:
        targets.append(("email", address))
    shop = prepared.channel is not None and channel_kinds.get(prepared.channel) not in (
        None,
        "manual",
    )
    if config.shop_notes and shop and prepared.order is not None:
        targets.append(("shop_note", prepared.order))
    if not targets:
        return
    language = renderer.choose_language(occasion.message, prepared.languages)
    payload = _payload(occasion, language)
    try:
        rendered = renderer.render(occasion.message, language, prepared.context)
        subject, body, error = rendered.subject, rendered.body, None
    except RenderError as exc:
        subject, body, error = None, "", f"{TEMPLATE_FAILED} {exc}"
        report.render_failed += 1
    for kind, target in targets:
        made = outbox.enqueue(
            session, key=message_key(occasion.audit_id, kind, target), event=occasion.message,
            kind=kind, target=target, body=body, subject=subject, language=language, now=now,
            payload=payload, failed_because=error,
        )  # fmt: skip
        if made:
            report.count(kind)


def mailbox(text: str | None) -> str | None:
    """The address in what a shop gave as the customer's email (`Ann <ann@example.com>` ->
    `ann@example.com`); None when it is none (no "@", spaces or line breaks: never a header
    smuggled into the email)."""
    if not text or "\r" in text or "\n" in text:
        return None
    address = parseaddr(text)[1].strip()
    local, at, domain = address.rpartition("@")
    if not at or not local or "." not in domain or any(c.isspace() for c in address):
        return None
    return address


def _payload(occasion: Occasion, language: str) -> dict[str, Any]:
    """What renders the message again (`notify retry` of one whose template failed)."""
    return {
        "audit_id": occasion.audit_id, "message": occasion.message, "order": occasion.order,
        "entry": occasion.entry, "items": list(occasion.items or ()), "language": language,
    }  # fmt: skip


def render_again(
    session: Session, config: NotifyConfig, renderer: Renderer, message: outbox.Message
) -> tuple[str | None, str] | None:
    """A message rendered again from its payload (after its template was fixed): (subject,
    body); None for a message that is not rendered (a webhook) or has nothing to tell now.
    RenderError when the template still fails."""
    payload = message.payload
    if message.kind == "webhook" or "message" not in payload or not payload.get("message"):
        return None
    occasion = Occasion(
        str(payload["message"]), int(payload.get("audit_id") or 0), payload.get("order"),
        payload.get("entry"), tuple(payload.get("items") or ()),
    )  # fmt: skip
    try:
        prepared = prepare(session, occasion, config)
    except NothingToTell:
        return None
    language = message.language or renderer.choose_language(occasion.message, prepared.languages)
    rendered = renderer.render(occasion.message, language, prepared.context)
    return rendered.subject, rendered.body


def retry(
    session: Session,
    config: NotifyConfig,
    now: datetime,
    ids: Sequence[int] = (),
    *,
    all_failed: bool = False,
) -> list[int]:
    """Failed messages (these ids, or all) pending again, due now; one whose template failed
    is rendered again first. RenderError (nothing changed) when a template still fails."""
    found = (
        outbox.listing(session, failed_only=True, limit=1_000_000)
        if all_failed
        else [msg for msg in outbox.get(session, ids) if msg.state == "failed"]
    )
    renderer = Renderer(config.templates_dir)
    rendered: dict[int, tuple[str | None, str]] = {}
    for message in found:
        if (message.last_error or "").startswith(TEMPLATE_FAILED):
            again = render_again(session, config, renderer, message)
            if again is not None:
                rendered[message.id] = again
    return outbox.retry(session, now, [m.id for m in found], rendered=rendered)


def preview(
    session: Session,
    config: NotifyConfig,
    renderer: Renderer,
    message: str,
    *,
    order: str | None = None,
    entry: int | None = None,
    language: str | None = None,
) -> tuple[Prepared, str, str, str]:
    """(prepared, language, subject, body) of `message` for a real order or entry, as it
    would be sent now. NothingToTell, RenderError, ValueError for what cannot be shown."""
    if order is not None:
        split_order(order)
    prepared = prepare(session, Occasion(message, order=order, entry=entry), config)
    chosen = language or renderer.choose_language(message, prepared.languages)
    rendered = renderer.render(message, chosen, prepared.context)
    return prepared, chosen, rendered.subject, rendered.body


def batches(
    open_session: outbox.OpenSession,
    config: NotifyConfig,
    now: datetime,
    *,
    limit: int = BATCH,
    max_batches: int = 20,
    channel_kinds: Mapping[str, str] | None = None,
) -> Iterator[BatchReport]:
    """Batches until the log is read (or `max_batches`), each in its own transaction
    (`open_session()`: a context manager giving a session that commits when it ends)."""
    renderer = Renderer(config.templates_dir)
    for _ in range(max_batches):
        with open_session() as session:
            report = run_batch(
                session, config, renderer, now, limit=limit, channel_kinds=channel_kinds
            )
        yield report
        # on while batches come full and the cursor went through them (not stopped at a gap)
        if report.started or not report.more or report.cursor < report.last_read:
            return
