"""Hostile and mistaken configs (issue #13): YAML that costs more than its size, database URLs
that would show their password or crash, and values from ``${VAR}`` or ``*_file`` that would be
echoed in an error. Each ends in ``FILE:LINE: message`` and never shows the secret."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import pytest

from rules import ConfigError, load_config, parse_config, redact_url
from rules.yaml_bounds import MAX_ALIAS_NODES, MAX_CONFIG_BYTES, MAX_NESTING
from stock.db import DatabaseError, make_engine, safe_url

SECRET = "hunter2"


def errors(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(textwrap.dedent(text), "stocksync.yaml", env or {})
    return [str(issue) for issue in caught.value.errors]


def one_error(text: str, env: dict[str, str] | None = None) -> str:
    [message] = errors(text, env)
    return message


def billion_laughs(levels: int = 9) -> str:
    """The classic: each line is nine aliases of the line before, 9**9 strings from ~600 bytes."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, levels + 1):
        aliases = ",".join([f"*a{level - 1}"] * 9)
        lines.append(f"a{level}: &a{level} [{aliases}]")
    return "\n".join(lines) + "\n"


# ---- YAML that costs more than its size ------------------------------------------------------


def test_billion_laughs_is_refused_at_the_alias_in_well_under_a_second() -> None:
    text = billion_laughs()
    assert len(text) < 1024
    started = time.perf_counter()
    message = one_error(text)
    elapsed = time.perf_counter() - started
    # a1..a3 add 90 + 819 + 7,380 values; the first alias on a4's line (line 5) adds 7,381 more
    assert message == (
        f"stocksync.yaml:5: YAML aliases expand to more than {MAX_ALIAS_NODES:,} values "
        "(each alias repeats what its anchor holds); write the values out or use fewer aliases"
    )
    assert elapsed < 0.5, f"took {elapsed:.2f} s"


def test_aliases_through_merge_keys_count_too() -> None:
    lines = ["b0: &b0 {" + ", ".join(f"k{i}: {i}" for i in range(50)) + "}"]
    lines += [f"b{i}: &b{i} {{<<: *b{i - 1}, x{i}: [*b{i - 1}, *b{i - 1}]}}" for i in range(1, 12)]
    message = one_error("\n".join(lines) + "\n")
    assert message.startswith("stocksync.yaml:")
    assert "YAML aliases expand to more than" in message


def test_shared_defaults_through_anchors_still_load() -> None:
    text = """\
    channels:
      popup: {kind: manual}
      phone: {kind: manual}
    defaults: &rule {safety_buffer: 2, cap: 10, backorders: {enabled: true, horizon_days: 7}}
    channel_rules:
      popup: {<<: *rule, priority: 1}
      phone:
        <<: *rule
        cap: 5
    sku_rules:
    """
    text = textwrap.dedent(text)
    text += "".join(f"  - {{<<: *rule, match: 'TEE-{i}-*'}}\n" for i in range(500))
    config = parse_config(text, "stocksync.yaml", {})
    assert config.rule_for("phone", "X").cap.value == 5
    assert config.rule_for("popup", "X").safety_buffer.value == 2
    assert len(config.rules.sku_rules) == 500
    assert config.rules.sku_rules[499].layer.horizon_days is not None


def test_deep_nesting_is_refused_not_a_recursion_error() -> None:
    text = "defaults: " + "[" * 5000 + "]" * 5000 + "\n"
    assert one_error(text) == (
        f"stocksync.yaml:1: YAML nested more than {MAX_NESTING} levels deep; "
        "a config needs a handful"
    )


def test_text_over_the_size_limit_is_refused_at_the_line_it_passes_the_limit() -> None:
    text = "tiers: [a]\n" + ("# " + "é" * 49 + "\n") * (MAX_CONFIG_BYTES // 100)  # 101 bytes
    assert len(text) < MAX_CONFIG_BYTES < len(text.encode("utf-8"))  # bytes count, not characters
    # the line holding byte MAX_CONFIG_BYTES + 1
    passing_line = text.encode("utf-8")[:MAX_CONFIG_BYTES].count(b"\n") + 1
    assert passing_line > 10_000
    message = one_error(text)
    assert message.startswith(f"stocksync.yaml:{passing_line}: ")
    assert message.endswith(
        f"the file is larger than {MAX_CONFIG_BYTES:,} bytes, the most a config may be"
    )


def test_a_huge_file_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    path = tmp_path / "stocksync.yaml"
    with path.open("w", encoding="utf-8") as handle:
        handle.write("tiers: [a]\n")
        handle.write(("# " + "x" * 1021 + "\n") * (16 * 1024))  # 16 MiB of 1 KiB lines
    started = time.perf_counter()
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert time.perf_counter() - started < 1
    [issue] = caught.value.errors
    assert issue.line == 1 + MAX_CONFIG_BYTES // 1024
    assert "larger than" in issue.message


def test_a_file_just_under_the_limit_loads() -> None:
    text = "tiers: [a]\n"
    text += "#" * (MAX_CONFIG_BYTES - len(text) - 1) + "\n"
    assert parse_config(text, "stocksync.yaml", {}).tiers == ("a",)


# ---- database URLs -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            f"postgresql:user:{SECRET}@host/db",
            "must be a database URL like 'sqlite:///stocksync.db', got 'postgresql:***@host/db'",
        ),
        (
            f"user:{SECRET}@host",
            "must be a database URL like 'sqlite:///stocksync.db', got 'user:***@host'",
        ),
        (
            f"postgresql://u:{SECRET}@host:notaport/db",
            "the port must be a number from 1 to 65535, got 'postgresql://u:***@host:notaport/db'",
        ),
        (
            f"postgresql://u:{SECRET}@host:99999/db",
            "the port must be a number from 1 to 65535, got 'postgresql://u:***@host:99999/db'",
        ),
        (
            f"postgresql://u:{SECRET}@host:0/db",
            "the port must be a number from 1 to 65535, got 'postgresql://u:***@host:0/db'",
        ),
        (
            f"postgresql+psycopg://u:{SECRET}@[::1/db",
            "an IPv6 host is written in brackets, like [::1]:5432, "
            "got 'postgresql+psycopg://u:***@[::1/db'",
        ),
        (
            f"postgresql://u:{SECRET}@x@host/db",
            "write an '@' in the user name or password as %40, got 'postgresql://u:***@host/db'",
        ),
        (
            f"mysql://u:{SECRET}@host/db",
            "only sqlite:/// and postgresql+psycopg:// databases are supported, "
            "got 'mysql://u:***@host/db'",
        ),
        (
            f"post gres://u:{SECRET}@host/db",
            "must be a database URL like 'sqlite:///stocksync.db', got 'post gres://u:***@host/db'",
        ),
    ],
)
def test_bad_database_url_is_one_line_without_the_password(url: str, message: str) -> None:
    found = one_error(f"tiers: []\ndatabase: '{url}'\n")
    assert found == f"stocksync.yaml:2: database: {message}"
    assert SECRET not in found


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///ledger.db",
        "sqlite:////var/lib/stocksync/ledger.db",
        "sqlite://",
        f"postgresql+psycopg://u:{SECRET}@127.0.0.1:5432/db?sslmode=require",
        f"postgresql://u:p%40ss%2F{SECRET}@[::1]:5432/db",
        "postgresql+psycopg:///db?host=/run/postgresql",
    ],
)
def test_good_database_urls_load(url: str) -> None:
    assert parse_config(f"database: '{url}'\n", "/tmp/stocksync.yaml", {}).database.startswith(
        url.split("://", 1)[0]
    )


def test_database_url_from_the_environment_names_the_variable_not_the_url() -> None:
    for url in (
        f"postgresql:user:{SECRET}@host/db",
        f"postgresql://u:{SECRET}@host:notaport/db",
        f"postgresql://u:{SECRET}@host:99999/db",
    ):
        found = one_error("tiers: []\ndatabase: ${DATABASE_URL}\n", {"DATABASE_URL": url})
        assert found.startswith("stocksync.yaml:2: database: "), found
        assert found.endswith(" (from ${DATABASE_URL})"), found
        assert SECRET not in found and "host" not in found, found


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"postgresql:user:{SECRET}@host/db", "postgresql:***@host/db"),
        (f"user:{SECRET}@host", "user:***@host"),
        (f"postgresql://u:{SECRET}@[::1/db", "postgresql://u:***@[::1/db"),
        (f"postgresql://u:pa/{SECRET}@host/db", "postgresql://u:***@host/db"),
        (f"postgresql://u:p@{SECRET}@host/db", "postgresql://u:***@host/db"),
        (f"redis://:{SECRET}@h:notaport/0", "redis://:***@h:notaport/0"),
        ("sqlite:///data/a@b.db", "sqlite:///data/a@b.db"),
    ],
)
def test_redact_url_masks_the_password_of_anything_url_like(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert safe_url(url) == shown


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://u:{SECRET}@host:notaport/db",
        f"postgresql:user:{SECRET}@host/db",
        f"postgresql://u:{SECRET}@[::1/db",
    ],
)
def test_make_engine_refuses_an_unreadable_url_without_the_password(url: str) -> None:
    with pytest.raises(DatabaseError) as caught:
        make_engine(url)
    assert SECRET not in str(caught.value)
    assert caught.value.url == redact_url(url)


# ---- values from ${VAR} and *_file are named, never shown -------------------------------------

SHOP = """\
channels:
  shop:
    kind: shopify
    shop: s.myshopify.com
    token: ${TOKEN}
    webhook_secret: ${TOKEN}
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("server:\n  port: ${DB_PASSWORD}\n", "2: server.port: must be an integer"),
        ("server: {port: '${DB_PASSWORD}0'}\n", "1: server.port: must be an integer"),
        ("defaults: {cap: ${DB_PASSWORD}}\n", "1: defaults.cap: must be an integer"),
        (
            "defaults: {backorders: {incoming_share: ${DB_PASSWORD}}}\n",
            "1: defaults.backorders.incoming_share: must be a number or 'auto'",
        ),
        (
            "daemon: {poll_interval_s: ${DB_PASSWORD}}\n",
            "1: daemon.poll_interval_s: must be a number",
        ),
        (
            "logging: {level: ${DB_PASSWORD}}\n",
            "1: logging.level: must be one of 'DEBUG', 'INFO', 'WARNING', 'ERROR' or 'CRITICAL'",
        ),
        ("logging: {json: ${DB_PASSWORD}}\n", "1: logging.json: must be true or false"),
        (
            "broker: ${DB_PASSWORD}\n",
            "1: broker: must be 'memory' or a redis:// URL",
        ),
        (
            "defaults: {release: {order: [tier, '${DB_PASSWORD}']}}\n",
            "1: defaults.release.order[1]: must be one of 'priority', 'tier' or 'placed_at'",
        ),
        (
            "channels: {x: {kind: '${DB_PASSWORD}'}}\n",
            "1: channels.x.kind: unknown kind, expected one of manual, shopify, woocommerce",
        ),
        (
            SHOP + "    api_version: ${DB_PASSWORD}\n",
            "7: channels.shop.api_version: must be a Shopify API version like '2026-07'",
        ),
        (
            SHOP + "    api_url: ${DB_PASSWORD}\n",
            "7: channels.shop.api_url: must be an http:// or https:// URL",
        ),
    ],
)
def test_a_substituted_value_is_named_never_shown(text: str, expected: str) -> None:
    env = {"DB_PASSWORD": SECRET, "TOKEN": "shpat_x"}
    assert one_error(text, env) == f"stocksync.yaml:{expected} (from ${{DB_PASSWORD}})"


def test_a_range_error_from_the_environment_hides_the_number() -> None:
    found = one_error("server:\n  port: ${SECRET_PORT}\n", {"SECRET_PORT": "98765"})
    assert found == (
        "stocksync.yaml:2: server.port: must be between 1 and 65535 (from ${SECRET_PORT})"
    )


def test_a_value_read_through_var_file_is_named_by_its_variable(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text(SECRET + "\n", encoding="utf-8")
    env = {"DB_PASSWORD_FILE": str(tmp_path / "pw")}
    assert one_error("server:\n  port: ${DB_PASSWORD}\n", env) == (
        "stocksync.yaml:2: server.port: must be an integer (from ${DB_PASSWORD})"
    )


def test_lists_and_cross_references_hide_substituted_items() -> None:
    text = """\
    channels:
      popup: {kind: manual}
    tiers: ['${DB_PASSWORD}', '${DB_PASSWORD}']
    sku_rules:
      - {match: 'A*', channels: ['${DB_PASSWORD}']}
    """
    found = errors(text, {"DB_PASSWORD": SECRET})
    assert found == [
        "stocksync.yaml:3: tiers: lists a value more than once (from ${DB_PASSWORD})",
        "stocksync.yaml:5: sku_rules[0].channels[0]: unknown channel '***'; "
        "configured channels: popup (from ${DB_PASSWORD})",
    ]


def test_a_file_path_from_the_environment_is_not_shown(tmp_path: Path) -> None:
    path = tmp_path / "stocksync.yaml"
    path.write_text("server:\n  api_token_file: ${TOKEN_PATH}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={"TOKEN_PATH": f"/nowhere/{SECRET}"})
    [issue] = caught.value.errors
    assert str(issue) == (
        f"{path}:2: server.api_token_file: cannot read '***': No such file or directory "
        "(from ${TOKEN_PATH})"
    )


def test_values_written_in_the_file_are_still_shown() -> None:
    assert one_error("server:\n  port: many\n") == (
        "stocksync.yaml:2: server.port: must be an integer, got 'many'"
    )
    assert one_error("server:\n  port: ${PORT:-many}\n") == (
        "stocksync.yaml:2: server.port: must be an integer, got 'many'"
    )


def test_a_short_substituted_value_is_masked_where_quoted_not_inside_other_words() -> None:
    text = """\
    channels:
      popup: {kind: manual}
    sku_rules:
      - {match: 'A*', channels: ['${CHANNEL}']}
    """
    assert errors(text, {"CHANNEL": "pop"}) == [
        "stocksync.yaml:4: sku_rules[0].channels[0]: unknown channel '***' "
        "(did you mean 'popup'?); configured channels: popup (from ${CHANNEL})"
    ]
