"""Thin dramatiq actors: ids in, a job call (sync/jobs), follow-ups enqueued after its commit.

Declared per broker and runtime (no import-time broker, no global state). What a failure leads
to is not written here: one policy for every actor lives in the broker's middleware
(sync/broker.py `Retries(retry_when=...)`, sync/middleware.py `FailurePolicy`), with
`is_transient` (sync/failures.py) as the one classifier. An actor just lets its errors raise.

Transient: a database or Redis outage, a retryable ChannelError (after the connector's own
retries), a lost insert race. Dramatiq retries the job with backoff (0.5 s doubling to 30 s,
MAX_RETRIES times). Permanent: anything else (a ledger refusal such as LedgerInputError, a
non-retryable ChannelError, a bug). Logged as `job_failed` with the job's log context, recorded
by the actor's `on_permanent_failure` where it has one, never retried (dramatiq dead-letters it).

| actor         | transient failure              | permanent failure                               |
|---------------|--------------------------------|-------------------------------------------------|
| process_event | retried                        | recorded on the inbox row: the exception queue  |
|               |                                | (`stocksync inbox list --failed`, `status`)     |
| write_back    | attempt counted on its row,    | the write-back marked failed (`status`)         |
|               | retried                        |                                                 |
| push          | retried                        | logged; the next scheduled push retries         |
| poll          | retried                        | logged; the next scheduled poll retries         |
| reconcile     | retried                        | logged; the next scheduled reconcile retries    |
| release       | retried                        | logged; the sweeper finds the SKUs releasable   |
| reevaluate    | retried                        | logged; the next start, reload or day retries   |
| sweep         | not retried (`never`): the     | logged                                          |
|               | next sweep is soon enough      |                                                 |
| rebalance     | not retried (`never`): the     | logged                                          |
|               | next tick is seconds away      |                                                 |
| campaign_tick | not retried (`never`): the     | logged                                          |
|               | next tick is a minute away     |                                                 |
| campaign_     | claim released, retried        | a shop's refusal is recorded on the entry       |
| payment       |                                | (`failed`); anything else logged, and the next  |
|               |                                | tick hands the call out again                   |
| campaign_     | claim released, retried (the   | a shop's refusal is recorded on the refund      |
| refund        | shop's refunds are searched    | (`failed`); anything else logged, and the next  |
|               | for its key first)             | tick hands it out again                         |
| notify        | not retried (`never`): the     | logged; each message keeps its own attempts     |
|               | next tick is seconds away      | (notify.outbox: backoff, then `failed`)         |
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import dramatiq
from dramatiq import Broker

from sync.actor_names import (
    CAMPAIGN_PAYMENT,
    CAMPAIGN_REFUND,
    CAMPAIGN_TICK,
    NOTIFY,
    POLL,
    PROCESS_EVENT,
    PUSH,
    QUEUE,
    REBALANCE,
    RECONCILE,
    REEVALUATE,
    RELEASE,
    SWEEP,
    WRITE_BACK,
)
from sync.failures import never
from sync.jobs import inbox, receipts, writeback
from sync.jobs.campaign_payments import settle_payment
from sync.jobs.campaign_refunds import settle_refund
from sync.jobs.campaign_tick import tick_campaigns
from sync.jobs.followups import Followups
from sync.jobs.notify_deliver import notify_tick
from sync.jobs.poll import poll_channel
from sync.jobs.push import push_channel
from sync.jobs.rebalance import rebalance as rebalance_pools
from sync.jobs.reconcile import reconcile_channel
from sync.jobs.reevaluate import reevaluate_channel
from sync.jobs.sweep import sweep as sweep_ledger
from sync.logs import get_logger
from sync.runtime import Runtime

log = get_logger("stocksync.actors")

__all__ = [
    "POLL",
    "PROCESS_EVENT",
    "PUSH",
    "QUEUE",
    "RECONCILE",
    "REEVALUATE",
    "RELEASE",
    "SWEEP",
    "WRITE_BACK",
    "Actors",
    "declare_actors",
]

PUSH_BUSY_DELAY_MS = 300
PUSH_COALESCE_MS = 50  # a burst of orders shares one push per channel
PUSH_BUSY_BOUNCES = 200  # about a minute: longer than a push lease lives
POLL_COALESCE_MS = 1000  # pushes asking for a poll share one per channel per second
EVENT_HELD_DELAY_MS = 500  # an event held by another job's batch: look again after this
EVENT_HELD_BOUNCES = 120  # about a minute; after that the sweeper's re-enqueue covers it


class PushGate:
    """One push per channel at a time in this process. A push job arriving while another
    thread pushes the channel leaves a request and ends; the pushing thread goes round again,
    so it reads every change committed before the request. (Across processes the lease in
    `channel_state` decides, and a refused push comes back later.)"""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = False
        self._wanted = False

    def enter(self) -> bool:
        with self._lock:
            if self._running:
                self._wanted = True
                return False
            self._running = True
            return True

    def again(self) -> bool:
        """Whether a request came while pushing (taken); if none, the gate is left open."""
        with self._lock:
            if self._wanted:
                self._wanted = False
                return True
            self._running = False
            return False

    def leave(self) -> None:
        """Leave without going round again (an error, or another process holds the lease:
        its push, or our bounce, serves the requests)."""
        with self._lock:
            self._running = False
            self._wanted = False


@dataclass
class Actors:
    process_event: dramatiq.Actor[Any, Any]
    push: dramatiq.Actor[Any, Any]
    write_back: dramatiq.Actor[Any, Any]
    poll: dramatiq.Actor[Any, Any]
    sweep: dramatiq.Actor[Any, Any]
    reconcile: dramatiq.Actor[Any, Any]
    release: dramatiq.Actor[Any, Any]
    reevaluate: dramatiq.Actor[Any, Any]
    rebalance: dramatiq.Actor[Any, Any]
    campaign_tick: dramatiq.Actor[Any, Any]
    campaign_payment: dramatiq.Actor[Any, Any]
    campaign_refund: dramatiq.Actor[Any, Any]
    notify: dramatiq.Actor[Any, Any]
    _push_windows: dict[str, float] = field(default_factory=dict)
    _poll_windows: dict[str, float] = field(default_factory=dict)
    _push_gates: dict[str, PushGate] = field(default_factory=dict)
    _push_lock: threading.Lock = field(default_factory=threading.Lock)

    def request_push(self, channel: str) -> None:
        """Coalesce push requests: one delayed push serves every request made before it starts.

        A request inside the window of an already scheduled push is covered by it (that push
        starts after the request, so it reads the committed change); otherwise a new push is
        scheduled PUSH_COALESCE_MS from now.
        """
        now = time.monotonic()
        with self._push_lock:
            if self._push_windows.get(channel, 0.0) > now:
                return
            self._push_windows[channel] = now + PUSH_COALESCE_MS / 1000
        self.push.send_with_options(args=(channel,), delay=PUSH_COALESCE_MS)

    def push_gate(self, channel: str) -> PushGate:
        with self._push_lock:
            return self._push_gates.setdefault(channel, PushGate())

    def request_poll(self, channel: str) -> None:
        """A poll now, unless one was asked for less than POLL_COALESCE_MS ago (every push
        round under steady sales may ask; one poll answers them all)."""
        now = time.monotonic()
        with self._push_lock:
            if self._poll_windows.get(channel, 0.0) > now:
                return
            self._poll_windows[channel] = now + POLL_COALESCE_MS / 1000
        self.poll.send(channel)

    def look_again(self, event_id: int, bounces: int) -> None:
        """An event another job's batch holds: applied by it, or (if that batch is rolled back
        or its worker dies) by this job when it comes back."""
        if bounces <= EVENT_HELD_BOUNCES:
            self.process_event.send_with_options(
                args=(event_id,), kwargs={"bounces": bounces}, delay=EVENT_HELD_DELAY_MS
            )

    def dispatch(self, followups: Followups) -> None:
        """Enqueue follow-up jobs; call only after the transaction that made them committed."""
        for event_id in followups.events:
            self.process_event.send(event_id)
        for event_id in followups.held_events:
            self.look_again(event_id, 1)
        for writeback_id in sorted(followups.writebacks):
            self.write_back.send(writeback_id)
        for channel in sorted(followups.pushes):
            self.request_push(channel)
        for channel in sorted(followups.polls):
            self.request_poll(channel)
        releases = sorted(followups.releases)
        if releases:
            self.release.send(releases)
        for entry_id in sorted(followups.payments):
            self.campaign_payment.send(entry_id)
        for money_id in sorted(followups.refunds):
            self.campaign_refund.send(money_id)


def declare_actors(broker: Broker, runtime: Runtime) -> Actors:
    def actor(fn: Callable[..., None], name: str, **options: Any) -> dramatiq.Actor[Any, Any]:
        return dramatiq.Actor(
            fn, broker=broker, actor_name=name, queue_name=QUEUE, priority=0, options=options
        )

    holder: list[Actors] = []

    def actors() -> Actors:
        return holder[0]

    def process_event(event_id: int, bounces: int = 0) -> None:
        followups = inbox.process_event(runtime, event_id)
        for held in followups.held_events:
            actors().look_again(held, bounces + 1)
        followups.held_events = []
        actors().dispatch(followups)

    def push(channel: str, bounces: int = 0) -> None:
        gate = actors().push_gate(channel)
        if not gate.enter():
            return  # a thread of this process is pushing the channel: it goes round again
        try:
            while True:
                report = push_channel(runtime, channel)
                actors().dispatch(report.followups)
                if report.busy:
                    gate.leave()
                    if bounces < PUSH_BUSY_BOUNCES:
                        # another process holds the channel; come back in case it misses ours
                        actors().push.send_with_options(
                            args=(channel, bounces + 1), delay=PUSH_BUSY_DELAY_MS
                        )
                    return
                if not gate.again():
                    return
        except BaseException:
            gate.leave()  # a retry of this job (or the next request) pushes again
            raise

    def write_back(writeback_id: int) -> None:
        actors().dispatch(writeback.write_back(runtime, writeback_id))

    def poll(channel: str) -> None:
        actors().dispatch(poll_channel(runtime, channel))

    def release(skus: list[str]) -> None:
        actors().dispatch(receipts.release_skus(runtime, skus))

    def reevaluate(channel: str, why: str = "scheduled") -> None:
        actors().dispatch(reevaluate_channel(runtime, channel, why))

    def sweep() -> None:
        actors().dispatch(sweep_ledger(runtime))

    def rebalance() -> None:
        actors().dispatch(rebalance_pools(runtime))

    def campaign_tick() -> None:
        actors().dispatch(tick_campaigns(runtime))

    def campaign_payment(entry_id: int) -> None:
        actors().dispatch(settle_payment(runtime, entry_id))

    def campaign_refund(money_id: int) -> None:
        actors().dispatch(settle_refund(runtime, money_id))

    def notify() -> None:
        notify_tick(runtime)

    def reconcile(channel: str) -> None:
        drifts, followups = reconcile_channel(runtime, channel)
        if drifts:
            log.warning("drift", drifts=[d.__dict__ for d in drifts])
        actors().dispatch(followups)

    # on_*_failure: FailurePolicy calls them with the job's arguments and error=repr(exc)
    holder.append(
        Actors(
            process_event=actor(
                process_event,
                PROCESS_EVENT,
                on_permanent_failure=partial(inbox.record_event_failure, runtime),
            ),
            push=actor(push, PUSH),
            write_back=actor(
                write_back,
                WRITE_BACK,
                on_transient_failure=partial(writeback.record_writeback_failure, runtime),
                on_permanent_failure=partial(
                    writeback.record_writeback_failure, runtime, permanent=True
                ),
            ),
            poll=actor(poll, POLL),
            sweep=actor(sweep, SWEEP, retry_when=never),
            reconcile=actor(reconcile, RECONCILE),
            release=actor(release, RELEASE),
            reevaluate=actor(reevaluate, REEVALUATE),
            # the next tick is seconds away: a failed one is not retried
            rebalance=actor(rebalance, REBALANCE, retry_when=never),
            campaign_tick=actor(campaign_tick, CAMPAIGN_TICK, retry_when=never),
            campaign_payment=actor(campaign_payment, CAMPAIGN_PAYMENT),
            campaign_refund=actor(campaign_refund, CAMPAIGN_REFUND),
            notify=actor(notify, NOTIFY, retry_when=never),
        )
    )
    return holder[0]
