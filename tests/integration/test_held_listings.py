"""The push's rule for SKUs nobody counted, on the ledger (SQLite and PostgreSQL): which SKUs
are counted, the hold itself (sync/jobs/unknown_skus.py), and how a held listing stays pending
without being counted as waiting, until a count, a change or an adoption."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select

from backorders import orders
from backorders.orders import LineInput, OrderInput
from rules import parse_config
from stock import channel_state, counts, listings
from stock import models as m
from stock.db import upgrade
from sync.context import AppContext
from sync.jobs.push import PlannedPush
from sync.jobs.unknown_skus import hold_unknown, would_hold

CONFIG = """\
database: {url}
channels:
  popup: {{kind: manual}}
  shop: {{kind: shopify, shop: s.myshopify.com, token: ${{TOKEN}}, webhook_secret: ${{WHS}}}}
"""
NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def ctx(
    request: pytest.FixtureRequest, tmp_path: Path, fresh_sqlite: Callable[[Path], str]
) -> Iterator[AppContext]:
    def opened(url: str) -> AppContext:
        upgrade(url)
        env = {"TOKEN": "shpat_x", "WHS": "secret"}
        return AppContext.open(parse_config(CONFIG.format(url=url), "stocksync.yaml", env=env))

    if request.param == "sqlite":
        context = opened(fresh_sqlite(tmp_path))
        yield context
        context.close()
        return
    from sync.stack import fresh_postgres
    from tests.conftest import PG_ADMIN_URL

    with fresh_postgres(PG_ADMIN_URL, prefix="stocksync_t_") as url:
        context = opened(url)
        yield context
        context.close()


def order(ctx: AppContext, ref: str, lines: dict[str, int]) -> None:
    with ctx.ledger(actor="test", now=NOW) as tx:
        orders.record_order(
            tx,
            OrderInput(
                "popup",
                ref,
                NOW,
                NOW,
                "open",
                tuple(LineInput(str(i), s, q) for i, (s, q) in enumerate(lines.items(), 1)),
            ),
        )


def dirty(ctx: AppContext, skip: tuple[int, ...] = ()) -> dict[str, listings.DirtyListing]:
    with ctx.read() as session:
        return {d.sku: d for d in listings.dirty(session, "shop", 100, skip)}


def mapped(ctx: AppContext, seen: dict[str, int]) -> None:
    with ctx.sessions.begin() as session:
        listings.record_mapping(
            session, "shop", {sku: ({"variant_id": sku}, qty) for sku, qty in seen.items()}
        )


def test_would_hold_only_lower_numbers_of_uncounted_skus_on_unadopted_channels() -> None:
    def listing(counted: bool, last_seen: int | None) -> listings.DirtyListing:
        return listings.DirtyListing(1, 1, "X", True, last_seen, None, NOW, 1, counted)

    assert would_hold(listing(False, 20), 0, adopted=False)  # what zeroed live shops
    assert would_hold(listing(False, None), 5, adopted=False)  # the channel shows none
    assert not would_hold(listing(False, 20), 20, adopted=False)  # what it shows already
    assert not would_hold(listing(False, 20), 25, adopted=False)  # a raise
    assert not would_hold(listing(True, 20), 0, adopted=False)  # counted
    assert not would_hold(listing(False, 20), 0, adopted=True)  # the channel was adopted


def test_a_sku_is_counted_by_set_and_import_not_by_an_order(ctx: AppContext) -> None:
    with ctx.ledger(actor="test", now=NOW) as tx:
        counts.set_stock(tx, "SET", 4)
        counts.import_counts(tx, {"IMPORTED": 2, "ZERO": 0})
    order(ctx, "P-1", {"ORDERED": 1, "SET": 1})
    found = dirty(ctx)
    assert {sku: d.counted for sku, d in found.items()} == {
        "SET": True,
        "IMPORTED": True,
        "ZERO": True,
        "ORDERED": False,
    }
    with ctx.read() as session:
        held = counts.on_hand_of(session, ["SET", "ORDERED", "NONE"])
    assert held == {"SET": counts.Counted(4, True), "ORDERED": counts.Counted(0, False)}


def test_held_listings_stay_pending_until_a_count(ctx: AppContext) -> None:
    with ctx.ledger(actor="test", now=NOW) as tx:
        counts.set_stock(tx, "KNOWN", 4)
    order(ctx, "P-1", {"NEW-1": 1, "NEW-2": 1, "KNOWN": 1})
    mapped(ctx, {"NEW-1": 20, "NEW-2": 0, "KNOWN": 4})
    found = dirty(ctx)
    planned = [PlannedPush(found[sku], 0 if sku != "KNOWN" else 3) for sku in sorted(found)]
    runtime: Any = SimpleNamespace(ctx=ctx)
    held_ids: set[int] = set()
    sent, held = hold_unknown(runtime, "shop", planned, held_ids)
    # NEW-1: 0 would lower the shop's 20; NEW-2: the shop shows 0 already
    assert [p.listing.sku for p in held] == ["NEW-1"]
    assert [p.listing.sku for p in sent] == ["KNOWN", "NEW-2"]
    assert held_ids == {found["NEW-1"].listing_id}

    with ctx.read() as session:
        assert listings.held_counts(session) == {"shop": 1}
        assert listings.held_skus(session, "shop", 10) == ["NEW-1"]
        assert listings.dirty_counts(session) == {"shop": 2}  # the held one is not waiting
        later = NOW + timedelta(days=1)
        assert listings.channels_dirty_since(session, later) == {"shop"}
    # still dirty, and read again on the next push; a round of this one skips it
    assert dirty(ctx)["NEW-1"].held
    assert "NEW-1" not in dirty(ctx, skip=tuple(held_ids))

    # counting the SKU at what the ledger holds changes no number, yet makes it pushable
    with ctx.ledger(actor="test", now=NOW) as tx:
        counts.import_counts(tx, {"NEW-1": 0})
    again = dirty(ctx)["NEW-1"]
    assert (again.counted, again.held) == (True, False)
    with ctx.read() as session:
        assert listings.held_counts(session) == {}


def test_adoption_releases_held_listings(ctx: AppContext) -> None:
    order(ctx, "P-1", {"NEW-1": 1})
    mapped(ctx, {"NEW-1": 20})
    runtime: Any = SimpleNamespace(ctx=ctx)
    _sent, held = hold_unknown(runtime, "shop", [PlannedPush(dirty(ctx)["NEW-1"], 0)], set())
    assert len(held) == 1
    with ctx.sessions.begin() as session:
        channel_state.mark_adopted(session, "shop", NOW)
        assert listings.release_held(session, "shop", NOW) == 1
    with ctx.read() as session:
        assert listings.held_counts(session) == {}
        assert channel_state.adopted(session) == {"shop": NOW}
        assert session.scalar(select(m.Listing.dirty)) is True
    # adopted: the same lower number is no longer held
    sent, held = hold_unknown(runtime, "shop", [PlannedPush(dirty(ctx)["NEW-1"], 0)], set())
    assert (len(sent), held) == (1, [])
