"""Promise dates planned after commit (issue #17): SKUs with many backorders are marked
`promises_due` by the transactions that change them and planned here, each in its own ledger
transaction with its stock row locked, once per pass however many orders came meanwhile. The
sweeper runs it, and the notifier before it tells customers their dates."""

from __future__ import annotations

from backorders import promising
from sync.logs import get_logger
from sync.runtime import Runtime

log = get_logger("stocksync.jobs.promises")


def plan_due_promises(runtime: Runtime) -> int:
    """Plan every SKU marked due; returns the promises that moved."""
    with runtime.ctx.ledger(actor="promises") as tx:
        due = promising.due_skus(tx)
    moved = 0
    for sku_id in due:
        with runtime.ctx.ledger(actor="promises") as tx:
            moved += len(promising.plan_marked(tx, [sku_id]))
    if due:
        log.info("promises_planned", skus=len(due), moved=moved)
    return moved
