"""SKUs and stock on hand (`sku`, `stock_level`): their only writer.

A count that raises on_hand makes a release due; one that lowers it makes a demotion due
(reservations beyond on_hand wait for stock again). Both are settled before the transaction
commits (backorders.settle), so waiting backorders are never overtaken by a later order.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Integer,
    String,
    any_,
    cast,
    func,
    literal,
    literal_column,
    select,
    true,
    update,
)
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from stock import audit, listings
from stock import models as m
from stock.db import lock_stock_rows, upsert_insert
from stock.tx import LedgerInputError, LedgerTx


def ensure_skus(tx: LedgerTx, codes: Iterable[str]) -> dict[str, int]:
    """SKU code -> id, creating missing SKUs (and their zero stock row) race-free."""
    wanted = sorted(set(codes))
    if not wanted:
        return {}
    for code in wanted:
        if not code or len(code) > 255:
            raise LedgerInputError(code or "(empty)", "a SKU code must be 1-255 characters")
    unknown = [code for code in wanted if code not in tx.sku_ids]
    if not unknown:
        return {code: tx.sku_ids[code] for code in wanted}
    known = ids_of(tx, unknown)
    tx.remember_skus(known)
    if len(known) == len(unknown):
        return {code: tx.sku_ids[code] for code in wanted}  # the common case: no insert
    insert = upsert_insert(tx.session)
    rows = [{"code": code, "created_at": tx.now} for code in wanted]
    tx.session.execute(insert(m.Sku).values(rows).on_conflict_do_nothing(index_elements=["code"]))
    ids = ids_of(tx, wanted)
    stock_rows = [
        {"sku_id": sku_id, "on_hand": 0, "oversold": 0, "updated_at": tx.now}
        for sku_id in ids.values()
    ]
    tx.session.execute(
        insert(m.StockLevel).values(stock_rows).on_conflict_do_nothing(index_elements=["sku_id"])
    )
    tx.remember_skus(ids)
    return {code: tx.sku_ids[code] for code in wanted}


def lock(tx: LedgerTx, sku_ids: Iterable[int]) -> dict[int, m.StockLevel]:
    """Lock the stock rows of these SKUs (in sku-id order) and return them.

    Every writer locks through here, so a row this transaction already holds is not read again:
    its counters in the session may be ahead of the database (flushed with the batch).
    """
    wanted = set(sku_ids)
    fresh = {sku_id for sku_id in wanted if sku_id not in tx.levels}
    if fresh:
        with tx.session.no_autoflush:
            tx.levels.update(lock_stock_rows(tx.session, fresh))
    missing = {sku_id for sku_id in wanted if sku_id not in tx.levels}
    if missing:
        raise LedgerInputError(f"sku ids {sorted(missing)}", "no stock row")
    return {sku_id: tx.levels[sku_id] for sku_id in wanted}


def ids_of(tx: LedgerTx, codes: Iterable[str]) -> dict[str, int]:
    """SKU code -> id for the codes that exist; unknown codes are left out."""
    wanted = sorted(set(codes))
    if not wanted:
        return {}
    found = tx.session.execute(select(m.Sku.code, m.Sku.id).where(m.Sku.code.in_(wanted)))
    return {str(code): int(sku_id) for code, sku_id in found.all()}


def codes_of(tx: LedgerTx, sku_ids: Iterable[int]) -> dict[int, str]:
    ids = sorted(set(sku_ids))
    if not ids:
        return {}
    found = tx.session.execute(select(m.Sku.id, m.Sku.code).where(m.Sku.id.in_(ids)))
    return {int(sku_id): str(code) for sku_id, code in found.all()}


def sku_id(tx: LedgerTx, code: str) -> int:
    found = tx.session.scalar(select(m.Sku.id).where(m.Sku.code == code))
    if found is None:
        raise LedgerInputError(code, "unknown SKU")
    return int(found)


def set_stock(tx: LedgerTx, code: str, on_hand: int, reason: str | None = None) -> int:
    """Count stock: on_hand becomes `on_hand`. Returns the new on_hand."""
    if on_hand < 0:
        raise LedgerInputError(code, f"on hand cannot be negative, got {on_hand}")
    sku = ensure_skus(tx, [code])[code]
    row = lock(tx, [sku])[sku]
    mark_counted(tx, [sku])
    return _change_on_hand(tx, code, row, on_hand - row.on_hand, "stock.set", reason)


def adjust_stock(tx: LedgerTx, code: str, delta: int, reason: str | None = None) -> int:
    """Add `delta` (may be negative) to on_hand. Returns the new on_hand."""
    sku = ensure_skus(tx, [code])[code]
    row = lock(tx, [sku])[sku]
    if row.on_hand + delta < 0:
        raise LedgerInputError(
            code, f"adjusting {row.on_hand} by {delta} would leave {row.on_hand + delta}"
        )
    return _change_on_hand(tx, code, row, delta, "stock.adjust", reason)


def _change_on_hand(
    tx: LedgerTx, code: str, row: m.StockLevel, delta: int, action: str, reason: str | None
) -> int:
    before = row.on_hand
    row.on_hand = before + delta
    row.updated_at = tx.now
    tx.audit(action, code, {"before": before, "after": row.on_hand, "reason": reason})
    _note_change(tx, row.sku_id, delta)
    listings.mark_dirty(tx, [row.sku_id])
    return row.on_hand


def receive_units(tx: LedgerTx, rows: dict[int, m.StockLevel], units: dict[int, int]) -> None:
    """Goods arrived: add units to on_hand of rows the caller has locked."""
    for sku, qty in units.items():
        rows[sku].on_hand += qty
        rows[sku].updated_at = tx.now
        _note_change(tx, sku, qty)
    listings.mark_dirty(tx, units)


def ship_units(tx: LedgerTx, sku: int, code: str, units: int) -> None:
    """Units left the warehouse; what on_hand cannot cover is recorded as oversold."""
    if units <= 0:
        return
    row = lock(tx, [sku])[sku]
    short = max(units - row.on_hand, 0)
    row.on_hand = max(row.on_hand - units, 0)
    row.oversold += short
    row.updated_at = tx.now
    if short:
        tx.effects.add_oversold(code, short)
        tx.audit("stock.oversell", code, {"shipped_beyond_on_hand": short})
    # it may have shipped from unreserved units: on_hand may now be below what others reserve
    tx.effects.demote_due.add(sku)


def _note_change(tx: LedgerTx, sku: int, delta: int) -> None:
    if delta > 0:
        tx.effects.release_due.add(sku)
    elif delta < 0:
        tx.effects.demote_due.add(sku)


# ---------------------------------------------------------------------------- stock take
# SKUs per statement: well under the bound-parameter limits of SQLite (32,766) and PostgreSQL
IMPORT_CHUNK = 5000
_T = TypeVar("_T")


@dataclass(frozen=True)
class ImportedCounts:
    """What a stock take did: SKUs counted, SKUs it created, SKUs whose on_hand moved."""

    skus: int
    created: int
    changed: int


def import_counts(
    tx: LedgerTx, counted: Mapping[str, int], reason: str | None = None
) -> ImportedCounts:
    """Count many SKUs at once: each SKU's on_hand becomes its count (a stock take).

    The ledger ends as after `set_stock` per SKU, with a few statements per chunk of
    IMPORT_CHUNK SKUs instead of ~14 per SKU: missing SKUs are created with their count, the
    stock rows of the others are locked in sku-id order and on_hand is written where the count
    differs; each SKU whose on_hand moved gets one `stock.set` audit row (before/after), a SKU
    counted at what the ledger holds is not written. SKUs that went up beside open backorders
    are due a release, SKUs that went below what they reserve a demotion (settled before
    commit, as after `set_stock`); the listings of changed and new SKUs are marked dirty.
    """
    for code, qty in counted.items():
        if not code or len(code) > 255:
            raise LedgerInputError(code or "(empty)", "a SKU code must be 1-255 characters")
        if qty < 0:
            raise LedgerInputError(code, f"on hand cannot be negative, got {qty}")
    existing: dict[str, int] = {}
    created: dict[str, int] = {}
    for chunk in _chunks(sorted(counted)):
        existing.update(_ids(tx, chunk))
        missing = [code for code in chunk if code not in existing]
        if missing:
            made = _create_skus(tx, {code: counted[code] for code in missing})
            created.update(made)
            raced = [code for code in missing if code not in made]
            if raced:  # created meanwhile by another transaction: counted like the others
                existing.update(_ids(tx, raced))
    code_of = {sku_id: code for code, sku_id in existing.items()}
    held = _lock_counts(tx, sorted(code_of))
    # a SKU that came with an order is counted now: its listings are pushed again even where
    # the count leaves on hand as it was (the push held lower numbers for it)
    first_counted = mark_counted(tx, sorted(code_of))
    changed = [
        (sku_id, counted[code_of[sku_id]])
        for sku_id in sorted(code_of)
        if counted[code_of[sku_id]] != held[sku_id][0]
    ]
    for part in _chunks(changed):
        _write_on_hand(tx, part)
    _show_written(tx, dict(changed))
    entries = [
        (
            "stock.set",
            code_of[sku_id],
            {"before": held[sku_id][0], "after": after, "reason": reason},
        )
        for sku_id, after in changed
    ]
    entries += [
        ("stock.set", code, {"before": 0, "after": counted[code], "reason": reason})
        for code in sorted(created)
        if counted[code]
    ]
    audit.record_many(tx.session, tx.now, tx.actor, entries)
    for sku_id, after in changed:
        on_hand, reserved, backordered = held[sku_id]
        # due only where something can follow: more stock beside open backorders, or less
        # stock than the SKU reserves (settle would find nothing to do for the others)
        if after > on_hand and backordered > 0:
            tx.effects.release_due.add(sku_id)
        elif after < on_hand and reserved > after:
            tx.effects.demote_due.add(sku_id)
    listings.mark_dirty(
        tx, [*created.values(), *(sku_id for sku_id, _after in changed), *first_counted]
    )
    return ImportedCounts(
        skus=len(counted),
        created=len(created),
        changed=len(changed) + sum(1 for code in created if counted[code]),
    )


def _chunks(items: Sequence[_T]) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), IMPORT_CHUNK):
        yield items[start : start + IMPORT_CHUNK]


def _listed(tx: LedgerTx, items: Sequence[Any], item_type: Any) -> Any:
    """The items as rows of one column `value`, passed as ONE parameter (an array on
    PostgreSQL, a JSON array on SQLite): no statement with thousands of parameters to build,
    send and plan."""
    if tx.dialect == "postgresql":
        array = cast(literal(list(items), ARRAY(item_type)), ARRAY(item_type))
        return select(func.unnest(array).label("value")).subquery()
    return (
        select(cast(literal_column("value"), item_type).label("value"))
        .select_from(func.json_each(literal(json.dumps(list(items)))))
        .where(true())  # SQLite: INSERT ... SELECT ... ON CONFLICT needs a WHERE
        .subquery()
    )


def _among(tx: LedgerTx, column: Any, items: Sequence[Any], item_type: Any) -> Any:
    """`column IN items`, the items passed as one parameter."""
    if tx.dialect == "postgresql":
        return column == any_(cast(literal(list(items), ARRAY(item_type)), ARRAY(item_type)))
    return column.in_(select(_listed(tx, items, item_type).c.value))


def _ids(tx: LedgerTx, codes: Sequence[str]) -> dict[str, int]:
    found = tx.session.execute(
        select(m.Sku.code, m.Sku.id).where(_among(tx, m.Sku.code, codes, String))
    )
    return {str(code): int(sku_id) for code, sku_id in found.all()}


def _create_skus(tx: LedgerTx, counted: Mapping[str, int]) -> dict[str, int]:
    """Create these SKUs with their stock rows holding the counts (race-free: a SKU another
    transaction created first is left out); code -> id of the SKUs created here."""
    insert = upsert_insert(tx.session)
    new = _listed(tx, sorted(counted), String)
    made = {
        str(code): int(sku_id)
        for sku_id, code in tx.session.execute(
            insert(m.Sku)
            .from_select(
                ["code", "created_at", "counted_at"],
                select(new.c.value, _now(tx), _now(tx)).where(true()),
            )
            .on_conflict_do_nothing(index_elements=["code"])
            .returning(m.Sku.id, m.Sku.code)
        ).all()
    }
    if made:
        rows = _counted_rows(tx, [(made[code], counted[code]) for code in sorted(made)])
        tx.session.execute(
            insert(m.StockLevel).from_select(
                ["sku_id", "on_hand", "oversold", "updated_at"],
                select(rows.c.sku_id, rows.c.on_hand, literal(0), _now(tx)).where(true()),
            )
        )
    return made


def _now(tx: LedgerTx) -> Any:
    return literal(tx.now, m.StockLevel.updated_at.type)


def _lock_counts(tx: LedgerTx, sku_ids: Sequence[int]) -> dict[int, tuple[int, int, int]]:
    """Lock the stock rows (chunks in sku-id order, the one lock order); read on_hand and the
    reserved and backordered counters.

    Reads columns, not objects: a stock take may touch the whole catalogue. Rows this
    transaction changed before are flushed first (autoflush), so the values are current.
    """
    found: dict[int, tuple[int, int, int]] = {}
    for chunk in _chunks(sku_ids):
        rows = tx.session.execute(
            select(
                m.StockLevel.sku_id,
                m.StockLevel.on_hand,
                m.StockLevel.reserved,
                m.StockLevel.backordered,
            )
            .where(_among(tx, m.StockLevel.sku_id, chunk, BigInteger))
            .order_by(m.StockLevel.sku_id)
            .with_for_update()
        )
        found.update((int(s), (int(h), int(r), int(b))) for s, h, r, b in rows.all())
    return found


def _counted_rows(tx: LedgerTx, rows: Sequence[tuple[int, int]]) -> Any:
    """(sku id, count) pairs as rows `sku_id`, `on_hand`, passed as one parameter (two arrays
    on PostgreSQL, a JSON object on SQLite)."""
    if tx.dialect == "postgresql":
        ids = cast(literal([sku_id for sku_id, _q in rows], ARRAY(BigInteger)), ARRAY(BigInteger))
        qtys = cast(literal([qty for _s, qty in rows], ARRAY(Integer)), ARRAY(Integer))
        return select(
            func.unnest(ids).label("sku_id"), func.unnest(qtys).label("on_hand")
        ).subquery("counted")
    pairs = literal(json.dumps({str(sku_id): qty for sku_id, qty in rows}))
    return (
        select(
            cast(literal_column("key"), Integer).label("sku_id"),
            cast(literal_column("value"), Integer).label("on_hand"),
        )
        .select_from(func.json_each(pairs))
        .subquery("counted")
    )


def _write_on_hand(tx: LedgerTx, rows: Sequence[tuple[int, int]]) -> None:
    """on_hand := the count, for (sku id, count) rows the caller locked: one statement."""
    counted = _counted_rows(tx, rows)
    tx.session.execute(
        update(m.StockLevel)
        .where(m.StockLevel.sku_id == counted.c.sku_id)
        .values(on_hand=counted.c.on_hand, updated_at=tx.now)
        .execution_options(synchronize_session=False)
    )


def mark_counted(tx: LedgerTx, sku_ids: Sequence[int]) -> list[int]:
    """Record that these SKUs' on hand is a count from now (unless it was one already); the
    ids of those counted for the first time. A SKU that came with an order is not counted: the
    push never lowers a channel's quantity for it (docs/onboarding.md)."""
    first: list[int] = []
    for chunk in _chunks(sorted(set(sku_ids))):
        first += [
            int(sku_id)
            for sku_id in tx.session.scalars(
                update(m.Sku)
                .where(_among(tx, m.Sku.id, chunk, BigInteger), m.Sku.counted_at.is_(None))
                .values(counted_at=tx.now)
                .returning(m.Sku.id)
                .execution_options(synchronize_session=False)
            )
        ]
    return first


def _show_written(tx: LedgerTx, written: Mapping[int, int]) -> None:
    """Stock rows this transaction holds in the session show the on_hand now in the database
    (a later lock may reuse them without reading again)."""
    for row in list(tx.session.identity_map.values()):
        if isinstance(row, m.StockLevel) and row.sku_id in written:
            set_committed_value(row, "on_hand", written[row.sku_id])
            set_committed_value(row, "updated_at", tx.now)


@dataclass(frozen=True)
class Counted:
    """A SKU as the ledger holds it: its on hand, and whether that is a count."""

    on_hand: int
    counted: bool


def on_hand_of(session: Session, codes: Iterable[str]) -> dict[str, Counted]:
    """On hand of these SKUs, and whether it was counted; SKUs the ledger lacks are absent."""
    wanted = sorted(set(codes))
    found: dict[str, Counted] = {}
    for start in range(0, len(wanted), IMPORT_CHUNK):
        rows = session.execute(
            select(m.Sku.code, m.StockLevel.on_hand, m.Sku.counted_at)
            .join(m.StockLevel, m.StockLevel.sku_id == m.Sku.id)
            .where(m.Sku.code.in_(wanted[start : start + IMPORT_CHUNK]))
        ).all()
        found.update(
            (str(code), Counted(int(on_hand), counted_at is not None))
            for code, on_hand, counted_at in rows
        )
    return found


def mark_promises_due(tx: LedgerTx, sku_ids: Iterable[int]) -> None:
    """These SKUs' promise dates are to be planned after commit (backorders.promising)."""
    wanted = sorted(set(sku_ids))
    if wanted:
        tx.session.execute(
            update(m.StockLevel)
            .where(m.StockLevel.sku_id.in_(wanted))
            .values(promises_due=True)
            .execution_options(synchronize_session=False)
        )
        for sku_id in wanted:
            if sku_id in tx.levels:
                tx.levels[sku_id].promises_due = True


def take_promises_due(tx: LedgerTx, sku_ids: Iterable[int]) -> list[int]:
    """Of these SKUs, those marked due (their rows locked), the mark cleared: the caller plans
    them in this transaction."""
    rows = lock(tx, sku_ids)
    marked = sorted(sku_id for sku_id, row in rows.items() if row.promises_due)
    for sku_id in marked:
        rows[sku_id].promises_due = False
    return marked
