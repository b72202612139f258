"""The daemon's operations, each one job: ingest, process, push, write back, poll, sweep, reconcile.

Every operation takes ids, reads fresh state, does its database work in explicit transactions
(never open across channel I/O), and returns the follow-up jobs to enqueue *after* commit.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session

from connectors.base import (
    BackorderHold,
    Channel,
    ChannelError,
    OfferPush,
    PayloadError,
    WebhookRejected,
)
from stock import models as m
from stock.ledger import Ledger, Outcome
from sync.logs import get_logger
from sync.mapping import to_order_input
from sync.runtime import Runtime

log = get_logger("stocksync.service")

PUSH_BATCH = 1000  # listings per push round; the connector splits into API-sized calls
PUSH_LEASE = timedelta(seconds=60)


@dataclass
class Followups:
    """Jobs to enqueue after the transaction that made them necessary has committed."""

    events: list[int] = field(default_factory=list)
    pushes: set[str] = field(default_factory=set)
    writebacks: set[int] = field(default_factory=set)  # writeback row ids
    polls: set[str] = field(default_factory=set)
    releases: set[str] = field(default_factory=set)  # SKU codes

    def add_outcome(self, runtime: Runtime, outcome: Outcome, ledger: Ledger) -> None:
        if outcome.dirty_skus:
            self.pushes |= set(runtime.channels)
        orders = ledger.touched_orders
        if orders:
            ids = ledger.session.scalars(
                select(m.Writeback.id).where(m.Writeback.order_id.in_(orders))
            )
            self.writebacks |= set(ids)

    def merge(self, other: Followups) -> None:
        self.events.extend(other.events)
        self.pushes |= other.pushes
        self.writebacks |= other.writebacks
        self.polls |= other.polls
        self.releases |= other.releases


def _now() -> datetime:
    return datetime.now(UTC)


def _insert(session: Session) -> Any:
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


# ------------------------------------------------------------------------------ ingest
@dataclass(frozen=True)
class Ingested:
    status: int  # HTTP status to answer
    outcome: str  # stored, duplicate, rejected, ping
    event_id: int | None = None
    reason: str = ""


def ingest_webhook(
    runtime: Runtime, channel_name: str, headers: Mapping[str, str], body: bytes
) -> Ingested:
    """Verify, store in the inbox, commit. No channel I/O: the channel waits for our 200."""
    channel = runtime.channels.get(channel_name)
    if channel is None:
        return Ingested(404, "rejected", reason=f"no connected channel {channel_name!r}")
    try:
        event = channel.verify_webhook(headers, body)
    except WebhookRejected as exc:
        return Ingested(exc.status, "rejected", reason=exc.reason)
    if event is None:
        return Ingested(200, "ping")
    event_id = store_event(runtime, channel_name, event.event_key, event.topic, event.body)
    if event_id is None:
        return Ingested(200, "duplicate")
    return Ingested(200, "stored", event_id)


def store_event(
    runtime: Runtime, channel: str, event_key: str, topic: str, body: bytes
) -> int | None:
    """Insert into the inbox; None when this event key was stored before (a duplicate)."""
    with runtime.ctx.sessions.begin() as session:
        stmt = (
            _insert(session)(m.InboxEvent)
            .values(
                channel=channel,
                event_key=event_key[:255],
                topic=topic[:128],
                body=body,
                received_at=_now(),
                attempts=0,
            )
            .on_conflict_do_nothing(index_elements=["channel", "event_key"])
            .returning(m.InboxEvent.id)
        )
        found = session.scalar(stmt)
        return int(found) if found is not None else None


# ------------------------------------------------------------------------------ process
DRAIN_BATCH = 25  # later inbox events applied in the same transaction as the one asked for


def is_transient(exc: BaseException) -> bool:
    """One place that says which failures are worth a retry."""
    if isinstance(exc, ChannelError):
        return exc.retryable
    if isinstance(exc, OperationalError | RedisError | ConnectionError | TimeoutError):
        return True
    if isinstance(exc, IntegrityError):
        return True  # a concurrent writer inserted the same row first: a retry sees it
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def process_event(runtime: Runtime, event_id: int, *, drain: bool = True) -> Followups:
    """Apply one inbox event to the ledger, in one transaction with marking it processed.

    With `drain`, up to DRAIN_BATCH later pending events ride along in the same transaction
    (each in a savepoint): in a burst, one lock and one commit serve many orders, and the jobs
    of the drained events find them done.
    """
    followups = Followups()
    with runtime.ctx.ledger(actor="worker") as ledger:
        session = ledger.session
        event = session.get(m.InboxEvent, event_id, with_for_update=True)
        if event is None or event.processed_at is not None:
            return followups  # processing twice = once
        _apply_event(runtime, ledger, event, followups)
        if not drain:
            return followups
        others = session.scalars(
            select(m.InboxEvent)
            .where(
                m.InboxEvent.processed_at.is_(None),
                m.InboxEvent.error.is_(None),
                m.InboxEvent.id != event_id,
            )
            .order_by(m.InboxEvent.id)
            .limit(DRAIN_BATCH)
            .with_for_update(skip_locked=True)
        ).all()
        for other in others:
            try:
                with session.begin_nested():
                    _apply_event(runtime, ledger, other, followups)
            except Exception as exc:
                if is_transient(exc):
                    raise
                # its own job applies it alone and records the failure there
                log.warning("drain_skipped", event_id=other.id, error=repr(exc))
    return followups


def _apply_event(
    runtime: Runtime, ledger: Ledger, event: m.InboxEvent, followups: Followups
) -> None:
    channel = runtime.channels.get(event.channel)
    event.attempts += 1
    if channel is None:
        event.error = f"channel {event.channel!r} is no longer configured"
        runtime.metrics.events.labels(event.channel, "failed").inc()
        return
    try:
        order = channel.parse_order(event.topic, event.body)
    except PayloadError as exc:
        # permanent: keep it visible in the exception queue (status, `stocksync inbox`)
        event.error = str(exc)
        runtime.metrics.events.labels(event.channel, "failed").inc()
        log.warning("event_unparseable", event_id=event.id, error=str(exc))
        return
    outcome = ledger.record_order(to_order_input(order, event.channel))
    event.processed_at = ledger.now
    event.error = None
    runtime.metrics.events.labels(event.channel, "applied" if outcome.applied else "stale").inc()
    followups.add_outcome(runtime, outcome, ledger)


def reset_event(runtime: Runtime, event_id: int) -> None:
    """Give a failed event a fresh start (operator's retry after a fix)."""
    with runtime.ctx.sessions.begin() as session:
        event = session.get(m.InboxEvent, event_id)
        if event is not None and event.processed_at is None:
            event.error = None
            event.attempts = 0


def record_event_failure(runtime: Runtime, event_id: int, error: str) -> None:
    """A failure that retrying will not fix: the event joins the visible exception queue."""
    with runtime.ctx.sessions.begin() as session:
        event = session.get(m.InboxEvent, event_id)
        if event is not None and event.processed_at is None:
            event.error = error[:2000]
            event.attempts += 1


# ------------------------------------------------------------------------------ receipts
def receive_purchase_order(runtime: Runtime, ref: str, lines: Mapping[str, int]) -> Followups:
    """Book the units now; a worker releases backorders with them (job `release`)."""
    followups = Followups()
    with runtime.ctx.ledger(actor="api") as ledger:
        outcome = ledger.receive_po(ref, lines, release=False)
        followups.add_outcome(runtime, outcome, ledger)
    followups.releases |= set(lines)
    return followups


def release_skus(runtime: Runtime, codes: list[str]) -> Followups:
    """Fill open backorders of these SKUs in the configured order, in one transaction."""
    followups = Followups()
    with runtime.ctx.ledger(actor="worker") as ledger:
        outcome = ledger.release_codes(codes)
        followups.add_outcome(runtime, outcome, ledger)
        if outcome.released:
            log.info("released", units=sum(r.qty for r in outcome.released), skus=codes)
    return followups


# ------------------------------------------------------------------------------ push
def push_lease_owner() -> str:
    """`<random>@<pid>@<host>`: unique per push, and says which local process holds a lease."""
    return f"{uuid.uuid4().hex[:16]}@{os.getpid()}@{socket.gethostname()}"[:64]


def _owner_parts(owner: str | None) -> tuple[str, int, str] | None:
    parts = (owner or "").split("@", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return None  # an owner written by another version
    return parts[0], int(parts[1]), parts[2]


def _holder_is_dead(owner: str | None) -> bool:
    """A lease held by a process of this host that no longer runs (SIGKILL, OOM): without
    this, every push of the channel would wait out the lease after a worker crash."""
    holder, mine = _owner_parts(owner), _owner_parts(push_lease_owner())
    if holder is None or mine is None or holder[2] != mine[2]:
        return False  # another host's process: we cannot tell, the lease expiry decides
    try:
        os.kill(holder[1], 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # it exists, as another user
    return False


def _acquire_push_lease(runtime: Runtime, channel: str, owner: str) -> bool:
    now = _now()
    with runtime.ctx.sessions.begin() as session:
        stmt = _insert(session)(m.ChannelState).values(channel=channel)
        session.execute(stmt.on_conflict_do_nothing(index_elements=["channel"]))
        taken = session.execute(
            update(m.ChannelState)
            .where(
                m.ChannelState.channel == channel,
                (m.ChannelState.push_lease_until.is_(None))
                | (m.ChannelState.push_lease_until < now)
                | (m.ChannelState.push_lease_owner == owner),
            )
            .values(push_lease_owner=owner, push_lease_until=now + PUSH_LEASE)
        )
        if taken.rowcount:  # type: ignore[attr-defined]
            return True
        holder = session.scalar(
            select(m.ChannelState.push_lease_owner).where(m.ChannelState.channel == channel)
        )
        if not _holder_is_dead(holder):
            return False
        log.warning("push_lease_taken_over", channel=channel, dead_owner=holder)
        stolen = session.execute(
            update(m.ChannelState)
            .where(m.ChannelState.channel == channel, m.ChannelState.push_lease_owner == holder)
            .values(push_lease_owner=owner, push_lease_until=now + PUSH_LEASE)
        )
        return bool(stolen.rowcount)  # type: ignore[attr-defined]


def _release_push_lease(runtime: Runtime, channel: str, owner: str) -> None:
    with runtime.ctx.sessions.begin() as session:
        session.execute(
            update(m.ChannelState)
            .where(m.ChannelState.channel == channel, m.ChannelState.push_lease_owner == owner)
            .values(push_lease_owner=None, push_lease_until=None)
        )


@dataclass
class PushReport:
    busy: bool = False  # another pusher holds the channel: try again shortly
    pushed: int = 0
    unchanged: int = 0
    stale: int = 0
    errors: int = 0
    calls: int = 0
    deferred: int = 0  # raises held back until orders explain the channel's quantity
    followups: Followups = field(default_factory=Followups)


def push_channel(runtime: Runtime, channel_name: str) -> PushReport:
    """Push offered quantities of dirty listings: changed numbers only, decreases first."""
    report = PushReport()
    channel = runtime.channels.get(channel_name)
    if channel is None:
        return report
    owner = push_lease_owner()
    if not _acquire_push_lease(runtime, channel_name, owner):
        report.busy = True
        return report
    try:
        for _round in range(50):  # bounded: a channel that keeps failing waits for the sweeper
            done = _push_round(runtime, channel_name, channel, report)
            if done:
                break
    finally:
        _release_push_lease(runtime, channel_name, owner)
    return report


@dataclass(frozen=True)
class _Planned:
    listing_id: int
    sku: str
    offered: int
    last_seen: int | None
    last_pushed: int | None
    dirty_since: datetime | None
    dirty_version: int

    @property
    def raises_unexplained(self) -> bool:
        """A raise over a channel quantity we did not set ourselves: the channel may have sold
        since (a sale whose webhook we have not seen), so orders must be pulled first."""
        return (
            self.last_seen is not None
            and self.offered > self.last_seen
            and self.last_seen != self.last_pushed
        )


def _push_round(runtime: Runtime, channel_name: str, channel: Channel, report: PushReport) -> bool:
    """One round; True when nothing more is left to push."""
    planned, unmapped = _plan_pushes(runtime, channel_name)
    if unmapped:
        _map_listings(runtime, channel_name, channel, unmapped)
        planned, unmapped = _plan_pushes(runtime, channel_name)
    if not planned:
        return True
    if any(p.raises_unexplained for p in planned) and not _explained_by_poll(runtime, channel_name):
        # Raising over a quantity the channel reached by itself (a sale we may not know yet)
        # waits for a poll that finished after it moved; decreases go out now regardless.
        deferred = [p for p in planned if p.raises_unexplained]
        report.deferred += len(deferred)
        report.followups.polls.add(channel_name)
        planned = [p for p in planned if not p.raises_unexplained]
        if not planned:
            return True
    else:
        deferred = []
    # Every dirty listing is sent, even when we believe the channel already shows the number:
    # a channel can move by itself (a WooCommerce cancellation restocks), and the connector's
    # compare-and-set (Shopify) or re-read (WooCommerce, which then skips a write that changes
    # nothing) is what finds out.
    to_send = planned
    unchanged: list[_Planned] = []
    results = []
    if to_send:
        report.calls += 1
        try:
            results = channel.push_offers(
                [OfferPush(p.sku, p.offered, p.last_seen) for p in to_send]
            )
        except ChannelError as exc:
            report.errors += len(to_send)
            runtime.metrics.channel_errors.labels(channel_name, exc.code or "error").inc()
            runtime.metrics.pushes.labels(channel_name, "error").inc(len(to_send))
            log.warning("push_failed", channel=channel_name, error=str(exc))
            _note_channel_error(runtime, channel_name, str(exc))
            return True  # listings stay dirty; the sweeper retries
    now = _now()
    stale_seen = False
    with runtime.ctx.sessions.begin() as session:
        for plan in unchanged:
            _mark_clean(session, plan, plan.offered, now)
            report.unchanged += 1
        for plan, result in zip(to_send, results, strict=True):
            if result.ok:
                _mark_clean(session, plan, plan.offered, now, pushed=True)
                report.pushed += 1
                runtime.metrics.pushes.labels(channel_name, "ok").inc()
                if plan.dirty_since is not None:
                    runtime.metrics.push_latency.labels(channel_name).observe(
                        max((now - plan.dirty_since).total_seconds(), 0)
                    )
            elif result.error_code in ("CHANGE_FROM_QUANTITY_STALE", "STALE"):
                stale_seen = True
                _note_moved(session, channel_name, now)
                report.stale += 1
                runtime.metrics.pushes.labels(channel_name, "stale").inc()
                session.execute(
                    update(m.Listing)
                    .where(m.Listing.id == plan.listing_id)
                    .values(last_seen=result.channel_quantity)
                )
            else:
                report.errors += 1
                runtime.metrics.pushes.labels(channel_name, "error").inc()
                runtime.metrics.channel_errors.labels(
                    channel_name, result.error_code or "error"
                ).inc()
                session.execute(
                    update(m.Listing)
                    .where(m.Listing.id == plan.listing_id)
                    # a SKU the channel does not sell stops being pushed; other errors retry
                    .values(dirty=result.error_code != "UNKNOWN_SKU")
                )
    if stale_seen:
        # The channel sold since we last looked. We now know what it holds: the next round
        # lowers what must come down at once; raises wait until orders explain the gap.
        return False
    return len(planned) + len(deferred) < PUSH_BATCH


def _explained_by_poll(runtime: Runtime, channel_name: str) -> bool:
    """True when the ledger knows every order behind the channel's last move of its own: a poll
    started after the move, and the channel's inbox is fully processed."""
    with runtime.ctx.sessions() as session:
        state = session.get(m.ChannelState, channel_name)
        if state is None or state.moved_at is None:
            return True
        if state.last_poll_at is None or state.last_poll_at <= state.moved_at:
            return False
        waiting = session.scalar(
            select(func.count())
            .select_from(m.InboxEvent)
            .where(
                m.InboxEvent.channel == channel_name,
                m.InboxEvent.processed_at.is_(None),
                m.InboxEvent.error.is_(None),
            )
        )
        return not waiting


def _note_moved(session: Session, channel_name: str, now: datetime) -> None:
    session.execute(
        update(m.ChannelState).where(m.ChannelState.channel == channel_name).values(moved_at=now)
    )


def _mark_clean(
    session: Session, plan: _Planned, quantity: int, now: datetime, *, pushed: bool = False
) -> None:
    # an unchanged listing holds what we want: count that as our number (last_pushed), so a
    # later raise over it needs no pull, while pushed_at still says when we last wrote
    values: dict[str, Any] = {
        "dirty": False,
        "dirty_since": None,
        "last_seen": quantity,
        "last_pushed": quantity,
    }
    if pushed:
        values |= {"pushed_at": now}
    # only if no change arrived since we computed the offer (it would have bumped the version)
    session.execute(
        update(m.Listing)
        .where(m.Listing.id == plan.listing_id, m.Listing.dirty_version == plan.dirty_version)
        .values(**values)
    )
    if pushed:  # a push that landed updates last_pushed even when the listing was re-dirtied
        session.execute(
            update(m.Listing)
            .where(m.Listing.id == plan.listing_id)
            .values(last_pushed=quantity, pushed_at=now, last_seen=quantity)
        )


def _plan_pushes(runtime: Runtime, channel_name: str) -> tuple[list[_Planned], list[str]]:
    planned: list[_Planned] = []
    unmapped: list[str] = []
    with runtime.ctx.ledger(actor="push") as ledger:
        rows = ledger.session.execute(
            select(m.Listing, m.Sku.code)
            .join(m.Sku, m.Sku.id == m.Listing.sku_id)
            .where(m.Listing.channel == channel_name, m.Listing.dirty.is_(True))
            .order_by(m.Listing.dirty_since, m.Listing.id)
            .limit(PUSH_BATCH)
        ).all()
        for listing, code in rows:
            if not listing.external_ids:
                unmapped.append(code)
                continue
            offered, _terms = ledger.offer(channel_name, code)
            planned.append(
                _Planned(
                    listing.id,
                    code,
                    offered,
                    listing.last_seen,
                    listing.last_pushed,
                    listing.dirty_since,
                    listing.dirty_version,
                )
            )
    return planned, unmapped


def _map_listings(runtime: Runtime, channel_name: str, channel: Channel, skus: list[str]) -> None:
    """Find the channel's records of these SKUs and what it shows now."""
    try:
        found = channel.fetch_listings(skus)
    except ChannelError as exc:
        runtime.metrics.channel_errors.labels(channel_name, exc.code or "error").inc()
        _note_channel_error(runtime, channel_name, str(exc))
        raise
    with runtime.ctx.sessions.begin() as session:
        codes = dict(
            session.execute(select(m.Sku.code, m.Sku.id).where(m.Sku.code.in_(skus))).all()
        )
        for sku in skus:
            listing = found.get(sku)
            values: dict[str, Any]
            if listing is None:
                # the channel does not sell this SKU: nothing to push until it does
                values = {"dirty": False, "dirty_since": None, "external_ids": {}}
            else:
                values = {"external_ids": dict(listing.external_ids), "last_seen": listing.quantity}
            session.execute(
                update(m.Listing)
                .where(m.Listing.channel == channel_name, m.Listing.sku_id == codes[sku])
                .values(**values)
            )


def _note_channel_error(runtime: Runtime, channel_name: str, error: str) -> None:
    with runtime.ctx.sessions.begin() as session:
        session.execute(
            update(m.ChannelState)
            .where(m.ChannelState.channel == channel_name)
            .values(last_error=error[:2000])
        )


# ------------------------------------------------------------------------------ write-back
# Key in `channel_order.backorder_hold` written before a job talks to the channel: until the job
# records what the channel holds, that is unknown (a killed job may have placed or lifted a hold).
UNSURE = "?"  # key in backorder_hold: a job died mid-call; its value is when (epoch seconds)
# A call sent by a job that then died may still land after the next job's lift: a write-back
# that found such a mark repeats (via the sweeper) until this long after the mark.
IN_FLIGHT_GRACE_S = 5


def _merge(*holds: Mapping[str, int]) -> dict[str, int]:
    merged: dict[str, int] = {}
    for hold in holds:
        for line, units in hold.items():
            if line != UNSURE:
                merged[line] = max(merged.get(line, 0), units)
    return merged


def write_back(runtime: Runtime, writeback_id: int) -> Followups:
    """Bring the channel's hold for one order to the ledger's backorders (target state).

    Write-backs of one order run one at a time (`order_mutex`), so a release is never
    overtaken by an older hold still on its way to the channel.
    """
    with runtime.ctx.sessions() as session:
        row = session.get(m.Writeback, writeback_id)
        order_id = row.order_id if row is not None else None
    if order_id is None:
        return Followups()
    with runtime.order_mutex(order_id):
        return _write_back_locked(runtime, writeback_id)


def _write_back_locked(runtime: Runtime, writeback_id: int) -> Followups:
    with runtime.ctx.sessions.begin() as session:
        row = session.get(m.Writeback, writeback_id)
        if row is None or row.status != "pending":
            return Followups()
        order = session.get(m.ChannelOrder, row.order_id)
        if order is None:
            raise LookupError(f"writeback {writeback_id}: order {row.order_id} is gone")
        version = row.version
        channel_name = row.channel
        order_id = order.id
        external_id = order.external_id
        recorded = dict(order.backorder_hold or {})
        desired: dict[str, int] = {}
        if order.status == "open":
            for line in order.lines:
                units = session.scalar(
                    select(func.coalesce(func.sum(m.Backorder.qty_open), 0)).where(
                        m.Backorder.order_line_id == line.id
                    )
                )
                if units:
                    desired[line.external_line_id] = int(units)
        order_open = order.status == "open"
        # an order that ever waited is checked on the channel when it waits no more
        had_backorders = bool(
            session.scalar(
                select(func.count())
                .select_from(m.Backorder)
                .join(m.OrderLine, m.OrderLine.id == m.Backorder.order_line_id)
                .where(m.OrderLine.order_id == order.id)
            )
        )
    held = _merge(recorded)
    unsure = UNSURE in recorded
    channel = runtime.channels.get(channel_name)
    if channel is None:
        _finish_writeback(
            runtime, writeback_id, version, recorded, recorded, error="channel not configured"
        )
        return Followups()
    verify_release = order_open and not desired and had_backorders
    if desired == held and not unsure and not verify_release:
        again = _finish_writeback(runtime, writeback_id, version, recorded, desired)
        return Followups(writebacks={writeback_id}) if again else Followups()
    ahead = _write_ahead(runtime, order_id, held, desired)
    lift: dict[str, int] = {}
    if order_open:
        # after a job died mid-call the channel may hold any of these lines: lift them all
        lift = _merge(held, desired) if unsure else held
        if lift or verify_release:
            # released in part or whole: lift our hold (nothing waits: every hold of ours,
            # recorded or not), then hold what still waits
            channel.release_backorder(BackorderHold(external_id, {} if verify_release else lift))
        if desired:
            channel.hold_backorder(BackorderHold(external_id, desired))
    # a cancelled or fulfilled order's holds end with it on the channel
    died_at = recorded.get(UNSURE)
    if died_at is None and order_open and lift:
        # a hold was just lifted: check once more after the grace, in case a hold call still
        # on its way (a slow or dead job's) lands after our release
        died_at = int(time.time())
    linger = died_at is not None and time.time() - died_at < IN_FLIGHT_GRACE_S
    again = _finish_writeback(
        runtime, writeback_id, version, ahead, desired, talked=True,
        linger_mark=died_at if linger else None,
    )  # fmt: skip
    log.info("write_back", channel=channel_name, order=external_id, held=desired)
    # another job wrote to the channel meanwhile: go again from fresh state
    return Followups(writebacks={writeback_id}) if again else Followups()


def _write_ahead(
    runtime: Runtime, order_id: int, held: dict[str, int], desired: dict[str, int]
) -> dict[str, int]:
    """Before talking to the channel, record that what it holds is unknown (up to these lines),
    so that if this process dies mid-call the next job lifts whatever it may have left."""
    with runtime.ctx.sessions.begin() as session:
        order = session.get(m.ChannelOrder, order_id, with_for_update=True)
        if order is None:
            raise LookupError(f"order {order_id} is gone")
        ahead = {**_merge(order.backorder_hold or {}, held, desired), UNSURE: int(time.time())}
        order.backorder_hold = ahead
    return ahead


def _finish_writeback(
    runtime: Runtime,
    writeback_id: int,
    version: int,
    read_hold: dict[str, int],
    new_hold: dict[str, int],
    *,
    talked: bool = False,
    error: str = "",
    linger_mark: int | None = None,
) -> bool:
    """Record what the channel now holds; True when the order must be written back again.

    Two jobs of one order can overlap (one per ledger change, plus the sweeper's): a job that
    read an older version, or whose view of the channel's hold was replaced by another job while
    it ran, may have left the channel out of date (a hold placed after its release), so the row
    stays pending and goes again, until a pass sees no concurrent change.
    """
    now = _now()
    with runtime.ctx.sessions.begin() as session:
        row = session.get(m.Writeback, writeback_id, with_for_update=True)
        if row is None:
            return False
        order = session.get(m.ChannelOrder, row.order_id, with_for_update=True)
        current = dict(order.backorder_hold or {}) if order is not None else {}
        raced = current != read_hold
        if order is not None and not raced:
            order.backorder_hold = new_hold or None
            if linger_mark is not None:
                # a dead job's call may still land: keep the mark, and every line that may be
                # held, so a later pass lifts them again
                order.backorder_hold = {**_merge(read_hold, new_hold), UNSURE: linger_mark}
        elif order is not None and talked:
            # another job talked to the channel meanwhile: which call landed last is unknown
            order.backorder_hold = {**_merge(current, new_hold), UNSURE: 1}
        again = False
        if error:
            row.status = "failed"
            row.error = error
        elif linger_mark is not None and not raced:
            row.status = "pending"  # the sweeper runs it again once the grace has passed
        elif row.version == version and not raced:
            row.status = "done"
            row.done_at = now
            row.error = None
        else:
            row.status = "pending"
            again = True
        row.updated_at = now
    return again


def record_writeback_failure(
    runtime: Runtime, writeback_id: int, error: str, *, permanent: bool = False
) -> None:
    """Count a failed attempt; a permanent failure stops retries and shows in `status`."""
    with runtime.ctx.sessions.begin() as session:
        row = session.get(m.Writeback, writeback_id)
        if row is not None:
            row.attempts += 1
            row.error = error[:2000]
            row.updated_at = _now()
            if permanent:
                row.status = "failed"


# ------------------------------------------------------------------------------ poll
def poll_channel(runtime: Runtime, channel_name: str, *, process_inline: bool = False) -> Followups:
    """Pull orders updated since the watermark (minus an overlap) into the inbox."""
    followups = Followups()
    channel = runtime.channels.get(channel_name)
    if channel is None:
        return followups
    overlap = timedelta(seconds=runtime.config.daemon.poll_overlap_s)
    with runtime.ctx.sessions.begin() as session:
        state = session.get(m.ChannelState, channel_name)
        watermark = state.poll_watermark if state and state.poll_watermark else None
    since = (watermark - overlap) if watermark else datetime(2000, 1, 1, tzinfo=UTC)
    started = _now()  # what the channel held from here on is in what we pull
    newest = watermark
    stored: list[int] = []
    for polled in channel.pull_orders(since):
        event_id = store_event(runtime, channel_name, polled.event_key, "poll/order", polled.body)
        if event_id is not None:
            stored.append(event_id)
        if newest is None or polled.order.updated_at > newest:
            newest = polled.order.updated_at
    now = _now()
    with runtime.ctx.sessions.begin() as session:
        stmt = _insert(session)(m.ChannelState).values(channel=channel_name)
        session.execute(stmt.on_conflict_do_nothing(index_elements=["channel"]))
        session.execute(
            update(m.ChannelState)
            .where(m.ChannelState.channel == channel_name)
            .values(poll_watermark=newest, last_poll_at=started)
        )
    if newest is not None:
        runtime.metrics.poll_lag.labels(channel_name).set((now - newest).total_seconds())
    if process_inline:
        for event_id in stored:
            followups.merge(process_event(runtime, event_id))
    else:
        followups.events.extend(stored)
    return followups


# ------------------------------------------------------------------------------ sweep
def sweep(runtime: Runtime) -> Followups:
    """Re-enqueue work left pending (a killed worker's message, a failed push, a lost job)."""
    age = timedelta(seconds=runtime.config.daemon.sweep_age_s)
    cutoff = _now() - age
    followups = Followups()
    with runtime.ctx.sessions.begin() as session:
        followups.events.extend(
            session.scalars(
                select(m.InboxEvent.id)
                .where(
                    m.InboxEvent.processed_at.is_(None),
                    # failed ones form the exception queue: an operator retries them
                    m.InboxEvent.error.is_(None),
                    m.InboxEvent.received_at < cutoff,
                )
                .order_by(m.InboxEvent.id)
                .limit(5000)
            )
        )
        followups.pushes |= set(
            session.scalars(
                select(m.Listing.channel)
                .where(m.Listing.dirty.is_(True), m.Listing.dirty_since < cutoff)
                .distinct()
            )
        )
        followups.writebacks |= set(
            session.scalars(
                select(m.Writeback.id).where(
                    m.Writeback.status == "pending", m.Writeback.updated_at < cutoff
                )
            )
        )
        followups.writebacks |= _stale_holds(session, cutoff)
        _refresh_gauges(runtime, session)
    # a release that died with its worker (or never got enqueued) is due again
    with runtime.ctx.ledger(actor="sweeper") as ledger:
        followups.releases |= set(ledger.releasable_skus())
    return followups


HOLD_CHECK_WINDOW = timedelta(minutes=10)


def _stale_holds(session: Session, cutoff: datetime) -> set[int]:
    """Recently finished write-backs whose recorded hold no longer matches the ledger's open
    backorders (a change that did not reach the outbox): set pending again, to be redone."""
    rows = session.execute(
        select(m.Writeback, m.ChannelOrder)
        .join(m.ChannelOrder, m.ChannelOrder.id == m.Writeback.order_id)
        .where(
            m.Writeback.status == "done",
            m.Writeback.done_at < cutoff,
            m.Writeback.done_at > cutoff - HOLD_CHECK_WINDOW,
        )
    ).all()
    stale: set[int] = set()
    for row, order in rows:
        open_units = dict(
            session.execute(
                select(m.OrderLine.external_line_id, func.sum(m.Backorder.qty_open))
                .join(m.Backorder, m.Backorder.order_line_id == m.OrderLine.id)
                .where(m.OrderLine.order_id == order.id, m.Backorder.qty_open > 0)
                .group_by(m.OrderLine.external_line_id)
            ).all()
        )
        want = {str(k): int(v) for k, v in open_units.items()} if order.status == "open" else {}
        if _merge(order.backorder_hold or {}) != want:
            row.status = "pending"
            row.version += 1
            stale.add(row.id)
    return stale


def _refresh_gauges(runtime: Runtime, session: Session) -> None:
    metrics = runtime.metrics

    def count(query: Any) -> int:
        return int(session.scalar(query) or 0)

    metrics.inbox_pending.set(
        count(
            select(func.count())
            .select_from(m.InboxEvent)
            .where(m.InboxEvent.processed_at.is_(None), m.InboxEvent.error.is_(None))
        )
    )
    metrics.inbox_failed.set(
        count(
            select(func.count())
            .select_from(m.InboxEvent)
            .where(m.InboxEvent.processed_at.is_(None), m.InboxEvent.error.is_not(None))
        )
    )
    metrics.backorders_open.set(
        count(select(func.count()).select_from(m.Backorder).where(m.Backorder.qty_open > 0))
    )
    metrics.backorders_beyond.set(
        count(
            select(func.count())
            .select_from(m.Backorder)
            .where(m.Backorder.qty_open > 0, m.Backorder.accepted_within_capacity.is_(False))
        )
    )
    for channel in runtime.channels:
        metrics.listings_dirty.labels(channel).set(
            count(
                select(func.count())
                .select_from(m.Listing)
                .where(m.Listing.channel == channel, m.Listing.dirty.is_(True))
            )
        )


# ------------------------------------------------------------------------------ reconcile
@dataclass
class Drift:
    sku: str
    ours: int | None
    channel: int | None


def reconcile_channel(runtime: Runtime, channel_name: str) -> tuple[list[Drift], Followups]:
    """Compare the channel's quantities with what we last pushed; re-push what drifted."""
    followups = Followups()
    channel = runtime.channels.get(channel_name)
    if channel is None:
        return [], followups
    with runtime.ctx.sessions.begin() as session:
        rows = session.execute(
            select(m.Listing.id, m.Sku.code, m.Listing.last_pushed, m.Listing.last_seen)
            .join(m.Sku, m.Sku.id == m.Listing.sku_id)
            .where(m.Listing.channel == channel_name, m.Listing.external_ids != {})
        ).all()
    current = channel.fetch_listings([row.code for row in rows])
    drifts: list[Drift] = []
    now = _now()
    with runtime.ctx.sessions.begin() as session:
        for listing_id, code, pushed, seen in rows:
            found = current.get(code)
            # what the channel should show: our last push, else what we last read there
            expected = pushed if pushed is not None else seen
            theirs = found.quantity if found else None
            if found is None or expected is None or theirs == expected:
                continue
            drifts.append(Drift(code, expected, theirs))
            session.execute(
                update(m.Listing)
                .where(m.Listing.id == listing_id)
                .values(
                    last_seen=theirs,
                    dirty=True,
                    dirty_since=now,
                    dirty_version=m.Listing.dirty_version + 1,
                )
            )
        session.add(
            m.AuditEntry(
                at=now,
                actor="reconcile",
                action="reconcile",
                subject=channel_name,
                detail={"drift": [d.__dict__ for d in drifts], "checked": len(rows)},
            )
        )
    runtime.metrics.drift.labels(channel_name).set(
        sum(abs((d.channel or 0) - (d.ours or 0)) for d in drifts)
    )
    if drifts:
        # a sale we have not seen explains most drift: learn orders first, then fix the numbers
        followups.merge(poll_channel(runtime, channel_name, process_inline=True))
        followups.pushes.add(channel_name)
    return drifts, followups
