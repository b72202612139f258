"""Finish a ledger transaction before it commits: write what was deferred, collect the ids.

Listings marked dirty are written once per transaction (stock.listings.write_dirty); new rows
are flushed together (one multi-row INSERT per table), and the write-back ids the caller
enqueues after commit are read off the flushed outbox rows.
"""

from __future__ import annotations

from stock import listings
from stock.tx import LedgerTx


def finish(tx: LedgerTx) -> None:
    listings.write_dirty(tx)
    tx.session.flush()
    tx.effects.writebacks.update(row.id for row in tx.writebacks.values())
