"""The safety net: re-enqueue work left pending (a killed worker's message, a failed push, a lost
job), and refresh the gauges."""

from __future__ import annotations

from datetime import timedelta

from backorders import releasing
from stock import inbox, inflight, listings, outbox
from sync.jobs.followups import Followups, utc_now
from sync.jobs.promises import plan_due_promises
from sync.metrics import refresh_gauges
from sync.runtime import Runtime

SWEEP_EVENTS = 5000  # inbox events re-enqueued per sweep


def sweep(runtime: Runtime) -> Followups:
    cutoff = utc_now() - timedelta(seconds=runtime.config.daemon.sweep_age_s)
    followups = Followups()
    with runtime.ctx.sessions.begin() as session:
        # failed events form the exception queue: an operator retries them
        followups.events.extend(inbox.pending_before(session, cutoff, SWEEP_EVENTS))
        followups.pushes |= listings.channels_dirty_since(session, cutoff)
        # writes never answered, past their window: the push reads those listings again
        followups.pushes |= inflight.channels_due(session, utc_now())
        followups.writebacks |= outbox.pending_before(session, cutoff)
        followups.writebacks |= outbox.requeue_stale_holds(session, cutoff)
        refresh_gauges(runtime.metrics, session, list(runtime.channels))
        # a release that died with its worker (or never got enqueued) is due again
        followups.releases |= set(releasing.releasable_skus(session))
    plan_due_promises(runtime)  # dates of SKUs with many backorders, planned after commit
    return followups
