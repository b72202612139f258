"""Offered numbers out: push dirty listings to a channel, changed numbers only, decreases first.

One pusher per channel at a time (a lease in `channel_state`, taken over from a dead local
process); no transaction stays open across the channel call.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from connectors.base import PAGE_NOT_UPDATED, Channel, ChannelError, OfferPush
from stock import channel_state, inbox, inflight, listings, offers
from sync import channel_auth
from sync.jobs.followups import Followups, utc_now
from sync.jobs.unknown_skus import hold_unknown
from sync.logs import get_logger
from sync.runtime import Runtime

log = get_logger("stocksync.jobs.push")

PUSH_BATCH = 1000  # listings per push round; the connector splits into API-sized calls
PUSH_LEASE = timedelta(seconds=60)
MAX_ROUNDS = 50  # bounded: a channel that keeps failing waits for the sweeper


@dataclass
class PushReport:
    busy: bool = False  # another pusher holds the channel: try again shortly
    pushed: int = 0
    stale: int = 0
    errors: int = 0
    calls: int = 0
    deferred: int = 0  # raises held back until orders explain the channel's quantity
    held_unknown: int = 0  # lower numbers held back for SKUs never counted (unknown_skus.py)
    late_writes: int = 0  # listings an unanswered write was found to have overwritten
    held_ids: set[int] = field(default_factory=set)  # their listings: later rounds read past
    followups: Followups = field(default_factory=Followups)


def push_channel(runtime: Runtime, channel_name: str) -> PushReport:
    """Push offered quantities of the channel's dirty listings."""
    report = PushReport()
    channel = runtime.channels.get(channel_name)
    if channel is None:
        return report
    if channel_auth.held(runtime, channel_name) is not None:
        return report  # an auth error holds its calls; the sweeper brings dirty listings back
    owner = push_lease_owner()
    with _ACTIVE_LOCK:  # before taking it: another thread must never see it as left behind
        _ACTIVE_LEASES.add(owner)
    if not _acquire_lease(runtime, channel_name, owner):
        with _ACTIVE_LOCK:
            _ACTIVE_LEASES.discard(owner)
        report.busy = True
        return report
    try:
        if channel.late_write_window is not None:
            _read_after_late_writes(runtime, channel_name, channel, report)
        for _round in range(MAX_ROUNDS):
            if _push_round(runtime, channel_name, channel, report):
                break
    except channel_auth.ChannelHeld:
        pass  # refused for our credentials (logged, held): the listings stay dirty
    finally:
        with _ACTIVE_LOCK:
            _ACTIVE_LEASES.discard(owner)
        with runtime.ctx.sessions.begin() as session:
            channel_state.release_lease(session, channel_name, owner)
    return report


# ------------------------------------------------------------------ the lease
def push_lease_owner() -> str:
    """`<random>@<pid>@<host>`: unique per push, and says which local process holds a lease."""
    return f"{uuid.uuid4().hex[:16]}@{os.getpid()}@{socket.gethostname()}"[:64]


def _owner_parts(owner: str | None) -> tuple[str, int, str] | None:
    parts = (owner or "").split("@", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return None  # an owner written by another version
    return parts[0], int(parts[1]), parts[2]


# the leases this process's pushes hold right now: a lease of this process not among them was
# left behind by a push whose release failed (the database went away mid-push)
_ACTIVE_LEASES: set[str] = set()
_ACTIVE_LOCK = threading.Lock()


def _holder_is_dead(owner: str | None) -> bool:
    """A lease held by a process of this host that no longer runs (SIGKILL, OOM), or by this
    very process but no push of it: without this, every push of the channel would wait out
    the lease (60 s) after a worker crash or a database restart."""
    holder, mine = _owner_parts(owner), _owner_parts(push_lease_owner())
    if holder is None or mine is None or holder[2] != mine[2]:
        return False  # another host's process: we cannot tell, the lease expiry decides
    if holder[1] == mine[1]:
        with _ACTIVE_LOCK:
            return owner not in _ACTIVE_LEASES
    try:
        os.kill(holder[1], 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # it exists, as another user
    return False


def _acquire_lease(runtime: Runtime, channel: str, owner: str) -> bool:
    now = utc_now()
    with runtime.ctx.sessions.begin() as session:
        if channel_state.take_lease(session, channel, owner, now, now + PUSH_LEASE):
            return True
        holder = channel_state.lease_holder(session, channel)
        if not _holder_is_dead(holder):
            return False
        log.warning("push_lease_taken_over", channel=channel, dead_owner=holder)
        return channel_state.steal_lease(session, channel, holder, owner, now + PUSH_LEASE)


# ------------------------------------------------------------------ one round
@dataclass(frozen=True)
class PlannedPush:
    listing: listings.DirtyListing
    offered: int
    incoming: int = 0  # of `offered`, units not on hand yet (the shop page says so)
    expected_on: date | None = None  # when the first of them is due

    @property
    def raises_unexplained(self) -> bool:
        """A raise over a channel quantity we did not set ourselves: the channel may have sold
        since (a sale whose webhook we have not seen), so orders must be pulled first."""
        seen, pushed = self.listing.last_seen, self.listing.last_pushed
        return seen is not None and self.offered > seen and seen != pushed


def plan_pushes(
    runtime: Runtime, channel_name: str, limit: int = PUSH_BATCH, skip: Collection[int] = ()
) -> tuple[list[PlannedPush], list[str]]:
    """The dirty listings' offered numbers (one set of grouped reads), and the unmapped SKUs;
    none of the listings `skip` (held back earlier in this push)."""
    with runtime.ctx.sessions.begin() as session:
        dirty = listings.dirty(session, channel_name, limit, skip)
        mapped = [d for d in dirty if d.mapped]
        found = offers.push_terms(
            session,
            runtime.config,
            channel_name,
            {d.sku_id: d.sku for d in mapped},
            utc_now().date(),
        )
    planned = [
        PlannedPush(
            d, found[d.sku_id].offered, found[d.sku_id].incoming, found[d.sku_id].expected_on
        )
        for d in mapped
    ]
    return planned, [d.sku for d in dirty if not d.mapped]


def _push_round(runtime: Runtime, channel_name: str, channel: Channel, report: PushReport) -> bool:
    """One round; True when nothing more is left to push."""
    planned, unmapped = plan_pushes(runtime, channel_name, skip=report.held_ids)
    if unmapped:
        _map_listings(runtime, channel_name, channel, unmapped)
        planned, unmapped = plan_pushes(runtime, channel_name, skip=report.held_ids)
    # never lower a live shop's quantity for a SKU never counted, on a channel never adopted
    planned, held = hold_unknown(runtime, channel_name, planned, report.held_ids)
    report.held_unknown += len(held)
    if not planned:
        return not held  # held ones are skipped from now on: read on past them
    deferred: list[PlannedPush] = []
    awaiting = (
        _raises_wait_for(runtime, channel_name)
        if any(p.raises_unexplained for p in planned)
        else None
    )
    if awaiting is not None:
        # Raising over a quantity the channel reached by itself (a sale we may not know yet)
        # waits until every order it may have sold is applied: its stored events first, then
        # a poll that started after it moved. Decreases go out now regardless.
        deferred = [p for p in planned if p.raises_unexplained]
        report.deferred += len(deferred)
        if awaiting == "poll":
            report.followups.polls.add(channel_name)
        # else: applying the stored events asks for a push (and the scheduled push comes)
        planned = [p for p in planned if not p.raises_unexplained]
        if not planned:
            return True
    # Every dirty listing is sent, even when we believe the channel already shows the number:
    # a channel can move by itself (a WooCommerce cancellation restocks), and the connector's
    # compare-and-set (Shopify) or re-read (WooCommerce, which then skips a write that changes
    # nothing) is what finds out.
    report.calls += 1
    attempt = _record_in_flight(runtime, channel_name, channel, planned)
    started = time.monotonic()
    try:
        results = channel.push_offers([offer_push(p) for p in planned])
    except ChannelError as exc:
        # unanswered: its writes stay recorded in flight (they may land late), and are read
        # again once their window has passed
        if channel_auth.skipped(exc):
            return True  # held after an auth error: no call was made, the listings stay dirty
        report.errors += len(planned)
        runtime.metrics.channel_errors.labels(channel_name, exc.code or "error").inc()
        runtime.metrics.pushes.labels(channel_name, "error").inc(len(planned))
        log.warning("push_failed", channel=channel_name, error=str(exc))
        _note_channel_error(runtime, channel_name, str(exc))
        return True  # listings stay dirty; the sweeper retries
    now = utc_now()
    outcomes: list[listings.PushOutcome] = []
    for plan, result in zip(planned, results, strict=True):
        if result.ok:
            outcomes.append(
                listings.PushOutcome(
                    plan.listing, "pushed", plan.offered, external_ids=_page_shown(plan)
                )
            )
            report.pushed += 1
            runtime.metrics.pushes.labels(channel_name, "ok").inc()
            if not plan.listing.held:  # its wait was for a count, not for a push
                _observe_latency(runtime, channel_name, plan.listing.dirty_since, now)
        elif result.error_code in ("CHANGE_FROM_QUANTITY_STALE", "STALE"):
            outcomes.append(listings.PushOutcome(plan.listing, "stale", result.channel_quantity))
            report.stale += 1
            runtime.metrics.pushes.labels(channel_name, "stale").inc()
        elif result.error_code == PAGE_NOT_UPDATED:
            # the quantity landed, the page write failed: what the page shows is not known
            outcomes.append(
                listings.PushOutcome(
                    plan.listing, "error", result.channel_quantity, result.error_code,
                    _page_ids(plan.listing, PAGE_UNKNOWN),
                )
            )  # fmt: skip
            report.errors += 1
            runtime.metrics.pushes.labels(channel_name, "error").inc()
            runtime.metrics.channel_errors.labels(channel_name, PAGE_NOT_UPDATED).inc()
        else:
            outcomes.append(
                listings.PushOutcome(plan.listing, "error", error_code=result.error_code)
            )
            report.errors += 1
            runtime.metrics.pushes.labels(channel_name, "error").inc()
            runtime.metrics.channel_errors.labels(channel_name, result.error_code or "error").inc()
    stale_seen = any(o.kind == "stale" for o in outcomes)
    with runtime.ctx.sessions.begin() as session:
        listings.record_push(session, outcomes, now)
        if attempt is not None:
            inflight.answered(session, attempt)
        if stale_seen:
            channel_state.note_moved(session, channel_name, now)
    kinds = Counter(o.kind for o in outcomes)
    log.info(
        "push_sent",
        channel=channel_name,
        listings=len(outcomes),
        pushed=kinds["pushed"],
        stale=kinds["stale"],
        errors=kinds["error"],
        deferred=len(deferred),
        call_ms=round((time.monotonic() - started) * 1000, 1),
    )
    if stale_seen:
        # The channel sold since we last looked. We now know what it holds: the next round
        # lowers what must come down at once; raises wait until orders explain the gap.
        return False
    return len(planned) + len(deferred) + len(held) < PUSH_BATCH


# What a push remembers of the shop page, in the listing's external ids (issue #17): the
# expected date the last push that landed gave it ("" none), or PAGE_UNKNOWN. A listing
# without it has never had a date from stocksync.
PAGE_KEY = "page_expected_on"
PAGE_UNKNOWN = "?"


def offer_push(plan: PlannedPush) -> OfferPush:
    """The push of one planned listing, with what its page should say and what it shows."""
    shown = str(plan.listing.external_ids.get(PAGE_KEY) or "")
    unknown = shown == PAGE_UNKNOWN
    try:
        shown_on = date.fromisoformat(shown) if shown and not unknown else None
    except ValueError:
        shown_on, unknown = None, True  # not ours to read: write the page anew
    return OfferPush(
        plan.listing.sku,
        plan.offered,
        plan.listing.last_seen,
        incoming=plan.incoming,
        expected_on=plan.expected_on if plan.incoming else None,
        expected_on_shown=shown_on,
        page_unknown=unknown,
    )


def _page_shown(plan: PlannedPush) -> dict[str, Any] | None:
    """The listing's external ids remembering what the landed push gave its page (None when
    that is what they say already)."""
    wanted = plan.expected_on.isoformat() if plan.incoming and plan.expected_on else ""
    return _page_ids(plan.listing, wanted)


def _page_ids(listing: listings.DirtyListing, value: str) -> dict[str, Any] | None:
    if str(listing.external_ids.get(PAGE_KEY) or "") == value:
        return None
    return {**listing.external_ids, PAGE_KEY: value}


def _record_in_flight(
    runtime: Runtime, channel_name: str, channel: Channel, planned: list[PlannedPush]
) -> str | None:
    """On a channel with absolute writes, record the writes about to be sent (committed
    before the call, so a worker killed during it leaves them behind); the attempt's id."""
    window = channel.late_write_window
    if window is None:
        return None
    attempt = uuid.uuid4().hex
    now = utc_now()
    with runtime.ctx.sessions.begin() as session:
        inflight.record_sent(
            session, channel_name, attempt,
            [(p.listing.listing_id, p.offered) for p in planned],
            now, now + timedelta(seconds=window),
        )  # fmt: skip
    return attempt


def _read_after_late_writes(
    runtime: Runtime, channel_name: str, channel: Channel, report: PushReport
) -> None:
    """Listings with writes never answered (a timeout, a killed worker) whose window has
    passed: read what the channel shows now, and push again where it is not what we last
    pushed (an old write that landed after a newer one). Runs under the push lease."""
    now = utc_now()
    with runtime.ctx.sessions.begin() as session:
        unsettled = inflight.due(session, channel_name, now, PUSH_BATCH)
    if not unsettled:
        return
    try:
        found = channel.fetch_listings([u.sku for u in unsettled])
    except channel_auth.ChannelHeld:
        raise
    except ChannelError as exc:
        runtime.metrics.channel_errors.labels(channel_name, exc.code or "error").inc()
        log.warning("late_write_check_failed", channel=channel_name, error=str(exc))
        return  # the rows stay: the next push reads them again
    drifted: list[tuple[int, int, int | None]] = []
    overwritten: list[dict[str, Any]] = []
    for row in unsettled:
        listing = found.get(row.sku)
        if listing is not None and listing.quantity != row.last_pushed:
            drifted.append((row.listing_id, row.sku_id, listing.quantity))
            overwritten.append(
                {"sku": row.sku, "shows": listing.quantity, "pushed": row.last_pushed,
                 "late_write": row.latest_quantity}
            )  # fmt: skip
    with runtime.ctx.sessions.begin() as session:
        listings.mark_drifted(session, drifted, now)
        inflight.forget(session, [row.listing_id for row in unsettled], now)
    report.late_writes += len(drifted)
    if drifted:
        runtime.metrics.late_writes.labels(channel_name).inc(len(drifted))
    log.info(
        "late_writes_checked",
        channel=channel_name,
        checked=len(unsettled),
        overwritten=overwritten,
    )


def _observe_latency(
    runtime: Runtime, channel_name: str, dirty_since: datetime | None, now: datetime
) -> None:
    if dirty_since is not None:
        runtime.metrics.push_latency.labels(channel_name).observe(
            max((now - dirty_since).total_seconds(), 0)
        )


def _raises_wait_for(runtime: Runtime, channel_name: str) -> str | None:
    """None when the ledger knows every order behind the channel's last move of its own: a poll
    started after the move, and the channel's inbox is fully processed. Otherwise what raises
    wait for: "inbox" (events stored, not applied yet: under steady sales a poll per push
    would only re-read them) or "poll"."""
    with runtime.ctx.sessions() as session:
        state = channel_state.get(session, channel_name)
        if state is None or state.moved_at is None:
            return None
        if inbox.waiting(session, channel_name):
            return "inbox"
        if state.last_poll_at is None or state.last_poll_at <= state.moved_at:
            return "poll"
        return None


def _map_listings(runtime: Runtime, channel_name: str, channel: Channel, skus: list[str]) -> None:
    """Find the channel's records of these SKUs and what it shows now."""
    try:
        found = channel.fetch_listings(skus)
    except ChannelError as exc:
        runtime.metrics.channel_errors.labels(channel_name, exc.code or "error").inc()
        _note_channel_error(runtime, channel_name, str(exc))
        raise
    seen: dict[str, tuple[dict[str, Any], int | None] | None] = {}
    for sku in skus:
        listing = found.get(sku)
        seen[sku] = None if listing is None else (dict(listing.external_ids), listing.quantity)
    with runtime.ctx.sessions.begin() as session:
        listings.record_mapping(session, channel_name, seen)


def _note_channel_error(runtime: Runtime, channel_name: str, error: str) -> None:
    with runtime.ctx.sessions.begin() as session:
        channel_state.note_error(session, channel_name, error)
