"""Pools over channels (issue #14): start a pooled SKU's allotments, finish moves whose donor
shop shows its lower number, and plan the next grants and moves (stock.pool_policy).

One ledger transaction per SKU, its stock row locked first (the lock order of orders and
receipts), so a sale and a move of the same SKU never interleave. The pushes that follow carry
the new numbers to the shops; a move is given to its recipient only once the donor's push
landed (and, for a shop with absolute writes, once a poll that began after it was applied: a
sale the write overwrote is then known, and taken out of the move).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from rules import Config, PoolRule, pool_for
from stock import channel_state, counts, inbox, listings, offers, pools
from stock import models as m
from stock.engine import compute_offer
from stock.pool_policy import PoolChannel, PoolInputs, first_allotments, plan
from stock.tx import LedgerTx
from sync.jobs.followups import Followups
from sync.logs import get_logger
from sync.runtime import Runtime

log = get_logger("stocksync.jobs.rebalance")

RATE_WINDOWS = 5  # the sell rate is measured over this many rebalance intervals
MIN_RATE_WINDOW_S = 5.0


@dataclass(frozen=True)
class Pooled:
    sku_id: int
    code: str
    pool: PoolRule


def pooled_skus(session: Session, config: Config) -> list[Pooled]:
    """The ledger's SKUs that have a pool, in sku-id order (the lock order)."""
    rules = config.rules
    if rules.default_pool is None and not any(r.pool is not None for r in rules.sku_rules):
        return []
    found = []
    for sku_id, code in session.execute(select(m.Sku.id, m.Sku.code).order_by(m.Sku.id)).all():
        pool = pool_for(rules, str(code))
        if pool is not None:
            found.append(Pooled(int(sku_id), str(code), pool))
    return found


def pool_channels(runtime: Runtime, pool: PoolRule) -> list[str]:
    """The shops a pool splits over: its weights' channels, else every connected shop."""
    shops = [name for name in runtime.config.channels if name in runtime.channels]
    if pool.weights is not None:
        return [name for name in shops if name in pool.weights]
    return shops


# One rebalance at a time per process, and not again within half an interval: the scheduler
# enqueues one every interval whether or not the last one ran, and a backlog of them would
# make order events and pushes wait behind rebalances that find nothing new to do.
_RUNNING = threading.Lock()
_LAST_DONE = [float("-inf")]


def rebalance(runtime: Runtime, *, spacing_s: float | None = None) -> Followups:
    followups = Followups()
    if not _RUNNING.acquire(blocking=False):
        return followups  # one runs now in this process; the next tick comes soon
    try:
        gap = spacing_s if spacing_s is not None else (rebalance_interval(runtime.config) or 0) / 2
        if time.monotonic() - _LAST_DONE[0] < gap:
            return followups
        try:
            with runtime.ctx.read() as session:
                pooled = pooled_skus(session, runtime.config)
            for item in pooled:
                followups.merge(rebalance_sku(runtime, item))
        finally:
            _LAST_DONE[0] = time.monotonic()
        return followups
    finally:
        _RUNNING.release()


def rebalance_interval(config: Config) -> float | None:
    """The shortest `pool.rebalance_interval_s` of the rules; None without pools."""
    rules = config.rules
    found = [rule.pool for rule in rules.sku_rules if rule.pool is not None]
    if rules.default_pool is not None:
        found.append(rules.default_pool)
    return min((pool.rebalance_interval_s for pool in found), default=None)


def rebalance_sku(runtime: Runtime, item: Pooled) -> Followups:
    channels = pool_channels(runtime, item.pool)
    if not channels:
        return Followups()
    followups = Followups()
    with runtime.ctx.ledger(actor="rebalance") as tx:
        changed = _rebalance(runtime, tx, item, channels, followups)
        if changed:
            listings.mark_dirty(tx, [item.sku_id])
    if changed:
        followups.merge(Followups.of(tx.effects, list(runtime.channels)))
    return followups


def _rebalance(
    runtime: Runtime, tx: LedgerTx, item: Pooled, channels: list[str], followups: Followups
) -> bool:
    counts.lock(tx, [item.sku_id])
    free = _free(runtime, tx, item, channels)
    session = tx.session
    shares = {s.channel: s for s in pools.shares(session, [item.sku_id]).get(item.sku_id, ())}
    if not shares:
        allotments = first_allotments(
            channels, dict(item.pool.weights or {}) or None, max(free - item.pool.reserve, 0)
        )
        pools.start(tx, item.sku_id, item.code, allotments, "first allotments by weight")
        log.info("pool_started", sku=item.code, free=free, allotments=allotments)
        return True
    missing = [c for c in channels if c not in shares]
    if missing:
        pools.add_channels(tx, item.sku_id, missing)
        return True
    changed = _finish_moves(runtime, tx, item, shares, followups)
    if changed:
        shares = _shares(session, item.sku_id)
    absorbed = [
        pools.absorb_sold(tx, item.sku_id, item.code, name, -share.remaining)
        for name, share in shares.items()
        if share.remaining < 0
    ]
    if any(absorbed):
        changed = True
        shares = _shares(session, item.sku_id)
    in_transit = sum(move.units for move in pools.open_moves(session, item.sku_id))
    window = max(RATE_WINDOWS * item.pool.rebalance_interval_s, MIN_RATE_WINDOW_S)
    since = tx.now - timedelta(seconds=window)
    recent = pools.recent_sales(session, item.sku_id, since)
    weights = item.pool.weights or {}
    inputs = PoolInputs(
        free=free,
        reserve=item.pool.reserve,
        in_transit=in_transit,
        channels=tuple(
            PoolChannel(
                name=name,
                remaining=shares[name].remaining,
                rate=sell_rate(
                    recent.get(name),
                    shares[name].remaining,
                    since,
                    window,
                    item.pool.rebalance_interval_s,
                ),
                weight=weights.get(name, 1),
                safe=runtime.channels[name].late_write_window is None,
            )
            for name in channels
        ),
    )
    planned = plan(inputs)
    for grant in planned.grants:
        pools.grant(tx, item.sku_id, item.code, grant)
    for move in planned.moves:
        pools.move(tx, item.sku_id, item.code, move)
    if planned:
        log.info(
            "pool_rebalanced",
            sku=item.code,
            free=free,
            grants=[(g.channel, g.units) for g in planned.grants],
            moves=[(mv.source, mv.target, mv.units) for mv in planned.moves],
        )
        moved = runtime.metrics.pool_units_moved
        for grant in planned.grants:
            if grant.covers_sold:
                continue
            source, target = ("unallocated", grant.channel)
            if grant.units < 0:
                source, target = target, source
            moved.labels(source, target).inc(abs(grant.units))
        for move in planned.moves:
            moved.labels(move.source, move.target).inc(move.units)
    return changed or bool(planned)


def sell_rate(
    sales: pools.RecentSales | None, remaining: int, since: datetime, window: float, every: float
) -> float:
    """Units a second the channel sells. One that sold out sold them in the time it had stock,
    not the whole window: refused buyers leave no trace, so a sold-out shop must not look
    slow (its demand would be moved away the moment it gets units)."""
    if sales is None or sales.units == 0:
        return 0.0
    span = window
    if remaining <= 0:
        span = min(max((sales.last_at - since).total_seconds(), every), window)
    return sales.units / span


def _shares(session: Session, sku_id: int) -> dict[str, pools.Share]:
    return {share.channel: share for share in pools.shares(session, [sku_id])[sku_id]}


def _free(runtime: Runtime, tx: LedgerTx, item: Pooled, channels: Sequence[str]) -> int:
    """Units the ledger can still fill for the pool: the formula's number without the pool and
    its cap, the smallest over the pool's channels (their safety buffers may differ)."""
    figures = offers.locked_figures(tx, [item.sku_id])[item.sku_id]
    today = tx.now.date()
    free = None
    for name in channels:
        rule = tx.rules.rule_for(name, item.code)
        inputs = figures.offer(rule, today).inputs
        base = compute_offer(inputs)
        units = base.sellable_now + max(base.incoming_capacity, 0) - inputs.safety_buffer
        free = units if free is None else min(free, units)
    return max(free or 0, 0)


def _finish_moves(
    runtime: Runtime,
    tx: LedgerTx,
    item: Pooled,
    shares: dict[str, pools.Share],
    followups: Followups,
) -> bool:
    changed = False
    for move in pools.open_moves(tx.session, item.sku_id):
        if not _donor_shows_less(runtime, tx.session, item.sku_id, move, followups):
            continue
        donor = shares.get(move.source)
        given = pools.complete_move(
            tx, item.sku_id, item.code, move, donor.remaining if donor else 0
        )
        log.info(
            "pool_move_given", sku=item.code, source=move.source, target=move.target,
            units=move.units, given=given,
        )  # fmt: skip
        changed = True
    return changed


def _donor_shows_less(
    runtime: Runtime, session: Session, sku_id: int, move: pools.OpenMove, followups: Followups
) -> bool:
    """The donor's push since the move landed and nothing changed after it; on a shop with
    absolute writes also: no write of it unanswered, and a poll begun after it applied."""
    listing = session.execute(
        select(m.Listing.id, m.Listing.dirty, m.Listing.pushed_at).where(
            m.Listing.channel == move.source, m.Listing.sku_id == sku_id
        )
    ).one_or_none()
    if listing is None:
        return True  # the shop does not sell it: nothing to shrink there
    listing_id, dirty, pushed_at = listing
    if dirty or pushed_at is None or pushed_at < move.created_at:
        return False
    channel = runtime.channels.get(move.source)
    if channel is None or channel.late_write_window is None:
        return True
    unanswered = session.scalar(
        select(func.count())
        .select_from(m.PushInFlight)
        .where(m.PushInFlight.listing_id == listing_id)
    )
    if unanswered:
        return False
    state = channel_state.get(session, move.source)
    polled: datetime | None = state.last_poll_at if state is not None else None
    if polled is None or polled <= pushed_at:
        followups.polls.add(move.source)
        return False
    return not inbox.waiting(session, move.source)
