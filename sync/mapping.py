"""Channel-neutral orders (connectors.base) -> ledger inputs (backorders.orders)."""

from __future__ import annotations

from backorders.orders import LineInput, OrderInput, OrderState, OtherLineInput
from connectors.base import ChannelOrder, OrderStatus

_STATES: dict[OrderStatus, OrderState] = {
    OrderStatus.OPEN: "open",
    OrderStatus.FULFILLED: "fulfilled",
    OrderStatus.CANCELLED: "cancelled",
}


def order_state(status: OrderStatus) -> OrderState:
    return _STATES[status]


def to_order_input(order: ChannelOrder, channel: str) -> OrderInput:
    """`channel` is our name for it (the config key), whatever the connector called it."""
    merged: dict[str, LineInput] = {}
    for line in order.lines:
        merged[line.external_line_id] = LineInput(line.external_line_id, line.sku, line.quantity)
    return OrderInput(
        channel=channel,
        external_id=order.external_id,
        placed_at=order.placed_at,
        updated_at=order.updated_at,
        status=_STATES[order.status],
        lines=tuple(merged.values()),
        customer_key=order.customer_key,
        source_status=order.source_status,
        other_lines=tuple(
            OtherLineInput(o.external_line_id, o.title, o.quantity) for o in order.other_lines
        ),
    )
