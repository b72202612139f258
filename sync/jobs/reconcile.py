"""Compare each channel's quantities with what it should show; report and fix drift."""

from __future__ import annotations

from dataclasses import dataclass

from stock import audit, listings, offers
from sync.jobs.followups import Followups, utc_now
from sync.jobs.poll import poll_channel
from sync.runtime import Runtime


@dataclass
class Drift:
    sku: str
    ours: int | None
    channel: int | None


def reconcile_channel(runtime: Runtime, channel_name: str) -> tuple[list[Drift], Followups]:
    """Compare the channel's quantities with the formula; re-push what drifted.

    A listing with a push pending (dirty) is compared with what we last pushed: the push on
    its way will set the formula's number. Any other listing must show the formula's number
    now, even if that is not what we last pushed (a rule changed, a day passed)."""
    followups = Followups()
    channel = runtime.channels.get(channel_name)
    if channel is None:
        return [], followups
    with runtime.ctx.sessions.begin() as session:
        mapped = listings.mapped(session, channel_name)
        formula = offers.breakdowns(
            session,
            runtime.config,
            channel_name,
            {row.sku_id: row.sku for row in mapped if not row.dirty},
            utc_now().date(),
        )
    current = channel.fetch_listings([row.sku for row in mapped])
    drifts: list[Drift] = []
    drifted: list[tuple[int, int, int | None]] = []
    now = utc_now()
    with runtime.ctx.sessions.begin() as session:
        for row in mapped:
            found = current.get(row.sku)
            if row.sku_id in formula:
                expected: int | None = formula[row.sku_id].offered
            else:  # a push is on its way: the channel should still show what we last sent
                expected = row.last_pushed if row.last_pushed is not None else row.last_seen
            if found is None or expected is None or found.quantity == expected:
                continue
            drifts.append(Drift(row.sku, expected, found.quantity))
            drifted.append((row.listing_id, row.sku_id, found.quantity))
        listings.mark_drifted(session, drifted, now)
        audit.record(
            session, now, "reconcile", "reconcile", channel_name,
            {"drift": [d.__dict__ for d in drifts], "checked": len(mapped)},
        )  # fmt: skip
    runtime.metrics.drift.labels(channel_name).set(
        sum(abs((d.channel or 0) - (d.ours or 0)) for d in drifts)
    )
    if drifts:
        # a sale we have not seen explains most drift: learn orders first, then fix the numbers
        followups.merge(poll_channel(runtime, channel_name, process_inline=True))
        followups.pushes.add(channel_name)
    return drifts, followups
