"""A campaign's payment terms as money (issue #16): what a customer pays and when, what comes
back if they change their mind or no unit comes. Pure: no I/O, no clock of its own.

Amounts are Decimal in the campaign's currency, kept in the ledger as whole minor units (cents;
`minor_units`). What a customer accepted is a snapshot (`accepted`) stored with the entry, so a
later change of the YAML never changes what was agreed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from rules.money import PaymentTerms, quantize, text

ZERO = Decimal(0)
HUNDRED = Decimal(100)


@dataclass(frozen=True)
class Sums:
    """What one entry costs: the price, paid now (the deposit, or all of it), paid later."""

    currency: str
    price: Decimal
    deposit: Decimal
    balance: Decimal

    def as_dict(self) -> dict[str, str]:
        return {"currency": self.currency, "price": str(self.price),
                "deposit": str(self.deposit), "balance": str(self.balance)}  # fmt: skip


def sums(terms: PaymentTerms, sku: str, qty: int) -> Sums:
    price = quantize(terms.price(sku) * qty, terms.currency)
    if terms.mode == "none":
        deposit = Decimal(0)
        balance = price
    elif terms.mode == "full":
        deposit = price  # paid at sign-up in full
        balance = Decimal(0)
    elif terms.deposit_percent is not None:
        deposit = quantize(price * terms.deposit_percent / 100, terms.currency)
        balance = price - deposit
    else:
        deposit = quantize(min((terms.deposit_amount or Decimal(0)) * qty, price), terms.currency)
        balance = price - deposit
    return Sums(terms.currency, price, quantize(deposit, terms.currency),
                quantize(balance, terms.currency))  # fmt: skip


def accepted(
    terms: PaymentTerms, sku: str, qty: int, window_hours: float, now: datetime
) -> dict[str, Any]:
    """The terms an entry is signed up on, as stored with it (and shown back to the customer)."""
    money = sums(terms, sku, qty)
    return {
        "mode": terms.mode,
        **money.as_dict(),
        "balance_due_hours": terms.balance_due_hours or window_hours,
        "refund_unallocated_after": _iso(terms.refund_unallocated_after),
        "cancellation_fee": str(fee(terms, money)),
        "production_lock": _iso(terms.production_lock),
        "accepted_at": now.isoformat(),
    }


# what makes two sets of accepted terms different terms (not when they were accepted)
TERM_KEYS = ("mode", "currency", "price", "deposit", "balance", "balance_due_hours",
             "refund_unallocated_after", "cancellation_fee", "production_lock")  # fmt: skip


def digest(terms: PaymentTerms) -> str:
    """A short fingerprint of the configured terms: equal terms, equal digests."""
    return hashlib.sha256(repr(terms).encode()).hexdigest()[:32]


def changed_terms(
    agreed: Mapping[str, Any],
    terms: PaymentTerms,
    sku: str,
    qty: int,
    window_hours: float,
    now: datetime,
) -> dict[str, Any] | None:
    """The campaign's current terms for an entry that accepted `agreed`, when they differ in
    anything that matters (None: the same terms). The deposit already paid stays what it was:
    the new balance is the new price less it."""
    current = accepted(terms, sku, qty, window_hours, now)
    if agreed.get("mode") != "none":
        paid = Decimal(str(agreed["deposit"]))
        current["deposit"] = str(paid)
        current["balance"] = str(max(Decimal(current["price"]) - paid, Decimal(0)))
    if all(str(current.get(k)) == str(agreed.get(k)) for k in TERM_KEYS):
        return None
    current.pop("accepted_at", None)
    current["offered_at"] = now.isoformat()
    return current


def fee(terms: PaymentTerms, money: Sums) -> Decimal:
    """What is kept when a confirmed customer cancels before the production lock."""
    if terms.cancellation_fee == "none":
        return Decimal(0)
    if terms.cancellation_fee == "deposit":
        return money.deposit
    return quantize(min(terms.cancellation_fee, money.price), terms.currency)


# what is owed back, by why the entry ends; reads only the stored (accepted) terms
EndReason = Literal["not_allocated", "declined", "missed_balance", "cancelled"]


def refund_due(
    agreed: Mapping[str, Any],
    paid: Decimal,
    why: EndReason,
    now: datetime,
    reallocated_within_a_day: bool = False,
) -> Decimal:
    """What goes back to the customer of `paid` (deposit and balance so far) when their entry
    ends for `why`, under the terms they accepted:
    - no unit came (not allocated, declined, stock went down, review rejected): all of it;
    - they missed the balance deadline, or cancelled after confirming: all but the fee;
    - cancelled after the production lock: all but the fee only if their unit went to someone
      on the waitlist within 24 hours, else nothing."""
    if paid <= 0:
        return Decimal(0)
    if why in ("not_allocated", "declined"):
        return paid
    kept = Decimal(str(agreed.get("cancellation_fee") or "0"))
    lock = agreed.get("production_lock")
    after_lock = why == "cancelled" and lock and now >= datetime.fromisoformat(lock)
    if after_lock and not reallocated_within_a_day:
        return Decimal(0)
    return max(paid - kept, Decimal(0))


def balance_deadline(allocated_at: datetime, agreed: Mapping[str, Any]) -> datetime:
    return allocated_at + timedelta(hours=float(agreed["balance_due_hours"]))


def in_words(agreed: Mapping[str, Any]) -> list[str]:
    """The accepted terms as the customer reads them (the status page, the sign-up form)."""
    currency = str(agreed["currency"])
    price, deposit = Decimal(agreed["price"]), Decimal(agreed["deposit"])
    balance, kept = Decimal(agreed["balance"]), Decimal(agreed["cancellation_fee"])
    words = [f"Price: {text(price, currency)}."]
    if agreed["mode"] == "deposit":
        words.append(
            f"Today you pay a deposit of {text(deposit, currency)}; the balance of "
            f"{text(balance, currency)} is due within {agreed['balance_due_hours']:g} hours of a "
            "unit being allocated to you."
        )
        words.append("Until a unit is allocated to you, your deposit is refundable in full.")
    elif agreed["mode"] == "full":
        words.append(f"You pay {text(price, currency)} today.")
    else:
        words.append(
            f"You pay {text(price, currency)} within {agreed['balance_due_hours']:g} hours of a "
            "unit being allocated to you; nothing before."
        )
    if agreed.get("refund_unallocated_after"):
        words.append(
            f"If no unit is allocated to you by {agreed['refund_unallocated_after']}, everything "
            "you paid is refunded automatically."
        )
    if agreed["mode"] != "none":
        words.append(
            "If you miss the payment deadline, the unit goes to the next person and you get back "
            + (f"all but {text(kept, currency)}." if kept else "everything you paid.")
        )
        words.append(
            "If you cancel after paying, you get back "
            + (f"all but {text(kept, currency)}" if kept else "everything")
            + (
                f"; after {agreed['production_lock']} only if your unit goes to someone on the "
                "waitlist within 24 hours."
                if agreed.get("production_lock")
                else "."
            )
        )
    return words


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None
