"""The purchase-order API of `stocksync run` over real HTTP: cancelling a PO (its backorders at
risk in the answer, the audit log and /metrics) and receipts beyond what was ordered."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import select

from backorders import orders
from backorders.orders import LineInput, OrderInput
from rules import parse_config
from stock import counts, purchasing
from stock import models as m
from sync import queries
from sync.daemon import Daemon

TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CONFIG = """\
database: {url}
channels:
  popup: {{kind: manual}}
  phone: {{kind: manual}}
server: {{api_token: {token}}}
defaults:
  safety_buffer: 0
  backorders: {{enabled: true, incoming_share: 1.0, horizon_days: 30}}
channel_rules:
  popup: {{priority: 1}}
  phone: {{priority: 2}}
daemon: {{sweep_interval_s: 3600, poll_interval_s: 3600}}
"""


@pytest.fixture
def daemon(tmp_path: Path, fresh_sqlite: Callable[[Path], str]) -> Iterator[Daemon]:
    text = CONFIG.format(url=fresh_sqlite(tmp_path), token=TOKEN)
    running = Daemon(parse_config(text, "stocksync.yaml", env={}), "127.0.0.1", 0,
                     worker_threads=1)  # fmt: skip
    running.start()
    try:
        yield running
    finally:
        running.stop()


def post(daemon: Daemon, path: str, body: Any = None, **headers: str) -> requests.Response:
    return requests.post(f"{daemon.url}{path}", json=body, headers=headers or AUTH, timeout=10)


def seed(daemon: Daemon) -> None:
    """A SKU with 2 on hand, PO-1 (5) and PO-2 (2) incoming; popup P1 waits for 3, phone T1
    for 2 (ranked after P1: lower priority)."""
    ctx = daemon.runtime.ctx
    with ctx.ledger(actor="test") as tx:
        counts.set_stock(tx, "A", 2)
        purchasing.add_po(tx, "PO-1", tx.now.date() + timedelta(days=3), {"A": 5})
        purchasing.add_po(tx, "PO-2", tx.now.date() + timedelta(days=9), {"A": 2})
    for channel, ref, qty in (("popup", "P1", 5), ("phone", "T1", 2)):
        with ctx.ledger(actor="test") as tx:
            orders.record_order(
                tx,
                OrderInput(channel, ref, tx.now, tx.now, "open", (LineInput("1", "A", qty),)),
            )


def audit(daemon: Daemon, action: str) -> list[tuple[str, str, dict[str, Any]]]:
    with daemon.runtime.ctx.read() as session:
        rows = session.execute(
            select(m.AuditEntry.actor, m.AuditEntry.subject, m.AuditEntry.detail)
            .where(m.AuditEntry.action == action)
            .order_by(m.AuditEntry.id)
        ).all()
    return [(str(actor), str(subject), dict(detail)) for actor, subject, detail in rows]


def po_state(daemon: Daemon, ref: str) -> tuple[str, list[tuple[str, int, int]]]:
    with daemon.runtime.ctx.read() as session:
        data = queries.po_detail(session, ref)
    return data["status"], [(x["sku"], x["ordered"], x["received"]) for x in data["lines"]]


def test_cancel_api_lists_the_backorders_at_risk_and_refuses_a_second_cancel(
    daemon: Daemon,
) -> None:
    seed(daemon)
    assert post(daemon, "/api/purchase-orders/PO-1/cancel", Authorization="").status_code == 401
    wrong = post(daemon, "/api/purchase-orders/PO-1/cancel", Authorization="Bearer nope")
    assert wrong.status_code == 401
    missing = post(daemon, "/api/purchase-orders/NOPE/cancel")
    assert (missing.status_code, missing.json()["error"]) == (
        404, "NOPE: no such purchase order",
    )  # fmt: skip
    assert po_state(daemon, "PO-1")[0] == "open"

    answer = post(daemon, "/api/purchase-orders/PO-1/cancel")
    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert (data["ok"], data["ref"], data["status"], data["cancelled"]) == (
        True, "PO-1", "cancelled", {"A": 5},
    )  # fmt: skip
    # PO-2's 2 units still come: P1 (3 waiting, rank 1) keeps 2 of them, T1 gets none
    at_risk = [(r["order"], r["rank"], r["qty_open"], r["at_risk_units"]) for r in data["at_risk"]]
    assert at_risk == [("P1", 1, 3, 1), ("T1", 2, 2, 2)]
    assert audit(daemon, "po.cancel") == [
        ("api", "PO-1", {"cancelled": {"A": 5}, "received": {"A": 0}})
    ]
    flagged = audit(daemon, "backorder.at_risk")
    assert [(actor, subject, detail["units"]) for actor, subject, detail in flagged] == [
        ("api", "A", 3)
    ]
    metrics = requests.get(f"{daemon.url}/metrics", timeout=10).text
    assert "stocksync_backorders_at_risk_units 3.0" in metrics

    again = post(daemon, "/api/purchase-orders/PO-1/cancel")
    assert (again.status_code, again.json()) == (
        409, {"ok": False, "error": "PO-1: purchase order is already cancelled"},
    )  # fmt: skip
    receipt = post(daemon, "/api/purchase-orders/PO-1/receipts", {"lines": {"A": 1}})
    assert receipt.status_code == 400
    assert "a cancelled PO cannot be received" in receipt.json()["error"]
    assert po_state(daemon, "PO-1") == ("cancelled", [("A", 5, 0)])


def test_receipts_api_refuses_an_over_receipt_unless_allowed(daemon: Daemon) -> None:
    seed(daemon)
    path = "/api/purchase-orders/PO-2/receipts"
    first = post(daemon, path, {"lines": {"A": 1}})
    assert (first.status_code, first.json()["over_received"]) == (200, {})
    over = post(daemon, path, {"lines": {"A": 3}})
    assert over.status_code == 409
    assert over.json() == {
        "ok": False,
        "error": "PO-2: more than ordered (A: 2 ordered, 1 received before, receiving 3 would "
        "be 2 over); nothing booked",
        "over": {"A": 2},
        "hint": 'send "allow_over": true to book the units anyway',
    }
    assert po_state(daemon, "PO-2") == ("open", [("A", 2, 1)])
    bad = post(daemon, path, {"lines": {"A": 3}, "allow_over": "yes"})
    assert (bad.status_code, bad.json()["error"]) == (
        400, "allow_over must be true or false, got 'yes'",
    )  # fmt: skip

    allowed = post(daemon, path, {"lines": {"A": 3}, "allow_over": True})
    assert allowed.status_code == 200, allowed.text
    data = allowed.json()
    assert (data["received"], data["over_received"]) == ({"A": 3}, {"A": 2})
    # the first unit went to P1 already: its last 2, then T1 (lower priority) 1 of its 2
    assert [(r["order"], r["qty"]) for r in data["released"]] == [("P1", 2), ("T1", 1)]
    assert po_state(daemon, "PO-2") == ("received", [("A", 2, 4)])
    assert audit(daemon, "po.receive")[-1] == (
        "api", "PO-2", {"received": {"A": 3}, "status": "received", "over_received": {"A": 2}},
    )  # fmt: skip


def test_the_at_risk_gauge_is_documented() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "metrics.md").read_text("utf-8")
    assert "`stocksync_backorders_at_risk_units`" in docs
