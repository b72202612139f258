"""Shopify order payloads -> ChannelOrder, for both shapes we store in the inbox:

- webhooks (`orders/create`, `orders/updated`, `orders/cancelled`, ...): the REST order JSON,
  numeric ids, `line_items[].current_quantity` (older payloads: quantity minus refunds),
  `customer.tags` one comma-separated string;
- POLL_TOPIC: the GraphQL order node pull_orders fetched (gids, `lineItems.nodes`,
  `currentQuantity`, `customer.tags` a list), with every line item page merged in.

Both give the same external ids (the numeric order and line item ids), so a webhook and a poll
of one order land on the same ledger rows.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from connectors.base import (
    POLL_TOPIC,
    ChannelOrder,
    OrderLine,
    OrderStatus,
    OtherLine,
    PayloadError,
)


def gid_tail(value: Any) -> str:
    """`gid://shopify/Order/123` (or 123, or "123") -> "123"."""
    text = str(value)
    return text.rsplit("/", 1)[-1].split("?", 1)[0] if text.startswith("gid://") else text


def parse_body(channel: str, topic: str, body: bytes) -> ChannelOrder:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayloadError(channel, topic, f"body is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise PayloadError(channel, topic, "body is not a JSON object")
    if topic == POLL_TOPIC:
        return parse_graphql_order(channel, data)
    if topic.startswith("orders/"):
        return parse_rest_order(channel, data, topic)
    raise PayloadError(channel, topic, "not an order topic")


def parse_rest_order(channel: str, data: Mapping[str, Any], what: str = "order") -> ChannelOrder:
    order_id = _required(channel, what, data, "id")
    where = f"{what} {order_id}"
    refunded = _refunded_by_line(channel, where, data.get("refunds") or [])
    lines: list[OrderLine] = []
    others: list[OtherLine] = []
    for index, raw in enumerate(_list(channel, where, data, "line_items")):
        if not isinstance(raw, Mapping):
            raise PayloadError(channel, f"{where} line_items[{index}]", "not an object")
        line_id = str(_required(channel, f"{where} line_items[{index}]", raw, "id"))
        if "current_quantity" in raw:
            quantity = _int(channel, f"{where} line {line_id}", raw["current_quantity"])
        else:  # payloads before current_quantity existed: original minus refunded units
            original = _int(channel, f"{where} line {line_id}", raw.get("quantity"))
            quantity = max(original - refunded.get(line_id, 0), 0)
        plan = (raw.get("selling_plan_allocation") or {}).get("selling_plan_id")
        _add_line(
            lines, others, line_id, raw.get("sku"), raw.get("name") or raw.get("title"), quantity,
            plan,
        )  # fmt: skip
    customer = data.get("customer")
    customer_key = None
    tags: tuple[str, ...] = ()
    if isinstance(customer, Mapping):
        tags = _tags(channel, where, customer.get("tags"))
    if isinstance(customer, Mapping) and customer.get("id") is not None:
        customer_key = str(customer["id"])
    elif data.get("email") or data.get("contact_email"):
        customer_key = str(data.get("email") or data.get("contact_email"))
    cancelled = data.get("cancelled_at") is not None
    fulfillment = str(data.get("fulfillment_status") or "")
    return ChannelOrder(
        channel=channel,
        external_id=str(order_id),
        placed_at=_time(channel, where, data.get("created_at"), "created_at"),
        updated_at=_time(channel, where, data.get("updated_at"), "updated_at"),
        status=_status(cancelled, fulfillment.lower() == "fulfilled"),
        lines=tuple(lines),
        customer_key=customer_key,
        source_status="cancelled" if cancelled else (fulfillment or "unfulfilled"),
        other_lines=tuple(others),
        customer_tags=tags,
        meta=_pairs(data.get("note_attributes"), "name"),
        email=_text(data.get("email") or data.get("contact_email")),
        language=_text(data.get("customer_locale")),
        outstanding=_amount(channel, where, data.get("total_outstanding")),
    )


def parse_graphql_order(channel: str, data: Mapping[str, Any]) -> ChannelOrder:
    order_id = gid_tail(data.get("legacyResourceId") or _required(channel, "order", data, "id"))
    where = f"order {order_id}"
    connection = data.get("lineItems")
    if not isinstance(connection, Mapping):
        raise PayloadError(channel, where, "lineItems missing")
    lines: list[OrderLine] = []
    others: list[OtherLine] = []
    for index, raw in enumerate(_list(channel, where, connection, "nodes")):
        if not isinstance(raw, Mapping):
            raise PayloadError(channel, f"{where} lineItems[{index}]", "not an object")
        line_id = gid_tail(_required(channel, f"{where} lineItems[{index}]", raw, "id"))
        quantity = _int(channel, f"{where} line {line_id}", raw.get("currentQuantity"))
        plan = (raw.get("sellingPlan") or {}).get("sellingPlanId")
        _add_line(lines, others, line_id, raw.get("sku"), raw.get("name"), quantity, plan)
    customer = data.get("customer")
    customer_key = None
    tags: tuple[str, ...] = ()
    if isinstance(customer, Mapping):
        tags = _tags(channel, where, customer.get("tags"))
    if isinstance(customer, Mapping) and customer.get("id"):
        customer_key = gid_tail(customer["id"])
    elif data.get("email"):
        customer_key = str(data["email"])
    cancelled = data.get("cancelledAt") is not None
    display = str(data.get("displayFulfillmentStatus") or "")
    return ChannelOrder(
        channel=channel,
        external_id=order_id,
        placed_at=_time(channel, where, data.get("createdAt"), "createdAt"),
        updated_at=_time(channel, where, data.get("updatedAt"), "updatedAt"),
        status=_status(cancelled, display == "FULFILLED"),
        lines=tuple(lines),
        customer_key=customer_key,
        source_status="cancelled" if cancelled else (display.lower() or "unfulfilled"),
        other_lines=tuple(others),
        customer_tags=tags,
        meta=_pairs(data.get("customAttributes"), "key"),
        email=_text(data.get("email")),
        language=_text(data.get("customerLocale")),
        outstanding=_amount(
            channel,
            where,
            ((data.get("totalOutstandingSet") or {}).get("shopMoney") or {}).get("amount"),
        ),
    )


def _pairs(raw: Any, key: str) -> tuple[tuple[str, str], ...]:
    """The order's attributes (REST note_attributes {name, value}, GraphQL customAttributes
    {key, value}) as text pairs; entries of another shape are left out, not guessed at."""
    if not isinstance(raw, list):
        return ()
    return tuple(
        (item[key], item["value"])
        for item in raw
        if isinstance(item, Mapping)
        and isinstance(item.get(key), str)
        and isinstance(item.get("value"), str)
    )


def _status(cancelled: bool, fulfilled: bool) -> OrderStatus:
    if cancelled:
        return OrderStatus.CANCELLED
    return OrderStatus.FULFILLED if fulfilled else OrderStatus.OPEN


def _add_line(
    lines: list[OrderLine],
    others: list[OtherLine],
    line_id: str,
    sku: Any,
    title: Any,
    quantity: int,
    selling_plan: Any = None,
) -> None:
    """Stock is kept by SKU: a line without one (a custom item, a tip, a gift card) is kept
    with the order as an other line, never reserved, backordered or held for."""
    if isinstance(sku, str) and sku.strip():
        plan = gid_tail(selling_plan) if selling_plan not in (None, "") else None
        lines.append(OrderLine(line_id, sku, quantity, plan))
    else:
        others.append(OtherLine(line_id, str(title or ""), quantity))


def _tags(channel: str, where: str, value: Any) -> tuple[str, ...]:
    """The customer's tags: REST payloads give one comma-separated string ("vip, wholesale"),
    GraphQL a list of strings. Trimmed, empty ones dropped, each once, in the order given."""
    if value is None:
        return ()
    if isinstance(value, str):
        items: list[Any] = value.split(",")
    elif isinstance(value, list):
        items = value
    else:
        raise PayloadError(channel, f"{where} customer.tags", f"not text or a list: {value!r}")
    tags: dict[str, None] = {}
    for item in items:
        if not isinstance(item, str):
            raise PayloadError(channel, f"{where} customer.tags", f"a tag is not text: {item!r}")
        if item.strip():
            tags[item.strip()] = None
    return tuple(tags)


def _refunded_by_line(channel: str, where: str, refunds: Any) -> dict[str, int]:
    if not isinstance(refunds, list):
        raise PayloadError(channel, where, "refunds is not a list")
    totals: dict[str, int] = {}
    for refund in refunds:
        for item in (refund or {}).get("refund_line_items") or []:
            line_id = str(item.get("line_item_id"))
            totals[line_id] = totals.get(line_id, 0) + _int(channel, where, item.get("quantity"))
    return totals


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _amount(channel: str, where: str, value: Any) -> Decimal | None:
    """A money amount as Shopify sends it ("12.50"); None when the payload has none."""
    if value is None:
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise PayloadError(channel, where, f"not an amount: {value!r}") from None


def _required(channel: str, where: str, data: Mapping[str, Any], key: str) -> Any:
    value = data.get(key)
    if value is None or value == "":
        raise PayloadError(channel, where, f"{key!r} is missing")
    return value


def _list(channel: str, where: str, data: Mapping[str, Any], key: str) -> list[Any]:
    value = data.get(key)
    if not isinstance(value, list):
        raise PayloadError(channel, where, f"{key!r} is not a list")
    return value


def _int(channel: str, where: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PayloadError(channel, where, f"quantity must be a whole number >= 0, got {value!r}")
    return value


def _time(channel: str, where: str, value: Any, key: str) -> datetime:
    if not isinstance(value, str):
        raise PayloadError(channel, where, f"{key!r} is missing")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise PayloadError(channel, where, f"{key!r} is not an ISO time: {value!r}") from exc
    if parsed.tzinfo is None:
        raise PayloadError(channel, where, f"{key!r} has no time zone: {value!r}")
    return parsed.astimezone(UTC)
