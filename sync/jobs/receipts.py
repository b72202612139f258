"""Goods in: book a purchase-order receipt and release backorders with it, in ONE transaction.

Between a receipt and its release no order can take the units the waiting backorders were
promised: the unit of work settles the release before it commits (backorders.settle).
"""

from __future__ import annotations

from collections.abc import Mapping

from backorders import releasing
from stock import purchasing
from stock.tx import ReleasedUnits
from sync.jobs.followups import Followups
from sync.logs import get_logger
from sync.runtime import Runtime

log = get_logger("stocksync.jobs.receipts")


def receive_purchase_order(
    runtime: Runtime, ref: str, lines: Mapping[str, int]
) -> tuple[list[ReleasedUnits], Followups]:
    """Book the units and release backorders; write-backs and pushes follow after commit."""
    with runtime.ctx.ledger(actor="api") as tx:
        purchasing.receive_po(tx, ref, lines)
    released = tx.effects.released
    if released:
        log.info("released", ref=ref, units=sum(r.qty for r in released))
    return released, Followups.of(tx.effects, list(runtime.channels))


def release_skus(runtime: Runtime, codes: list[str]) -> Followups:
    """Fill open backorders of these SKUs in the configured order, in one transaction (the
    sweeper's job when a release is due that nothing triggered)."""
    with runtime.ctx.ledger(actor="worker") as tx:
        released = releasing.release_codes(tx, codes)
        if released:
            log.info("released", units=sum(r.qty for r in released), skus=codes)
    return Followups.of(tx.effects, list(runtime.channels))
