"""Whole configs: channels, secrets from env and files, redaction, paths, the starter template."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from rules import (
    MASK,
    ConfigError,
    load_config,
    parse_config,
    redact_url,
    render_config_template,
)
from tests.shared_fixtures import needs_shared, shared_path

DESIGN = shared_path("DESIGN.md")
ENV = {
    "SHOPIFY_TOKEN": "shpat_do_not_show",
    "SHOPIFY_WEBHOOK_SECRET": "whsec_do_not_show",
    "WC_KEY": "ck_do_not_show",
    "WC_SECRET": "cs_do_not_show",
    "WC_WEBHOOK_SECRET": "wcwh_do_not_show",
}
SECRETS = tuple(ENV.values())

FULL = """\
database: postgresql+psycopg://app:db_pw_do_not_show@db:5432/stock
broker: redis://:redis_pw_do_not_show@127.0.0.1:6379/0
channels:
  shop:
    kind: shopify
    shop: my-store.myshopify.com
    token: ${SHOPIFY_TOKEN}
    webhook_secret: ${SHOPIFY_WEBHOOK_SECRET}
    previous_webhook_secret: ${OLD_SECRET:-}
    api_url: http://127.0.0.1:8081/
  woo:
    kind: woocommerce
    url: https://shop.example.com
    consumer_key: ${WC_KEY}
    consumer_secret: ${WC_SECRET}
    webhook_secret: ${WC_WEBHOOK_SECRET}
    previous_webhook_secret: old_wc_do_not_show
    poll: false
  popup: {kind: manual}
server: {host: 10.0.0.5, port: 9090, api_token: "${API_TOKEN:-api_do_not_show}"}
daemon: {poll_interval_s: 30, push_interval_s: 0.5}
logging: {level: debug, json: true}
tiers: [vip, regular]
"""


@needs_shared("DESIGN.md", "the test that loads its config sketch needs it")
def test_design_section_8_sketch_loads_verbatim() -> None:
    sketch = DESIGN.read_text(encoding="utf-8").split("## 8. Config sketch\n```yaml\n")[1]
    config = parse_config(sketch.split("```")[0], "stocksync.yaml", ENV)
    assert set(config.channels) == {"shop", "woo", "popup"}
    assert config.rule_for("woo", "DROP-7").safety_buffer.value == 0
    assert config.rule_for("woo", "X").safety_buffer.source == "stocksync.yaml:16"


def test_full_config_values() -> None:
    config = parse_config(FULL, "/srv/stocksync/stocksync.yaml", ENV)
    shop, woo, popup = (config.channels[n] for n in ("shop", "woo", "popup"))
    assert (shop.kind, shop.line, shop.shop, shop.api_version, shop.location) == (
        "shopify",
        4,
        "my-store.myshopify.com",
        "2026-07",
        "Main",
    )
    assert shop.api_url == "http://127.0.0.1:8081"  # trailing slash dropped: paths get appended
    assert shop.poll is True
    assert shop.secret("token") == ENV["SHOPIFY_TOKEN"]
    assert shop.previous_webhook_secret is None  # ${OLD_SECRET:-} -> empty -> not set
    assert shop.webhook_secrets() == (ENV["SHOPIFY_WEBHOOK_SECRET"],)
    assert (woo.kind, woo.url, woo.poll, woo.api_url) == (
        "woocommerce",
        "https://shop.example.com",
        False,
        None,
    )
    assert woo.secret("consumer_key") == ENV["WC_KEY"]
    assert woo.webhook_secrets() == (ENV["WC_WEBHOOK_SECRET"], "old_wc_do_not_show")
    assert (popup.kind, popup.line, popup.poll, popup.token) == ("manual", 19, False, None)
    with pytest.raises(ValueError, match="channel 'popup' \\(manual\\) has no token"):
        popup.secret("token")
    assert config.server.host == "10.0.0.5"
    assert config.server.port == 9090
    assert config.server.api_token is not None
    assert config.server.api_token.get_secret_value() == "api_do_not_show"
    assert config.daemon.poll_interval_s == 30
    assert config.daemon.push_interval_s == 0.5
    assert config.daemon.reconcile_interval_s == 900
    assert (config.logging.level, config.logging.json) == ("DEBUG", True)
    assert config.tiers == ("vip", "regular")
    assert config.path == "/srv/stocksync/stocksync.yaml"
    assert config.database.startswith("postgresql+psycopg://app:db_pw_do_not_show@")


def test_minimal_config_defaults() -> None:
    config = parse_config("channels:\n", "/etc/s/stocksync.yaml", {})
    assert config.channels == {}
    assert config.database == "sqlite:////etc/s/stocksync.db"
    assert config.broker == "memory"
    assert (config.server.host, config.server.port, config.server.api_token) == (
        "127.0.0.1",
        8080,
        None,
    )
    assert config.daemon.poll_overlap_s == 120
    assert config.daemon.sweep_interval_s == 30
    assert config.daemon.sweep_age_s == 60
    assert config.daemon.push_interval_s == 2
    assert (config.logging.level, config.logging.json) == ("INFO", None)
    assert config.tiers == ()


def test_redacted_hides_every_secret_and_url_password() -> None:
    config = parse_config(FULL, "s.yaml", ENV)
    data = config.redacted()
    text = json.dumps(data)  # it is JSON-ready
    for secret in (*SECRETS, "old_wc_do_not_show", "api_do_not_show", "db_pw", "redis_pw"):
        assert secret not in text
    assert data["database"] == "postgresql+psycopg://app:***@db:5432/stock"
    assert data["broker"] == "redis://:***@127.0.0.1:6379/0"
    assert data["channels"]["shop"]["token"] == MASK
    assert data["channels"]["woo"]["previous_webhook_secret"] == MASK
    assert "previous_webhook_secret" not in data["channels"]["shop"]
    assert data["channels"]["popup"] == {"kind": "manual", "line": 19}
    assert data["server"] == {"host": "10.0.0.5", "port": 9090, "api_token": MASK}
    assert data["tiers"] == ["vip", "regular"]


def test_repr_and_str_never_show_secrets() -> None:
    config = parse_config(FULL, "s.yaml", ENV)
    shown = repr(config) + str(config) + repr(config.channels["shop"])
    for secret in (*SECRETS, "old_wc_do_not_show", "api_do_not_show", "db_pw", "redis_pw"):
        assert secret not in shown


def test_literal_secret_is_a_warning_not_an_error() -> None:
    config = parse_config(FULL, "s.yaml", ENV)
    assert [str(w) for w in config.warnings] == [
        "s.yaml:17: channels.woo.previous_webhook_secret: secret written in the file; "
        "use ${VAR} or previous_webhook_secret_file instead"
    ]
    assert "old_wc_do_not_show" not in str(config.redacted()["warnings"])


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:p@h/db", "postgresql://u:***@h/db"),
        ("redis://:p@h:1/0", "redis://:***@h:1/0"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("sqlite:///x.db", "sqlite:///x.db"),
        ("memory", "memory"),
        ("http://[bad", "http://[bad"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


# ---- *_file secrets --------------------------------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_secret_files_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "token").write_text("  shpat_from_file\n", encoding="utf-8")
    (tmp_path / "whs").write_text("whs_from_file", encoding="utf-8")
    (tmp_path / "api").write_text("api_from_file\n", encoding="utf-8")
    path = write(
        tmp_path / "stocksync.yaml",
        f"""\
        channels:
          shop:
            kind: shopify
            shop: s.myshopify.com
            token_file: secrets/token
            webhook_secret_file: {tmp_path / "whs"}
        server:
          api_token_file: ${{API_FILE}}
        """,
    )
    config = load_config(path, env={"API_FILE": "api"})
    shop = config.channels["shop"]
    assert shop.secret("token") == "shpat_from_file"
    assert shop.webhook_secrets() == ("whs_from_file",)
    assert config.server.api_token is not None
    assert config.server.api_token.get_secret_value() == "api_from_file"
    assert config.warnings == ()
    assert config.redacted()["channels"]["shop"]["token"] == MASK


def test_secret_file_problems(tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("\n", encoding="utf-8")
    (tmp_path / "ok").write_text("value_in_file", encoding="utf-8")
    path = write(
        tmp_path / "stocksync.yaml",
        """\
        channels:
          woo:
            kind: woocommerce
            url: https://w.example
            consumer_key_file: missing
            consumer_secret_file: empty
            webhook_secret: ${WHS}
            webhook_secret_file: ok
            previous_webhook_secret_file: [a]
          popup: {kind: manual, token_file: ok}
        """,
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={"WHS": "w"})
    assert [str(e).removeprefix(f"{path}:") for e in caught.value.errors] == [
        "5: channels.woo.consumer_key_file: cannot read 'missing': No such file or directory",
        "6: channels.woo.consumer_secret_file: 'empty' is empty",
        "8: channels.woo.webhook_secret_file: set webhook_secret or webhook_secret_file, not both",
        "9: channels.woo.previous_webhook_secret_file: must be the path of a file holding "
        "the secret",
        "10: channels.popup.token_file: unknown key 'token_file'",
    ]
    assert "value_in_file" not in str(caught.value)


# ---- paths, sections, YAML conveniences ------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///stocksync.db", "sqlite:////cfg/dir/stocksync.db"),
        ("sqlite:///data/s.db?timeout=5", "sqlite:////cfg/dir/data/s.db?timeout=5"),
        ("sqlite+pysqlite:///s.db", "sqlite+pysqlite:////cfg/dir/s.db"),
        ("sqlite:////abs/s.db", "sqlite:////abs/s.db"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),
        ("sqlite://", "sqlite://"),
        ("postgresql+psycopg://h/db", "postgresql+psycopg://h/db"),
    ],
)
def test_relative_sqlite_path_is_relative_to_the_config(url: str, expected: str) -> None:
    config = parse_config(f"database: '{url}'\n", "/cfg/dir/stocksync.yaml", {})
    assert config.database == expected


def test_sections_left_empty_read_as_empty() -> None:
    text = "channels:\nserver:\ndaemon:\nlogging:\ntiers:\ndefaults:\nchannel_rules:\nsku_rules:\n"
    config = parse_config(text, "s.yaml", {})
    assert config.channels == {} and config.tiers == () and config.rules.sku_rules == ()


def test_anchors_and_merge_keys_carry_sources() -> None:
    text = """\
    channels: {a: {kind: manual}, b: {kind: manual}}
    channel_rules:
      a: &common
        safety_buffer: 3
        priority: 1
      b:
        <<: *common
        priority: 2
    """
    config = parse_config(textwrap.dedent(text), "s.yaml", {})
    assert config.rule_for("b", "X").safety_buffer.source == "s.yaml:4"
    assert config.rule_for("b", "X").priority.source == "s.yaml:8"


def test_config_is_frozen() -> None:
    config = parse_config("channels: {p: {kind: manual}}\n", "s.yaml", {})
    with pytest.raises(AttributeError):
        config.broker = "redis://x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.channels["q"] = config.channels["p"]  # type: ignore[index]


# ---- the starter template ----------------------------------------------------------------------


def test_template_loads_without_any_environment() -> None:
    config = parse_config(render_config_template(), "stocksync.yaml", {})
    assert {name: ch.kind for name, ch in config.channels.items()} == {"popup": "manual"}
    assert config.rule_for("popup", "ANY").priority.value == 1
    assert config.warnings == ()


def test_template_commented_channels_load_when_uncommented() -> None:
    lines = render_config_template().splitlines()
    start = lines.index("  # shop:")
    end = lines.index("server:")
    for index in range(start, end):
        line = lines[index]
        if line.startswith("  # ") and "api_url" not in line:
            lines[index] = "  " + line[4:]
    config = parse_config("\n".join(lines) + "\n", "stocksync.yaml", ENV)
    assert {name: ch.kind for name, ch in config.channels.items()} == {
        "popup": "manual",
        "shop": "shopify",
        "woo": "woocommerce",
    }
    assert config.warnings == ()
