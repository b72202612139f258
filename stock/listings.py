"""Listings (`listing`): a SKU as one channel sells it, and its push state; the only writer.

The state machine: a ledger change marks a listing dirty and bumps `dirty_version`; a push plans
the dirty ones, and marks one clean only for the version it computed, so a change made while it
talked to the channel is never hidden. An unmapped listing (no channel ids yet) is mapped first;
one the channel does not sell stops being dirty. Reconcile re-dirties a listing that drifted.
A listing the push holds back (`held_at`: it would lower the channel's quantity of a SKU never
counted, on a channel never adopted) stays dirty until a count, an adoption or a change.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    String,
    Table,
    bindparam,
    case,
    cast,
    false,
    func,
    literal,
    literal_column,
    null,
    select,
    true,
    update,
)
from sqlalchemy.orm import Session

from stock import models as m
from stock.db import upsert_insert
from stock.tx import LedgerTx


def mark_dirty(tx: LedgerTx, sku_ids: Iterable[int]) -> None:
    """Flag the listings of these SKUs on every listed channel for the next push.

    Recorded now, written once when the transaction finishes (`write_dirty`): a batch of orders
    touching the same SKUs bumps each listing once.
    """
    tx.effects.dirty_sku_ids.update(sku_ids)


WRITE_CHUNK = 5000  # SKUs per statement


def write_dirty(tx: LedgerTx) -> None:
    """Bump the version of every listing marked in this transaction (creating missing ones).

    One upsert per chunk of SKUs writes each listing row once; the SKU ids and the channels
    travel as one parameter each (an array on PostgreSQL, a JSON array on SQLite), so a stock
    take of the whole catalogue is a few short statements.
    """
    ids = sorted(tx.effects.dirty_sku_ids - tx.dirty_written)
    tx.dirty_written.update(ids)
    if not ids or not tx.listed_channels:
        return
    postgres = tx.dialect == "postgresql"
    insert = upsert_insert(tx.session)
    channels = _rows_of(postgres, list(tx.listed_channels), String)
    for start in range(0, len(ids), WRITE_CHUNK):
        skus = _rows_of(postgres, ids[start : start + WRITE_CHUNK], BigInteger)
        new = (
            select(
                channels.c.value,
                skus.c.value,
                literal({}, m.Listing.external_ids.type),
                true(),
                literal(tx.now, m.Listing.dirty_since.type),
                literal(1),
            )
            .select_from(skus.join(channels, true()))
            .where(true())  # SQLite: INSERT ... SELECT ... ON CONFLICT needs a WHERE
            .order_by(skus.c.value, channels.c.value)  # rows locked in sku-id order
        )
        upsert = insert(m.Listing).from_select(
            ["channel", "sku_id", "external_ids", "dirty", "dirty_since", "dirty_version"], new
        )
        tx.session.execute(
            upsert.on_conflict_do_update(
                index_elements=["channel", "sku_id"],
                set_={
                    "dirty": true(),
                    "dirty_version": m.Listing.dirty_version + 1,
                    # a change (a count, a sale, a receipt) makes a held listing worth a look
                    # again: the next push decides anew, the sweeper sees it as pending
                    "held_at": null(),
                    # a listing already dirty keeps its dirty_since: push latency counts from
                    # the first mark (a held one's wait starts now: it waited for a count)
                    "dirty_since": case(
                        (
                            m.Listing.dirty.is_(True)
                            & m.Listing.dirty_since.is_not(None)
                            & m.Listing.held_at.is_(None),
                            m.Listing.dirty_since,
                        ),
                        else_=upsert.excluded.dirty_since,
                    ),
                },
            ).execution_options(synchronize_session=False)
        )


def _rows_of(postgres: bool, items: list[Any], item_type: Any) -> Any:
    """The items as rows of one column `value`, from one parameter."""
    if postgres:
        array = cast(literal(items, ARRAY(item_type)), ARRAY(item_type))
        return select(func.unnest(array).label("value")).subquery()
    return (
        select(cast(literal_column("value"), item_type).label("value"))
        .select_from(func.json_each(literal(json.dumps(items))))
        .subquery()
    )


@dataclass(frozen=True)
class DirtyListing:
    listing_id: int
    sku_id: int
    sku: str
    mapped: bool
    last_seen: int | None
    last_pushed: int | None
    dirty_since: datetime | None
    dirty_version: int
    counted: bool = True  # the SKU's on hand was counted (stock set/import, adopt)
    held: bool = False  # a push held it back (see sync/jobs/unknown_skus.py)
    # the channel's ids as recorded, with what the push remembers of the shop page
    external_ids: Mapping[str, Any] = field(default_factory=dict)


def dirty(
    session: Session, channel: str, limit: int, skip: Collection[int] = ()
) -> list[DirtyListing]:
    """The channel's dirty listings, longest waiting first; none of the listing ids `skip`
    (those a push already held back this time)."""
    query = (
        select(m.Listing, m.Sku.code, m.Sku.counted_at)
        .join(m.Sku, m.Sku.id == m.Listing.sku_id)
        .where(m.Listing.channel == channel, m.Listing.dirty.is_(True))
        .order_by(m.Listing.dirty_since, m.Listing.id)
        .limit(limit)
    )
    if skip:
        postgres = session.get_bind().dialect.name == "postgresql"
        skipped = _rows_of(postgres, sorted(skip), BigInteger)
        query = query.where(m.Listing.id.not_in(select(skipped.c.value)))
    rows = session.execute(query).all()
    return [
        DirtyListing(
            listing.id,
            listing.sku_id,
            code,
            bool(listing.external_ids),
            listing.last_seen,
            listing.last_pushed,
            listing.dirty_since,
            listing.dirty_version,
            counted_at is not None,
            listing.held_at is not None,
            dict(listing.external_ids or {}),
        )
        for listing, code, counted_at in rows
    ]


def mark_held(session: Session, held: Sequence[DirtyListing], now: datetime) -> None:
    """A push held these listings back (a lower number for a SKU never counted, on a channel
    never adopted): they stay dirty, and show as held until pushed or marked dirty anew (a
    listing marked dirty since it was read is left for the next push to judge)."""
    table: Table = m.Listing.__table__  # type: ignore[assignment]  # Core: executemany
    if not held:
        return
    session.execute(
        update(table)
        .where(
            table.c.id == bindparam("b_id"),
            table.c.dirty_version == bindparam("b_version"),
            table.c.held_at.is_(None),
        )
        .values(held_at=now),
        # in sku-id order, the lock order of write_dirty and record_push
        [
            {"b_id": row.listing_id, "b_version": row.dirty_version}
            for row in sorted(held, key=lambda row: row.sku_id)
        ],
    )


def release_held(session: Session, channel: str, now: datetime) -> int:
    """The channel was adopted: its held listings are pending pushes again (the sweeper sends
    them). Returns how many were held."""
    released = session.execute(
        update(m.Listing)
        .where(m.Listing.channel == channel, m.Listing.held_at.is_not(None))
        .values(held_at=None, dirty_since=now)
        .execution_options(synchronize_session=False)
    )
    return int(released.rowcount)  # type: ignore[attr-defined]


def held_counts(session: Session) -> dict[str, int]:
    """Listings held back per channel (dirty, waiting for a count or the channel's adoption)."""
    rows = session.execute(
        select(m.Listing.channel, func.count())
        .where(m.Listing.dirty.is_(True), m.Listing.held_at.is_not(None))
        .group_by(m.Listing.channel)
    ).all()
    return {str(channel): int(count) for channel, count in rows}


def held_skus(session: Session, channel: str, limit: int) -> list[str]:
    """The SKUs of the channel's held listings, in code order, at most `limit`."""
    return [
        str(code)
        for code in session.scalars(
            select(m.Sku.code)
            .join(m.Listing, m.Listing.sku_id == m.Sku.id)
            .where(
                m.Listing.channel == channel,
                m.Listing.dirty.is_(True),
                m.Listing.held_at.is_not(None),
            )
            .order_by(m.Sku.code)
            .limit(limit)
        )
    ]


@dataclass(frozen=True)
class PushOutcome:
    """What a channel said to one planned listing: `pushed` (it now shows `quantity`, which we
    wrote), `stale` (a compare-and-set found it at `quantity`: stays dirty) or `error`."""

    listing: DirtyListing
    kind: str
    quantity: int | None = None
    error_code: str | None = None
    # the listing's external ids to store instead (what the push remembers of the shop page
    # changed, issue #17); None: unchanged
    external_ids: Mapping[str, Any] | None = None


def record_push(session: Session, outcomes: Iterable[PushOutcome], now: datetime) -> None:
    """Record a push round's outcomes: one executemany per kind, rows in sku-id order (the lock
    order of `write_dirty`, which may be bumping the same rows in a ledger transaction)."""
    table: Table = m.Listing.__table__  # type: ignore[assignment]  # Core: executemany
    ordered = sorted(outcomes, key=lambda o: o.listing.sku_id)
    version_unchanged = table.c.dirty_version == bindparam("b_version")
    pushed = [
        {"b_id": o.listing.listing_id, "b_version": o.listing.dirty_version, "b_qty": o.quantity}
        for o in ordered
        if o.kind == "pushed"
    ]
    if pushed:
        # clean only if no change arrived since the offer was computed (it bumps the version);
        # what landed is what the channel shows, even when the listing was re-dirtied meanwhile
        session.execute(
            update(table)
            .where(table.c.id == bindparam("b_id"))
            .values(
                dirty=case((version_unchanged, false()), else_=table.c.dirty),
                dirty_since=case((version_unchanged, null()), else_=table.c.dirty_since),
                last_pushed=bindparam("b_qty"),
                last_seen=bindparam("b_qty"),
                pushed_at=now,
                held_at=None,
            ),
            pushed,
        )
    stale = [
        {"b_id": o.listing.listing_id, "b_qty": o.quantity} for o in ordered if o.kind == "stale"
    ]
    if stale:
        session.execute(
            update(table)
            .where(table.c.id == bindparam("b_id"))
            .values(last_seen=bindparam("b_qty")),
            stale,
        )
    failed = [
        # a SKU the channel does not sell stops being pushed; other errors stay dirty and retry
        {"b_id": o.listing.listing_id, "b_dirty": o.error_code != "UNKNOWN_SKU"}
        for o in ordered
        if o.kind == "error"
    ]
    if failed:
        session.execute(
            update(table).where(table.c.id == bindparam("b_id")).values(dirty=bindparam("b_dirty")),
            failed,
        )
    # an error that still says what the channel holds now (the quantity landed, the page
    # write did not): the next compare-and-set starts from it
    seen = [
        {"b_id": o.listing.listing_id, "b_qty": o.quantity}
        for o in ordered
        if o.kind == "error" and o.quantity is not None
    ]
    if seen:
        session.execute(
            update(table)
            .where(table.c.id == bindparam("b_id"))
            .values(last_seen=bindparam("b_qty")),
            seen,
        )
    remembered = [
        {"b_id": o.listing.listing_id, "b_ids": dict(o.external_ids)}
        for o in ordered
        if o.external_ids is not None
    ]
    if remembered:
        session.execute(
            update(table)
            .where(table.c.id == bindparam("b_id"))
            .values(external_ids=bindparam("b_ids")),
            remembered,
        )


def record_mapping(
    session: Session, channel: str, found: Mapping[str, tuple[dict[str, Any], int | None] | None]
) -> None:
    """What the channel said of these SKUs: its ids and quantity, or None (it does not sell it)."""
    codes = dict(
        session.execute(select(m.Sku.code, m.Sku.id).where(m.Sku.code.in_(list(found)))).all()
    )
    for sku, seen in found.items():
        values: dict[str, Any]
        if seen is None:
            # the channel does not sell this SKU: nothing to push until it does
            values = {"dirty": False, "dirty_since": None, "external_ids": {}}
        else:
            external_ids, quantity = seen
            values = {"external_ids": dict(external_ids), "last_seen": quantity}
        session.execute(
            update(m.Listing)
            .where(m.Listing.channel == channel, m.Listing.sku_id == codes[sku])
            .values(**values)
        )


@dataclass(frozen=True)
class MappedListing:
    listing_id: int
    sku: str
    last_pushed: int | None
    last_seen: int | None
    sku_id: int
    dirty: bool


def mapped(session: Session, channel: str) -> list[MappedListing]:
    """Listings the channel sells (we know its ids for them)."""
    rows = session.execute(
        select(
            m.Listing.id,
            m.Sku.code,
            m.Listing.last_pushed,
            m.Listing.last_seen,
            m.Listing.sku_id,
            m.Listing.dirty,
        )
        .join(m.Sku, m.Sku.id == m.Listing.sku_id)
        .where(m.Listing.channel == channel, m.Listing.external_ids != {})
    ).all()
    return [MappedListing(int(r[0]), str(r[1]), r[2], r[3], int(r[4]), bool(r[5])) for r in rows]


def mark_drifted(
    session: Session, drifted: Sequence[tuple[int, int, int | None]], now: datetime
) -> None:
    """The channel shows something else than it should: remember what it shows and push again.
    `drifted`: (listing id, sku id, channel quantity) each; one executemany, in sku-id order
    (the lock order of write_dirty and record_push)."""
    table: Table = m.Listing.__table__  # type: ignore[assignment]  # Core: executemany
    if not drifted:
        return
    session.execute(
        update(table)
        .where(table.c.id == bindparam("b_id"))
        .values(
            last_seen=bindparam("b_seen"),
            dirty=True,
            dirty_since=now,
            dirty_version=table.c.dirty_version + 1,
        ),
        [
            {"b_id": listing_id, "b_seen": quantity}
            for listing_id, _sku_id, quantity in sorted(drifted, key=lambda row: row[1])
        ],
    )


@dataclass(frozen=True)
class PushedListing:
    listing_id: int
    sku_id: int
    sku: str
    last_pushed: int | None
    dirty: bool


def pushed_page(session: Session, channel: str, after_id: int, limit: int) -> list[PushedListing]:
    """The channel's listings with id > after_id, in id order: what each was last given."""
    rows = session.execute(
        select(m.Listing.id, m.Listing.sku_id, m.Sku.code, m.Listing.last_pushed, m.Listing.dirty)
        .join(m.Sku, m.Sku.id == m.Listing.sku_id)
        .where(m.Listing.channel == channel, m.Listing.id > after_id)
        .order_by(m.Listing.id)
        .limit(limit)
    ).all()
    return [PushedListing(int(r[0]), int(r[1]), str(r[2]), r[3], bool(r[4])) for r in rows]


def mark_for_push(session: Session, moved: Sequence[PushedListing], now: datetime) -> None:
    """Flag listings whose offered number moved without a ledger change touching their SKU (a
    rule changed, a PO line entered the horizon or turned late): the next push sends them."""
    table: Table = m.Listing.__table__  # type: ignore[assignment]  # Core: executemany
    if not moved:
        return
    session.execute(
        update(table)
        .where(table.c.id == bindparam("b_id"))
        .values(
            dirty=True,
            dirty_version=table.c.dirty_version + 1,
            dirty_since=case((table.c.dirty.is_(True), table.c.dirty_since), else_=now),
        ),
        # in sku-id order, the lock order of write_dirty and record_push
        [{"b_id": row.listing_id} for row in sorted(moved, key=lambda row: row.sku_id)],
    )


def channels_dirty_since(session: Session, cutoff: datetime) -> set[str]:
    """Channels with a listing dirty since before `cutoff` (a push that did not happen); a
    listing the push held back is not pending (it waits for a count or an adoption)."""
    return set(
        session.scalars(
            select(m.Listing.channel)
            .where(
                m.Listing.dirty.is_(True),
                m.Listing.dirty_since < cutoff,
                m.Listing.held_at.is_(None),
            )
            .distinct()
        )
    )


def dirty_counts(session: Session) -> dict[str, int]:
    """Dirty listings per channel waiting for a push (not those held back: held_counts)."""
    rows = session.execute(
        select(m.Listing.channel, func.count())
        .where(m.Listing.dirty.is_(True), m.Listing.held_at.is_(None))
        .group_by(m.Listing.channel)
    ).all()
    return {str(channel): int(count) for channel, count in rows}
