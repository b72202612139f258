"""Channel-neutral orders (connectors.base) -> ledger inputs (backorders.orders)."""

from __future__ import annotations

from collections.abc import Mapping

from backorders.orders import CampaignDeposit, LineInput, OrderInput, OrderState, OtherLineInput
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


def to_order_input(
    order: ChannelOrder,
    channel: str,
    config: Config | None = None,
    plans: Mapping[str, str] | None = None,
) -> OrderInput:
    """`channel` is our name for it (the config key), whatever the connector called it.

    With `config`, the order's tier is read as the channel's `tier_from` says; without, or when
    nothing matches, the order has no tier (an update without one keeps the tier recorded).
    `plans`: the channel's campaign selling plans (plan id -> campaign); a line bought through
    one is a pre-order, held as money until paid in full (backorders.orders.stock_plan_lines).
    """
    merged: dict[str, LineInput] = {}
    deposit_skus = config.deposit_skus() if config else {}
    deposits: list[OtherLineInput] = []
    pre_orders: list[tuple[str, OtherLineInput]] = []
    for line in order.lines:
        if line.sku in deposit_skus:  # a campaign deposit product: money, not stock
            deposits.append(OtherLineInput(line.external_line_id, line.sku, line.quantity))
            continue
        campaign = (plans or {}).get(line.selling_plan or "")
        if campaign is not None:
            held = OtherLineInput(line.external_line_id, line.sku, line.quantity, line.sku)
            pre_orders.append((campaign, held))
            continue
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
        )
        + tuple(deposits)
        + tuple(held for _campaign, held in pre_orders),
        tier=tier,
        payment_proof=next((v for k, v in order.meta if k == PAYMENT_ATTRIBUTE), None),
        campaign_deposit=_pre_order(order, pre_orders) or _deposit(order, deposits, deposit_skus),
        outstanding=order.outstanding,
        email=order.email,
        language=order.language,
    )


DEPOSIT_CAMPAIGN_META = "stocksync_campaign"  # which campaign a deposit order signs up for
DEPOSIT_VARIANT_META = "stocksync_variant"  # the variant wanted
DEPOSIT_TERMS_META = "stocksync_accept_terms"  # "yes": the terms were accepted at checkout


def _pre_order(
    order: ChannelOrder, pre_orders: list[tuple[str, OtherLineInput]]
) -> CampaignDeposit | None:
    """The sign-up a checkout through a campaign's selling plan makes: the plan's campaign, the
    line's variant and units. Buying through the plan, whose terms the checkout shows, is the
    acceptance. Lines of another variant (or campaign) are refused at sign-up."""
    if not pre_orders:
        return None
    campaign, first = pre_orders[0]
    return CampaignDeposit(
        campaign=campaign,
        sku=first.title,
        qty=sum(held.quantity for _c, held in pre_orders),
        email=order.email or "",
        accepted_terms=True,
        pre_order=True,
        mixed=any(c != campaign or held.title != first.title for c, held in pre_orders),
    )


def _deposit(
    order: ChannelOrder, deposits: list[OtherLineInput], deposit_skus: dict[str, tuple[str, ...]]
) -> CampaignDeposit | None:
    """The sign-up a deposit order makes: its campaign and variant from the order's meta (the
    deposit product's campaign when the meta names none), a unit per deposit bought."""
    if not deposits:
        return None
    meta = dict(reversed(order.meta))  # the first value of a key, as get_meta(key, true) reads
    campaigns = deposit_skus[deposits[0].title]
    campaign = meta.get(DEPOSIT_CAMPAIGN_META) or (campaigns[0] if len(campaigns) == 1 else "")
    accepted = (meta.get(DEPOSIT_TERMS_META) or "").strip().lower() in ("yes", "true", "1")
    return CampaignDeposit(
        campaign=campaign,
        sku=meta.get(DEPOSIT_VARIANT_META, ""),
        qty=sum(line.quantity for line in deposits),
        email=order.email or "",
        accepted_terms=accepted,
    )
