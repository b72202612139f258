"""``${VAR}`` substitution: text level, in whole configs (with lines), and inside flow mappings."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rules import ConfigError, parse_config
from rules.envsubst import shield_references, substitute_text

SHOPIFY = "shop: {kind: shopify, shop: s.myshopify.com, token: ${TOKEN}, webhook_secret: ${WHS}}"


def errors(text: str, env: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(textwrap.dedent(text), "stocksync.yaml", env)
    return [str(issue) for issue in caught.value.errors]


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("${A}", {"A": "x"}, "x"),
        ("pre-${A}-${B}-post", {"A": "1", "B": "2"}, "pre-1-2-post"),
        ("${A:-fallback}", {}, "fallback"),
        ("${A:-fallback}", {"A": ""}, "fallback"),
        ("${A:-fallback}", {"A": "set"}, "set"),
        ("${A:-}", {}, ""),
        ("${A}", {"A": ""}, ""),
        ("$${A} and $A", {"A": "x"}, "${A} and $A"),
        ("no references", {}, "no references"),
    ],
)
def test_substitute_text(text: str, env: dict[str, str], expected: str) -> None:
    result = substitute_text(text, env)
    assert (result.text, result.problems) == (expected, ())


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("${MISSING}", "environment variable MISSING is not set"),
        ("${1BAD}", "malformed reference '${1BAD}' (expected ${NAME})"),
        ("${}", "malformed reference '${}' (expected ${NAME})"),
        ("x${OPEN", "unclosed '${' (write '$${' for a literal '${')"),
    ],
)
def test_substitute_text_problems(text: str, problem: str) -> None:
    assert substitute_text(text, {}).problems == (problem,)


@given(st.text(alphabet=st.characters(blacklist_characters="$"), max_size=30))
def test_text_without_dollar_is_unchanged(text: str) -> None:
    assert substitute_text(text, {}).text == text


@pytest.mark.slow
@given(st.text(max_size=40), st.from_regex(r"[A-Z_][A-Z0-9_]{0,8}", fullmatch=True))
def test_any_value_is_substituted_verbatim(value: str, name: str) -> None:
    assert substitute_text(f"<${{{name}}}>", {name: value}).text == f"<{value}>"


@given(st.text(max_size=60))
def test_shield_restores_exactly_and_keeps_lines(text: str) -> None:
    shielded = shield_references(text)
    assert shielded.restore(shielded.text) == text
    assert shielded.text.count("\n") == text.count("\n")
    assert all(ref.startswith("${") and ref.endswith("}") for ref in shielded.references)


def test_missing_variables_are_reported_at_their_lines_and_all_collected() -> None:
    text = """\
    database: ${DB_URL}
    channels:
      shop:
        kind: shopify
        shop: s.myshopify.com
        token: ${SHOPIFY_TOKEN}
        webhook_secret: ${SHOPIFY_WEBHOOK_SECRET}
    """
    assert errors(text, {}) == [
        "stocksync.yaml:1: database: environment variable DB_URL is not set",
        "stocksync.yaml:6: channels.shop.token: environment variable SHOPIFY_TOKEN is not set",
        "stocksync.yaml:7: channels.shop.webhook_secret: "
        "environment variable SHOPIFY_WEBHOOK_SECRET is not set",
    ]


def test_references_work_inside_flow_mappings_as_in_design_section_8() -> None:
    config = parse_config(f"channels:\n  {SHOPIFY}\n", "s.yaml", {"TOKEN": "t,}{:#", "WHS": "w"})
    shop = config.channels["shop"]
    assert shop.secret("token") == "t,}{:#"  # YAML-special characters arrive untouched
    assert shop.webhook_secrets() == ("w",)


def test_substituted_text_is_validated_like_a_yaml_value() -> None:
    text = "server: {port: '${PORT}'}\ndefaults: {backorders: {enabled: ${BO}}}\n"
    config = parse_config(text, "s.yaml", {"PORT": "9000", "BO": "true"})
    assert config.server.port == 9000
    assert config.rule_for  # the config built
    assert config.rules.defaults.backorders_enabled is not None
    assert config.rules.defaults.backorders_enabled.value is True


def test_bad_substituted_number_names_the_key_and_the_variable_not_its_value() -> None:
    assert errors("server: {port: '${PORT}'}\n", {"PORT": "eighty"}) == [
        "stocksync.yaml:1: server.port: must be an integer (from ${PORT})"
    ]


def test_env_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOCKSYNC_TEST_DB", "sqlite:////tmp/from-env.db")
    config = parse_config("database: ${STOCKSYNC_TEST_DB}\n", "s.yaml")
    assert config.database == "sqlite:////tmp/from-env.db"


def test_keys_are_not_substituted() -> None:
    assert errors("${KEY}: 1\n", {"KEY": "database"}) == [
        "stocksync.yaml:1: ${KEY}: unknown key '${KEY}'"
    ]


def test_literal_dollar_brace_via_escape() -> None:
    config = parse_config("database: sqlite:///a$${b}.db\n", "/tmp/s.yaml", {})
    assert config.database == "sqlite:////tmp/a${b}.db"


def test_var_file_form_reads_the_secret_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("shpat_from_docker_secret\n", encoding="utf-8")
    env = {"TOKEN_FILE": str(secret), "WHS": "w"}
    config = parse_config(f"channels:\n  {SHOPIFY}\n", "s.yaml", env)
    assert config.channels["shop"].secret("token") == "shpat_from_docker_secret"
    # the variable itself wins over its _FILE form
    config = parse_config(f"channels:\n  {SHOPIFY}\n", "s.yaml", {**env, "TOKEN": "direct"})
    assert config.channels["shop"].secret("token") == "direct"


def test_unreadable_var_file_is_reported_at_the_value(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    assert errors(f"channels:\n  {SHOPIFY}\n", {"TOKEN_FILE": str(missing), "WHS": "w"}) == [
        f"stocksync.yaml:2: channels.shop.token: TOKEN_FILE: cannot read '{missing}': "
        "No such file or directory"
    ]
