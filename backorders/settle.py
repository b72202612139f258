"""Settle what a transaction owes before it commits: demotions, then releases; and say which
waiting backorders nothing known will fill any more (at risk).

stock/ records that a change made them due (stock.tx.Effects) and never calls back up into
backorders/; the unit of work (sync.context) and every order change run `settle`, so waiting
backorders get the units a receipt, a count or a cancellation freed in the same transaction.

*At risk*: backorders are promised against incoming units. When a purchase order is cancelled
(or cut), a SKU's open backorders may exceed what can still fill them — the units of the open
POs left (whatever their eta) and the sellable stock (stock.commitments.cover). A release fills
backorders in the ranked order, so the units at risk are the tail of that order: walking the
SKU's backorders as `stocksync backorders` lists them, the first `cover` units are covered and
every unit after them is at risk. It is derived from the ledger, never stored: a new PO or a
count covers them again with nothing to clear.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from typing import Any

from sqlalchemy.orm import Session

from backorders import ranking, releasing
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


def mark_at_risk(rows: Sequence[MutableMapping[str, Any]], cover: Mapping[str, int]) -> None:
    """Set `at_risk_units` and `at_risk` on backorder rows listed in release order (the rows of
    `releasing.listing_page`): per SKU the first `cover[sku]` open units are covered, the rest
    are at risk. Released rows (nothing open) are never at risk. Pure."""
    left = dict(cover)
    for row in rows:
        open_units = int(row["qty_open"])
        covered = min(max(left.get(row["sku"], 0), 0), open_units)
        left[row["sku"]] = left.get(row["sku"], 0) - covered
        row["at_risk_units"] = open_units - covered
        row["at_risk"] = open_units > covered


def at_risk(
    session: Session, rules: ranking.RankingRules, codes: Iterable[str]
) -> list[dict[str, Any]]:
    """The open backorder rows of these SKUs holding units at risk, in release order per SKU
    (the rows `stocksync backorders` prints, with `at_risk_units`)."""
    found: list[dict[str, Any]] = []
    for code, cover in sorted(commitments.cover(session, codes).items()):
        if not cover.at_risk:
            continue
        rows = releasing.listing(session, rules, code, include_closed=False)
        mark_at_risk(rows, {code: cover.units})
        found += [row for row in rows if row["at_risk"]]
    return found


def flag_at_risk(tx: LedgerTx, cause: str, codes: Iterable[str]) -> list[dict[str, Any]]:
    """After incoming was cut (`cause`, e.g. "po.cancel PO-7"): the open backorders of these
    SKUs now at risk, each SKU's recorded in the audit log (`backorder.at_risk`)."""
    rows = at_risk(tx.session, tx.rules, codes)
    per_sku: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        per_sku.setdefault(row["sku"], []).append(row)
    for code, held in per_sku.items():
        tx.audit(
            "backorder.at_risk",
            code,
            {
                "cause": cause,
                "units": sum(row["at_risk_units"] for row in held),
                "backorders": [
                    {
                        "order": f"{row['channel']}/{row['order']}",
                        "line": row["line"],
                        "units": row["at_risk_units"],
                    }
                    for row in held
                ],
            },
        )
    return rows
