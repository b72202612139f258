"""WooCommerce order JSON (REST wc/v3, the same in webhooks) to channel-neutral values. Pure.

Status meaning for stock: WooCommerce itself takes units from stock when an order enters
processing, on-hold or completed and gives them back on cancelled or pending, so pending and
failed orders (unpaid) hold nothing and count as CANCELLED here, like cancelled, refunded,
trashed and checkout drafts.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from connectors.base import ChannelOrder, OrderLine, OrderStatus, OtherLine, PayloadError

STATUS_MAP: Mapping[str, OrderStatus] = {
    "pending": OrderStatus.CANCELLED,  # unpaid: WooCommerce holds no stock for it
    "failed": OrderStatus.CANCELLED,  # payment failed: likewise
    "cancelled": OrderStatus.CANCELLED,
    "refunded": OrderStatus.CANCELLED,
    "trash": OrderStatus.CANCELLED,
    "checkout-draft": OrderStatus.CANCELLED,  # a block-checkout cart, not an order yet
    "processing": OrderStatus.OPEN,
    "on-hold": OrderStatus.OPEN,
    "completed": OrderStatus.FULFILLED,
}
_PING = re.compile(rb"webhook_id=\d+")
# Not WooCommerce's: the customer's role (GET customers/{id} `role`), which order payloads do
# not carry, put into the stored body by WooCommerceChannel.complete_order (null: no such
# customer any more). Parsing reads it like any field.
CUSTOMER_ROLE_KEY = "_stocksync_customer_role"


def is_ping(body: bytes) -> bool:
    """The form body WooCommerce posts when a webhook is created (no signature)."""
    return _PING.fullmatch(body.strip()) is not None


def load_object(channel: str, what: str, body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayloadError(channel, what, f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise PayloadError(channel, what, f"expected a JSON object, got {type(data).__name__}")
    return data


def _field(data: Mapping[str, Any], name: str, kind: type, channel: str, what: str) -> Any:
    value = data.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise PayloadError(channel, what, f"{name} must be {kind.__name__}, got {value!r}")
    return value


def parse_gmt(value: Any, channel: str, what: str) -> datetime:
    """A WooCommerce *_gmt field ("2017-03-22T19:28:08", no offset) as aware UTC."""
    if not isinstance(value, str) or not value:
        raise PayloadError(channel, what, f"expected a GMT date, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise PayloadError(channel, what, f"bad date {value!r}") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _refunded_quantities(data: Mapping[str, Any], channel: str) -> dict[int, int]:
    """Units refunded per order line, when refunds[] carries refund objects with line items.

    The order endpoint lists refunds as {id, reason/refund, total} only; full refund objects
    (GET orders/{id}/refunds) name the refunded line in refunded_item_id or the
    _refunded_item_id meta, with a negative quantity.
    """
    refunded: dict[int, int] = {}
    refunds = data.get("refunds", [])
    if not isinstance(refunds, list):
        raise PayloadError(channel, "refunds", f"expected a list, got {refunds!r}")
    for refund in refunds:
        if not isinstance(refund, dict):
            raise PayloadError(channel, "refunds", f"expected objects, got {refund!r}")
        for item in refund.get("line_items") or []:
            if not isinstance(item, dict):
                raise PayloadError(channel, "refunds.line_items", f"bad item {item!r}")
            target: Any = item.get("refunded_item_id")
            for meta in item.get("meta_data") or []:
                if isinstance(meta, dict) and meta.get("key") == "_refunded_item_id":
                    target = meta.get("value")
            quantity: Any = item.get("quantity", 0)
            try:
                line_id, units = int(target), abs(int(quantity))
            except (TypeError, ValueError):
                raise PayloadError(
                    channel, "refunds.line_items", f"cannot tell which line {item!r} refunds"
                ) from None
            refunded[line_id] = refunded.get(line_id, 0) + units
    return refunded


def _lines(
    data: Mapping[str, Any], channel: str
) -> tuple[tuple[OrderLine, ...], tuple[OtherLine, ...]]:
    """The stock lines, and the lines without a SKU (kept with the order, never counted)."""
    items = data.get("line_items")
    if not isinstance(items, list):
        raise PayloadError(channel, "line_items", f"expected a list, got {items!r}")
    refunded = _refunded_quantities(data, channel)
    lines: list[OrderLine] = []
    others: list[OtherLine] = []
    for item in items:
        if not isinstance(item, dict):
            raise PayloadError(channel, "line_items", f"expected objects, got {item!r}")
        line_id = _field(item, "id", int, channel, "line_items.id")
        quantity = _field(item, "quantity", int, channel, f"line_items[{line_id}].quantity")
        sku = item.get("sku")
        if sku is not None and not isinstance(sku, str):
            raise PayloadError(channel, f"line_items[{line_id}].sku", f"not text: {sku!r}")
        current = max(quantity - refunded.get(line_id, 0), 0)
        if not sku or not sku.strip():
            # stock is kept by SKU: a product without one is not ours to count
            name = item.get("name")
            others.append(OtherLine(str(line_id), name if isinstance(name, str) else "", current))
            continue
        lines.append(OrderLine(external_line_id=str(line_id), sku=sku, quantity=current))
    return tuple(lines), tuple(others)


def _meta(data: Mapping[str, Any], channel: str) -> tuple[tuple[str, str], ...]:
    """The order's meta_data as (key, text) pairs in payload order. Values a plugin stored as
    arrays or objects (and null or booleans) name no tier: they are left out."""
    entries = data.get("meta_data") or []
    if not isinstance(entries, list):
        raise PayloadError(channel, "meta_data", f"expected a list, got {entries!r:.100}")
    pairs: list[tuple[str, str]] = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("key"), str):
            raise PayloadError(channel, "meta_data", f"expected {{key, value}}, got {entry!r:.100}")
        value = entry.get("value")
        if isinstance(value, str) or (
            isinstance(value, int | float) and not isinstance(value, bool)
        ):
            pairs.append((entry["key"], str(value)))
    return tuple(pairs)


def _customer_role(data: Mapping[str, Any], channel: str) -> str | None:
    role = data.get(CUSTOMER_ROLE_KEY)
    if role is not None and not isinstance(role, str):
        raise PayloadError(channel, CUSTOMER_ROLE_KEY, f"expected text, got {role!r:.100}")
    return role or None


def order_status(
    raw: str, channel: str, extra: Mapping[str, OrderStatus] | None = None
) -> OrderStatus:
    known = {**STATUS_MAP, **(extra or {})}
    found = known.get(raw)
    if found is None:
        raise PayloadError(
            channel,
            "status",
            f"unknown order status {raw!r} (a plugin's?); map it in the channel's status_map; "
            f"known: {sorted(known)}",
        )
    return found


def parse_order_json(
    channel: str, data: Mapping[str, Any], extra_statuses: Mapping[str, OrderStatus] | None = None
) -> ChannelOrder:
    order_id = _field(data, "id", int, channel, "id")
    raw_status = _field(data, "status", str, channel, "status")
    lines, others = _lines(data, channel)
    customer_id = data.get("customer_id", 0)
    billing = data.get("billing") if isinstance(data.get("billing"), dict) else {}
    email = (billing or {}).get("email") or None
    customer_key: str | None
    if isinstance(customer_id, int) and not isinstance(customer_id, bool) and customer_id:
        customer_key = str(customer_id)
    else:
        customer_key = email if isinstance(email, str) else None
    return ChannelOrder(
        channel=channel,
        external_id=str(order_id),
        placed_at=parse_gmt(data.get("date_created_gmt"), channel, "date_created_gmt"),
        updated_at=parse_gmt(data.get("date_modified_gmt"), channel, "date_modified_gmt"),
        status=order_status(raw_status, channel, extra_statuses),
        lines=lines,
        customer_key=customer_key,
        source_status=raw_status,
        other_lines=others,
        customer_role=_customer_role(data, channel),
        meta=(meta := _meta(data, channel)),
        email=email if isinstance(email, str) else None,
        language=next((value for key, value in meta if key in LANGUAGE_META and value), None),
    )


# where multilingual plugins keep the language an order was placed in (WPML, Polylang,
# TranslatePress); WooCommerce itself records none
LANGUAGE_META = ("wpml_language", "pll_language", "trp_language")


def event_key(channel: str, data: Mapping[str, Any]) -> str:
    """ "order:<id>@<date_modified_gmt>#<digest of what moves stock>".

    Duplicates of a delivery, and a poll of the same version, share it. date_modified has
    one-second resolution, so the digest (status, lines, refunds) tells apart two changes within
    one second that matter for stock; a same-second change that does not is harmless to drop.
    """
    order_id = _field(data, "id", int, channel, "id")
    modified = parse_gmt(data.get("date_modified_gmt"), channel, "date_modified_gmt")
    lines = [
        [item.get("id"), item.get("sku"), item.get("quantity")]
        for item in data.get("line_items") or []
        if isinstance(item, dict)
    ]
    material = json.dumps(
        [data.get("status"), lines, data.get("refunds") or []], sort_keys=True, default=str
    )
    digest = hashlib.sha256(material.encode()).hexdigest()[:12]
    stamp = modified.replace(tzinfo=None).isoformat(timespec="seconds")
    return f"order:{order_id}@{stamp}#{digest}"
