"""The `pool` rule (issue #14): where it may be set, whose pool a SKU has, and what it turns off."""

from __future__ import annotations

import pytest

from rules import ConfigError, parse_config, pool_for

CHANNELS = """\
channels:
  shop: {kind: shopify, shop: s.myshopify.com, token: t0ken-123, webhook_secret: w3bhook-1}
  woo:
    kind: woocommerce
    url: https://w.example
    consumer_key: ck_123456
    consumer_secret: cs_123456
    webhook_secret: w3bhook-1
  popup: {kind: manual}
"""


def errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(CHANNELS + text, "stocksync.yaml", env={})
    return [str(issue) for issue in caught.value.errors]


def test_a_pool_is_refused_per_channel_with_channels_on_a_manual_channel_or_an_unknown_one() -> (
    None
):
    found = errors(
        "channel_rules:\n"
        "  shop: {pool: {reserve: 1}}\n"
        "sku_rules:\n"
        "  - match: 'A-*'\n"
        "    pool: {weights: {shop: 2, popup: 1, nope: 1}}\n"
        "  - match: 'B-*'\n"
        "    channels: [shop]\n"
        "    pool: {reserve: 1}\n"
    )
    assert found == [
        "stocksync.yaml:11: channel_rules.shop.pool: a pool is per SKU, not per channel: set it "
        "in defaults or a sku_rules entry",
        "stocksync.yaml:14: sku_rules[0].pool.weights.popup: 'popup' is a manual channel: a pool "
        "splits units over shops (shopify, woocommerce), which sell them by themselves",
        "stocksync.yaml:14: sku_rules[0].pool.weights.nope: unknown channel 'nope'; configured "
        "channels: popup, shop, woo",
        "stocksync.yaml:15: sku_rules[1]: a pool is per SKU, over all its channels: a sku rule "
        "with a pool cannot name channels",
    ]


def test_bad_pool_values_are_refused_at_their_line() -> None:
    found = errors(
        "defaults:\n  pool: {reserve: -1, rebalance_interval_s: 0, weights: {shop: 0}}\n"
    )
    assert any("defaults.pool.reserve: must not be negative" in line for line in found)
    assert any(
        "defaults.pool.rebalance_interval_s: must be a positive number" in line for line in found
    )
    assert any("defaults.pool.weights.shop: must be at least 1" in line for line in found)


def test_the_first_matching_sku_rule_decides_and_null_lifts_the_default() -> None:
    config = parse_config(
        CHANNELS
        + "defaults:\n  pool: {reserve: 1}\n"
        + "sku_rules:\n"
        + "  - match: 'DROP-*'\n    pool: {reserve: 5, weights: {shop: 3, woo: 1}}\n"
        + "  - match: 'DROP-X*'\n    pool: {reserve: 9}\n"
        + "  - match: 'PLAIN-*'\n    pool: null\n"
        + "  - match: 'CAPPED-*'\n    cap: 3\n"
        + "  - match: '*'\n    channels: [shop]\n    safety_buffer: 1\n",
        "stocksync.yaml",
        env={},
    )
    drop = pool_for(config.rules, "DROP-X1")
    assert (
        drop is not None and drop.reserve == 5 and dict(drop.weights or {}) == {"shop": 3, "woo": 1}
    )
    assert drop.source == "stocksync.yaml:14"
    assert pool_for(config.rules, "PLAIN-1") is None
    capped = pool_for(config.rules, "CAPPED-1")  # its rule does not mention pool: defaults'
    assert capped is not None and capped.reserve == 1 and capped.source == "stocksync.yaml:11"
    other = pool_for(config.rules, "OTHER")  # only a per-channel rule matches: passed over
    assert other is not None and other.reserve == 1
    rule = config.rule_for("woo", "DROP-1")
    assert rule.pool is drop
    assert rule.backorders_enabled.value is False and rule.backorders_enabled.source == drop.source


def test_a_pool_may_keep_backorders_on() -> None:
    config = parse_config(
        CHANNELS
        + "defaults:\n  backorders: {enabled: true}\n"
        + "sku_rules:\n  - match: 'PRE-*'\n    pool: {backorders: true}\n",
        "stocksync.yaml",
        env={},
    )
    assert config.rule_for("shop", "PRE-1").backorders_enabled.value is True
