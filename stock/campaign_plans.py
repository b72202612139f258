"""Campaign selling plans on Shopify channels (`campaign_shop_plan`, issue #16): the only
writer. Which plan a campaign sells through on each channel, and the digest of the plan as last
made on the shop, so the daemon makes it again only when the campaign's terms or SKUs changed.
A plan's id stays after its group is taken down: a late order through it is still known."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

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


def current(session: Session, campaign: str, channel: str) -> ShopPlan | None:
    row = session.scalar(
        select(m.CampaignShopPlan).where(
            m.CampaignShopPlan.campaign == campaign, m.CampaignShopPlan.channel == channel
        )
    )
    if row is None:
        return None
    return ShopPlan(row.campaign, row.channel, row.group_ref, row.plan_ref, row.digest, row.error)


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
    (`error`; the digest is left as it was, so the next tick tries again)."""
    row = tx.session.scalar(
        select(m.CampaignShopPlan)
        .where(m.CampaignShopPlan.campaign == campaign, m.CampaignShopPlan.channel == channel)
        .with_for_update()
    )
    if row is None:
        row = m.CampaignShopPlan(campaign=campaign, channel=channel, updated_at=tx.now)
        tx.session.add(row)
    row.updated_at = tx.now
    if error is not None:
        row.error = error
        tx.audit("campaign.plan_refused", campaign, {"channel": channel, "error": error})
        return
    row.group_ref = group_ref
    row.plan_ref = plan_ref or row.plan_ref  # kept when taken down: late orders still known
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
        ShopPlan(row.campaign, row.channel, row.group_ref, row.plan_ref, row.digest, row.error)
        for row in session.scalars(
            select(m.CampaignShopPlan)
            .where(m.CampaignShopPlan.campaign == campaign)
            .order_by(m.CampaignShopPlan.channel)
        )
    ]


def by_plan(session: Session, channels: Collection[str]) -> dict[str, dict[str, str]]:
    """Per channel, plan id -> campaign: what makes a checkout line a pre-order sign-up."""
    found: dict[str, dict[str, str]] = {}
    for channel, plan_ref, campaign in session.execute(
        select(
            m.CampaignShopPlan.channel, m.CampaignShopPlan.plan_ref, m.CampaignShopPlan.campaign
        ).where(
            m.CampaignShopPlan.channel.in_(sorted(channels)),
            m.CampaignShopPlan.plan_ref.is_not(None),
        )
    ):
        found.setdefault(channel, {})[str(plan_ref)] = campaign
    return found
