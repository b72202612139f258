"""Orders in, the guarantee: pull orders updated since the watermark into the inbox."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from backorders import orders
from connectors.base import POLL_TOPIC, ChannelOrder, PolledOrder
from stock import channel_state, inbox
from sync import channel_auth
from sync.jobs.followups import Followups, utc_now
from sync.jobs.inbox import process_event
from sync.mapping import order_state
from sync.runtime import Runtime

# polled orders checked and stored per transaction (a commit each would make a poll cost a
# commit per order of the last poll_overlap_s)
STORE_BATCH = 200


def poll_channel(runtime: Runtime, channel_name: str, *, process_inline: bool = False) -> Followups:
    """Pull orders updated since the watermark (minus an overlap) into the inbox."""
    followups = Followups()
    channel = runtime.channels.get(channel_name)
    if channel is None:
        return followups
    if channel_auth.held(runtime, channel_name) is not None:
        return followups  # an auth error holds its calls; the next scheduled poll tries
    overlap = timedelta(seconds=runtime.config.daemon.poll_overlap_s)
    with runtime.ctx.sessions.begin() as session:
        state = channel_state.get(session, channel_name)
        watermark = state.poll_watermark if state and state.poll_watermark else None
    since = (watermark - overlap) if watermark else datetime(2000, 1, 1, tzinfo=UTC)
    started = utc_now()  # what the channel held from here on is in what we pull
    newest = watermark
    stored: list[int] = []
    page: list[PolledOrder] = []
    try:
        for polled in channel.pull_orders(since):
            page.append(polled)
            if len(page) >= STORE_BATCH:
                stored.extend(_store_new_versions(runtime, channel_name, page))
                page = []
            if newest is None or polled.order.updated_at > newest:
                newest = polled.order.updated_at
    except channel_auth.ChannelHeld:
        held = True  # refused for our credentials (logged, held): keep what came, not a watermark
    else:
        held = False
    stored.extend(_store_new_versions(runtime, channel_name, page))
    if not held:
        with runtime.ctx.sessions.begin() as session:
            channel_state.record_poll(session, channel_name, newest, started)
        # everything the channel changed before `started` is in the inbox now
        runtime.metrics.poll_lag.labels(channel_name).set((utc_now() - started).total_seconds())
    if process_inline:
        for event_id in stored:
            followups.merge(process_event(runtime, event_id))
    else:
        followups.events.extend(stored)
    return followups


def _store_new_versions(runtime: Runtime, channel_name: str, page: list[PolledOrder]) -> list[int]:
    """Store the polled orders the ledger does not hold at this version, in one transaction.

    The overlap re-reads every order of the last poll_overlap_s, under event keys that differ
    from those of the webhooks that brought the same versions: without this check each poll
    would queue the whole window again, to be applied as no-ops (at 100 orders/s, 12,000
    events a poll).
    """
    if not page:
        return []
    channel = runtime.channels[channel_name]
    with runtime.ctx.sessions.begin() as session:
        known = orders.known_versions(session, channel_name, [p.order.external_id for p in page])
        new = [p for p in page if not _held_already(p.order, known.get(p.order.external_id))]
        return inbox.store_many(
            session,
            channel_name,
            [
                (p.event_key, POLL_TOPIC, p.body, channel.needs_fetch(POLL_TOPIC, p.body))
                for p in new
            ],
            utc_now(),
        )


def _held_already(order: ChannelOrder, known: tuple[datetime, orders.OrderState] | None) -> bool:
    if known is None:
        return False
    known_at, known_state = known
    if order.updated_at != known_at:
        return order.updated_at < known_at
    return order_state(order.status) == known_state  # a same-second change still goes in
