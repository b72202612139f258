"""Money as campaigns use it (issue #16): a currency's minor units, rounding, and a campaign's
payment terms as configured (`payment:`). Plain values; the arithmetic of what is owed is
stock.payment_terms."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

Mode = Literal["deposit", "full", "none"]

# ISO 4217 minor units where they are not 2 (the common ones; others default to 2)
_EXPONENTS = {"JPY": 0, "KRW": 0, "ISK": 0, "CLP": 0, "VND": 0, "HUF": 2,
              "BHD": 3, "KWD": 3, "OMR": 3, "JOD": 3, "TND": 3}  # fmt: skip


def exponent(currency: str) -> int:
    return _EXPONENTS.get(currency.upper(), 2)


def quantize(amount: Decimal, currency: str) -> Decimal:
    """Rounded to the currency's minor unit, half up (as shops round a percentage)."""
    return amount.quantize(Decimal(1).scaleb(-exponent(currency)), rounding=ROUND_HALF_UP)


def minor_units(amount: Decimal, currency: str) -> int:
    return int(quantize(amount, currency).scaleb(exponent(currency)))


def from_minor(units: int, currency: str) -> Decimal:
    return quantize(Decimal(units).scaleb(-exponent(currency)), currency)


def text(amount: Decimal, currency: str) -> str:
    return f"{quantize(amount, currency)} {currency}"


@dataclass(frozen=True)
class PaymentTerms:
    """`payment:` of a campaign, validated (rules.campaign_model)."""

    mode: Mode
    currency: str
    prices: tuple[tuple[str, Decimal], ...]  # (SKU, unit price)
    deposit_percent: Decimal | None = None
    deposit_amount: Decimal | None = None  # per unit, when not a percentage
    balance_due_hours: float | None = None  # after allocation; None: the campaign's window
    refund_unallocated_after: datetime | None = None
    cancellation_fee: Literal["deposit", "none"] | Decimal = "none"
    production_lock: datetime | None = None
    deposit_sku: str | None = None  # the shop's deposit product (WooCommerce sign-ups)

    def price(self, sku: str) -> Decimal:
        found = dict(self.prices).get(sku)
        if found is None:
            raise KeyError(f"no price for {sku}")
        return found
