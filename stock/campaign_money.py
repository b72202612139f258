"""Campaign money (`campaign_money`, issue #16): the only writer. Deposits and balances paid,
refunds owed, each once (a unique key), each an audit entry with its amount and currency.

What is owed back when an entry ends is stock.payment_terms' arithmetic over the terms the
customer accepted (`campaign_entry.terms`); this module records it. Refunds on a shop are made
by sync.jobs.campaign_money (after commit); on a manual channel they are the merchant's, by hand.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from rules.money import from_minor, minor_units, text
from stock import models as m
from stock import payment_terms
from stock.tx import LedgerTx

# why an entry ended -> the refund rule (stock.payment_terms.refund_due)
END_REASONS: dict[str, payment_terms.EndReason] = {
    "declined": "declined",
    "not_allocated": "not_allocated",
    "expired": "missed_balance",
    "cancelled": "cancelled",
}
REALLOCATION_WINDOW = timedelta(hours=24)  # after the production lock (payment_terms)


@dataclass(frozen=True)
class MoneyRow:
    id: int
    entry_id: int
    campaign: str
    kind: str
    amount: Decimal
    currency: str
    channel: str | None
    order_ref: str | None
    key: str
    state: str
    reason: str
    shop_ref: str | None
    error: str | None
    due_at: datetime | None
    created_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "entry": self.entry_id, "kind": self.kind, "amount": str(self.amount),
            "currency": self.currency, "channel": self.channel, "order": self.order_ref,
            "state": self.state, "reason": self.reason, "shop_ref": self.shop_ref,
            "error": self.error, "due_at": self.due_at.isoformat() if self.due_at else None,
            "at": self.created_at.isoformat(),
        }  # fmt: skip


def _row(row: m.CampaignMoney) -> MoneyRow:
    return MoneyRow(
        row.id, row.entry_id, row.campaign, row.kind, from_minor(row.amount_minor, row.currency),
        row.currency, row.channel, row.order_ref, row.key, row.state, row.reason, row.shop_ref,
        row.error, row.due_at, row.created_at,
    )  # fmt: skip


def by_key(session: Session, key: str) -> MoneyRow | None:
    found = session.scalar(select(m.CampaignMoney).where(m.CampaignMoney.key == key))
    return None if found is None else _row(found)


def of_entries(session: Session, entry_ids: Collection[int]) -> dict[int, list[MoneyRow]]:
    found: dict[int, list[MoneyRow]] = defaultdict(list)
    for start in range(0, len(entry_ids), 2000):
        chunk = sorted(entry_ids)[start : start + 2000]
        for row in session.scalars(
            select(m.CampaignMoney)
            .where(m.CampaignMoney.entry_id.in_(chunk))
            .order_by(m.CampaignMoney.id)
        ):
            found[row.entry_id].append(_row(row))
    return dict(found)


def of_campaign(session: Session, campaign: str) -> list[MoneyRow]:
    return [
        _row(row)
        for row in session.scalars(
            select(m.CampaignMoney)
            .where(m.CampaignMoney.campaign == campaign)
            .order_by(m.CampaignMoney.id)
        )
    ]


def record_paid(
    tx: LedgerTx,
    entry_id: int,
    campaign: str,
    kind: str,
    amount: Decimal,
    currency: str,
    *,
    channel: str | None,
    order_ref: str | None,
    key: str,
) -> MoneyRow:
    """A deposit or balance the customer paid (on `channel`, order `order_ref`)."""
    row = m.CampaignMoney(
        entry_id=entry_id, campaign=campaign, kind=kind,
        amount_minor=minor_units(amount, currency), currency=currency, channel=channel,
        order_ref=order_ref, key=key, state="paid", attempts=0,
        reason=f"{kind} paid" if amount else "nothing paid: the card was saved at checkout",
        created_at=tx.now, updated_at=tx.now,
    )  # fmt: skip
    tx.session.add(row)
    tx.session.flush()
    tx.audit(f"campaign.{kind}_paid", campaign, {
        "entry": entry_id, "amount": text(amount, currency), "channel": channel,
        "order": order_ref, "key": key,
    })  # fmt: skip
    return _row(row)


def paid(rows: Iterable[MoneyRow]) -> Decimal:
    """What the customer paid and has not been given back (refunds planned count as given)."""
    total = Decimal(0)
    for row in rows:
        if row.kind in ("deposit", "balance") and row.state == "paid":
            total += row.amount
        elif row.kind == "refund" and row.state in ("planned", "refunded", "by_hand"):
            total -= row.amount
    return total


def plan_refund(tx: LedgerTx, entry: Any, status: str, why: str) -> MoneyRow | None:
    """The entry (a stock.campaigns.EntryRow) ends as `status`: what its customer paid comes
    back as its accepted terms say (all, all but the fee, or nothing after the production lock
    unless the unit is re-allocated within a day). One refund per entry and reason, planned on
    the channel it was paid on (the refund job makes it there, or marks it `by_hand` on a
    manual channel). None when nothing was paid or nothing is owed."""
    reason = END_REASONS.get(status)
    if status == "cancelled" and entry.status in ("waiting", "review"):
        reason = "not_allocated"  # refundable in full until a unit is allocated
    agreed = entry.terms
    if reason is None or not agreed:
        return None
    rows = of_entries(tx.session, [entry.id]).get(entry.id, [])
    owed_now = paid(rows)
    if owed_now <= 0:
        return None
    currency = str(agreed["currency"])
    lock = agreed.get("production_lock")
    after_lock = reason == "cancelled" and lock and tx.now >= datetime.fromisoformat(lock)
    # after the lock the refund waits a day for the unit to be re-allocated (else it is waived)
    amount = payment_terms.refund_due(agreed, owed_now, reason, tx.now, bool(after_lock))
    waived = owed_now - amount
    if amount <= 0:  # the terms keep all of it (the fee is the whole deposit)
        tx.audit("campaign.refund_none", entry.campaign, {
            "entry": entry.id, "kept": text(waived, currency), "why": why,
        })  # fmt: skip
        return None
    paid_on = next((r for r in rows if r.kind == "deposit"), None) or next(
        (r for r in rows if r.kind == "balance"), None
    )
    return refund_of(
        tx, entry.id, entry.campaign, amount, currency,
        paid_on=(paid_on.channel, paid_on.order_ref) if paid_on else None,
        key=f"refund-{entry.id}-{status}", why=why, kept=waived,
        due_at=tx.now + REALLOCATION_WINDOW if after_lock else None,
    )  # fmt: skip


def refund_of(
    tx: LedgerTx,
    entry_id: int,
    campaign: str,
    amount: Decimal,
    currency: str,
    *,
    paid_on: tuple[str | None, str | None] | None,
    key: str,
    why: str,
    kept: Decimal = Decimal(0),
    due_at: datetime | None = None,
) -> MoneyRow | None:
    """One refund of `amount`, planned under `key` on the channel and order it was paid on (the
    refund job makes it there), or `by_hand` where there is no channel. None: planned before."""
    if by_key(tx.session, key) is not None:
        return None  # planned already: never twice
    channel, order_ref = paid_on or (None, None)
    state = "by_hand" if channel is None else "planned"
    row = m.CampaignMoney(
        entry_id=entry_id, campaign=campaign, kind="refund",
        amount_minor=minor_units(amount, currency), currency=currency, channel=channel,
        order_ref=order_ref, key=key, state=state, reason=why, attempts=0,
        created_at=tx.now, updated_at=tx.now, due_at=due_at,
    )  # fmt: skip
    tx.session.add(row)
    tx.session.flush()
    tx.audit("campaign.refund_planned", campaign, {
        "entry": entry_id, "amount": text(amount, currency), "kept": text(kept, currency),
        "channel": channel, "state": state, "why": why,
        **({"only_if_reallocated_by": row.due_at.isoformat()} if row.due_at else {}),
    })  # fmt: skip
    if state == "planned":
        tx.effects.refunds.add(row.id)
    return _row(row)


def settle_after_lock(tx: LedgerTx, campaign: str) -> list[int]:
    """Refunds of units cancelled after the production lock wait a day: released once someone
    on the waitlist was allocated a unit of that SKU after the cancellation, waived (the terms
    keep the money) when the day passes without. Returns the refunds released."""
    released: list[int] = []
    rows = tx.session.execute(
        select(m.CampaignMoney, m.CampaignEntry.sku_id)
        .join(m.CampaignEntry, m.CampaignEntry.id == m.CampaignMoney.entry_id)
        .where(
            m.CampaignMoney.campaign == campaign,
            m.CampaignMoney.kind == "refund",
            m.CampaignMoney.due_at.is_not(None),
            m.CampaignMoney.state.in_(("planned", "by_hand")),
        )
    ).all()
    for row, sku_id in rows:
        taken = tx.session.scalar(
            select(m.CampaignEntry.id)
            .where(
                m.CampaignEntry.campaign == campaign,
                m.CampaignEntry.sku_id == sku_id,
                m.CampaignEntry.id != row.entry_id,
                m.CampaignEntry.allocated_at > row.created_at,
                m.CampaignEntry.allocated_at <= row.due_at,
            )
            .limit(1)
        )
        if taken is not None:
            row.due_at = None
            row.updated_at = tx.now
            if row.state == "planned":
                tx.effects.refunds.add(row.id)
                released.append(row.id)
            why = f"the cancelled unit went to entry {taken} within 24 hours"
            tx.audit("campaign.refund_released", campaign, {"money": row.id, "why": why})
        elif row.due_at is not None and row.due_at <= tx.now:
            row.state = "waived"
            row.updated_at = tx.now
            why = "cancelled after the production lock; the unit was not re-allocated in 24 hours"
            tx.audit("campaign.refund_waived", campaign, {"money": row.id, "why": why})
    return released


def withdraw_planned(tx: LedgerTx, entry_id: int, status: str, why: str) -> None:
    """A refund planned when the entry ended as `status`, not made yet, that is no longer owed
    (the customer paid after all): waived, so it is never made."""
    row = tx.session.scalar(
        select(m.CampaignMoney).where(m.CampaignMoney.key == f"refund-{entry_id}-{status}")
    )
    if row is None or row.state != "planned" or row.claimed_at is not None:
        return
    row.state = "waived"
    row.updated_at = tx.now
    tx.audit("campaign.refund_waived", row.campaign, {"money": row.id, "why": why})


def withdraw_planned_all(tx: LedgerTx, entry_id: int, why: str) -> None:
    """Every refund of the entry not made yet is waived (the shop gave the money back)."""
    for row in tx.session.scalars(
        select(m.CampaignMoney).where(
            m.CampaignMoney.entry_id == entry_id,
            m.CampaignMoney.kind == "refund",
            m.CampaignMoney.state == "planned",
            m.CampaignMoney.claimed_at.is_(None),
        )
    ):
        row.state = "waived"
        row.updated_at = tx.now
        tx.audit("campaign.refund_waived", row.campaign, {"money": row.id, "why": why})


def refunds_due(session: Session, stale_before: datetime) -> list[int]:
    """Planned shop refunds whose time has come and that no job is making (the sweep)."""
    return [
        int(money_id)
        for money_id in session.scalars(
            select(m.CampaignMoney.id).where(
                m.CampaignMoney.kind == "refund",
                m.CampaignMoney.state == "planned",
                m.CampaignMoney.due_at.is_(None),
                (m.CampaignMoney.claimed_at.is_(None))
                | (m.CampaignMoney.claimed_at < stale_before),
            )
        )
    ]


def claim(tx: LedgerTx, money_id: int, lease: timedelta) -> MoneyRow | None:
    row = tx.session.get(m.CampaignMoney, money_id, with_for_update=True)
    if row is None or row.state != "planned" or row.due_at is not None:
        return None
    if row.claimed_at is not None and row.claimed_at > tx.now - lease:
        return None
    row.claimed_at = tx.now
    row.attempts += 1
    return _row(row)


def release_claim(tx: LedgerTx, money_id: int) -> None:
    tx.session.execute(
        update(m.CampaignMoney)
        .where(m.CampaignMoney.id == money_id)
        .values(claimed_at=None)
        .execution_options(synchronize_session=False)
    )


def record_outcome(
    tx: LedgerTx,
    money_id: int,
    state: str,
    why: str,
    *,
    shop_ref: str | None = None,
    error: str | None = None,
) -> MoneyRow:
    """What the shop did with a planned refund: `refunded` (its id) or `failed` (its message)."""
    row = tx.session.get(m.CampaignMoney, money_id, with_for_update=True)
    if row is None:
        raise LookupError(f"no campaign money row {money_id}")
    row.state = state
    row.claimed_at = None
    row.shop_ref = shop_ref or row.shop_ref
    row.error = error
    row.updated_at = tx.now
    amount = from_minor(row.amount_minor, row.currency)
    tx.audit(f"campaign.refund_{state}", row.campaign, {
        "money": row.id, "entry": row.entry_id, "amount": text(amount, row.currency),
        "channel": row.channel, "shop_ref": row.shop_ref, "why": why,
    })  # fmt: skip
    return _row(row)
