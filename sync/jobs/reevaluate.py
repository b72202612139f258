"""Offered numbers that move without a ledger change: re-evaluate every listing of a channel.

A changed rule (`safety_buffer`, `cap`, `backorders.*`, `sku_rules`) or a day passing (a PO line
entering the horizon, or turning late) moves the formula's result while no order or count
touches the SKU, so nothing marks its listing dirty. The daemon re-evaluates on start, on
reload and daily: every listing whose offer differs from what the channel was last given is
flagged for the next push. `stocksync check --diff` reads the same comparison without writing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

from sqlalchemy.orm import Session

from stock import listings, offers
from stock.tx import RuleBook
from sync.jobs.followups import Followups, utc_now
from sync.logs import get_logger
from sync.runtime import Runtime

log = get_logger("stocksync.jobs.reevaluate")

PAGE = 10_000  # listings read and compared per query round


@dataclass(frozen=True)
class Moved:
    listing: listings.PushedListing
    offered: int

    @property
    def before(self) -> int | None:
        return self.listing.last_pushed


def moved_offers(session: Session, rules: RuleBook, channel: str, today: date) -> Iterator[Moved]:
    """Listings of the channel whose offered number today differs from the last one pushed
    (never pushed counts as different), page by page: memory stays flat in the catalogue."""
    after = 0
    while True:
        page = listings.pushed_page(session, channel, after, PAGE)
        if not page:
            return
        found = offers.breakdowns(session, rules, channel, {p.sku_id: p.sku for p in page}, today)
        for row in page:
            offered = found[row.sku_id].offered
            if offered != row.last_pushed:
                yield Moved(row, offered)
        after = page[-1].listing_id


def reevaluate_channel(runtime: Runtime, channel_name: str, why: str) -> Followups:
    """Flag every listing of the channel whose offer moved; the push that follows sends them."""
    followups = Followups()
    if channel_name not in runtime.channels:
        return followups
    now = utc_now()
    with runtime.ctx.sessions.begin() as session:
        moved = [
            m
            for m in moved_offers(session, runtime.config, channel_name, now.date())
            if not m.listing.dirty  # a dirty one is pushed anyway
        ]
        listings.mark_for_push(session, [m.listing for m in moved], now)
    log.info("offers_reevaluated", channel=channel_name, why=why, moved=len(moved))
    if moved:
        followups.pushes.add(channel_name)
    return followups
