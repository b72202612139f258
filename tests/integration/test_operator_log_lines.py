"""At INFO the daemon says what it did, one line each: every order applied (channel, order, SKU
and unit counts), every push sent, every hold placed on or released from a shop's order."""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import structlog

from stock import purchasing
from tests.support.stack import running_stack

pytestmark = pytest.mark.slow  # a whole stack


@pytest.fixture
def logs() -> Iterator[list[MutableMapping[str, Any]]]:
    """Every structlog event, from any thread of the daemon."""
    capture = structlog.testing.LogCapture()
    saved = structlog.get_config()
    structlog.configure(processors=[structlog.contextvars.merge_contextvars, capture])
    yield capture.entries
    structlog.configure(**saved)


def events(logs: list[MutableMapping[str, Any]], name: str) -> list[MutableMapping[str, Any]]:
    return [entry for entry in logs if entry["event"] == name]


def test_orders_pushes_and_holds_are_logged(
    tmp_path: Path, logs: list[MutableMapping[str, Any]]
) -> None:
    with running_stack(tmp_path, catalog={"LOG-1": 4}) as stack:
        assert stack.daemon is not None
        with stack.daemon.runtime.ctx.ledger(actor="test") as tx:
            purchasing.add_po(tx, "PO-L", tx.now.date() + timedelta(days=5), {"LOG-1": 6})
        stack.daemon.actors.push.send("shop")
        stack.wait_until(lambda: stack.shop_available("LOG-1") == 10, what="offer 10")
        reply = stack.checkout_shopify("LOG-1", 7, "log@example.com")
        assert reply.status_code == 201, reply.text
        order = str(reply.json()["id"])
        stack.wait_until(lambda: bool(events(logs, "hold_placed")), what="hold placed")
        reply = requests.post(
            f"{stack.daemon_url}/api/purchase-orders/PO-L/receipts",
            json={"lines": {"LOG-1": 6}},
            headers={"Authorization": "Bearer test-token"},
            timeout=10,
        )
        assert reply.status_code == 200, reply.text
        stack.wait_until(lambda: bool(events(logs, "hold_released")), what="hold released")

    applied = [e for e in events(logs, "order_applied") if e["channel"] == "shop"]
    assert applied, logs
    first = applied[0]
    assert first["log_level"] == "info" and first["order"] == order
    assert (first["skus"], first["units"]) == (1, 7)
    assert (first["reserved"], first["backordered"], first["status"]) == (4, 3, "open")
    # the same order version by webhook topics and the poll is one applied line, not several
    assert len({e["event_id"] for e in applied}) == len(applied)

    (placed,) = events(logs, "hold_placed")
    assert placed["log_level"] == "info"
    assert (placed["channel"], placed["order"], placed["lines"], placed["units"]) == (
        "shop", order, 1, 3,
    )  # fmt: skip
    (released,) = events(logs, "hold_released")
    assert (released["channel"], released["order"], released["units"], released["held"]) == (
        "shop", order, 3, 0,
    )  # fmt: skip
    pushes = events(logs, "push_sent")
    assert {e["channel"] for e in pushes} == {"shop", "woo"}
    assert all(e["log_level"] == "info" and e["listings"] >= 1 for e in pushes)
