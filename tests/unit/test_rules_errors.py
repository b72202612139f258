"""Every kind of config error: exact ``FILE:LINE: key.path: message``, all collected at once."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from rules import ConfigError, ConfigIssue, load_config, parse_config

ENV = {"TOKEN": "shpat_secret_value", "WHS": "whsec_value"}


def errors(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(textwrap.dedent(text), "stocksync.yaml", ENV if env is None else env)
    return [str(issue) for issue in caught.value.errors]


def one_error(text: str) -> str:
    [message] = errors(text)
    return message


def test_issue_and_error_format() -> None:
    issue = ConfigIssue("c.yaml", 3, "defaults.cap", "must not be negative, got -1")
    assert str(issue) == "c.yaml:3: defaults.cap: must not be negative, got -1"
    assert str(ConfigIssue("c.yaml", 0, "", "config file not found")) == (
        "c.yaml:0: config file not found"
    )
    error = ConfigError([issue, issue])
    assert str(error) == f"{issue}\n{issue}"
    assert error.errors == [issue, issue]
    assert error.exit_code == 2


# ---- unknown keys ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "brokr: memory\n",
            "stocksync.yaml:1: brokr: unknown key 'brokr' (did you mean 'broker'?)",
        ),
        (
            "defaults:\n  safety_bufer: 2\n",
            "stocksync.yaml:2: defaults.safety_bufer: unknown key 'safety_bufer' "
            "(did you mean 'safety_buffer'?)",
        ),
        (
            "defaults:\n  backorders:\n    enabled: true\n    share: 0.5\n",
            "stocksync.yaml:4: defaults.backorders.share: unknown key 'share' "
            "(did you mean 'incoming_share'?)",
        ),
        (
            "defaults: {priority: 1}\n",
            "stocksync.yaml:1: defaults.priority: unknown key 'priority'",
        ),
        ("zzz: 1\n", "stocksync.yaml:1: zzz: unknown key 'zzz'"),
        (
            "server: {api_tokn_file: /x}\n",
            "stocksync.yaml:1: server.api_tokn_file: unknown key 'api_tokn_file' "
            "(did you mean 'api_token_file'?)",
        ),
        (
            "channels:\n  popup:\n    kind: manual\n    poll: true\n",
            "stocksync.yaml:4: channels.popup.poll: unknown key 'poll'",
        ),
    ],
)
def test_unknown_keys(text: str, expected: str) -> None:
    assert one_error(text) == expected


def test_unknown_key_inside_a_channel_of_a_kind_names_no_kind_in_the_path() -> None:
    text = """\
    channels:
      shop:
        kind: shopify
        shop: s.myshopify.com
        token: ${TOKEN}
        webhook_secret: ${WHS}
        locaton: Main
    """
    assert one_error(text) == (
        "stocksync.yaml:7: channels.shop.locaton: unknown key 'locaton' (did you mean 'location'?)"
    )


# ---- wrong types -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("defaults: {safety_buffer: two}", "defaults.safety_buffer: must be an integer, got 'two'"),
        ("defaults: {safety_buffer: 1.5}", "defaults.safety_buffer: must be an integer, got 1.5"),
        ("defaults: {safety_buffer: yes}", "defaults.safety_buffer: must be an integer, got true"),
        ("defaults: {cap: [1]}", "defaults.cap: must be an integer, got a list"),
        ("defaults: {backorders: {enabled: maybe}}", "defaults.backorders.enabled: "
         "must be true or false, got 'maybe'"),
        ("defaults: {backorders: 3}", "defaults.backorders: must be a mapping, got 3"),
        ("defaults: []", "defaults: must be a mapping, got a list"),
        ("channels: [a, b]", "channels: must be a mapping, got a list"),
        ("channels: {popup: manual}", "channels.popup: must be a mapping, got 'manual'"),
        ("tiers: vip", "tiers: must be a list, got 'vip'"),
        ("tiers: [vip, 3]", "tiers[1]: must be a string, got 3"),
        ("sku_rules: {match: X}", "sku_rules: must be a list, got a mapping"),
        ("database: 5", "database: must be a string, got 5"),
        ("logging: {json: sometimes}", "logging.json: must be true or false, got 'sometimes'"),
        ("daemon: {poll_interval_s: soon}", "daemon.poll_interval_s: must be a number, got 'soon'"),
        ("channel_rules: {}\nsku_rules: [{match: 5}]", "sku_rules[0].match: "
         "must be a string, got 5"),
    ],
)  # fmt: skip
def test_wrong_types(text: str, expected: str) -> None:
    [message] = errors(text + "\n")
    line = 2 if text.startswith("channel_rules") else 1
    assert message == f"stocksync.yaml:{line}: {expected}"


# ---- bad ranges and values -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("defaults:\n  backorders:\n    incoming_share: 1.5\n",
         "stocksync.yaml:3: defaults.backorders.incoming_share: must be between 0 and 1, got 1.5"),
        ("defaults: {backorders: {incoming_share: -0.1}}\n",
         "stocksync.yaml:1: defaults.backorders.incoming_share: must be between 0 and 1, got -0.1"),
        ("defaults:\n  safety_buffer: -2\n",
         "stocksync.yaml:2: defaults.safety_buffer: must not be negative, got -2"),
        ("defaults: {cap: -1}\n", "stocksync.yaml:1: defaults.cap: must not be negative, got -1"),
        ("defaults: {backorders: {horizon_days: -3}}\n",
         "stocksync.yaml:1: defaults.backorders.horizon_days: must not be negative, got -3"),
        ("server:\n  port: 70000\n",
         "stocksync.yaml:2: server.port: must be between 1 and 65535, got 70000"),
        ("server: {port: 0}\n",
         "stocksync.yaml:1: server.port: must be between 1 and 65535, got 0"),
        ("daemon: {poll_interval_s: 0}\n",
         "stocksync.yaml:1: daemon.poll_interval_s: must be a positive number of seconds, got 0"),
        ("daemon: {poll_overlap_s: -1}\n",
         "stocksync.yaml:1: daemon.poll_overlap_s: must not be negative, got -1"),
        ("defaults: {release: {order: []}}\n",
         "stocksync.yaml:1: defaults.release.order: must not be empty"),
        ("defaults: {release: {order: [tier, priority, tier]}}\n",
         "stocksync.yaml:1: defaults.release.order: lists 'tier' more than once"),
        ("defaults:\n  release:\n    order:\n      - priority\n      - age\n",
         "stocksync.yaml:5: defaults.release.order[1]: "
         "must be one of 'priority', 'tier' or 'placed_at', got 'age'"),
        ("tiers: [vip, regular, vip]\n", "stocksync.yaml:1: tiers: lists 'vip' more than once"),
        ("logging: {level: loud}\n", "stocksync.yaml:1: logging.level: must be one of "
         "'DEBUG', 'INFO', 'WARNING', 'ERROR' or 'CRITICAL', got 'LOUD'"),
        ("broker: rabbit://x\n",
         "stocksync.yaml:1: broker: must be 'memory' or a redis:// URL, got 'rabbit://x'"),
        ("broker: redis://user:hunter2@h/0x\ndatabase: stocksync.db\n",
         "stocksync.yaml:2: database: must be a database URL like "
         "'sqlite:///stocksync.db', got 'stocksync.db'"),
        ("sku_rules:\n  - match: ''\n", "stocksync.yaml:2: sku_rules[0].match: must not be empty"),
        ("sku_rules:\n  - safety_buffer: 1\n", "stocksync.yaml:2: sku_rules[0].match: required"),
        ("channel_rules: {}\nsku_rules:\n  - {match: X, channels: []}\n",
         "stocksync.yaml:3: sku_rules[0].channels: must not be empty"),
    ],
)  # fmt: skip
def test_bad_ranges_and_values(text: str, expected: str) -> None:
    assert one_error(text) == expected


def test_broker_password_is_not_echoed() -> None:
    assert one_error("broker: amqp://user:hunter2@host/\n") == (
        "stocksync.yaml:1: broker: must be 'memory' or a redis:// URL, got 'amqp://user:***@host/'"
    )


# ---- channels --------------------------------------------------------------------------------


def test_unknown_kind_and_missing_kind() -> None:
    text = """\
    channels:
      a:
        kind: amazon
      b:
        shop: x
    """
    assert errors(text) == [
        "stocksync.yaml:3: channels.a.kind: unknown kind 'amazon', "
        "expected one of manual, shopify, woocommerce",
        "stocksync.yaml:4: channels.b.kind: required: one of manual, shopify, woocommerce",
    ]


def test_required_fields_per_kind_are_reported_at_the_channel() -> None:
    text = """\
    channels:
      shop:
        kind: shopify
      woo: {kind: woocommerce, url: https://w.example}
    """
    assert errors(text) == [
        "stocksync.yaml:2: channels.shop.shop: required for a shopify channel",
        "stocksync.yaml:2: channels.shop.token: required for a shopify channel (or token_file)",
        "stocksync.yaml:2: channels.shop.webhook_secret: "
        "required for a shopify channel (or webhook_secret_file)",
        "stocksync.yaml:4: channels.woo.consumer_key: "
        "required for a woocommerce channel (or consumer_key_file)",
        "stocksync.yaml:4: channels.woo.consumer_secret: "
        "required for a woocommerce channel (or consumer_secret_file)",
        "stocksync.yaml:4: channels.woo.webhook_secret: "
        "required for a woocommerce channel (or webhook_secret_file)",
    ]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("api_url", "ftp://x", "must be an http:// or https:// URL, got 'ftp://x'"),
        ("api_version", "july", "must be a Shopify API version like '2026-07', got 'july'"),
        ("poll", "often", "must be true or false, got 'often'"),
        ("location", "''", "must not be empty"),
    ],
)
def test_shopify_field_values(field: str, value: str, message: str) -> None:
    text = f"""\
    channels:
      shop:
        kind: shopify
        shop: s.myshopify.com
        token: ${{TOKEN}}
        webhook_secret: ${{WHS}}
        {field}: {value}
    """
    assert one_error(text) == f"stocksync.yaml:7: channels.shop.{field}: {message}"


def test_channel_names_must_fit_in_a_url() -> None:
    assert one_error("channels:\n  my shop: {kind: manual}\n") == (
        "stocksync.yaml:2: channels.my shop: a channel name may hold only letters, digits, "
        "'-' and '_' (it is part of the webhook URL)"
    )


def test_unknown_channels_in_channel_rules_and_sku_rules() -> None:
    text = """\
    channels:
      popup: {kind: manual}
      phone: {kind: manual}
    channel_rules:
      popup: {priority: 1}
      woo: {priority: 2}
    sku_rules:
      - match: "A-*"
        channels: [phone, popop]
    """
    assert errors(text) == [
        "stocksync.yaml:6: channel_rules.woo: unknown channel 'woo'; "
        "configured channels: phone, popup",
        "stocksync.yaml:9: sku_rules[0].channels[1]: unknown channel 'popop' "
        "(did you mean 'popup'?); configured channels: phone, popup",
    ]


# ---- secrets never appear in messages --------------------------------------------------------


def test_secret_values_are_never_echoed() -> None:
    text = """\
    channels:
      shop:
        kind: shopify
        shop: s.myshopify.com
        token: [shpat_secret_value]
        webhook_secret: {whsec: value}
    server: {api_token: 12345678}
    """
    found = errors(text)
    assert found == [
        "stocksync.yaml:5: channels.shop.token: must be a string",
        "stocksync.yaml:6: channels.shop.webhook_secret: must be a string",
        "stocksync.yaml:7: server.api_token: must be a string",
    ]


def test_empty_secret_from_environment_is_an_error_without_its_value() -> None:
    text = "channels:\n  w: {kind: woocommerce, url: https://w.example, consumer_key: ${K},\n"
    text += "      consumer_secret: ${S}, webhook_secret: ${S}}\n"
    assert errors(text, {"K": "", "S": "sekrit"}) == [
        "stocksync.yaml:2: channels.w.consumer_key: must not be empty"
    ]


# ---- many problems at once, and files --------------------------------------------------------


def test_all_issues_are_collected_in_line_order() -> None:
    text = """\
    database: sqlite:///x.db
    brokr: memory
    defaults:
      safety_buffer: 1
      safety_buffer: -1
      backorders: {incoming_share: 2}
    channel_rules:
      ghost: {priority: x}
    """
    assert errors(text) == [
        "stocksync.yaml:2: brokr: unknown key 'brokr' (did you mean 'broker'?)",
        "stocksync.yaml:5: defaults.safety_buffer: duplicate key 'safety_buffer' "
        "(first set at line 4); YAML would silently keep only the last one",
        "stocksync.yaml:5: defaults.safety_buffer: must not be negative, got -1",
        "stocksync.yaml:6: defaults.backorders.incoming_share: must be between 0 and 1, got 2",
        "stocksync.yaml:8: channel_rules.ghost: unknown channel 'ghost'; configured channels: none",
        "stocksync.yaml:8: channel_rules.ghost.priority: must be an integer, got 'x'",
    ]


def test_file_not_found(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as caught:
        load_config(missing)
    assert [str(e) for e in caught.value.errors] == [f"{missing}:0: config file not found"]


def test_directory_and_binary_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    assert caught.value.errors[0].line == 0
    binary = tmp_path / "b.yaml"
    binary.write_bytes(b"a: \xff\xfe\n")
    with pytest.raises(ConfigError) as caught:
        load_config(binary)
    assert str(caught.value) == f"{binary}:0: not UTF-8 text (byte 3)"


def test_load_config_reports_the_path_as_given(tmp_path: Path) -> None:
    path = tmp_path / "stocksync.yaml"
    path.write_text("defaults:\n  cap: -5\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(str(path), env={})
    assert str(caught.value) == f"{path}:2: defaults.cap: must not be negative, got -5"
