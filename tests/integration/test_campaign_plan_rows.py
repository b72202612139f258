"""The campaign plan rows (issue #16), SQLite and PostgreSQL: a sync is claimed, so two ticks
never make two plans on the shop; every plan a campaign sold through stays known, so a late
order through a replaced plan is still a sign-up (a race once left one unknown)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from stock import campaign_plans
from sync.context import AppContext
from tests.support.ledger import config_head, ledger_fixture

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
ctx = ledger_fixture(config_head("popup"), {"TEE": 1}, T0)
LEASE = timedelta(minutes=2)


def test_one_sync_at_a_time_and_every_plan_stays_known(ctx: AppContext) -> None:
    with ctx.ledger(actor="test", now=T0) as tx:
        assert campaign_plans.claim(tx, "drop", "shop", LEASE)
    with ctx.ledger(actor="test", now=T0 + timedelta(seconds=5)) as tx:
        assert not campaign_plans.claim(tx, "drop", "shop", LEASE)  # another tick has it
    with ctx.ledger(actor="test", now=T0 + timedelta(seconds=6)) as tx:
        campaign_plans.record(tx, "drop", "shop", digest="d1", group_ref="g1", plan_ref="11")
    with ctx.ledger(actor="test", now=T0 + timedelta(seconds=7)) as tx:
        assert campaign_plans.claim(tx, "drop", "shop", LEASE)  # recorded: free again
        campaign_plans.record(tx, "drop", "shop", digest="d2", group_ref="g2", plan_ref="12")
    with ctx.read() as session:
        assert campaign_plans.by_plan(session, ["shop"]) == {"shop": {"11": "drop", "12": "drop"}}
        made = campaign_plans.current(session, "drop", "shop")
    assert made is not None and (made.plan_ref, made.digest) == ("12", "d2")
    # a claim whose tick died is taken over after the lease
    with ctx.ledger(actor="test", now=T0 + timedelta(minutes=1)) as tx:
        assert campaign_plans.claim(tx, "drop", "shop", LEASE)
    with ctx.ledger(actor="test", now=T0 + timedelta(minutes=4)) as tx:
        assert campaign_plans.claim(tx, "drop", "shop", LEASE)
