"""Structured logs: JSON off a terminal, secrets never printed."""

from __future__ import annotations

import json

import pytest
import structlog

from sync.logs import MASK, Redactor, configure


def test_redactor_masks_secret_keys_and_known_values() -> None:
    redact = Redactor(["shpat_live_123456"])
    event = redact(
        None,
        "info",
        {
            "event": "call failed: token shpat_live_123456 refused",
            "consumer_secret": "cs_abc",
            "detail": {"authorization": "Bearer x", "sku": "A"},
            "count": 3,
        },
    )
    assert event == {
        "event": f"call failed: token {MASK} refused",
        "consumer_secret": MASK,
        "detail": {"authorization": MASK, "sku": "A"},
        "count": 3,
    }


def test_short_values_are_not_treated_as_secrets() -> None:
    assert Redactor(["abc"])(None, "info", {"event": "abc def"}) == {"event": "abc def"}


def test_json_lines_with_context_and_no_secret(capsys: pytest.CaptureFixture[str]) -> None:
    configure("INFO", json=True, secrets=["supersecretvalue"])
    structlog.contextvars.bind_contextvars(job="push", channel="shop")
    try:
        structlog.get_logger("t").info("pushed", note="key supersecretvalue used")
        structlog.get_logger("t").debug("hidden below the level")
    finally:
        structlog.contextvars.clear_contextvars()
        structlog.reset_defaults()
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]
    assert len(lines) == 1
    (line,) = lines
    assert line["event"] == "pushed" and line["job"] == "push" and line["channel"] == "shop"
    assert line["level"] == "info" and "timestamp" in line
    assert "supersecretvalue" not in json.dumps(line)


def test_the_database_and_broker_passwords_are_secrets_for_the_redactor() -> None:
    from rules import parse_config
    from sync.runtime import Runtime

    config = parse_config(
        "database: postgresql+psycopg://app:db-pass%2Fword@db.internal/stock\n"
        "broker: redis://:broker-secret@cache.internal:6379/0\n",
        "stocksync.yaml",
        env={},
    )
    secrets = Runtime.secrets_of(config)
    assert "db-pass/word" in secrets and "broker-secret" in secrets
