"""Campaign waitlists (`campaign_entry`, `campaign_state`): the only writer; what offers read.

A campaign sets units of its SKUs aside: every channel's offer leaves them out until they are
confirmed (then they are an order's reservation) or the campaign closes. Entries move
`waiting` -> (`review`) -> `allocated` -> `confirmed` | `expired` | `declined`, and at close the
rest -> `not_allocated`; each change is an audit entry with its reason (stock.audit).
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from stock import campaign_money
from stock import models as m
from stock.tx import LedgerInputError, LedgerTx

LIVE = ("waiting", "review", "allocated", "confirmed")  # entries that count against limits
# payment states with a request on a shop (or about to be) that the customer could still pay
# a payment the shop could still take: a request made or being made, or a Shopify pre-order
# (`pre_order`: its balance is still open on the shop until it is allocated and charged)
PAYABLE = frozenset({"requested", "open", "reminding", "pre_order"})
# payment states with a shop call due (stock.campaigns claims them for sync.campaign_payments)
CALL_DUE = ("requested", "reminding", "withdrawing")


@dataclass(frozen=True)
class EntryRow:
    id: int
    campaign: str
    sku: str
    sku_id: int
    qty: int
    email: str
    phone: str | None
    country: str | None
    address: str | None
    tier: str | None
    keys: dict[str, str]
    status: str
    token: str
    signed_up_at: datetime
    review_reason: str | None
    wave: int | None
    allocated_at: datetime | None
    expires_at: datetime | None
    channel: str | None
    order_ref: str | None
    pay_state: str | None = None
    pay_channel: str | None = None
    pay_ref: str | None = None
    pay_url: str | None = None
    pay_error: str | None = None
    reminded_at: datetime | None = None
    terms: dict[str, Any] | None = None  # the payment terms accepted (issue #16)
    terms_offer: dict[str, Any] | None = None  # changed terms waiting for the customer's choice

    def as_dict(self, *, token: bool = False) -> dict[str, object]:
        data: dict[str, object] = {
            "id": self.id, "campaign": self.campaign, "sku": self.sku, "qty": self.qty,
            "email": self.email, "phone": self.phone, "country": self.country,
            "tier": self.tier, "status": self.status,
            "signed_up_at": self.signed_up_at.isoformat(),
            "review_reason": self.review_reason, "wave": self.wave,
            "allocated_at": self.allocated_at.isoformat() if self.allocated_at else None,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "channel": self.channel, "order": self.order_ref,
            "payment": self.pay_state, "pay_channel": self.pay_channel, "pay_url": self.pay_url,
            "pay_error": self.pay_error,
            "reminded_at": self.reminded_at.isoformat() if self.reminded_at else None,
            "terms": self.terms, "terms_offer": self.terms_offer,
        }  # fmt: skip
        if token:
            data["token"] = self.token
        return data


def _row(entry: m.CampaignEntry, code: str) -> EntryRow:
    return EntryRow(
        entry.id, entry.campaign, code, entry.sku_id, entry.qty, entry.email, entry.phone,
        entry.country, entry.address, entry.tier, dict(entry.keys or {}), entry.status,
        entry.token, entry.signed_up_at, entry.review_reason, entry.wave, entry.allocated_at,
        entry.expires_at, entry.channel, entry.order_ref, entry.pay_state, entry.pay_channel,
        entry.pay_ref, entry.pay_url, entry.pay_error, entry.reminded_at,
        dict(entry.terms) if entry.terms else None,
        dict(entry.terms_offer) if entry.terms_offer else None,
    )  # fmt: skip


def entries(
    session: Session,
    campaign: str,
    statuses: Collection[str] | None = None,
    *,
    entry_ids: Collection[int] | None = None,
) -> list[EntryRow]:
    """The campaign's entries in sign-up order (optionally of some states or ids)."""
    query = (
        select(m.CampaignEntry, m.Sku.code)
        .join(m.Sku, m.Sku.id == m.CampaignEntry.sku_id)
        .where(m.CampaignEntry.campaign == campaign)
        .order_by(m.CampaignEntry.signed_up_at, m.CampaignEntry.id)
    )
    if statuses is not None:
        query = query.where(m.CampaignEntry.status.in_(sorted(statuses)))
    if entry_ids is not None:
        query = query.where(m.CampaignEntry.id.in_(sorted(entry_ids)))
    return [_row(entry, str(code)) for entry, code in session.execute(query).all()]


def entry(session: Session, entry_id: int) -> EntryRow:
    found = session.execute(
        select(m.CampaignEntry, m.Sku.code)
        .join(m.Sku, m.Sku.id == m.CampaignEntry.sku_id)
        .where(m.CampaignEntry.id == entry_id)
    ).one_or_none()
    if found is None:
        raise LedgerInputError(f"entry {entry_id}", "no such campaign entry")
    return _row(found[0], str(found[1]))


def by_token(session: Session, campaign: str, token: str) -> EntryRow | None:
    found = session.execute(
        select(m.CampaignEntry, m.Sku.code)
        .join(m.Sku, m.Sku.id == m.CampaignEntry.sku_id)
        .where(m.CampaignEntry.campaign == campaign, m.CampaignEntry.token == token)
    ).one_or_none()
    return None if found is None else _row(found[0], str(found[1]))


@dataclass(frozen=True)
class NewEntry:
    sku_id: int
    qty: int
    email: str
    phone: str | None
    country: str | None
    address: str | None
    tier: str | None
    keys: dict[str, str]
    review_reason: str | None  # set: the entry goes to review, not the queue
    channel: str | None = None  # where they will pay, when they said
    terms: dict[str, Any] | None = None  # the payment terms they accepted


def add(tx: LedgerTx, campaign: str, code: str, new: NewEntry) -> EntryRow:
    status = "review" if new.review_reason else "waiting"
    row = m.CampaignEntry(
        campaign=campaign, sku_id=new.sku_id, qty=new.qty, email=new.email, phone=new.phone,
        country=new.country, address=new.address, tier=new.tier, keys=new.keys, status=status,
        token=secrets.token_urlsafe(24), signed_up_at=tx.now, review_reason=new.review_reason,
        updated_at=tx.now, channel=new.channel, terms=new.terms,
    )  # fmt: skip
    tx.session.add(row)
    tx.session.flush()
    for kind, value in sorted(new.keys.items()):
        tx.session.add(
            m.CampaignIdentity(campaign=campaign, kind=kind, value=value[:400], entry_id=row.id)
        )
    tx.audit(
        f"campaign.{status}",
        campaign,
        {"entry": row.id, "sku": code, "qty": new.qty, "why": new.review_reason or "signed up"},
    )
    return _row(row, code)


def change(
    tx: LedgerTx,
    item: EntryRow,
    status: str,
    why: str,
    *,
    expected: Collection[str],
    refund: Literal["terms", "full", "none"] = "terms",
    **values: object,
) -> None:
    """Move one entry to `status` (only from one of `expected`: else another change came
    first and this one is refused), with its audit entry. An entry that ends gets back what
    its customer paid: as its accepted terms say, in `full` (the terms changed under them), or
    `none` (the shop refunded it already)."""
    if item.status not in expected:
        raise LedgerInputError(
            f"entry {item.id}", f"is {item.status}, not {' or '.join(sorted(expected))}"
        )
    if status not in ("allocated", "confirmed") and item.pay_state in PAYABLE:
        # the allocation ended unpaid: take its payment request back from the shop
        values = {**values, "pay_state": "withdrawing"}
        start_withdrawal(tx, item.id)
    done = tx.session.execute(
        update(m.CampaignEntry)
        .where(m.CampaignEntry.id == item.id, m.CampaignEntry.status.in_(sorted(expected)))
        .values(status=status, updated_at=tx.now, **values)
        .execution_options(synchronize_session=False)
    )
    if int(done.rowcount) != 1:  # type: ignore[attr-defined]
        raise LedgerInputError(f"entry {item.id}", "changed meanwhile; try again")
    detail: dict[str, object] = {"entry": item.id, "sku": item.sku, "qty": item.qty, "why": why}
    detail.update({k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in values.items()})
    tx.audit(f"campaign.{status}", item.campaign, detail)
    if item.terms and refund != "none":
        # the entry ended: what its customer paid comes back as the terms they accepted say
        campaign_money.plan_refund(tx, item, "declined" if refund == "full" else status, why)
    elif item.terms:
        campaign_money.withdraw_planned_all(tx, item.id, why)


def allocate(
    tx: LedgerTx,
    item: EntryRow,
    wave: int,
    window_hours: float,
    why: str,
    tier_reserve: str | None = None,
    *,
    channel: str | None = None,
    on_shop: bool = False,
) -> None:
    """`channel`: where the customer pays; `on_shop`: a shop that takes the payment itself
    (a payment request is made there after commit), not a manual channel."""
    change(
        tx, item, "allocated", why, expected=("waiting", "review"), wave=wave,
        allocated_at=tx.now, expires_at=tx.now + timedelta(hours=window_hours),
        tier_reserve=tier_reserve, channel=channel,
        pay_state="requested" if on_shop else None, pay_channel=channel if on_shop else None,
        pay_ref=None, pay_url=None,
        pay_error=None, pay_claimed_at=None, reminded_at=None,
    )  # fmt: skip
    if on_shop:
        tx.effects.payments.add(item.id)


def hold_pre_order(tx: LedgerTx, entry_id: int, channel: str, ref: str) -> None:
    """A waiting entry signed up by a pre-order on a shop: if it ends without a unit, its order
    is taken back on the shop (cancelled) as an unpaid payment request is."""
    tx.session.execute(
        update(m.CampaignEntry)
        .where(m.CampaignEntry.id == entry_id, m.CampaignEntry.pay_state.is_(None))
        .values(pay_state="pre_order", pay_channel=channel, pay_ref=ref, updated_at=tx.now)
        .execution_options(synchronize_session=False)
    )


def start_withdrawal(tx: LedgerTx, entry_id: int) -> None:
    """A payment request to take back from its shop (the job is asked for after commit)."""
    tx.effects.payments.add(entry_id)


def offer_terms(tx: LedgerTx, item: EntryRow, offer: dict[str, Any] | None, why: str) -> None:
    """Offer the entry changed terms (None: the campaign's are its own again)."""
    tx.session.execute(
        update(m.CampaignEntry)
        .where(m.CampaignEntry.id == item.id)
        .values(terms_offer=offer, updated_at=tx.now)
        .execution_options(synchronize_session=False)
    )
    action = "campaign.terms_offered" if offer else "campaign.terms_offer_withdrawn"
    detail: dict[str, object] = {"entry": item.id, "why": why}
    if offer:
        detail["offer"] = offer
    tx.audit(action, item.campaign, detail)


def accept_offer(tx: LedgerTx, item: EntryRow) -> None:
    """The customer accepted the changed terms: they are the entry's terms from now."""
    if not item.terms_offer:
        raise LedgerInputError(f"entry {item.id}", "has no changed terms to accept")
    accepted = {**item.terms_offer, "accepted_at": tx.now.isoformat()}
    tx.session.execute(
        update(m.CampaignEntry)
        .where(m.CampaignEntry.id == item.id)
        .values(terms=accepted, terms_offer=None, updated_at=tx.now)
        .execution_options(synchronize_session=False)
    )
    tx.audit("campaign.terms_accepted", item.campaign, {"entry": item.id, "terms": accepted})


def claim_payment(tx: LedgerTx, entry_id: int, lease: timedelta) -> EntryRow | None:
    """The entry, if a shop call is due for it and no other job is making it (a claim older
    than `lease` was a job that died): claimed now. None when there is nothing to do."""
    row = tx.session.get(m.CampaignEntry, entry_id, with_for_update=True)
    if row is None or row.pay_state not in CALL_DUE:
        return None
    if row.pay_claimed_at is not None and row.pay_claimed_at > tx.now - lease:
        return None
    row.pay_claimed_at = tx.now
    code = tx.session.scalar(select(m.Sku.code).where(m.Sku.id == row.sku_id))
    return _row(row, str(code))


def record_payment(
    tx: LedgerTx, entry_id: int, pay_state: str, why: str, **values: object
) -> EntryRow:
    """What a shop call did: the payment's new state (claim released), with its audit entry.
    A request made for an allocation that ended meanwhile is taken back at once."""
    row = tx.session.get(m.CampaignEntry, entry_id, with_for_update=True)
    if row is None:
        raise LedgerInputError(f"entry {entry_id}", "no such campaign entry")
    if pay_state == "open" and row.status != "allocated":
        pay_state = "withdrawing"  # expired or cancelled while the shop made the request
        start_withdrawal(tx, entry_id)
    row.pay_state = pay_state
    row.pay_claimed_at = None
    row.updated_at = tx.now
    for key, value in values.items():
        setattr(row, key, value)
    detail: dict[str, object] = {"entry": row.id, "payment": pay_state, "why": why}
    detail.update({k: v for k, v in values.items() if isinstance(v, str | int)})
    tx.audit("campaign.payment", row.campaign, detail)
    code = tx.session.scalar(select(m.Sku.code).where(m.Sku.id == row.sku_id))
    return _row(row, str(code))


def release_payment_claim(tx: LedgerTx, entry_id: int) -> None:
    """A call that failed for now: unclaimed, so its retry (or the next tick) makes it."""
    tx.session.execute(
        update(m.CampaignEntry)
        .where(m.CampaignEntry.id == entry_id)
        .values(pay_claimed_at=None)
        .execution_options(synchronize_session=False)
    )


def payment_calls_due(session: Session, campaign: str, stale_before: datetime) -> list[int]:
    """Entries whose shop call is due and not being made (the tick's sweep: a lost message or
    a job that died)."""
    return [
        int(entry_id)
        for entry_id in session.scalars(
            select(m.CampaignEntry.id).where(
                m.CampaignEntry.pay_state.in_(CALL_DUE),
                m.CampaignEntry.campaign == campaign,
                (m.CampaignEntry.pay_claimed_at.is_(None))
                | (m.CampaignEntry.pay_claimed_at < stale_before),
            )
        )
    ]


def remind(tx: LedgerTx, item: EntryRow, on_shop: bool) -> None:
    """The reminder before the deadline: once per allocation; on a shop the link is sent again."""
    values: dict[str, object] = {"reminded_at": tx.now}
    if on_shop and item.pay_state == "open":
        values["pay_state"] = "reminding"
        tx.effects.payments.add(item.id)
    tx.session.execute(
        update(m.CampaignEntry)
        .where(m.CampaignEntry.id == item.id)
        .values(updated_at=tx.now, **values)
        .execution_options(synchronize_session=False)
    )
    tx.audit(
        "campaign.reminder", item.campaign,
        {"entry": item.id, "sku": item.sku, "deadline": (item.expires_at or tx.now).isoformat(),
         "on_shop": on_shop},
    )  # fmt: skip


def tier_reserve_taken(session: Session, campaign: str) -> dict[str, int]:
    """Units each tier's reserve has given (allocated or confirmed entries that took them)."""
    rows = session.execute(
        select(m.CampaignEntry.tier_reserve, func.sum(m.CampaignEntry.qty))
        .where(
            m.CampaignEntry.campaign == campaign,
            m.CampaignEntry.tier_reserve.is_not(None),
            m.CampaignEntry.status.in_(("allocated", "confirmed")),
        )
        .group_by(m.CampaignEntry.tier_reserve)
    ).all()
    return {str(tier): int(units or 0) for tier, units in rows}


def any_in(session: Session, campaign: str, status: str) -> bool:
    """Whether some entry of the campaign is in `status` (one indexed probe)."""
    return (
        session.scalar(
            select(m.CampaignEntry.id)
            .where(m.CampaignEntry.campaign == campaign, m.CampaignEntry.status == status)
            .limit(1)
        )
        is not None
    )


def state(session: Session, campaign: str) -> m.CampaignState | None:
    return session.get(m.CampaignState, campaign)


def lock_state(tx: LedgerTx, campaign: str) -> m.CampaignState:
    """The campaign's state row, created when missing, locked: one wave or tick at a time."""
    found = tx.session.get(m.CampaignState, campaign, with_for_update=True)
    if found is None:
        found = m.CampaignState(campaign=campaign, waves=0)
        tx.session.add(found)
        tx.session.flush()
    return found


def record_wave(tx: LedgerTx, row: m.CampaignState, seed: int | None) -> int:
    row.waves += 1
    row.last_wave_at = tx.now
    if seed is not None and row.seed is None:
        row.seed = seed
    return row.waves


def close(tx: LedgerTx, row: m.CampaignState) -> None:
    row.closed_at = tx.now
    tx.audit("campaign.closed", row.campaign, {"waves": row.waves})


def held_units(session: Session, campaign: str) -> dict[int, int]:
    """Units of each SKU the campaign's entries hold: allocated or confirmed."""
    rows = session.execute(
        select(m.CampaignEntry.sku_id, func.sum(m.CampaignEntry.qty))
        .where(
            m.CampaignEntry.campaign == campaign,
            m.CampaignEntry.status.in_(("allocated", "confirmed")),
        )
        .group_by(m.CampaignEntry.sku_id)
    ).all()
    return {int(sku_id): int(units or 0) for sku_id, units in rows}


def confirmed_units(
    session: Session, sku_ids: Iterable[int] | None
) -> dict[int, tuple[tuple[str, int], ...]]:
    """Per SKU, (campaign, units confirmed): those are orders now, no longer set aside."""
    query = (
        select(m.CampaignEntry.sku_id, m.CampaignEntry.campaign, func.sum(m.CampaignEntry.qty))
        .where(m.CampaignEntry.status == "confirmed")
        .group_by(m.CampaignEntry.sku_id, m.CampaignEntry.campaign)
    )
    if sku_ids is not None:
        query = query.where(m.CampaignEntry.sku_id.in_(sorted(set(sku_ids))))
    found: dict[int, list[tuple[str, int]]] = defaultdict(list)
    for sku_id, campaign, units in session.execute(query).all():
        found[int(sku_id)].append((str(campaign), int(units or 0)))
    return {sku_id: tuple(sorted(items)) for sku_id, items in found.items()}


def closed_campaigns(session: Session) -> frozenset[str]:
    return frozenset(
        str(name)
        for name in session.scalars(
            select(m.CampaignState.campaign).where(m.CampaignState.closed_at.is_not(None))
        )
    )


def counts_by_status(session: Session, campaign: str) -> dict[str, dict[str, int]]:
    """{sku: {status: entries}} of the campaign."""
    rows = session.execute(
        select(m.Sku.code, m.CampaignEntry.status, func.count())
        .join(m.Sku, m.Sku.id == m.CampaignEntry.sku_id)
        .where(m.CampaignEntry.campaign == campaign)
        .group_by(m.Sku.code, m.CampaignEntry.status)
    ).all()
    found: dict[str, dict[str, int]] = defaultdict(dict)
    for code, status, count in rows:
        found[str(code)][str(status)] = int(count)
    return dict(found)


def sharing_entries(session: Session, campaign: str, keys: dict[str, str]) -> list[EntryRow]:
    """Live entries (waiting, review, allocated, confirmed) sharing any of these identity keys:
    through the indexed keys, not by reading the whole waitlist."""
    if not keys:
        return []
    ids: set[int] = set()
    for kind, value in sorted(keys.items()):  # one indexed lookup per key (an OR scans)
        ids.update(
            session.scalars(
                select(m.CampaignIdentity.entry_id).where(
                    m.CampaignIdentity.campaign == campaign,
                    m.CampaignIdentity.kind == kind,
                    m.CampaignIdentity.value == value[:400],
                )
            )
        )
    if not ids:
        return []
    # by primary key alone: with the campaign and states in the query too, planners walk the
    # campaign's index over the whole waitlist
    rows = session.execute(
        select(m.CampaignEntry, m.Sku.code)
        .join(m.Sku, m.Sku.id == m.CampaignEntry.sku_id)
        .where(m.CampaignEntry.id.in_(sorted(ids)))
    ).all()
    found = [_row(entry, str(code)) for entry, code in rows if entry.status in LIVE]
    return sorted(found, key=lambda e: (e.signed_up_at, e.id))


def allocated_units(session: Session, sku_ids: Collection[int]) -> dict[int, int]:
    """Units of these SKUs allocated and not paid yet, in every campaign (all claim stock)."""
    rows = session.execute(
        select(m.CampaignEntry.sku_id, func.sum(m.CampaignEntry.qty))
        .where(m.CampaignEntry.status == "allocated", m.CampaignEntry.sku_id.in_(sorted(sku_ids)))
        .group_by(m.CampaignEntry.sku_id)
    ).all()
    return {int(sku_id): int(units or 0) for sku_id, units in rows}
