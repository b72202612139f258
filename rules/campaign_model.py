"""`campaigns:` in the YAML (issue #15): limited drops with a waitlist, waves, deadlines, limits.

Validated like the rest (FILE:LINE errors); `rules.build` turns each into a frozen `Campaign`.
Channel and tier names are checked across sections in rules.crosscheck.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from rules.errors import Rejected
from rules.money import PaymentTerms, quantize

Method = Literal["fcfs", "lottery", "tiers"]
IdentityKind = Literal["email", "phone", "address"]


def _positive_int(value: int) -> int:
    if isinstance(value, bool) or value < 1:
        raise Rejected.got("must be a whole number of at least 1", repr(value))
    return value


def _positive_hours(value: float) -> float:
    if isinstance(value, bool) or value <= 0:
        raise Rejected.got("must be a positive number of hours", repr(value))
    return value


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("needs a time zone, e.g. 2026-12-01T10:00:00+01:00")
    return value


def _money(value: Any) -> Decimal:
    """A sum as text, e.g. "30.00" (quoted in YAML: a float would round it)."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise Rejected.got('must be an amount as text, e.g. "30.00"', repr(value))
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise Rejected.got('must be an amount, e.g. "30.00"', repr(value)) from None
    if not amount.is_finite() or amount <= 0:
        raise Rejected.got("must be more than 0", repr(value))
    return amount


def _currency(value: str) -> str:
    if not re.fullmatch(r"[A-Z]{3}", value):
        raise Rejected.got("must be an ISO 4217 code such as EUR or USD", repr(value))
    return value


def _percent(value: float) -> Decimal:
    if isinstance(value, bool) or not 0 < value <= 100:
        raise Rejected.got("must be a percentage above 0 and at most 100", repr(value))
    return Decimal(str(value))


Units = Annotated[int, AfterValidator(_positive_int)]
Money = Annotated[Any, AfterValidator(_money)]
Currency = Annotated[str, AfterValidator(_currency)]
Percent = Annotated[float, AfterValidator(_percent)]
Hours = Annotated[float, AfterValidator(_positive_hours)]
AwareTime = Annotated[datetime, AfterValidator(_aware)]


class _Block(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SignupBlock(_Block):
    opens: AwareTime
    closes: AwareTime

    @model_validator(mode="after")
    def _in_order(self) -> Self:
        if self.closes <= self.opens:
            raise ValueError("closes must be after opens")
        return self


class LimitsBlock(_Block):
    per_customer: Units | None = None
    identity: Annotated[tuple[IdentityKind, ...], Field(min_length=1)] = ("email",)


class StockChangeBlock(_Block):
    up: Literal["next_in_line"] = "next_in_line"
    down: Literal["newest_unpaid_first"] = "newest_unpaid_first"


def _decimal_or_none(value: float | Decimal | None) -> Decimal | None:
    return None if value is None else Decimal(str(value))


class DepositBlock(_Block):
    percent: Percent | None = None
    amount: Money | None = None  # per unit
    currency: Currency | None = None

    @model_validator(mode="after")
    def _one(self) -> Self:
        if (self.percent is None) == (self.amount is None):
            raise ValueError("deposit needs percent or amount (one of them), e.g. {percent: 20}")
        if self.currency is not None and self.amount is None:
            raise ValueError("deposit currency goes with an amount")
        return self


class PaymentBlock(_Block):
    mode: Literal["deposit", "full", "none"] = "none"
    currency: Currency
    prices: Annotated[dict[str, Money], Field(min_length=1)]  # unit price per campaign SKU
    deposit: DepositBlock | None = None
    balance_due_hours: Hours | None = None  # after allocation; default: window_hours
    refund_unallocated_after: AwareTime | None = None
    cancellation_fee: Literal["deposit", "none"] | Money = "none"
    production_lock: AwareTime | None = None
    deposit_sku: str | None = None  # WooCommerce: orders of this product are sign-ups

    @model_validator(mode="after")
    def _coherent(self) -> Self:
        if self.mode == "deposit" and self.deposit is None:
            raise ValueError("mode deposit needs deposit: {percent: P} or {amount: A}")
        if self.mode != "deposit" and self.deposit is not None:
            raise ValueError(f"a deposit is taken only with mode: deposit, not {self.mode}")
        if self.deposit and self.deposit.currency and self.deposit.currency != self.currency:
            raise ValueError(
                f"deposit currency {self.deposit.currency} differs from the campaign's "
                f"{self.currency}"
            )
        if self.deposit_sku is not None and self.mode != "deposit":
            raise ValueError("deposit_sku needs mode: deposit")
        return self

    def terms(self) -> PaymentTerms:
        fee = self.cancellation_fee
        return PaymentTerms(
            mode=self.mode,
            currency=self.currency,
            prices=tuple(
                (sku, quantize(price, self.currency)) for sku, price in self.prices.items()
            ),
            deposit_percent=_decimal_or_none(self.deposit.percent if self.deposit else None),
            deposit_amount=self.deposit.amount if self.deposit else None,
            balance_due_hours=self.balance_due_hours,
            refund_unallocated_after=self.refund_unallocated_after,
            cancellation_fee=(
                quantize(fee, self.currency)
                if isinstance(fee, Decimal)
                else ("deposit" if fee == "deposit" else "none")
            ),
            production_lock=self.production_lock,
            deposit_sku=self.deposit_sku,
        )


class CampaignModel(_Block):
    skus: Annotated[dict[str, Units], Field(min_length=1)]
    channels: Annotated[tuple[str, ...], Field(min_length=1)]
    signup: SignupBlock
    method: Method = "fcfs"
    tiers: dict[str, Units] | None = None
    limits: LimitsBlock = Field(default_factory=LimitsBlock)
    window_hours: Hours = 24.0
    reminder_hours_before: Hours | None = None
    wave_every_hours: Hours = 2.0
    on_stock_change: StockChangeBlock = Field(default_factory=StockChangeBlock)
    payment: PaymentBlock | None = None

    @field_validator("skus")
    @classmethod
    def _sku_codes(cls, value: dict[str, int]) -> dict[str, int]:
        for code in value:
            if not code.strip():
                raise ValueError("a SKU must not be blank")
        return value

    @model_validator(mode="after")
    def _coherent(self) -> Self:
        if self.method == "tiers" and not self.tiers:
            raise ValueError("method tiers needs tiers: {TIER: UNITS} (units reserved per tier)")
        if self.tiers and self.method != "tiers":
            raise ValueError(f"tiers reserve units only with method: tiers, not {self.method}")
        if self.reminder_hours_before is not None and (
            self.reminder_hours_before >= self.window_hours
        ):
            raise ValueError("reminder_hours_before must be less than window_hours")
        if self.payment is not None:
            unpriced = sorted(set(self.skus) - set(self.payment.prices))
            if unpriced:
                raise ValueError(f"payment prices lack {', '.join(unpriced)}")
            extra = sorted(set(self.payment.prices) - set(self.skus))
            if extra:
                raise ValueError(
                    f"payment prices name SKUs not in the campaign: {', '.join(extra)}"
                )
            due = self.payment.balance_due_hours
            if (
                due is not None
                and self.reminder_hours_before is not None
                and (self.reminder_hours_before >= due)
            ):
                raise ValueError("reminder_hours_before must be less than balance_due_hours")
        return self


@dataclass(frozen=True)
class Campaign:
    """A validated campaign; `line` is where it is defined (for messages)."""

    name: str
    skus: tuple[tuple[str, int], ...]  # (SKU, units set aside), file order
    channels: tuple[str, ...]
    opens: datetime
    closes: datetime
    method: Method
    tiers: tuple[tuple[str, int], ...]
    per_customer: int | None
    identity: tuple[IdentityKind, ...]
    window_hours: float
    reminder_hours_before: float | None
    wave_every_hours: float
    line: int
    source: str  # FILE:LINE
    on_stock_change_up: str = "next_in_line"
    on_stock_change_down: str = "newest_unpaid_first"
    payment: PaymentTerms | None = None  # issue #16: what customers pay, when, what comes back

    @classmethod
    def of(cls, name: str, model: CampaignModel, line: int, filename: str) -> Campaign:
        return cls(
            name=name,
            skus=tuple(model.skus.items()),
            channels=model.channels,
            opens=model.signup.opens,
            closes=model.signup.closes,
            method=model.method,
            tiers=tuple((model.tiers or {}).items()),
            per_customer=model.limits.per_customer,
            identity=model.limits.identity,
            # with payment terms, the time to pay the balance is the allocation's window
            window_hours=(
                model.payment.balance_due_hours
                if model.payment and model.payment.balance_due_hours
                else model.window_hours
            ),
            reminder_hours_before=model.reminder_hours_before,
            wave_every_hours=model.wave_every_hours,
            line=line,
            source=f"{filename}:{line}",
            on_stock_change_up=model.on_stock_change.up,
            on_stock_change_down=model.on_stock_change.down,
            payment=model.payment.terms() if model.payment else None,
        )

    def units(self, sku: str) -> int:
        return dict(self.skus).get(sku, 0)

    def rules_in_words(self) -> list[str]:
        """The campaign's rules as a customer reads them (the status page)."""
        way = {
            "fcfs": "in the order people signed up",
            "lottery": "by a lottery drawn with a published seed (anyone can re-check it)",
            "tiers": "first to the reserved tiers ("
            + ", ".join(f"{tier}: {units} units" for tier, units in self.tiers)
            + "), then in the order people signed up",
        }[self.method]
        rules = [
            f"Sign-up is open from {self.opens.isoformat()} to {self.closes.isoformat()}.",
            f"Units are allocated {way}, in waves every {self.wave_every_hours:g} hours.",
            f"Once a unit is allocated to you, you have {self.window_hours:g} hours to pay; "
            "after that it goes to the next person in line.",
        ]
        if self.per_customer is not None:
            rules.append(
                f"At most {self.per_customer} per customer ("
                + ", ".join(self.identity)
                + " count as one customer); sign-ups over the limit are reviewed by hand."
            )
        return rules
