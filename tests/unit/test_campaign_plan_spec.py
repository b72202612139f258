"""The Shopify selling plan a campaign wants (issue #16): made only while sign-up is open, its
deposit and balance date from the campaign's terms, and a different digest whenever the terms
or SKUs change (the tick makes the plan again only then)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from rules import parse_config
from sync.jobs.campaign_plans import plan_spec, spec_digest

OPENS = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
CONFIG = """\
database: sqlite:///x.db
channels:
  shop: {{kind: shopify, shop: s.myshopify.com, token: t, webhook_secret: s}}
campaigns:
  drop:
    skus: {{TEE-M: 2, TEE-L: 1}}
    channels: [shop]
    signup: {{opens: 2026-12-01T10:00:00+00:00, closes: 2026-12-04T10:00:00+00:00}}
    payment:
      mode: {mode}
      currency: USD
      prices: {{TEE-M: "60.00", TEE-L: "60.00"}}
{deposit}      balance_due_hours: 12
      refund_unallocated_after: 2026-12-06T10:00:00+00:00
      cancellation_fee: none
"""


def campaign(mode: str = "deposit", deposit: str = "      deposit: {percent: 20}\n") -> object:
    text = CONFIG.format(mode=mode, deposit=deposit if mode == "deposit" else "")
    return parse_config(text, "stocksync.yaml", env={}).campaign("drop")


def test_a_deposit_plan_takes_the_percentage_and_charges_the_rest_by_the_last_date() -> None:
    spec = plan_spec(campaign(), OPENS + timedelta(hours=1))  # type: ignore[arg-type]
    assert spec is not None
    assert (spec.code, spec.skus) == ("stocksync-drop", ("TEE-M", "TEE-L"))
    assert (spec.deposit_percent, spec.deposit_per_unit) == (Decimal(20), None)
    # the latest allocation (no unit by the refund date) plus the 12 hours to pay
    assert spec.balance_by == datetime(2026, 12, 6, 22, 0, tzinfo=UTC)
    assert "deposit of 20% of the price" in spec.description
    assert "refunded automatically" in spec.description


def test_an_amount_deposit_full_payment_and_authorisation_only() -> None:
    amount = plan_spec(
        campaign(deposit='      deposit: {amount: "15.00"}\n'),  # type: ignore[arg-type]
        OPENS,
    )
    assert amount is not None and (amount.deposit_percent, amount.deposit_per_unit) == (
        None,
        Decimal("15.00"),
    )
    full = plan_spec(campaign("full"), OPENS)  # type: ignore[arg-type]
    assert full is not None and (full.deposit_percent, full.balance_by) == (Decimal(100), None)
    card_only = plan_spec(campaign("none"), OPENS)  # type: ignore[arg-type]
    assert card_only is not None and card_only.deposit_percent == 0
    assert card_only.balance_by is not None and "nothing to pay today" in card_only.description


def test_no_plan_outside_the_sign_up_window() -> None:
    drop = campaign()
    assert plan_spec(drop, OPENS - timedelta(seconds=1)) is None  # type: ignore[arg-type]
    assert plan_spec(drop, datetime(2026, 12, 4, 10, 0, tzinfo=UTC)) is None  # type: ignore[arg-type]
    assert spec_digest(None) is None


def test_the_digest_changes_with_the_terms_not_with_the_time() -> None:
    first = spec_digest(plan_spec(campaign(), OPENS))  # type: ignore[arg-type]
    later = spec_digest(plan_spec(campaign(), OPENS + timedelta(hours=5)))  # type: ignore[arg-type]
    other = spec_digest(
        plan_spec(campaign(deposit="      deposit: {percent: 25}\n"), OPENS)  # type: ignore[arg-type]
    )
    assert first == later and first != other and first is not None
