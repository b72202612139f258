"""Whatever the YAML holds, loading gives a Config or a ConfigError whose lines are in the file."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules import Config, ConfigError, parse_config

_KEYS = [
    "database", "broker", "channels", "server", "daemon", "logging", "tiers", "defaults",
    "channel_rules", "sku_rules", "kind", "shopify", "woocommerce", "manual", "shop", "token",
    "token_file", "webhook_secret", "url", "api_url", "poll", "safety_buffer", "cap", "priority",
    "backorders", "enabled", "incoming_share", "horizon_days", "release", "order", "partial",
    "match", "port", "api_token", "level", "json", "p", "q",
]  # fmt: skip
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 70000),
    st.floats(-1, 2, allow_nan=False),
    st.sampled_from([*_KEYS, "${X}", "${X:-1}", "${", "DROP-*", "http://h", "redis://h"]),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(_KEYS), inner, max_size=4)
    ),
    max_leaves=20,
)


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(_KEYS), _values, min_size=1, max_size=6), st.booleans())
def test_loading_never_crashes(data: dict[str, Any], flow: bool) -> None:
    text = yaml.safe_dump(data, default_flow_style=flow)
    try:
        config = parse_config(text, "f.yaml", {"X": "7"})
    except ConfigError as error:
        assert error.errors
        for issue in error.errors:
            assert 1 <= issue.line <= text.count("\n") + 1, issue
            assert issue.file == "f.yaml"
    else:
        assert isinstance(config, Config)
        for channel in config.channels:
            config.rule_for(channel, "DROP-1")
        config.redacted()


_VALID: dict[str, Any] = {
    "channels": {
        "shop": {"kind": "shopify", "shop": "s", "token": "${X}", "webhook_secret": "${X}"},
        "woo": {
            "kind": "woocommerce",
            "url": "https://w",
            "consumer_key": "${X}",
            "consumer_secret": "${X}",
            "webhook_secret": "${X}",
        },
        "p": {"kind": "manual"},
    },
    "server": {"port": 8080},
    "tiers": ["vip"],
    "defaults": {"safety_buffer": 1, "backorders": {"enabled": True, "incoming_share": 0.5}},
    "channel_rules": {"shop": {"priority": 1, "release": {"order": ["tier"], "partial": False}}},
    "sku_rules": [{"match": "DROP-*", "channels": ["p"], "cap": 4}],
}


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


def _replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[head] = _replaced(value[head], rest, new)
    return copy


def test_the_valid_base_loads() -> None:
    parse_config(yaml.safe_dump(_VALID), "f.yaml", {"X": "7"})


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(st.sampled_from(_paths(_VALID)), _values, st.booleans())
def test_one_changed_value_never_crashes(path: tuple[Any, ...], new: Any, flow: bool) -> None:
    text = yaml.safe_dump(_replaced(_VALID, path, new), default_flow_style=flow)
    try:
        config = parse_config(text, "f.yaml", {"X": "7"})
    except ConfigError as error:
        for issue in error.errors:
            assert 1 <= issue.line <= text.count("\n") + 1, issue
    else:
        for channel in config.channels:
            config.rule_for(channel, "DROP-1")
        config.redacted()
