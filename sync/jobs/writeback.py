"""Holds out: bring a channel's hold of one order to the ledger's open backorders.

The outbox row says which order; stock.outbox records around the channel call what the channel
holds, so a job killed mid-call leaves a mark the next job acts on.
"""

from __future__ import annotations

import time

from connectors.base import BackorderHold
from stock import outbox
from sync import channel_auth
from sync.jobs.followups import Followups, utc_now
from sync.logs import get_logger
from sync.runtime import Runtime

log = get_logger("stocksync.jobs.writeback")


def write_back(runtime: Runtime, writeback_id: int) -> Followups:
    """Write one order's backorder state to its channel (target state, idempotent).

    Write-backs of one order run one at a time (`order_mutex`), so a release is never
    overtaken by an older hold still on its way to the channel.
    """
    with runtime.ctx.sessions() as session:
        order_id = outbox.order_of(session, writeback_id)
    if order_id is None:
        return Followups()
    with runtime.order_mutex(order_id):
        try:
            return _write_back_locked(runtime, writeback_id)
        except channel_auth.ChannelHeld as exc:
            # refused for our credentials (logged, held): the row stays pending, with why,
            # and the sweeper brings it back once the hold is over
            record_writeback_failure(runtime, writeback_id, repr(exc))
            return Followups()


def _write_back_locked(runtime: Runtime, writeback_id: int) -> Followups:
    with runtime.ctx.sessions.begin() as session:
        task = outbox.pending_task(session, writeback_id)
    if task is None:
        return Followups()
    again_later = Followups(writebacks={writeback_id})
    channel = runtime.channels.get(task.channel)
    if channel is None:
        with runtime.ctx.sessions.begin() as session:
            outbox.finish(
                session, task, task.recorded, task.recorded, utc_now(),
                error="channel not configured",
            )  # fmt: skip
        return Followups()
    held, desired = task.held, task.desired
    # an order that ever waited is checked on the channel when it waits no more
    verify_release = task.order_open and not desired and task.ever_backordered
    if desired == held and not task.unsure and not verify_release:
        with runtime.ctx.sessions.begin() as session:
            again = outbox.finish(session, task, task.recorded, desired, utc_now())
        return again_later if again else Followups()
    if channel_auth.held(runtime, task.channel) is not None:
        return Followups()  # an auth error holds the channel's calls; the sweeper comes back
    with runtime.ctx.sessions.begin() as session:
        ahead = outbox.write_ahead(session, task.order_id, held, desired)
    lift: dict[str, int] = {}
    if task.order_open:
        # after a job died mid-call the channel may hold any of these lines: lift them all
        lift = outbox.merge_holds(held, desired) if task.unsure else held
        if lift or verify_release:
            # released in part or whole: lift our hold (nothing waits: every hold of ours,
            # recorded or not), then hold what still waits
            channel.lift_hold(BackorderHold(task.external_id, {} if verify_release else lift))
        if desired:
            channel.place_hold(BackorderHold(task.external_id, desired, task.expected_on))
        _log_holds(task.channel, task.external_id, held, desired)
    # a cancelled or fulfilled order's holds end with it on the channel
    died_at = task.recorded.get(outbox.UNSURE)
    if died_at is None and task.order_open and lift:
        # a hold was just lifted: check once more after the grace, in case a hold call still
        # on its way (a slow or dead job's) lands after our release
        died_at = int(time.time())
    linger = died_at is not None and time.time() - died_at < outbox.IN_FLIGHT_GRACE_S
    with runtime.ctx.sessions.begin() as session:
        again = outbox.finish(
            session, task, ahead, desired, utc_now(), talked=True,
            linger_mark=died_at if linger else None,
        )  # fmt: skip
    log.info("write_back", channel=task.channel, order=task.external_id, held=desired)
    # another job wrote to the channel meanwhile: go again from fresh state
    return again_later if again else Followups()


def _log_holds(channel: str, order: str, held: dict[str, int], desired: dict[str, int]) -> None:
    """One INFO line for units released from the order's hold on the channel, one for units
    newly held (lines and units; `held` is what the hold covers afterwards)."""
    released = {k: n - desired.get(k, 0) for k, n in held.items() if n > desired.get(k, 0)}
    added = {k: n - held.get(k, 0) for k, n in desired.items() if n > held.get(k, 0)}
    after = sum(desired.values())
    if released:
        log.info("hold_released", channel=channel, order=order, lines=len(released),
                 units=sum(released.values()), held=after)  # fmt: skip
    if added:
        log.info("hold_placed", channel=channel, order=order, lines=len(added),
                 units=sum(added.values()), held=after)  # fmt: skip


def record_writeback_failure(
    runtime: Runtime, writeback_id: int, error: str, *, permanent: bool = False
) -> None:
    """Count a failed attempt; a permanent failure stops retries and shows in `status`."""
    with runtime.ctx.sessions.begin() as session:
        outbox.record_failure(session, writeback_id, error, utc_now(), permanent=permanent)
