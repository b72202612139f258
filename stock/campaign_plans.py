"""Campaign selling plans on Shopify channels (`campaign_shop_plan`, issue #16): the only
writer. Which plan a campaign sells through on each channel, and the digest of the plan as last
made on the shop, so the daemon makes it again only when the campaign's terms or SKUs changed.
A sync is claimed first (`claimed_at`, a lease), so two ticks never make two plans. Every plan
id the campaign ever sold through is kept (`known_plans`): a late order through a plan since
replaced or taken down is still known."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from stock import models as m
from stock.tx import LedgerTx


@dataclass(frozen=True)
class ShopPlan:
    campaign: str
    channel: str
    group_ref: str | None
    plan_ref: str | None
    digest: str | None
    error: str | None


def _plan(row: m.CampaignShopPlan) -> ShopPlan:
    return ShopPlan(row.campaign, row.channel, row.group_ref, row.plan_ref, row.digest, row.error)


def current(session: Session, campaign: str, channel: str) -> ShopPlan | None:
    row = session.scalar(
        select(m.CampaignShopPlan).where(
            m.CampaignShopPlan.campaign == campaign, m.CampaignShopPlan.channel == channel
        )
    )
    return None if row is None else _plan(row)


def _locked(tx: LedgerTx, campaign: str, channel: str) -> m.CampaignShopPlan:
    row = tx.session.scalar(
        select(m.CampaignShopPlan)
        .where(m.CampaignShopPlan.campaign == campaign, m.CampaignShopPlan.channel == channel)
        .with_for_update()
    )
    if row is None:
        row = m.CampaignShopPlan(campaign=campaign, channel=channel, updated_at=tx.now)
        tx.session.add(row)
        tx.session.flush()
    return row


def claim(tx: LedgerTx, campaign: str, channel: str, lease: timedelta) -> bool:
    """Take the plan's sync (False: another is making it, since less than `lease` ago)."""
    row = _locked(tx, campaign, channel)
    if row.claimed_at is not None and row.claimed_at > tx.now - lease:
        return False
    row.claimed_at = tx.now
    return True


def release(tx: LedgerTx, campaign: str, channel: str) -> None:
    """A sync that failed for now: unclaimed, so the next tick makes it."""
    _locked(tx, campaign, channel).claimed_at = None


def record(
    tx: LedgerTx,
    campaign: str,
    channel: str,
    *,
    digest: str | None,
    group_ref: str | None = None,
    plan_ref: str | None = None,
    error: str | None = None,
) -> None:
    """What the shop now has: the plan made (or taken down: `group_ref` None), or its refusal
    (`error`; the digest is left as it was, so the next tick tries again). Ends the claim."""
    row = _locked(tx, campaign, channel)
    row.updated_at = tx.now
    row.claimed_at = None
    if error is not None:
        row.error = error
        tx.audit("campaign.plan_refused", campaign, {"channel": channel, "error": error})
        return
    row.group_ref = group_ref
    row.plan_ref = plan_ref or row.plan_ref  # kept when taken down: late orders still known
    if plan_ref and plan_ref not in (row.known_plans or []):
        row.known_plans = [*(row.known_plans or []), plan_ref]  # a new list: JSON sees it
    row.digest = digest
    row.error = None
    row.synced_at = tx.now
    tx.audit(
        "campaign.plan_synced" if group_ref else "campaign.plan_removed",
        campaign,
        {"channel": channel, "group": group_ref, "plan": row.plan_ref},
    )


def of_campaign(session: Session, campaign: str) -> list[ShopPlan]:
    return [
        _plan(row)
        for row in session.scalars(
            select(m.CampaignShopPlan)
            .where(m.CampaignShopPlan.campaign == campaign)
            .order_by(m.CampaignShopPlan.channel)
        )
    ]


def by_plan(session: Session, channels: Collection[str]) -> dict[str, dict[str, str]]:
    """Per channel, plan id -> campaign, for every plan a campaign ever sold through there:
    what makes a checkout line a pre-order sign-up."""
    found: dict[str, dict[str, str]] = {}
    for channel, plan_ref, known, campaign in session.execute(
        select(
            m.CampaignShopPlan.channel,
            m.CampaignShopPlan.plan_ref,
            m.CampaignShopPlan.known_plans,
            m.CampaignShopPlan.campaign,
        ).where(m.CampaignShopPlan.channel.in_(sorted(channels)))
    ):
        for ref in {*(known or []), *([plan_ref] if plan_ref else [])}:
            found.setdefault(channel, {})[str(ref)] = campaign
    return found
