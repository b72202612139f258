"""Channel-neutral orders (connectors.base) -> ledger inputs (backorders.orders)."""

from __future__ import annotations

from backorders.orders import LineInput, OrderInput, OrderState, OtherLineInput
from connectors.base import PAYMENT_ATTRIBUTE, ChannelOrder, OrderStatus
from rules import Config, TierFrom

_STATES: dict[OrderStatus, OrderState] = {
    OrderStatus.OPEN: "open",
    OrderStatus.FULFILLED: "fulfilled",
    OrderStatus.CANCELLED: "cancelled",
}


def order_state(status: OrderStatus) -> OrderState:
    return _STATES[status]


def tier_values(order: ChannelOrder, tier_from: TierFrom) -> tuple[str, ...]:
    """What the channel says about the customer, from the source `tier_from` names."""
    if tier_from.source == "tags":
        return order.customer_tags
    if tier_from.source == "role":
        return (order.customer_role,) if order.customer_role else ()
    # meta: the first value of the key, as WooCommerce's get_meta(key, single) reads it
    first = next((value for key, value in order.meta if key == tier_from.key), None)
    return (first,) if first is not None else ()


def order_tier(
    order: ChannelOrder, tier_from: TierFrom | None, tiers: tuple[str, ...]
) -> str | None:
    """The customer tier of a shop order under the channel's `tier_from` (None: no tier)."""
    if tier_from is None:
        return None
    return tier_from.tier_for(tier_values(order, tier_from), tiers)


def to_order_input(order: ChannelOrder, channel: str, config: Config | None = None) -> OrderInput:
    """`channel` is our name for it (the config key), whatever the connector called it.

    With `config`, the order's tier is read as the channel's `tier_from` says; without, or when
    nothing matches, the order has no tier (an update without one keeps the tier recorded).
    """
    merged: dict[str, LineInput] = {}
    for line in order.lines:
        merged[line.external_line_id] = LineInput(line.external_line_id, line.sku, line.quantity)
    tier = order_tier(order, config.tier_from(channel), config.tiers) if config else None
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
        tier=tier,
        payment_proof=next((v for k, v in order.meta if k == PAYMENT_ATTRIBUTE), None),
    )
