"""`stocksync campaign payments NAME [--csv]` (issue #16): per entry the money — deposit,
balance, refunds, what the terms kept — with its state and deadlines; totals; and the drop's
money metrics: deposit → allocation conversion, balances paid, refund and cancellation rates.

Read-only, two queries (the entries, their money rows).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from rules import Config
from rules.money import quantize
from stock import campaign_money, campaigns
from stock.campaign_money import MoneyRow

COLUMNS = (
    "entry", "email", "sku", "qty", "status", "currency", "price", "deposit_paid",
    "balance_paid", "refunded", "refund_planned", "refund_by_hand", "kept", "refund_failed",
    "balance_due", "refund_waits_until",
)  # fmt: skip


def _sum(rows: list[MoneyRow], kind: str, *states: str) -> Decimal:
    return sum((r.amount for r in rows if r.kind == kind and r.state in states), Decimal(0))


def report(session: Session, config: Config, name: str) -> dict[str, Any]:
    campaign = config.campaign(name)
    currency = campaign.payment.currency if campaign.payment else None
    entries = [e for e in campaigns.entries(session, name) if e.terms]
    money = campaign_money.of_entries(session, [e.id for e in entries])
    rows: list[dict[str, Any]] = []
    totals: dict[str, Decimal] = dict.fromkeys(COLUMNS[7:14], Decimal(0))
    for entry in entries:
        found = money.get(entry.id, [])
        agreed = entry.terms or {}
        paid = _sum(found, "deposit", "paid") + _sum(found, "balance", "paid")
        given = _sum(found, "refund", "refunded", "planned", "by_hand", "failed")
        row = {
            "entry": entry.id, "email": entry.email, "sku": entry.sku, "qty": entry.qty,
            "status": entry.status, "currency": agreed.get("currency"),
            "price": agreed.get("price"),
            "deposit_paid": _sum(found, "deposit", "paid"),
            "balance_paid": _sum(found, "balance", "paid"),
            "refunded": _sum(found, "refund", "refunded"),
            "refund_planned": _sum(found, "refund", "planned"),
            "refund_by_hand": _sum(found, "refund", "by_hand"),
            # what the shop keeps of an entry that ended (the fee, a waived refund)
            "kept": paid - given if entry.status in _ENDED and found else Decimal(0),
            "refund_failed": _sum(found, "refund", "failed"),
            "balance_due": entry.expires_at.isoformat()
            if entry.status == "allocated" and entry.expires_at
            else None,
            "refund_waits_until": next(
                (r.due_at.isoformat() for r in found if r.kind == "refund" and r.due_at), None
            ),
        }  # fmt: skip
        for key in totals:
            totals[key] += Decimal(str(row[key]))
        rows.append(row)
    deposits = [e for e in entries if money.get(e.id) and _sum(money[e.id], "deposit", "paid")]
    allocated = [e for e in deposits if e.wave is not None]
    balance_due = [e for e in entries if e.wave is not None and (e.terms or {}).get("balance")
                   and Decimal(str((e.terms or {})["balance"])) > 0]  # fmt: skip
    balance_paid = [e for e in balance_due if _sum(money.get(e.id, []), "balance", "paid")]
    refunded = [e for e in entries if _sum(money.get(e.id, []), "refund", "refunded", "by_hand")]
    cancelled = [e for e in entries if e.status == "cancelled"]
    return {
        "campaign": name,
        "currency": currency,
        "entries": [_text(row, currency) for row in rows],
        "totals": {key: _amount(value, currency) for key, value in totals.items()},
        "metrics": {
            "entries_with_terms": len(entries),
            "deposits": len(deposits),
            "deposit_to_allocation": _rate(len(allocated), len(deposits)),
            "balances_due": len(balance_due),
            "balance_paid_in_window": _rate(len(balance_paid), len(balance_due)),
            "refund_rate": _rate(len(refunded), len(entries)),
            "cancellation_rate": _rate(len(cancelled), len(entries)),
        },
    }


_ENDED = ("expired", "declined", "not_allocated", "cancelled")


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _amount(value: Decimal, currency: str | None) -> str:
    return str(quantize(value, currency)) if currency else str(value)


def _text(row: Mapping[str, Any], currency: str | None) -> dict[str, Any]:
    return {
        key: (_amount(value, currency) if isinstance(value, Decimal) else value)
        for key, value in row.items()
    }


def to_csv(data: Mapping[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(COLUMNS), lineterminator="\n")
    writer.writeheader()
    for row in data["entries"]:
        writer.writerow(row)
    writer.writerow({"entry": "total", "currency": data["currency"], **data["totals"]})
    return out.getvalue()


def render(console: Any, data: Mapping[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=f"{data['campaign']}: payments ({data['currency']})")
    shown = ("entry", "email", "sku", "status", "deposit_paid", "balance_paid", "refunded",
             "refund_planned", "refund_by_hand", "kept", "balance_due")  # fmt: skip
    for column in shown:
        table.add_column(column)
    for row in data["entries"]:
        table.add_row(*("" if row[c] is None else str(row[c]) for c in shown))
    totals = data["totals"]
    table.add_row("total", "", "", "", *(totals.get(c, "") for c in shown[4:10]), "")
    console.print(table)
    for key, value in data["metrics"].items():
        console.print(f"{key}: {'-' if value is None else value}", markup=False)
