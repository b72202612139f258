"""Orders in, the guarantee: pull orders updated since the watermark into the inbox."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from stock import channel_state
from sync.jobs.followups import Followups, utc_now
from sync.jobs.inbox import process_event, store_event
from sync.runtime import Runtime


def poll_channel(runtime: Runtime, channel_name: str, *, process_inline: bool = False) -> Followups:
    """Pull orders updated since the watermark (minus an overlap) into the inbox."""
    followups = Followups()
    channel = runtime.channels.get(channel_name)
    if channel is None:
        return followups
    overlap = timedelta(seconds=runtime.config.daemon.poll_overlap_s)
    with runtime.ctx.sessions.begin() as session:
        state = channel_state.get(session, channel_name)
        watermark = state.poll_watermark if state and state.poll_watermark else None
    since = (watermark - overlap) if watermark else datetime(2000, 1, 1, tzinfo=UTC)
    started = utc_now()  # what the channel held from here on is in what we pull
    newest = watermark
    stored: list[int] = []
    for polled in channel.pull_orders(since):
        event_id = store_event(runtime, channel_name, polled.event_key, "poll/order", polled.body)
        if event_id is not None:
            stored.append(event_id)
        if newest is None or polled.order.updated_at > newest:
            newest = polled.order.updated_at
    now = utc_now()
    with runtime.ctx.sessions.begin() as session:
        channel_state.record_poll(session, channel_name, newest, started)
    if newest is not None:
        runtime.metrics.poll_lag.labels(channel_name).set((now - newest).total_seconds())
    if process_inline:
        for event_id in stored:
            followups.merge(process_event(runtime, event_id))
    else:
        followups.events.extend(stored)
    return followups
