"""Library log lines (uvicorn, apscheduler, dramatiq log through stdlib `logging`) come out as
the same structlog JSON as ours: logger, level, timestamp, event, exception; secrets redacted;
their chatter below WARNING held back."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from sync.logs import configure


@pytest.fixture
def json_logs(capsys: pytest.CaptureFixture[str]) -> Iterator[Any]:
    configure("INFO", json=True, secrets=["shpat_live_secret_123"])

    def lines() -> list[dict[str, Any]]:
        return [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]

    yield lines
    structlog.reset_defaults()
    logging.getLogger().handlers.clear()


def test_library_records_are_json_lines_like_ours(json_logs: Any) -> None:
    logging.getLogger("uvicorn.error").warning("port %s busy, token shpat_live_secret_123", 8080)
    structlog.get_logger("stocksync.test").warning("ours", sku="A")
    try:
        raise RuntimeError("broken pipe")
    except RuntimeError:
        logging.getLogger("dramatiq.worker.Worker").exception("Failed to process message")
    theirs, ours, failed = json_logs()
    assert theirs["logger"] == "uvicorn.error" and theirs["level"] == "warning"
    assert theirs["event"] == "port 8080 busy, token ***"
    assert set(ours) >= {"event", "level", "timestamp"} and set(theirs) >= set(ours) - {"sku"}
    assert failed["level"] == "error" and failed["logger"] == "dramatiq.worker.Worker"
    assert "RuntimeError: broken pipe" in failed["exception"]


def test_library_info_lines_are_held_back(json_logs: Any) -> None:
    logging.getLogger("apscheduler.executors.default").info('Running job "push"')
    structlog.get_logger("stocksync.test").info("order_applied")
    assert [line["event"] for line in json_logs()] == ["order_applied"]
