"""Campaigns' due work, run by the daemon every `daemon.campaign_tick_interval_s` (a minute):
expiries, cancellations when stock went down, reminders, a wave every `wave_every_hours` (or at
once when stock went up) while units are free, the close (sync/campaign_service); shop calls
left undone, handed out again (sync/jobs/campaign_payments); Shopify selling plans kept in step
with the campaigns' terms (sync/jobs/campaign_plans)."""

from __future__ import annotations

from typing import Any

from stock.tx import LedgerInputError
from sync import campaign_service
from sync.jobs import campaign_plans
from sync.jobs.followups import Followups
from sync.logs import get_logger
from sync.runtime import Runtime

log = get_logger("stocksync.jobs.campaigns")


def tick_campaigns(runtime: Runtime) -> Followups:
    followups = Followups()
    for name in runtime.config.campaigns:
        try:
            with runtime.ctx.ledger(actor="campaigns") as tx:
                done = campaign_service.tick(tx, runtime.config, name)
        except LedgerInputError as exc:
            log.warning("campaign_tick_refused", campaign=name, error=str(exc))
            continue
        followups.merge(Followups.of(tx.effects, list(runtime.channels)))
        try:
            campaign_plans.sync_plans(runtime, runtime.config.campaigns[name])
        except Exception as exc:  # the plan is tried again next tick; the tick goes on
            log.warning("campaign_plan_failed", campaign=name, error=repr(exc))
        followups.payments.update(done["payments"])  # calls left undone: handed out again
        followups.refunds.update(done["refunds"])
        if _did_something(done):
            log.info(
                "campaign_tick", campaign=name, expired=len(done["expired"]),
                cancelled=len(done["cancelled"]),
                wave=done["wave"]["number"] if done["wave"] else None,
                allocated=len(done["wave"]["allocated"]) if done["wave"] else 0,
                reminded=len(done["reminded"]), closed=done["closed"],
            )  # fmt: skip
    return followups


def _did_something(done: dict[str, Any]) -> bool:
    return bool(
        done["expired"] or done["cancelled"] or done["reminded"] or done["wave"] or done["closed"]
    )
