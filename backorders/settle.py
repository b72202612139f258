"""Settle what a transaction owes before it commits: demotions, then releases.

stock/ records that a change made them due (stock.tx.Effects) and never calls back up into
backorders/; the unit of work (sync.context) and every order change run `settle`, so waiting
backorders get the units a receipt, a count or a cancellation freed in the same transaction.
"""

from __future__ import annotations

from backorders import releasing
from stock import commitments, counts
from stock.tx import LedgerTx


def settle(tx: LedgerTx) -> None:
    effects = tx.effects
    while effects.demote_due or effects.release_due:
        if effects.demote_due:
            due = sorted(effects.demote_due)
            effects.demote_due.clear()
            for sku_id in due:
                _demote_excess(tx, sku_id)
            continue
        due = sorted(effects.release_due)
        effects.release_due.clear()
        releasing.release(tx, due)


def _demote_excess(tx: LedgerTx, sku_id: int) -> None:
    """A count below what is reserved: the newest reservations wait for stock again."""
    row = counts.lock(tx, [sku_id])[sku_id]
    excess = row.reserved - row.on_hand
    if excess <= 0:
        return
    code = counts.codes_of(tx, [sku_id])[sku_id]
    moved = commitments.demote_newest(tx, sku_id, excess)
    tx.audit("stock.oversell", code, {"moved_to_backorder": moved, "on_hand": row.on_hand})
    tx.effects.add_oversold(code, moved)
