"""sync.mapping: a shop order's tier from its channel's `tier_from` and the `tiers:` ranking."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime

import pytest

from connectors.base import ChannelOrder, OrderLine, OrderStatus
from rules import Config, parse_config
from sync.mapping import to_order_input

CONFIG = """\
tiers: [vip, trade, regular]
channels:
  shop:
    kind: shopify
    shop: s.myshopify.com
    token: t
    webhook_secret: w
    tier_from: {tags: {vip: vip, wholesale: trade, staff: regular}}
  woo:
    kind: woocommerce
    url: https://a.example.com
    consumer_key: k
    consumer_secret: s
    webhook_secret: w
    tier_from: {role: {wholesale_customer: trade}}
  woo-meta:
    kind: woocommerce
    url: https://b.example.com
    consumer_key: k
    consumer_secret: s
    webhook_secret: w
    tier_from: {meta: _customer_tier}
  woo-mapped:
    kind: woocommerce
    url: https://c.example.com
    consumer_key: k
    consumer_secret: s
    webhook_secret: w
    tier_from: {meta: _group, values: {gold: vip, silver: trade}}
  woo-plain:
    kind: woocommerce
    url: https://d.example.com
    consumer_key: k
    consumer_secret: s
    webhook_secret: w
  popup: {kind: manual}
"""


@pytest.fixture(scope="module")
def config() -> Config:
    return parse_config(textwrap.dedent(CONFIG), "stocksync.yaml", {})


def order(
    *,
    tags: tuple[str, ...] = (),
    role: str | None = None,
    meta: tuple[tuple[str, str], ...] = (),
) -> ChannelOrder:
    at = datetime(2026, 7, 1, 12, tzinfo=UTC)
    return ChannelOrder(
        channel="connector-name",
        external_id="1001",
        placed_at=at,
        updated_at=at,
        status=OrderStatus.OPEN,
        lines=(OrderLine("1", "DEMO-1", 2),),
        customer_key="42",
        customer_tags=tags,
        customer_role=role,
        meta=meta,
    )


@pytest.mark.parametrize(
    ("tags", "tier"),
    [
        (("vip",), "vip"),
        (("Wholesale",), "trade"),  # Shopify tags match ignoring case
        (("staff", "wholesale"), "trade"),  # several: the best-ranked tier in `tiers:`
        (("wholesale", "staff", "VIP"), "vip"),
        (("newsletter",), None),
        ((), None),
    ],
)
def test_shopify_tags(config: Config, tags: tuple[str, ...], tier: str | None) -> None:
    mapped = to_order_input(order(tags=tags), "shop", config)
    assert mapped.tier == tier
    assert mapped.channel == "shop"


@pytest.mark.parametrize(
    ("role", "tier"),
    [("wholesale_customer", "trade"), ("customer", None), (None, None)],
)
def test_woocommerce_role(config: Config, role: str | None, tier: str | None) -> None:
    assert to_order_input(order(role=role), "woo", config).tier == tier


def test_woocommerce_meta_names_the_tier_its_first_entry_counts(config: Config) -> None:
    first = order(meta=(("_other", "vip"), ("_customer_tier", "Trade"), ("_customer_tier", "vip")))
    assert to_order_input(first, "woo-meta", config).tier == "trade"
    assert (
        to_order_input(order(meta=(("_customer_tier", "gold"),)), "woo-meta", config).tier is None
    )
    assert to_order_input(order(meta=(("_other", "vip"),)), "woo-meta", config).tier is None


def test_woocommerce_meta_values_map_to_tiers(config: Config) -> None:
    assert to_order_input(order(meta=(("_group", "gold"),)), "woo-mapped", config).tier == "vip"
    assert to_order_input(order(meta=(("_group", "vip"),)), "woo-mapped", config).tier is None


def test_no_tier_without_tier_from_or_without_config(config: Config) -> None:
    tagged = order(tags=("vip",), role="wholesale_customer", meta=(("_customer_tier", "vip"),))
    assert to_order_input(tagged, "woo-plain", config).tier is None
    assert to_order_input(tagged, "popup", config).tier is None
    assert to_order_input(tagged, "not-configured", config).tier is None
    assert to_order_input(tagged, "shop").tier is None  # the old call, without config


def test_the_source_a_channel_does_not_use_is_ignored(config: Config) -> None:
    # a Shopify channel reads tags only; a role channel reads the role only
    assert to_order_input(order(role="wholesale_customer"), "shop", config).tier is None
    assert to_order_input(order(tags=("vip",)), "woo", config).tier is None
