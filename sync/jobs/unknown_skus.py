"""The push's one rule for a live shop's SKUs the ledger never counted (docs/onboarding.md).

A SKU that came with an order (not with `stock set`, `stock import` or `stocksync adopt`) has
an on hand of nothing the merchant said: 0 when it was created. Pushing its offer would zero a
shop that holds real stock. So until the SKU is counted or the channel adopted, the push never
lowers the channel's quantity for it (nor sets one where the channel shows none): such a
listing stays dirty, is marked held (`listing.held_at`), logged once per round as
`unknown_sku_held` and counted in `stocksync_listings_held_unknown{channel}` and in
`stocksync status --json` (`channel_state`). Raises, and numbers the channel already shows, go
out as usual.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from stock import channel_state, listings
from sync.jobs.followups import utc_now
from sync.logs import get_logger
from sync.runtime import Runtime

if TYPE_CHECKING:
    from sync.jobs.push import PlannedPush

log = get_logger("stocksync.jobs.push")

LOGGED_SKUS = 50  # SKUs named in one `unknown_sku_held` line (the count is always whole)


def would_hold(listing: listings.DirtyListing, offered: int, adopted: bool) -> bool:
    """A lower number (or any number over an unknown channel quantity) for a SKU never
    counted, on a channel never adopted."""
    if listing.counted or adopted:
        return False
    return listing.last_seen is None or offered < listing.last_seen


def hold_unknown(
    runtime: Runtime, channel_name: str, planned: Sequence[PlannedPush], held_ids: set[int]
) -> tuple[list[PlannedPush], list[PlannedPush]]:
    """Split a round's pushes into those to send and those held back; the held ones are marked
    in the ledger (they stay dirty) and their listing ids added to `held_ids`, so the rounds
    that follow read past them."""
    if all(p.listing.counted for p in planned):
        return list(planned), []
    with runtime.ctx.sessions() as session:
        state = channel_state.get(session, channel_name)
        adopted = state is not None and state.adopted_at is not None
    held = [p for p in planned if would_hold(p.listing, p.offered, adopted)]
    if not held:
        return list(planned), []
    with runtime.ctx.sessions.begin() as session:
        listings.mark_held(session, [p.listing for p in held], utc_now())
    held_ids.update(p.listing.listing_id for p in held)
    skus = sorted(p.listing.sku for p in held)
    log.warning(
        "unknown_sku_held",
        channel=channel_name,
        count=len(held),
        skus=skus[:LOGGED_SKUS],
        hint="count these SKUs (stocksync stock set/import) or adopt the channel "
        "(stocksync adopt CHANNEL): docs/onboarding.md",
    )
    kept = {p.listing.listing_id for p in held}
    return [p for p in planned if p.listing.listing_id not in kept], held
