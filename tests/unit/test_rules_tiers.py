"""`channels.<name>.tier_from`: where a shop order's customer tier comes from; its validation
(exact `FILE:LINE: key.path: message`) and how values are matched to tiers."""

from __future__ import annotations

import textwrap

import pytest

from rules import Config, ConfigError, TierFrom, parse_config

ENV = {"TOKEN": "shpat_secret_value", "WHS": "whsec_value"}

HEAD = """\
tiers: [vip, trade, regular]
channels:
  shop:
    kind: shopify
    shop: s.myshopify.com
    token: ${TOKEN}
    webhook_secret: ${WHS}
"""
WOO = """\
  woo:
    kind: woocommerce
    url: https://shop.example.com
    consumer_key: ${TOKEN}
    consumer_secret: ${TOKEN}
    webhook_secret: ${WHS}
"""


def load(text: str) -> Config:
    return parse_config(textwrap.dedent(text), "stocksync.yaml", ENV)


def errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(text)
    return [str(issue) for issue in caught.value.errors]


def test_tags_role_and_meta_build_folded_lookups() -> None:
    config = load(
        HEAD
        + "    tier_from:\n      tags: {VIP: vip, ' Wholesale ': trade}\n"
        + WOO
        + "    tier_from: {role: {Wholesale_Customer: trade}}\n"
        + "  woo2:\n"
        + "    kind: woocommerce\n    url: https://b.example.com\n"
        + "    consumer_key: ${TOKEN}\n    consumer_secret: ${TOKEN}\n    webhook_secret: ${WHS}\n"
        + "    tier_from: {meta: _group, values: {Gold: vip}}\n"
        + "  popup: {kind: manual}\n"
    )
    shop = config.tier_from("shop")
    assert shop is not None
    assert (shop.source, dict(shop.values), shop.key, shop.line) == (
        "tags",
        {"vip": "vip", "wholesale": "trade"},
        None,
        8,
    )
    woo = config.tier_from("woo")
    assert woo is not None and (woo.source, dict(woo.values)) == (
        "role",
        {"wholesale_customer": "trade"},
    )
    meta = config.tier_from("woo2")
    assert meta is not None and (meta.source, meta.key, dict(meta.values)) == (
        "meta",
        "_group",
        {"gold": "vip"},
    )
    assert config.tier_from("popup") is None
    assert config.tier_from("nope") is None
    channels = config.redacted()["channels"]
    assert channels["shop"]["tier_from"] == {"tags": {"vip": "vip", "wholesale": "trade"}}
    assert channels["woo2"]["tier_from"] == {"meta": "_group", "values": {"gold": "vip"}}
    assert "tier_from" not in channels["popup"]


def test_a_channel_without_tier_from_has_none() -> None:
    assert load(HEAD).tier_from("shop") is None


TIERS = ("vip", "trade", "regular")


@pytest.mark.parametrize(
    ("found", "expected"),
    [
        (("wholesale",), "trade"),
        ((" VIP ",), "vip"),  # trimmed, any case, as Shopify compares tags
        (("wholesale", "vip"), "vip"),  # several match: the tier first in `tiers:` wins
        (("vip", "wholesale"), "vip"),
        (("newsletter",), None),
        ((), None),
    ],
)
def test_tags_map_to_the_best_ranked_tier(found: tuple[str, ...], expected: str | None) -> None:
    tier_from = TierFrom("tags", {"vip": "vip", "wholesale": "trade"})
    assert tier_from.tier_for(found, TIERS) == expected


def test_meta_without_values_names_the_tier_itself() -> None:
    tier_from = TierFrom("meta", {}, key="_tier")
    assert tier_from.tier_for(["Trade"], TIERS) == "trade"  # the configured spelling
    assert tier_from.tier_for(["gold"], TIERS) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            HEAD + "    tier_from: {tags: {vip: vipp}}\n",
            [
                "stocksync.yaml:8: channels.shop.tier_from.tags.vip: unknown tier 'vipp' "
                "(did you mean 'vip'?); tiers: vip, trade, regular"
            ],
        ),
        (
            HEAD.replace("tiers: [vip, trade, regular]\n", "")
            + "    tier_from:\n      tags:\n        vip: vip\n",
            [
                "stocksync.yaml:9: channels.shop.tier_from.tags.vip: unknown tier 'vip': no "
                "tiers are configured (list them, best first: tiers: [...])"
            ],
        ),
        (
            HEAD + WOO + "    tier_from: {meta: _group, values: {gold: platinum}}\n",
            [
                "stocksync.yaml:14: channels.woo.tier_from.values.gold: unknown tier "
                "'platinum'; tiers: vip, trade, regular"
            ],
        ),
        (
            HEAD + "    tier_from: {role: {wholesale: trade}}\n",
            [
                "stocksync.yaml:8: channels.shop.tier_from: a Shopify channel reads tiers from "
                "customer tags: tier_from: {tags: {TAG: TIER}}"
            ],
        ),
        (
            HEAD + WOO + "    tier_from: {tags: {vip: vip}}\n",
            [
                "stocksync.yaml:14: channels.woo.tier_from: WooCommerce customers have no tags: "
                "use tier_from: {role: {ROLE: TIER}} or {meta: KEY}"
            ],
        ),
        (
            HEAD + WOO + "    tier_from: {role: {wholesale: trade}, meta: _group}\n",
            [
                "stocksync.yaml:14: channels.woo.tier_from: needs exactly one of tags, role or "
                "meta, not role and meta together"
            ],
        ),
        (
            HEAD + "    tier_from: {}\n",
            ["stocksync.yaml:8: channels.shop.tier_from: needs exactly one of tags, role or meta"],
        ),
        (
            HEAD + WOO + "    tier_from: {role: {a: vip}, values: {b: vip}}\n",
            [
                "stocksync.yaml:14: channels.woo.tier_from: values maps meta values: it goes "
                "with meta, not with role"
            ],
        ),
        (
            HEAD + "    tier_from: {tags: {}}\n",
            ["stocksync.yaml:8: channels.shop.tier_from.tags: must not be empty"],
        ),
        (
            HEAD + "    tier_from: {tags: [vip]}\n",
            ["stocksync.yaml:8: channels.shop.tier_from.tags: must be a mapping, got a list"],
        ),
        (
            HEAD + "    tier_from: {tags: {VIP: vip, ' vip': trade}}\n",
            [
                "stocksync.yaml:8: channels.shop.tier_from.tags: 'VIP' and ' vip' are one key "
                "(matched ignoring case and spaces)"
            ],
        ),
        (
            HEAD + "    tier_from: {tags: {vip: vip}, tag: {}}\n",
            [
                "stocksync.yaml:8: channels.shop.tier_from.tag: unknown key 'tag' "
                "(did you mean 'tags'?)"
            ],
        ),
        (
            HEAD + "  popup: {kind: manual, tier_from: {tags: {vip: vip}}}\n",
            ["stocksync.yaml:8: channels.popup.tier_from: unknown key 'tier_from'"],
        ),
    ],
)
def test_tier_from_errors(text: str, expected: list[str]) -> None:
    assert errors(text) == expected


def test_unknown_tiers_are_reported_with_other_errors_at_once() -> None:
    text = HEAD + "    tier_from: {tags: {vip: gold, trade: silver}}\n    location: ''\n"
    assert errors(text) == [
        "stocksync.yaml:8: channels.shop.tier_from.tags.vip: unknown tier 'gold'; "
        "tiers: vip, trade, regular",
        "stocksync.yaml:8: channels.shop.tier_from.tags.trade: unknown tier 'silver'; "
        "tiers: vip, trade, regular",
        "stocksync.yaml:9: channels.shop.location: must not be empty",
    ]
