"""`stocksync adopt CHANNEL`: take a live shop's quantities as the ledger's on hand.

Connecting a shop whose SKUs the ledger does not know must not zero it (docs/onboarding.md).
Adopting reads every SKU the channel sells (`Channel.list_listings`), compares what the channel
holds with the ledger, and sets on hand from the channel through the ledger's count
(`stock.counts.import_counts`: one transaction, audited, releases and demotions settled):

    set       the SKU is new to the ledger, its on hand was never counted (it came with an
              order), or it differs and --overwrite was given
    same      the ledger already holds that number
    refused   the ledger counted the SKU at another number (keep it; --overwrite takes the
              channel's)
    skipped   the channel does not track the SKU's stock, shows a negative number, or has the
              SKU twice with different numbers: count it with `stock set`

The number taken is what the channel counts as on hand: Shopify's `on_hand` at the configured
location (available + committed: units sold but not shipped are still on the shelf, and the
ledger reserves them when it reads those orders), WooCommerce's stock quantity.
The channel is then recorded as adopted: from now on the push lowers its quantities for any SKU.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from connectors.base import Channel, Listing
from stock import channel_state, counts, listings
from stock.tx import LedgerTx

SET, SAME, REFUSED, SKIPPED = "set", "same", "refused", "skipped"
ACTIONS = (SET, SAME, REFUSED, SKIPPED)


@dataclass(frozen=True)
class ChannelCount:
    """What the channel holds of one SKU."""

    sku: str
    on_hand: int | None  # the number adopting would set; None: the channel does not track it
    available: int | None  # what the channel offers now (what the push compares with)
    problem: str = ""  # why it cannot be taken as it is (skipped)


@dataclass(frozen=True)
class AdoptRow:
    sku: str
    channel: int | None
    available: int | None
    ledger: int | None  # on hand in the ledger; None: the ledger does not have the SKU
    counted: bool  # the ledger's on hand is a count
    action: str
    reason: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "sku": self.sku,
            "channel": self.channel,
            "available": self.available,
            "ledger": self.ledger,
            "counted": self.counted,
            "action": self.action,
            "reason": self.reason,
        }


def read_channel(
    channel: Channel, on_listing: Callable[[], None] | None = None
) -> list[ChannelCount]:
    """Every SKU the channel sells and what it holds, in SKU order (ChannelError on failure).
    `on_listing` is called for each record read (a progress bar)."""
    seen: dict[str, list[Listing]] = {}
    for listing in channel.list_listings():
        seen.setdefault(listing.sku, []).append(listing)
        if on_listing is not None:
            on_listing()
    return [_channel_count(sku, found) for sku, found in sorted(seen.items())]


def _channel_count(sku: str, found: Sequence[Listing]) -> ChannelCount:
    numbers = {_on_hand(listing) for listing in found}
    first = found[0]
    if len(numbers) > 1:
        shown = ", ".join("untracked" if n is None else str(n) for n in sorted(numbers, key=str))
        return ChannelCount(
            sku, None, first.quantity, f"on the channel {len(found)} times ({shown})"
        )
    on_hand = numbers.pop()
    if on_hand is None:
        return ChannelCount(sku, None, first.quantity, "the channel does not track its stock")
    if on_hand < 0:
        return ChannelCount(
            sku, on_hand, first.quantity, f"negative on the channel ({on_hand}): count it"
        )
    return ChannelCount(sku, on_hand, first.quantity)


def _on_hand(listing: Listing) -> int | None:
    if listing.quantity is None:
        return None  # not tracked
    return listing.on_hand if listing.on_hand is not None else listing.quantity


def plan(session: Session, found: Sequence[ChannelCount], overwrite: bool) -> list[AdoptRow]:
    """What adopting would do to each SKU, given the ledger as this session sees it."""
    ledger = counts.on_hand_of(session, [c.sku for c in found])
    return [_row(c, ledger.get(c.sku), overwrite) for c in found]


def _row(found: ChannelCount, held: counts.Counted | None, overwrite: bool) -> AdoptRow:
    on_hand = None if held is None else held.on_hand
    counted = held is not None and held.counted

    def row(action: str, reason: str = "") -> AdoptRow:
        return AdoptRow(found.sku, found.on_hand, found.available, on_hand, counted, action, reason)

    if found.problem or found.on_hand is None:
        return row(SKIPPED, found.problem)
    if held is None:
        return row(SET, "new to the ledger")
    if held.on_hand == found.on_hand:
        return row(SAME)
    if not held.counted:
        return row(SET, "never counted (came with an order)")
    if overwrite:
        return row(SET, "differs from the ledger's count (--overwrite)")
    return row(REFUSED, "differs from the ledger's count, use --overwrite")


def summary(rows: Sequence[AdoptRow]) -> dict[str, int]:
    return {action: sum(1 for r in rows if r.action == action) for action in ACTIONS}


@dataclass(frozen=True)
class Adopted:
    rows: list[AdoptRow]
    imported: counts.ImportedCounts
    released_held: int


def apply(tx: LedgerTx, channel: str, found: Sequence[ChannelCount], overwrite: bool) -> Adopted:
    """Adopt in this ledger transaction: plan again against the ledger as it is now, count the
    SKUs to set (and those the ledger holds at the channel's number without a count), audit,
    and record the channel as adopted."""
    rows = plan(tx.session, found, overwrite)
    taken: Mapping[str, int] = {
        r.sku: r.channel
        for r in rows
        if r.channel is not None and (r.action == SET or (r.action == SAME and not r.counted))
    }
    imported = counts.import_counts(tx, taken, f"adopt {channel}")
    channel_state.mark_adopted(tx.session, channel, tx.now)
    # the channel reached its numbers by itself: raises over them wait for a poll that starts
    # after now (the orders behind them are in the ledger then); decreases go out at once
    channel_state.note_moved(tx.session, channel, tx.now)
    released_held = listings.release_held(tx.session, channel, tx.now)
    tally = summary(rows)
    tx.audit(
        "channel.adopt",
        channel,
        {
            **tally,
            "overwrite": overwrite,
            "refused_skus": [r.sku for r in rows if r.action == REFUSED][:100],
            "skipped_skus": [r.sku for r in rows if r.action == SKIPPED][:100],
        },
    )
    return Adopted(rows, imported, released_held)
