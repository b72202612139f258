"""Effective rules: built-in < defaults < channel_rules < first matching sku_rule, per field."""

from __future__ import annotations

import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rules import DEFAULT_PRIORITY, RELEASE_KEYS, Config, EffectiveRule, Sourced, parse_config

CONFIG = """\
channels:
  shop: {kind: manual}
  woo: {kind: manual}
  popup: {kind: manual}
defaults:
  safety_buffer: 2
  cap: 50
  backorders:
    enabled: true
    incoming_share: 0.75
    horizon_days: 14
  release: {order: [tier, placed_at], partial: true}
channel_rules:
  shop:
    priority: 1
    backorders: {incoming_share: 0.8}
  woo: {priority: 2, safety_buffer: 5, cap: null}
sku_rules:
  - match: "DROP-*"
    backorders: {enabled: false}
    safety_buffer: 0
  - match: "DROP-SPECIAL"
    safety_buffer: 9
  - match: "LTD-?"
    channels: [woo]
    cap: 3
    release:
      partial: false
"""


@pytest.fixture(scope="module")
def config() -> Config:
    return parse_config(CONFIG, "s.yaml", {})


def at(line: int) -> str:
    return f"s.yaml:{line}"


def test_defaults_layer_with_sources(config: Config) -> None:
    rule = config.rule_for("popup", "PLAIN")
    assert rule == EffectiveRule(
        channel="popup",
        sku="PLAIN",
        safety_buffer=Sourced(2, at(6)),
        cap=Sourced(50, at(7)),
        priority=Sourced(DEFAULT_PRIORITY, "default"),
        backorders_enabled=Sourced(True, at(9)),
        incoming_share=Sourced(0.75, at(10)),
        horizon_days=Sourced(14, at(11)),
        release_order=Sourced(("tier", "placed_at"), at(12)),
        release_partial=Sourced(True, at(12)),
        matched_sku_rule=None,
    )


def test_channel_rule_overrides_only_the_nested_field_it_sets(config: Config) -> None:
    rule = config.rule_for("shop", "PLAIN")
    assert rule.priority == Sourced(1, at(15))
    assert rule.incoming_share == Sourced(0.8, at(16))
    assert rule.backorders_enabled == Sourced(True, at(9))  # kept from defaults
    assert rule.horizon_days == Sourced(14, at(11))
    assert rule.safety_buffer == Sourced(2, at(6))


def test_explicit_null_cap_lifts_the_default_cap(config: Config) -> None:
    rule = config.rule_for("woo", "PLAIN")
    assert rule.cap == Sourced(None, at(17))
    assert rule.safety_buffer == Sourced(5, at(17))
    assert rule.priority == Sourced(2, at(17))


def test_first_matching_sku_rule_wins_over_channel_rule(config: Config) -> None:
    rule = config.rule_for("woo", "DROP-SPECIAL")
    assert rule.matched_sku_rule == 0  # the first match, though rule 1 matches too
    assert rule.safety_buffer == Sourced(0, at(21))
    assert rule.backorders_enabled == Sourced(False, at(20))
    assert rule.incoming_share == Sourced(0.75, at(10))
    assert rule.cap == Sourced(None, at(17))


def test_sku_rule_limited_to_channels(config: Config) -> None:
    woo = config.rule_for("woo", "LTD-1")
    assert woo.matched_sku_rule == 2
    assert woo.cap == Sourced(3, at(26))
    assert woo.release_partial == Sourced(False, at(28))
    assert woo.release_order == Sourced(("tier", "placed_at"), at(12))
    shop = config.rule_for("shop", "LTD-1")
    assert shop.matched_sku_rule is None
    assert shop.cap == Sourced(50, at(7))


@pytest.mark.parametrize(
    ("sku", "matched"),
    [("DROP-1", 0), ("drop-1", None), ("LTD-12", None), ("LTD-A", 2), ("XDROP-1", None)],
)
def test_globs_are_case_sensitive_and_whole_sku(config: Config, sku: str, matched: int) -> None:
    assert config.rule_for("woo", sku).matched_sku_rule == matched


def test_unknown_channel_is_a_key_error(config: Config) -> None:
    with pytest.raises(KeyError, match="amazon"):
        config.rule_for("amazon", "X")
    with pytest.raises(KeyError):
        config.channel_priority("amazon")


def test_channel_priority(config: Config) -> None:
    assert config.channel_priority("shop") == Sourced(1, at(15))
    assert config.channel_priority("popup") == Sourced(DEFAULT_PRIORITY, "default")


def test_builtin_defaults_without_any_rules() -> None:
    config = parse_config("channels: {popup: {kind: manual}}\n", "s.yaml", {})
    rule = config.rule_for("popup", "X")
    assert rule.safety_buffer == Sourced(0, "default")
    assert rule.cap == Sourced(None, "default")
    assert rule.priority == Sourced(100, "default")
    assert rule.backorders_enabled == Sourced(False, "default")
    assert rule.incoming_share == Sourced(1.0, "default")
    assert rule.horizon_days == Sourced(14, "default")
    assert rule.release_order == Sourced(RELEASE_KEYS, "default")
    assert rule.release_partial == Sourced(True, "default")


def test_as_dict_is_plain_data(config: Config) -> None:
    data = config.rule_for("shop", "DROP-1").as_dict()
    assert data["incoming_share"] == {"value": 0.8, "source": at(16)}
    assert data["release_order"] == {"value": ["tier", "placed_at"], "source": at(12)}
    assert data["matched_sku_rule"] == 0


_LAYERS = ("defaults", "channel", "sku")


@settings(max_examples=80, deadline=None)
@given(
    buffers=st.fixed_dictionaries({}, optional={k: st.integers(0, 50) for k in _LAYERS}),
    shares=st.fixed_dictionaries({}, optional={k: st.sampled_from([0, 0.25, 1]) for k in _LAYERS}),
    sku_matches=st.booleans(),
)
def test_the_highest_layer_that_sets_a_field_wins(
    buffers: dict[str, int], shares: dict[str, float], sku_matches: bool
) -> None:
    def block(layer: str) -> str:
        parts = []
        if layer in buffers:
            parts.append(f"safety_buffer: {buffers[layer]}")
        if layer in shares:
            parts.append(f"backorders: {{incoming_share: {shares[layer]}}}")
        return "{" + ", ".join(parts) + "}"

    sku_block = block("sku")[1:-1]
    text = textwrap.dedent(
        f"""\
        channels: {{c: {{kind: manual}}}}
        defaults: {block("defaults")}
        channel_rules: {{c: {block("channel")}}}
        sku_rules:
          - {{match: "S*"{", " if sku_block else ""}{sku_block}}}
        """
    )
    rule = parse_config(text, "p.yaml", {}).rule_for("c", "S1" if sku_matches else "T1")
    order = [("defaults", 2), ("channel", 3)] + ([("sku", 5)] if sku_matches else [])

    def expected(values: dict[str, float], default: float) -> Sourced[float]:
        chosen = Sourced(default, "default")
        for layer, line in order:
            if layer in values:
                chosen = Sourced(values[layer], f"p.yaml:{line}")
        return chosen

    assert rule.safety_buffer == expected(buffers, 0)
    assert rule.incoming_share == expected(shares, 1.0)
    assert rule.matched_sku_rule == (0 if sku_matches else None)
