"""What a message says, read from the ledger when it is rendered: the order (its customer's
email and language, its lines, what is reserved, waiting and shipped, each waiting line's
promised date) or the campaign entry (email, deadline, payment link, terms, refunds).

An `Occasion` is what happened (from audit entries, or nothing for a preview); `prepare` turns
it into the template context, the recipient and the languages to try, in order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from notify.formats import parse_money
from notify.render import ENTRY_MESSAGES, ORDER_MESSAGES
from rules.notify_model import NotifyConfig
from stock import campaign_money, campaigns
from stock import models as m
from stock.tx import LedgerInputError


@dataclass(frozen=True)
class Occasion:
    """One message to tell: `message` about `order` ("channel/ref") or campaign `entry`, with
    the items the audit entries name (lines backordered, shipped, released or moved; a
    refund). `items` None: a preview, taken from the ledger as it is now."""

    message: str
    audit_id: int = 0  # the (first) audit entry it comes from; 0 for a preview
    order: str | None = None
    entry: int | None = None
    items: tuple[Mapping[str, Any], ...] | None = None
    at: datetime | None = None


@dataclass
class Prepared:
    context: dict[str, Any]
    email: str | None
    languages: list[str | None]  # the customer's, the channel's, the default: first found wins
    channel: str | None = None  # the order's channel (for shop notes)
    order: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class NothingToTell(Exception):
    """The occasion no longer holds (the order or entry is gone, or it changed so the message
    would be wrong): no message."""


def split_order(ref: str) -> tuple[str, str]:
    """An order "channel/ref" -> (channel, ref): channel names hold no "/"; order refs may."""
    channel, sep, external = ref.partition("/")
    if not sep or not channel or not external:
        raise ValueError(f"an order is CHANNEL/REF, got {ref!r}")
    return channel, external


def prepare(session: Session, occasion: Occasion, config: NotifyConfig) -> Prepared:
    """The context of `occasion`; NothingToTell when there is nothing (left) to say."""
    base: dict[str, Any] = {"shop_name": config.shop_name, "timezone": config.timezone}
    if occasion.message in ORDER_MESSAGES:
        if occasion.order is None:
            raise ValueError(f"{occasion.message} is about an order")
        channel, ref = split_order(occasion.order)
        order = load_order(session, channel, ref)
        if order is None:
            raise NothingToTell(f"no order {occasion.order}")
        if order["status"] == "cancelled":
            raise NothingToTell(f"order {occasion.order} is cancelled")
        extra = _ORDER_PARTS[occasion.message](order, occasion.items)
        return Prepared(
            {**base, "order": order, **extra},
            order["email"],
            [order["language"], config.channel_languages.get(channel), config.default_language],
            channel=channel,
            order=occasion.order,
        )
    if occasion.message in ENTRY_MESSAGES:
        if occasion.entry is None:
            raise ValueError(f"{occasion.message} is about a campaign entry")
        entry = load_entry(session, occasion.entry)
        if entry is None:
            raise NothingToTell(f"no campaign entry {occasion.entry}")
        extra = _ENTRY_PARTS[occasion.message](session, entry, occasion.items)
        where = entry["channel"]
        return Prepared(
            {**base, "entry": entry, "campaign": entry["campaign"], **extra},
            entry["email"],
            [config.channel_languages.get(where) if where else None, config.default_language],
        )
    raise ValueError(f"unknown message {occasion.message!r}")


# ---- orders -----------------------------------------------------------------------------------


def load_order(session: Session, channel: str, ref: str) -> dict[str, Any] | None:
    """The order as messages show it; None when there is no such order."""
    order = session.scalar(
        select(m.ChannelOrder)
        .where(m.ChannelOrder.channel == channel, m.ChannelOrder.external_id == ref)
        .options(
            selectinload(m.ChannelOrder.lines).selectinload(m.OrderLine.reservation),
            selectinload(m.ChannelOrder.lines).selectinload(m.OrderLine.backorders),
        )
    )
    if order is None:
        return None
    sku_ids = {line.sku_id for line in order.lines}
    codes = dict(session.execute(select(m.Sku.id, m.Sku.code).where(m.Sku.id.in_(sku_ids))).all())
    lines: list[dict[str, Any]] = []
    for line in order.lines:
        open_rows = [row for row in line.backorders if row.qty_open > 0]
        dates = [row.promised_on for row in open_rows]
        moved = [row.promise_moved_from for row in open_rows if row.promise_moved_from]
        lines.append(
            {
                "line": line.external_line_id,
                "sku": str(codes.get(line.sku_id, "?")),
                "quantity": line.quantity,
                "reserved": line.reservation.qty if line.reservation is not None else 0,
                "backordered": sum(row.qty_open for row in open_rows),
                "shipped": line.shipped,
                "cancelled": line.cancelled,
                # the line's units are all in by its latest date; None: a date is not known
                "promised_on": _latest(dates),
                "moved_from": min(moved) if moved else None,
            }
        )
    waiting = [line for line in lines if line["backordered"] > 0]
    return {
        "channel": order.channel,
        "ref": order.external_id,
        "placed_at": order.placed_at,
        "status": order.status,
        "email": order.email,
        "language": order.language,
        "lines": lines,
        "waiting": waiting,
        # when everything still waiting is in: None when nothing waits or a date is unknown
        "promised_on": _latest([line["promised_on"] for line in waiting]) if waiting else None,
    }


def _latest(dates: Sequence[date | None]) -> date | None:
    if not dates or any(d is None for d in dates):
        return None
    return max(d for d in dates if d is not None)


def _by_line(order: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {line["line"]: line for line in order["lines"]}


def _backordered(
    order: Mapping[str, Any], items: Sequence[Mapping[str, Any]] | None
) -> dict[str, Any]:
    lines = _by_line(order)
    if items is None:
        items = [{"line": w["line"], "units": w["backordered"]} for w in order["waiting"]]
    found = []
    for item in items:
        line = lines.get(str(item["line"]))
        if line is None or not int(item["units"]):
            continue
        found.append(
            {"line": line["line"], "sku": line["sku"], "units": int(item["units"]),
             "promised_on": line["promised_on"]}
        )  # fmt: skip
    if not found:
        raise NothingToTell("nothing of the order waits any more")
    return {"backordered": found, "promised_on": _latest([f["promised_on"] for f in found])}


def _shipped(order: Mapping[str, Any], items: Sequence[Mapping[str, Any]] | None) -> dict[str, Any]:
    if items is None:
        items = [{"sku": line["sku"], "units": line["shipped"]} for line in order["lines"]]
    shipped = [{"sku": str(i["sku"]), "units": int(i["units"])} for i in items if int(i["units"])]
    if not shipped:
        raise NothingToTell("nothing shipped")
    return {"shipped": shipped}


def _released(
    order: Mapping[str, Any], items: Sequence[Mapping[str, Any]] | None
) -> dict[str, Any]:
    lines = _by_line(order)
    if items is None:
        items = [
            {"line": line["line"], "sku": line["sku"], "units": line["reserved"]}
            for line in order["lines"]
        ]
    released = []
    for item in items:
        line = lines.get(str(item["line"]), {})
        if int(item["units"]):
            released.append(
                {"line": str(item["line"]), "sku": str(item.get("sku") or line.get("sku")),
                 "units": int(item["units"])}
            )  # fmt: skip
    if not released:
        raise NothingToTell("nothing released")
    return {"released": released, "complete": not order["waiting"]}


def _moved(order: Mapping[str, Any], items: Sequence[Mapping[str, Any]] | None) -> dict[str, Any]:
    lines = _by_line(order)
    if items is None:
        flagged = [w for w in order["waiting"] if w["moved_from"] is not None]
        items = [
            {"line": w["line"], "sku": w["sku"], "units": w["backordered"],
             "from": w["moved_from"], "to": w["promised_on"]}
            for w in flagged or order["waiting"]
        ]  # fmt: skip
    moved = []
    for item in items:
        line = lines.get(str(item["line"]))
        if line is None or line["backordered"] == 0:
            continue  # filled meanwhile: that is told as a release
        moved.append(
            {"line": line["line"], "sku": line["sku"],
             "units": int(item.get("units") or line["backordered"]),
             "from": _day(item.get("from")), "to": _day(item.get("to"))}
        )  # fmt: skip
    if not moved:
        raise NothingToTell("no waiting line's date moved")
    return {"moved": moved, "promised_on": order["promised_on"]}


def _day(value: Any) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


_ORDER_PARTS = {
    "backorder_created": _backordered,
    "partly_shipped": _shipped,
    "released_shipping": _released,
    "date_moved": _moved,
}


# ---- campaign entries -------------------------------------------------------------------------


def load_entry(session: Session, entry_id: int) -> dict[str, Any] | None:
    try:
        row = campaigns.entry(session, entry_id)
    except LedgerInputError:
        return None
    terms = row.terms or {}
    balance = terms.get("balance")
    return {
        "id": row.id,
        "campaign": row.campaign,
        "sku": row.sku,
        "qty": row.qty,
        "email": row.email,
        "status": row.status,
        "channel": row.channel,
        "token": row.token,
        "deadline": row.expires_at,
        "pay_url": row.pay_url,
        "pay_ref": row.pay_ref,
        "terms": terms,
        # what is left to pay (the balance of accepted payment terms); None: not known
        "balance": Decimal(str(balance)) if balance is not None else None,
        "currency": terms.get("currency"),
    }


def _waitlisted(
    _session: Session, entry: Mapping[str, Any], _items: Sequence[Mapping[str, Any]] | None
) -> dict[str, Any]:
    return {}


def _allocated(
    _session: Session, entry: Mapping[str, Any], items: Sequence[Mapping[str, Any]] | None
) -> dict[str, Any]:
    # the shop could not make the payment link: told without one, if still allocated
    failed_link = bool(items) and items is not None and items[0].get("via") == "payment_failed"
    if failed_link and (entry["status"] != "allocated" or entry["pay_ref"] is not None):
        raise NothingToTell("the allocation ended, or its link was made after all")
    return {"deadline": entry["deadline"], "pay_url": entry["pay_url"]}


def _reminded(
    _session: Session, entry: Mapping[str, Any], items: Sequence[Mapping[str, Any]] | None
) -> dict[str, Any]:
    deadline = entry["deadline"]
    if items and items[0].get("deadline"):
        deadline = datetime.fromisoformat(str(items[0]["deadline"]))
    return {"deadline": deadline, "pay_url": entry["pay_url"]}


def _refunded(
    session: Session, entry: Mapping[str, Any], items: Sequence[Mapping[str, Any]] | None
) -> dict[str, Any]:
    if items:
        money = parse_money(items[0].get("amount"))
        if money is None:
            raise NothingToTell(f"no amount in {items[0]!r}")
        return {"refund": {"amount": money[0], "currency": money[1],
                           "by_hand": bool(items[0].get("by_hand"))}}  # fmt: skip
    rows = campaign_money.of_entries(session, [entry["id"]]).get(entry["id"], [])
    refunds = [r for r in rows if r.kind == "refund" and r.state in ("refunded", "by_hand")]
    if not refunds:
        raise NothingToTell(f"entry {entry['id']} has no refund")
    last = refunds[-1]
    return {"refund": {"amount": last.amount, "currency": last.currency,
                       "by_hand": last.state == "by_hand"}}  # fmt: skip


_ENTRY_PARTS = {
    "waitlist_confirmed": _waitlisted,
    "allocated": _allocated,
    "reminder": _reminded,
    "expired": _waitlisted,
    "not_allocated": _waitlisted,
    "deposit_refunded": _refunded,
}
