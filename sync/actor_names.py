"""The queue and the job names messages carry: one spelling for the actors and for everything
that enqueues by name (`sync/enqueue.py`, the CLI), importable without dramatiq or a runtime."""

from __future__ import annotations

QUEUE = "stocksync"  # every job is on this one queue

PROCESS_EVENT = "process_event"
PUSH = "push"
WRITE_BACK = "write_back"
POLL = "poll"
SWEEP = "sweep"
RECONCILE = "reconcile"
RELEASE = "release"
REEVALUATE = "reevaluate"
REBALANCE = "rebalance"
CAMPAIGN_TICK = "campaign_tick"
CAMPAIGN_PAYMENT = "campaign_payment"
CAMPAIGN_REFUND = "campaign_refund"
NOTIFY = "notify"
