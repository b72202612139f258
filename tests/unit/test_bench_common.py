"""The benchmarks' pure helpers: percentiles, tables, JSON output, the webhook delay relay."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import requests

from bench.common import (
    DelayRelay,
    count_delta,
    latency_summary,
    markdown_table,
    percentile,
    ratio,
    write_json,
)


def test_percentile_interpolates_between_ranks() -> None:
    values = [4.0, 1.0, 3.0, 2.0]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 4.0
    assert percentile(values, 50) == 2.5
    assert percentile([7.0], 99) == 7.0
    assert percentile(list(range(101)), 95) == 95.0


def test_percentile_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)
    with pytest.raises(ValueError, match=r"within 0\.\.100"):
        percentile([1.0], 101)


def test_latency_summary_is_in_milliseconds_and_says_when_empty() -> None:
    summary = latency_summary([0.1, 0.2, 0.3])
    assert summary == {"count": 3, "p50_ms": 200.0, "p95_ms": 290.0, "p99_ms": 298.0,
                       "max_ms": 300.0}  # fmt: skip
    assert latency_summary([])["p99_ms"] is None


def test_ratio_and_count_delta() -> None:
    assert ratio(12, 10) == 1.2
    assert ratio(5, 0) is None
    before = {"POST /graphql": 3, "GET /x": 1}
    after = {"POST /graphql": 10, "GET /x": 1, "GET /y": 2}
    assert count_delta(after, before) == {"GET /y": 2, "POST /graphql": 7}


def test_markdown_table_shapes_rows_and_escapes_pipes() -> None:
    text = markdown_table(["a", "b"], [["x|y", None], [1.5, 2]])
    assert text.splitlines() == ["| a | b |", "|---|---|", "| x\\|y | — |", "| 1.5 | 2 |"]
    with pytest.raises(ValueError, match="cells"):
        markdown_table(["a"], [[1, 2]])


def test_write_json_creates_the_folder(tmp_path: Path) -> None:
    path = write_json({"b": 1, "a": [1, 2]}, tmp_path / "deep" / "out.json")
    assert json.loads(path.read_text(encoding="utf-8")) == {"a": [1, 2], "b": 1}


def test_relay_answers_at_once_and_delivers_after_its_delay() -> None:
    got: list[tuple[float, bytes, dict[str, str]]] = []
    arrived = threading.Event()

    def deliver(headers: dict[str, str], body: bytes) -> None:
        got.append((time.monotonic(), body, headers))
        arrived.set()

    relay = DelayRelay(deliver, (150, 150), seed=1)
    relay.start()
    try:
        sent = time.monotonic()
        reply = requests.post(relay.url, data=b"hello", headers={"X-Test": "1"}, timeout=5)
        answered = time.monotonic()
        assert reply.status_code == 200
        assert answered - sent < 0.15  # the shop is not kept waiting for the delay
        assert arrived.wait(5)
    finally:
        relay.stop()
    at, body, headers = got[0]
    assert body == b"hello"
    assert headers["X-Test"] == "1"
    assert "Host" not in headers and "Content-Length" not in headers
    assert at - sent >= 0.15
    assert relay.stats.received == relay.stats.delivered == 1


def test_relay_records_failed_deliveries() -> None:
    def deliver(headers: dict[str, str], body: bytes) -> None:
        raise RuntimeError("receiver down")

    relay = DelayRelay(deliver, (0, 0))
    relay.start()
    try:
        requests.post(relay.url, data=b"x", timeout=5)
        deadline = time.monotonic() + 5
        while relay.pending() and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        relay.stop()
    assert relay.stats.failed == 1
    assert "receiver down" in relay.stats.errors[0]


def test_relay_refuses_a_backwards_delay_range() -> None:
    with pytest.raises(ValueError, match="delay range"):
        DelayRelay(lambda h, b: None, (300, 100))
