"""Promise dates on the ledger (issue #17), SQLite and PostgreSQL: every open backorder is
promised the ETA of the PO line that fills it in release order; moving a PO's ETA, a cancelled
PO or a receipt plans them again, and each promise that moved is an audit entry (the customer
is told), flagged while it is later than first promised; `backorders` and `explain` show them."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from backorders import orders, releasing
from backorders.orders import LineInput, OrderInput
from stock import models as m
from stock import offers, outbox, purchasing
from sync.context import AppContext
from tests.support.ledger import ledger_fixture

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
D1, D2, D3 = date(2026, 12, 10), date(2026, 12, 20), date(2027, 1, 5)
CONFIG = """\
database: {url}
channels:
  popup: {{kind: manual}}
defaults:
  backorders: {{enabled: true, incoming_share: 1.0, horizon_days: 60}}
"""


ctx = ledger_fixture(CONFIG, {"TEE": 0}, T0)


def order(app: AppContext, ref: str, qty: int, minutes: int) -> None:
    at = T0 + timedelta(minutes=minutes)
    with app.ledger(actor="test", now=at) as tx:
        orders.record_order(
            tx,
            OrderInput(
                "popup",
                ref,
                at,
                at,
                "open",
                (LineInput("1", "TEE", qty),),
                email=f"{ref}@example.com",
                language="nl",
            ),
        )


def promised(app: AppContext) -> dict[str, tuple[str | None, str | None]]:
    with app.read() as session:
        rows = releasing.listing(session, app.config, "TEE", include_closed=False)
    return {row["order"]: (row["promised_on"], row["promise_moved_from"]) for row in rows}


def moves(app: AppContext) -> list[dict[str, Any]]:
    with app.read() as session:
        return [
            entry.detail
            for entry in session.scalars(
                select(m.AuditEntry)
                .where(m.AuditEntry.action == "backorder.promise_moved")
                .order_by(m.AuditEntry.id)
            )
        ]


def test_promises_follow_the_release_queue_over_the_open_po_lines(ctx: AppContext) -> None:
    with ctx.ledger(actor="test", now=T0) as tx:
        purchasing.add_po(tx, "PO-A", D1, {"TEE": 3})
        purchasing.add_po(tx, "PO-B", D2, {"TEE": 5})
    order(ctx, "o1", 2, 1)
    order(ctx, "o2", 2, 2)
    order(ctx, "o3", 3, 3)
    # o1 from PO-A; o2's last unit from PO-B; o3 from PO-B
    assert promised(ctx) == {"o1": (D1.isoformat(), None), "o2": (D2.isoformat(), None),
                             "o3": (D2.isoformat(), None)}  # fmt: skip
    assert moves(ctx) == []  # a new backorder's first date is told with it, not as a move
    with ctx.read() as session:  # the write-back tells the shop when the order should be in
        ids = {o.external_id: o.id for o in session.scalars(select(m.ChannelOrder))}
        assert outbox.expected_on(session, ids["o2"]) == D2
    with ctx.read() as session:
        stored = session.scalar(select(m.ChannelOrder).where(m.ChannelOrder.external_id == "o1"))
        assert stored is not None and (stored.email, stored.language) == ("o1@example.com", "nl")

    # the supplier moves PO-A past PO-B: o1 and o2 now wait for PO-B, o3 partly for PO-A
    with ctx.ledger(actor="test", now=T0 + timedelta(hours=1)) as tx:
        purchasing.add_po(tx, "PO-A", D3, {"TEE": 3})
    assert promised(ctx) == {"o1": (D2.isoformat(), D1.isoformat()),
                             "o2": (D2.isoformat(), None),
                             "o3": (D3.isoformat(), D2.isoformat())}  # fmt: skip
    assert [(x["order"], x["from"], x["to"], x["direction"]) for x in moves(ctx)] == [
        ("popup/o1", D1.isoformat(), D2.isoformat(), "later"),
        ("popup/o3", D2.isoformat(), D3.isoformat(), "later"),
    ]

    # PO-B is cancelled: only PO-A's 3 units are coming; o2 and o3 have no date any more
    with ctx.ledger(actor="test", now=T0 + timedelta(hours=2)) as tx:
        purchasing.cancel_po(tx, "PO-B")
    assert promised(ctx) == {"o1": (D3.isoformat(), D1.isoformat()),
                             "o2": (None, D2.isoformat()),
                             "o3": (None, D2.isoformat())}  # fmt: skip
    with ctx.read() as session:
        assert outbox.expected_on(session, ids["o2"]) is None  # no date for a unit of it
    with ctx.ledger(actor="test", now=T0 + timedelta(hours=2)) as tx:
        shown = offers.explain(tx, "TEE")["promises"]
    assert shown == [{"date": D3.isoformat(), "units": 2, "moved_later": 2},
                     {"date": None, "units": 5, "moved_later": 5}]  # fmt: skip

    # a new PO back on the first dates: the flags clear where the promise is kept again
    with ctx.ledger(actor="test", now=T0 + timedelta(hours=3)) as tx:
        purchasing.add_po(tx, "PO-C", D1, {"TEE": 10})
    assert promised(ctx) == {"o1": (D1.isoformat(), None), "o2": (D1.isoformat(), None),
                             "o3": (D1.isoformat(), None)}  # fmt: skip
    assert moves(ctx)[-1]["direction"] == "earlier"

    # a receipt fills o1 and part of o2: the rest keep their dates
    with ctx.ledger(actor="test", now=T0 + timedelta(hours=4)) as tx:
        purchasing.receive_po(tx, "PO-C", {"TEE": 3})
    assert promised(ctx) == {"o2": (D1.isoformat(), None), "o3": (D1.isoformat(), None)}


def test_a_sku_with_many_backorders_is_planned_after_commit_once_per_pass(
    ctx: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    from backorders import promising

    monkeypatch.setattr(promising, "IN_TX_UNITS", 3)  # "many" is more than 3 units here
    with ctx.ledger(actor="test", now=T0) as tx:
        purchasing.add_po(tx, "PO-A", D1, {"TEE": 4})
        purchasing.add_po(tx, "PO-B", D2, {"TEE": 10})
    order(ctx, "o1", 2, 1)  # 2 waiting: planned in its transaction
    order(ctx, "o2", 3, 2)  # 5 waiting: marked, planned after commit
    order(ctx, "o3", 1, 3)
    assert promised(ctx) == {"o1": (D1.isoformat(), None), "o2": (None, None),
                             "o3": (None, None)}  # fmt: skip

    def plan_due() -> list[dict[str, Any]]:
        with ctx.ledger(actor="test", now=T0 + timedelta(minutes=5)) as tx:
            due = promising.due_skus(tx)
        with ctx.ledger(actor="test", now=T0 + timedelta(minutes=5)) as tx:
            return promising.plan_marked(tx, due)

    assert plan_due() == []  # first dates: not moves
    assert promised(ctx) == {"o1": (D1.isoformat(), None), "o2": (D2.isoformat(), None),
                             "o3": (D2.isoformat(), None)}  # fmt: skip
    assert plan_due() == []  # nothing marked any more
    # the PO's ETA moves: marked again, and the pass finds the moves
    with ctx.ledger(actor="test", now=T0 + timedelta(hours=1)) as tx:
        purchasing.add_po(tx, "PO-A", D3, {"TEE": 4})
    assert promised(ctx)["o1"] == (D1.isoformat(), None)  # not yet: after commit
    # PO-B's 10 units at D2 now come first: o1 moves to D2, o2 and o3 keep D2
    assert [(x["order"], x["to"]) for x in plan_due()] == [("popup/o1", D2.isoformat())]
