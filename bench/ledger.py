"""Ledger benchmark: the database side of stocksync at drop speed and catalogue scale, every
figure beside the database's own ceiling measured in the same run (bench.ceiling) and the
ratio figure ÷ ceiling.

Scenarios (each on SQLite and on a fresh PostgreSQL database; `--only NAME`, repeatable):

- ingest: Shopify `orders/create` bodies made by the Shopify sandbox's own checkout (orders of
  1-3 lines, 1-2 units each, over 10,000 SKUs, 95 % of them in stock), stored with
  `sync.jobs.inbox.store_event`, then applied with `sync.jobs.inbox.process_event(runtime, id)`
  in id order - exactly what the `process_event` actor runs - by one worker thread (more with
  `--workers`). Orders/s, statements per order, % of the time inside the database.
- release: 10,000 one-unit backorders of one SKU (orders on a Shopify and a manual channel,
  bulk-inserted), then one receipt covering them: `sync.jobs.receipts.receive_purchase_order`
  books the units and releases the backorders in one transaction.
- plan: 100,000 SKUs with mapped listings on one channel; (a) 1 % of them changed: the push's
  planning rounds (`sync.jobs.push.plan_pushes(runtime, channel, PUSH_BATCH)`, each round's
  listings marked clean as a push would) until none is left; (b) all of them dirty: rounds of
  10,000; (c) the same full re-evaluation over 10,000 SKUs, for memory: tracemalloc peak and
  maximum RSS of 10,000 vs 100,000 SKUs. Each run is its own child process (clean RSS).
- cli: `stocksync status --json` and `stocksync explain SKU --json` on the 100,000-SKU ledger,
  wall time of the real CLI subprocess (and `stocksync --help`: start-up alone).
- import: `stocksync stock import FILE.csv` of 100,000 new SKUs, wall time of the subprocess.

Every scenario checks its own outcome (every event applied, every backorder released, every
dirty listing planned with the offer the seed implies, the CLI's JSON complete) and fails
loudly otherwise. Statement counts come from bench.statements.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import csv
import io
import json
import multiprocessing
import os
import pstats
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, insert, select

from bench import ceiling, seed
from bench.common import (
    PG_ADMIN_URL,
    RULES,
    default_json_path,
    environment,
    fresh_postgres,
    markdown_table,
    stocksync_executable,
    write_json,
)
from bench.statements import StatementStats, count_statements
from connectors.sandbox.shopify import ShopifySandbox
from rules import load_config
from stock import models as m
from stock.db import upgrade
from sync.jobs import inbox, push, receipts
from sync.runtime import Runtime
from sync.stack import StackConfig

# the benchmarks' defaults; a Shopify channel never called (port 9: discard) and a manual one
CONFIG = StackConfig(
    rules={key: RULES[key] for key in ("tiers", "defaults")},
    api_token=None,
    daemon=None,
    log_level="ERROR",
    manual_channels=("popup",),
)
UNCALLED_SHOP = "http://127.0.0.1:9"
KINDS = ("sqlite", "postgresql")
SCENARIOS = ("ingest", "release", "plan", "cli", "import")


@dataclass(frozen=True)
class LedgerPlan:
    orders: int = 3000
    order_skus: int = 10_000
    workers: tuple[int, ...] = (1,)
    backorders: int = 10_000
    plan_skus: int = 100_000
    small_plan_skus: int = 10_000  # the memory comparison's smaller catalogue
    changed_pct: float = 1.0
    replan_limit: int = 10_000
    import_rows: int = 100_000
    import_statement_rows: int = 1000  # statements per row are counted on a smaller import
    ceiling_seconds: float = 5
    ceiling_clients: tuple[int, ...] = (1, 4)
    ceiling_again: bool = True  # measure the ceilings again at the end (the machine drifts)
    cli_timeout_s: float = 120
    import_timeout_s: float = 120
    isolate: bool = True  # each planning run in a child process of its own (its own max RSS)
    seed: int = 11


FULL = LedgerPlan()
QUICK = LedgerPlan(
    orders=300,
    order_skus=2000,
    backorders=1000,
    plan_skus=10_000,
    small_plan_skus=2000,
    replan_limit=2000,
    import_rows=5000,
    import_statement_rows=200,
    ceiling_seconds=1,
    ceiling_clients=(1,),
    ceiling_again=False,
    cli_timeout_s=60,
    import_timeout_s=120,
)

# (scenario, database or "*") -> (comparison, bound); a figure meets its target when it holds
TARGETS: dict[tuple[str, str], tuple[str, float]] = {
    ("ingest", "postgresql"): (">=", 1000),
    ("ingest", "sqlite"): (">=", 300),
    ("release", "*"): ("<", 2),
    ("plan 1% changed", "*"): ("<", 1),
    ("plan all", "*"): ("<", 10),
    ("plan memory", "*"): ("<=", 1.5),
    ("status --json", "*"): ("<", 1),
    ("explain --json", "*"): ("<", 1),
    ("stock import", "*"): ("<", 10),
}


def target_of(scenario: str, kind: str) -> tuple[str, float] | None:
    return TARGETS.get((scenario, kind)) or TARGETS.get((scenario, "*"))


def meets(value: float | None, target: tuple[str, float] | None) -> bool | None:
    if value is None or target is None:
        return None if target is None else False
    op, bound = target
    return {"<": value < bound, "<=": value <= bound, ">=": value >= bound}[op]


def figure(
    scenario: str,
    kind: str,
    value: float | None,
    unit: str,
    *,
    rate: float | None,
    rate_unit: str,
    stats: StatementStats | None = None,
    units: int | None = None,
    wall_s: float | None = None,
    threads: int = 1,
    per_unit: float | None = None,
    db_pct: float | None = None,
    statement_count: int | None = None,
    **details: Any,
) -> dict[str, Any]:
    """One headline number: its value and unit, the rate the ratio is taken of, the target.
    Statements per unit and % in DB come from `stats`, or are given (`per_unit`, `db_pct`)."""
    target = target_of(scenario, kind)
    if stats is not None:
        statement_count = stats.statements
        per_unit = stats.per(units) if units else None
        db_pct = stats.db_share(wall_s, threads) if wall_s else None
    return {
        "scenario": scenario,
        "database": kind,
        "value": None if value is None else round(value, 3),
        "unit": unit,
        "target": None if target is None else f"{target[0]} {target[1]:g}",
        "met": meets(value, target),
        "rate": None if rate is None else round(rate, 1),
        "rate_unit": rate_unit,
        "statement_count": statement_count,
        "statements_per_unit": per_unit,
        "db_pct": db_pct,
        "statements": stats.as_dict(units, wall_s, threads) if stats is not None else None,
        **details,
    }


# ------------------------------------------------------------------------------ databases
@dataclass
class Ledger:
    """A migrated ledger and a Runtime over it; the config file a CLI or a child process uses."""

    kind: str
    url: str
    config_path: Path
    runtime: Runtime

    @property
    def engine(self) -> Engine:
        return self.runtime.ctx.engine


@contextmanager
def ledger(kind: str, folder: Path, pg_admin: str) -> Iterator[Ledger]:
    """A fresh ledger: SQLite in `folder`, or a new PostgreSQL database (dropped afterwards)."""
    with ExitStack() as stack:
        stamp = time.monotonic_ns()
        if kind == "postgresql":
            url = stack.enter_context(fresh_postgres(pg_admin))
        else:
            url = f"sqlite:///{folder / f'ledger-{stamp}.db'}"
        path = folder / f"stocksync-{stamp}.yaml"
        replace(CONFIG, database=url).write(path, UNCALLED_SHOP, None)
        config = load_config(path)
        upgrade(config.database)
        runtime = Runtime.build(config)
        stack.callback(runtime.close)
        yield Ledger(kind, url, path, runtime)


@contextmanager
def profiled(enabled: bool, into: list[str], title: str) -> Iterator[None]:
    """cProfile the block when enabled; its top functions (30 by cumulative time, 15 by own
    time) go to `into`."""
    if not enabled:
        yield
        return
    profile = cProfile.Profile()
    profile.enable()
    try:
        yield
    finally:
        profile.disable()
        text = io.StringIO()
        found = pstats.Stats(profile, stream=text)
        found.sort_stats("cumulative").print_stats(30)
        found.sort_stats("tottime").print_stats(15)
        into.append(f"## {title}\n{text.getvalue()}")


# ------------------------------------------------------------------------------ 1. ingest
def ingest_code(i: int) -> str:
    return f"ING-{i:05d}"


def ingest_on_hand(i: int) -> int:
    """Every 20th SKU is out of stock (its lines backorder against a PO); the rest have plenty."""
    return 0 if i % 20 == 0 else 1000


def shopify_bodies(count: int, skus: int, seed_: int) -> list[bytes]:
    """`orders/create` bodies exactly as the Shopify sandbox sends them (REST webhook JSON):
    1-3 distinct SKUs per order, 1-2 units each."""
    rng = random.Random(seed_)
    codes = [ingest_code(i) for i in range(skus)]
    sandbox = ShopifySandbox(catalog=dict.fromkeys(codes, 10 * count + 10))
    try:
        bodies = []
        for i in range(count):
            picked = rng.sample(codes, min(rng.choice((1, 2, 3)), len(codes)))
            order = sandbox.checkout(
                [(c, rng.choice((1, 1, 2))) for c in picked], f"buyer{i}@example.com"
            )
            bodies.append(json.dumps(order).encode())
        return bodies
    finally:
        sandbox.stop()


def body_units(bodies: Sequence[bytes]) -> tuple[int, int, int]:
    """(lines, units, units of out-of-stock SKUs) the bodies order."""
    lines = units = short = 0
    for body in bodies:
        for item in json.loads(body)["line_items"]:
            lines += 1
            units += int(item["quantity"])
            if ingest_on_hand(int(item["sku"].split("-")[1])) == 0:
                short += int(item["quantity"])
    return lines, units, short


def seed_ingest(led: Ledger, skus: int, now: datetime) -> None:
    """`skus` SKUs with stock, a mapped clean listing each, and a PO covering the SKUs with no
    stock (so their lines backorder within capacity)."""
    codes = [ingest_code(i) for i in range(skus)]
    with led.runtime.ctx.sessions.begin() as session:
        ids = seed.add_skus(session, codes, ingest_on_hand, now)
        seed.add_listings(session, "shop", ids, lambda c: ingest_on_hand(int(c[4:])), now=now)
        short = {ids[c]: 10_000 for i, c in enumerate(codes) if ingest_on_hand(i) == 0}
        if short:
            seed.add_po(session, "PO-INGEST", now.date() + timedelta(days=3), short, now)


def run_ingest(
    led: Ledger,
    bodies: Sequence[bytes],
    plan: LedgerPlan,
    workers: int,
    profile: list[str] | None = None,
) -> dict[str, Any]:
    """Store every body, then apply the events with `workers` threads; `profile`: run under
    cProfile and append its top functions there (the timing then includes the profiler)."""
    runtime = led.runtime
    seed_ingest(led, plan.order_skus, datetime.now(UTC))
    with count_statements(led.engine) as store_stats:
        started = time.perf_counter()
        ids = []
        for i, body in enumerate(bodies):
            event_id = inbox.store_event(runtime, "shop", f"bench-{i}", "orders/create", body)
            if event_id is None:
                raise RuntimeError(f"event bench-{i} was stored before")
            ids.append(event_id)
        store_s = time.perf_counter() - started
    # a queue delivers the ids in the order they were stored; each worker takes the next one
    next_id = iter(ids).__next__
    take = threading.Lock()
    errors: list[BaseException] = []

    def worker_loop() -> None:
        while True:
            with take:
                try:
                    event_id = next_id()
                except StopIteration:
                    return
            try:
                inbox.process_event(runtime, event_id)
            except BaseException as exc:  # re-raised below: a bench never hides a failure
                errors.append(exc)
                return

    title = f"ingest {led.kind}, {workers} worker(s)"
    with (
        count_statements(led.engine) as stats,
        profiled(profile is not None, profile if profile is not None else [], title),
    ):
        started = time.perf_counter()
        if workers == 1:
            worker_loop()  # in this thread: what cProfile sees
        else:
            threads = [threading.Thread(target=worker_loop) for _ in range(workers)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        process_s = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"ingest failed inside the ledger: {errors[0]!r}") from errors[0]
    check = check_ingest(led, bodies)
    count = len(bodies)
    return figure(
        "ingest",
        led.kind,
        count / process_s,
        "orders/s",
        rate=count / process_s,
        rate_unit="orders/s",
        stats=stats,
        units=count,
        wall_s=process_s,
        threads=workers,
        workers=workers,
        orders=count,
        skus=plan.order_skus,
        process_s=round(process_s, 3),
        store_per_s=round(count / store_s, 1),
        store_statements_per_event=store_stats.per(count),
        check=check,
    )


def run_ingest_one_by_one(led: Ledger, bodies: Sequence[bytes], plan: LedgerPlan) -> dict[str, Any]:
    """No backlog: each event is stored and then applied before the next arrives (a quiet
    shop's pace; nothing to drain along). Time and statements cover both calls."""
    runtime = led.runtime
    seed_ingest(led, plan.order_skus, datetime.now(UTC))
    with count_statements(led.engine) as stats:
        started = time.perf_counter()
        for i, body in enumerate(bodies):
            event_id = inbox.store_event(runtime, "shop", f"bench-{i}", "orders/create", body)
            if event_id is None:
                raise RuntimeError(f"event bench-{i} was stored before")
            inbox.process_event(runtime, event_id)
        took = time.perf_counter() - started
    check = check_ingest(led, bodies)
    count = len(bodies)
    return figure(
        "ingest one by one",
        led.kind,
        count / took,
        "orders/s",
        rate=count / took,
        rate_unit="orders/s",
        stats=stats,
        units=count,
        wall_s=took,
        workers=1,
        orders=count,
        skus=plan.order_skus,
        process_s=round(took, 3),
        store_per_s=None,
        store_statements_per_event=None,
        check=check,
    )


def check_ingest(led: Ledger, bodies: Sequence[bytes]) -> dict[str, Any]:
    """Every event applied, every order and unit in the ledger, reserved and backordered as the
    seed implies, counters equal to their rows."""
    lines, units, short = body_units(bodies)
    with led.runtime.ctx.sessions() as session:
        pending = session.scalar(
            select(func.count())
            .select_from(m.InboxEvent)
            .where(m.InboxEvent.processed_at.is_(None))
        )
        errors = session.scalars(
            select(m.InboxEvent.error).where(m.InboxEvent.error.is_not(None)).limit(3)
        ).all()
        orders = session.scalar(select(func.count()).select_from(m.ChannelOrder))
        ordered = session.scalar(select(func.coalesce(func.sum(m.OrderLine.quantity), 0)))
        line_count = session.scalar(select(func.count()).select_from(m.OrderLine))
        reserved = session.scalar(select(func.coalesce(func.sum(m.Reservation.qty), 0)))
        backordered = session.scalar(select(func.coalesce(func.sum(m.Backorder.qty_open), 0)))
        mismatches = seed.counter_mismatches(session)
    found = {
        "events_unapplied": int(pending or 0),
        "orders": int(orders or 0),
        "lines": int(line_count or 0),
        "units": int(ordered or 0),
        "reserved": int(reserved or 0),
        "backordered": int(backordered or 0),
    }
    wanted = {
        "events_unapplied": 0,
        "orders": len(bodies),
        "lines": lines,
        "units": units,
        "reserved": units - short,
        "backordered": short,
    }
    if found != wanted or errors or mismatches:
        raise RuntimeError(
            f"ingest left the ledger wrong: found {found}, wanted {wanted}, "
            f"event errors {list(errors)}, counter mismatches {mismatches}"
        )
    return {"ok": True, **found, "lines_per_order": round(lines / max(len(bodies), 1), 2)}


# ------------------------------------------------------------------------------ 2. release
RELEASE_SKU = "REL-1"


def seed_backorders(led: Ledger, count: int, now: datetime) -> None:
    """`count` one-unit backorders of one SKU with no stock (orders alternating between the
    Shopify channel and the manual one, a tenth of them VIP), and an open PO for them."""
    with led.runtime.ctx.sessions.begin() as session:
        sku_id = seed.add_skus(session, [RELEASE_SKU], lambda _i: 0, now)[RELEASE_SKU]
        seed.add_listings(session, "shop", {RELEASE_SKU: sku_id}, lambda _c: 0, now=now)
        seed.add_po(session, "PO-BENCH", now.date() + timedelta(days=3), {sku_id: count}, now)
        orders = [
            {
                "channel": "shop" if i % 2 else "popup",
                "external_id": f"R{i}",
                "placed_at": now + timedelta(seconds=i),
                "status": "open",
                "source_status": "open",
                "source_updated_at": now,
                "tier": "vip" if i % 10 == 0 else "regular",
            }
            for i in range(count)
        ]
        for part in seed.chunks(orders):
            session.execute(insert(m.ChannelOrder), list(part))
        order_ids = [
            int(i) for i in session.scalars(select(m.ChannelOrder.id).order_by(m.ChannelOrder.id))
        ]
        lines = [
            {
                "order_id": order_id,
                "external_line_id": "1",
                "sku_id": sku_id,
                "quantity": 1,
                "shipped": 0,
                "cancelled": 0,
            }
            for order_id in order_ids
        ]
        for part in seed.chunks(lines):
            session.execute(insert(m.OrderLine), list(part))
        line_ids = [int(i) for i in session.scalars(select(m.OrderLine.id))]
        backorders = [
            {
                "order_line_id": line_id,
                "sku_id": sku_id,
                "qty_open": 1,
                "qty_released": 0,
                "accepted_within_capacity": True,
                "created_at": now,
            }
            for line_id in line_ids
        ]
        for part in seed.chunks(backorders):
            session.execute(insert(m.Backorder), list(part))
        seed.recount(session)


def run_release(led: Ledger, count: int, profile: list[str] | None) -> dict[str, Any]:
    seed_backorders(led, count, datetime.now(UTC))
    with (
        count_statements(led.engine) as stats,
        profiled(profile is not None, profile or [], f"release {led.kind}"),
    ):
        started = time.perf_counter()
        # the receipt books the units and releases the backorders in one transaction
        released, followups = receipts.receive_purchase_order(
            led.runtime, "PO-BENCH", {RELEASE_SKU: count}
        )
        release_s = time.perf_counter() - started
    units = sum(r.qty for r in released)
    with led.runtime.ctx.sessions() as session:
        still_open = session.scalar(select(func.coalesce(func.sum(m.Backorder.qty_open), 0)))
        reserved = session.scalar(select(func.coalesce(func.sum(m.Reservation.qty), 0)))
        on_hand = session.scalar(select(func.sum(m.StockLevel.on_hand)))
        mismatches = seed.counter_mismatches(session)
    found = (units, int(still_open or 0), int(reserved or 0), int(on_hand or 0))
    if found != (count, 0, count, count) or mismatches:
        raise RuntimeError(
            f"release left the ledger wrong: (released, open, reserved, on hand) = {found}, "
            f"wanted {(count, 0, count, count)}; counter mismatches {mismatches}"
        )
    return figure(
        "release",
        led.kind,
        release_s,
        "s",
        rate=count / release_s,
        rate_unit="backorders/s",
        stats=stats,
        units=count,
        wall_s=release_s,
        backorders=count,
        pushes_asked=sorted(followups.pushes),
        writebacks_asked=len(followups.writebacks),
        check={"ok": True, "released": units, "open": 0, "reserved": count},
    )


# ------------------------------------------------------------------------------ 3. plan
def plan_code(i: int) -> str:
    return f"P-{i:06d}"


def plan_on_hand(i: int) -> int:
    return 5 + i % 20


def plan_incoming(i: int) -> int:
    """Every 50th SKU has 10 units on an open PO (offered with them: incoming_share 1.0)."""
    return 10 if i % 50 == 0 else 0


def plan_offer(code: str) -> int:
    """What the offer formula gives for a seeded SKU (no orders, no safety buffer, no cap)."""
    i = int(code[2:])
    return plan_on_hand(i) + plan_incoming(i)


def seed_catalogue(led: Ledger, count: int, now: datetime) -> list[int]:
    """`count` SKUs with stock, a mapped clean Shopify listing each, 2 % with incoming; ids."""
    codes = [plan_code(i) for i in range(count)]
    with led.runtime.ctx.sessions.begin() as session:
        ids = seed.add_skus(session, codes, plan_on_hand, now)
        seed.add_listings(session, "shop", ids, plan_offer, now=now)
        incoming = {ids[c]: plan_incoming(i) for i, c in enumerate(codes) if plan_incoming(i)}
        seed.add_po(session, "PO-PLAN", now.date() + timedelta(days=3), incoming, now)
    return [ids[c] for c in codes]


def dirty(led: Ledger, sku_ids: Sequence[int]) -> None:
    with led.runtime.ctx.sessions.begin() as session:
        seed.mark_dirty(session, "shop", sku_ids, datetime.now(UTC))


def memory_kb() -> dict[str, int]:
    """This process's resident set now and its high-water mark (Linux /proc; VmHWM is per
    address space, so a spawned child does not inherit its parent's, unlike ru_maxrss)."""
    found = {"VmRSS": 0, "VmHWM": 0}
    try:
        text = Path("/proc/self/status").read_text(encoding="ascii")
    except OSError:  # not Linux: ru_maxrss is the best there is
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return {"VmRSS": peak, "VmHWM": peak}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in found:
            found[key] = int(value.split()[0])
    return found


def planning_rounds(runtime: Runtime, limit: int, trace: bool) -> dict[str, Any]:
    """Plan the channel's dirty listings round by round, as a push does, marking each round's
    listings clean, until a round finds none; checks every offer and that every dirty listing
    was planned exactly once.

    The check's own bookkeeping is allocated before tracing starts (a byte per listing id,
    counted in place), so the tracemalloc peak is the planning's alone."""
    with runtime.ctx.sessions() as session:
        wanted = sorted(
            session.scalars(
                select(m.Listing.id).where(m.Listing.channel == "shop", m.Listing.dirty.is_(True))
            )
        )
    seen = bytearray((wanted[-1] if wanted else 0) + 1)
    wrong: list[tuple[str, int]] = []
    rounds: list[float] = []
    planned = 0
    plan_s = 0.0
    stats = StatementStats()  # of the planning calls only, not the marking
    memory_start = memory_kb()
    if trace:
        tracemalloc.start()
    try:
        started = time.perf_counter()
        while True:
            t = time.perf_counter()
            with count_statements(runtime.ctx.engine, stats):
                plans, unmapped = push.plan_pushes(runtime, "shop", limit)
            took = time.perf_counter() - t
            plan_s += took
            if unmapped:
                raise RuntimeError(f"{len(unmapped)} listings unexpectedly unmapped")
            if not plans:
                break
            rounds.append(took)
            for p in plans:
                if p.offered != plan_offer(p.listing.sku):
                    wrong.append((p.listing.sku, p.offered))
                if p.listing.listing_id < len(seen) and seen[p.listing.listing_id] < 255:
                    seen[p.listing.listing_id] += 1
                else:
                    wrong.append((p.listing.sku, -1))
            planned += len(plans)
            with runtime.ctx.sessions.begin() as session:
                seed.mark_clean(session, [p.listing.listing_id for p in plans])
            del plans
        total_s = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1] if trace else None
    finally:
        if trace:
            tracemalloc.stop()
    memory_end = memory_kb()
    once = sum(1 for i in wanted if seen[i] == 1)
    if wrong or once != len(wanted) or planned != len(wanted):
        raise RuntimeError(
            f"planning went wrong: {len(wrong)} wrong offers or unknown ids (e.g. {wrong[:3]}); "
            f"planned {planned}, of the {len(wanted)} dirty listings {once} exactly once"
        )
    return {
        "planned": planned,
        "rounds": len(rounds),
        "limit": limit,
        "total_s": round(total_s, 3),
        "plan_s": round(plan_s, 3),
        "first_round_s": round(rounds[0], 3) if rounds else None,
        "last_round_s": round(rounds[-1], 3) if rounds else None,
        "statements": stats.as_dict(planned, plan_s),
        "statements_per_round": round(stats.statements / max(len(rounds) + 1, 1), 1),
        "db_pct": stats.db_share(plan_s),
        "tracemalloc_peak_mb": None if peak is None else round(peak / 2**20, 2),
        "rss_start_mb": round(memory_start["VmRSS"] / 1024, 1),
        "maxrss_mb": round(memory_end["VmHWM"] / 1024, 1),
        "maxrss_growth_mb": round((memory_end["VmHWM"] - memory_start["VmRSS"]) / 1024, 1),
        "traced": trace,
    }


def _planning_child(config_path: str, limit: int, trace: bool) -> dict[str, Any]:
    """In a child process: open the ledger and run the planning rounds."""
    runtime = Runtime.build(load_config(Path(config_path)))
    try:
        return planning_rounds(runtime, limit, trace)
    finally:
        runtime.close()


def planning_in_child(led: Ledger, limit: int, trace: bool, isolate: bool = True) -> dict[str, Any]:
    """The planning rounds in a fresh process, so its maximum RSS is this run's alone (or in
    this process when not `isolate`: quicker, for tests; RSS then means little)."""
    if not isolate:
        return planning_rounds(led.runtime, limit, trace)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(_planning_child, str(led.config_path), limit, trace).result()


def run_plan(
    big: Ledger,
    big_ids: Sequence[int],
    folder: Path,
    pg_admin: str,
    plan: LedgerPlan,
    progress: Callable[[str], None],
    profile: list[str] | None = None,
) -> list[dict[str, Any]]:
    kind = big.kind
    found: list[dict[str, Any]] = []
    step = max(round(100 / plan.changed_pct), 1)
    changed = list(big_ids[::step])
    progress(f"plan {kind}: {len(changed)} of {len(big_ids)} changed")
    dirty(big, changed)
    one = planning_in_child(big, push.PUSH_BATCH, False, plan.isolate)
    found.append(
        figure(
            "plan 1% changed",
            kind,
            one["plan_s"],
            "s",
            rate=one["planned"] / one["plan_s"],
            rate_unit="SKUs/s",
            per_unit=one["statements"]["statements_per_unit"],
            statement_count=one["statements"]["statements"],
            db_pct=one["db_pct"],
            skus=len(big_ids),
            changed=len(changed),
            run=one,
        )
    )
    runs: dict[int, dict[str, Any]] = {}
    for count, target in ((len(big_ids), big), (plan.small_plan_skus, None)):
        with ExitStack() as stack:
            led = target
            ids: Sequence[int] = big_ids
            if led is None:
                led = stack.enter_context(ledger(kind, folder, pg_admin))
                ids = seed_catalogue(led, count, datetime.now(UTC))
            progress(f"plan {kind}: all {count} dirty")
            dirty(led, ids)
            timed = planning_in_child(led, plan.replan_limit, False, plan.isolate)
            progress(f"plan {kind}: all {count} dirty, traced")
            dirty(led, ids)
            traced = planning_in_child(led, plan.replan_limit, True, plan.isolate)
            runs[count] = {"timed": timed, "traced": traced}
    full = runs[len(big_ids)]["timed"]
    found.append(
        figure(
            "plan all",
            kind,
            full["plan_s"],
            "s",
            rate=full["planned"] / full["plan_s"],
            rate_unit="SKUs/s",
            per_unit=full["statements"]["statements_per_unit"],
            statement_count=full["statements"]["statements"],
            db_pct=full["db_pct"],
            skus=len(big_ids),
            run=full,
        )
    )
    small, large = runs[plan.small_plan_skus], runs[len(big_ids)]
    small_peak = small["traced"]["tracemalloc_peak_mb"] or 0.0
    large_peak = large["traced"]["tracemalloc_peak_mb"] or 0.0
    growth = large_peak / small_peak if small_peak else None
    found.append(
        figure(
            "plan memory",
            kind,
            growth,
            f"x tracemalloc peak, {plan.small_plan_skus:,} -> {len(big_ids):,} SKUs",
            rate=None,
            rate_unit="",
            memory={
                str(count): {
                    "skus": count,
                    "tracemalloc_peak_mb": run["traced"]["tracemalloc_peak_mb"],
                    "maxrss_mb": run["timed"]["maxrss_mb"],
                    "maxrss_growth_mb": run["timed"]["maxrss_growth_mb"],
                    "plan_s": run["timed"]["plan_s"],
                    "plan_s_traced": run["traced"]["plan_s"],
                }
                for count, run in sorted(runs.items())
            },
        )
    )
    if profile is not None:
        progress(f"plan {kind}: all {len(big_ids)} dirty, profiled")
        dirty(big, big_ids)
        with profiled(True, profile, f"plan all {kind}, {len(big_ids)} SKUs"):
            planning_rounds(big.runtime, plan.replan_limit, False)
    return found


# ------------------------------------------------------------------------------ 4. CLI
def run_cli_process(args: Sequence[str], timeout: float) -> tuple[float | None, str, str]:
    """Wall seconds of one `stocksync` run (None when it timed out), its stdout and stderr;
    fails on a non-zero exit."""
    command = [stocksync_executable(), *args]
    started = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return None, "", f"timed out after {timeout:g} s"
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {done.returncode}: {done.stderr[-500:]}")
    return took, done.stdout, done.stderr


def startup_seconds(timeout: float) -> float | None:
    """Wall seconds of a fresh interpreter importing the CLI (`import sync.cli`): what every
    `stocksync` command pays before its first query; None when it timed out."""
    started = time.perf_counter()
    try:
        subprocess.run(
            [sys.executable, "-c", "import sync.cli"],
            check=True,
            timeout=timeout,
            capture_output=True,
        )
    except subprocess.TimeoutExpired:
        return None
    return time.perf_counter() - started


def cli_in_process(args: Sequence[str]) -> tuple[StatementStats, float, str]:
    """Run the CLI in this process to count its statements (every engine it opens)."""
    from sync import cli

    out = io.StringIO()
    with count_statements(Engine) as stats, contextlib.redirect_stdout(out):
        started = time.perf_counter()
        try:
            cli.main(list(args))
        except SystemExit as exc:
            if exc.code not in (0, None):
                raise RuntimeError(f"{' '.join(args)} exited {exc.code}") from exc
        took = time.perf_counter() - started
    return stats, took, out.getvalue()


def run_cli(
    led: Ledger, skus: int, timeout: float, profile: list[str] | None = None
) -> list[dict[str, Any]]:
    cfg = ["--config", str(led.config_path)]
    startup = startup_seconds(timeout)
    found: list[dict[str, Any]] = []
    probe = plan_code(50)  # has incoming: every term of the formula is non-trivial
    for name, args, check in (
        ("status --json", [*cfg, "status", "--json"], lambda d: len(d["skus"]) == skus),
        (
            "explain --json",
            [*cfg, "explain", probe, "--json"],
            lambda d: (
                d["sku"] == probe
                and {c["channel"]: c["offered"] for c in d["channels"]}["shop"] == plan_offer(probe)
            ),
        ),
    ):
        took, out, err = run_cli_process(args, timeout)
        if took is None:
            found.append(
                figure(
                    name,
                    led.kind,
                    None,
                    "s",
                    rate=None,
                    rate_unit="calls/s",
                    note=err,
                    startup_s=round(startup or 0, 3),
                )
            )
            continue
        if not check(json.loads(out)):
            raise RuntimeError(f"`stocksync {' '.join(args)}` printed an incomplete answer")
        stats, inside_s, _printed = cli_in_process(args)
        per_sku = name.startswith("status")
        found.append(
            figure(
                name,
                led.kind,
                took,
                "s",
                rate=(skus if per_sku else 1) / took,
                rate_unit="SKUs/s" if per_sku else "calls/s",
                stats=stats,
                units=1,
                wall_s=inside_s,
                skus=skus,
                startup_s=None if startup is None else round(startup, 3),
                in_process_s=round(inside_s, 3),
            )
        )
    if profile is not None:
        with profiled(True, profile, f"status --json {led.kind}, {skus} SKUs, in-process"):
            cli_in_process([*cfg, "status", "--json"])
    return found


# ------------------------------------------------------------------------------ 5. import
def import_rows(count: int) -> list[tuple[str, int]]:
    return [(f"IMP-{i:06d}", 1 + i % 50) for i in range(count)]


def write_csv(path: Path, rows: Sequence[tuple[str, int]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["sku", "on_hand"])
        writer.writerows(rows)
    return path


def check_import(led: Ledger, rows: Sequence[tuple[str, int]]) -> dict[str, Any]:
    with led.runtime.ctx.sessions() as session:
        skus = session.scalar(select(func.count()).select_from(m.Sku))
        on_hand = session.scalar(select(func.coalesce(func.sum(m.StockLevel.on_hand), 0)))
    found = (int(skus or 0), int(on_hand or 0))
    wanted = (len(rows), sum(q for _s, q in rows))
    if found != wanted:
        raise RuntimeError(f"import left (SKUs, units) = {found}, wanted {wanted}")
    return {"ok": True, "skus": found[0], "units": found[1]}


def run_import(kind: str, folder: Path, pg_admin: str, plan: LedgerPlan) -> dict[str, Any]:
    rows = import_rows(plan.import_rows)
    path = write_csv(folder / f"import-{kind}.csv", rows)
    with ledger(kind, folder, pg_admin) as led:
        args = ["--config", str(led.config_path), "stock", "import", str(path), "--json"]
        took, out, err = run_cli_process(args, plan.import_timeout_s)
        check = check_import(led, rows) if took is not None else {"ok": False, "note": err}
        if took is not None and json.loads(out).get("skus") != len(rows):
            raise RuntimeError(f"stock import answered {out[:300]}")
    small = import_rows(plan.import_statement_rows)
    small_path = write_csv(folder / f"import-small-{kind}.csv", small)
    with ledger(kind, folder, pg_admin) as led:
        args = ["--config", str(led.config_path), "stock", "import", str(small_path), "--json"]
        stats, inside_s, _out = cli_in_process(args)
        check_import(led, small)
    return figure(
        "stock import",
        kind,
        took,
        "s",
        rate=None if took is None else len(rows) / took,
        rate_unit="rows/s",
        rows=len(rows),
        check=check,
        statements_per_row=stats.per(len(small)),
        statements_counted_on_rows=len(small),
        statements_db_pct=stats.db_share(inside_s),
        statements=stats.as_dict(len(small), inside_s),
    )


# ------------------------------------------------------------------------------ the run
def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def run_ledger(
    plan: LedgerPlan,
    *,
    pg_admin: str = PG_ADMIN_URL,
    kinds: Sequence[str] = KINDS,
    parts: Sequence[str] = SCENARIOS,
    profile: bool = False,
    progress: Callable[[str], None] = lambda _msg: None,
) -> dict[str, Any]:
    unknown = set(parts) - set(SCENARIOS)
    if unknown:
        raise ValueError(f"unknown scenarios {sorted(unknown)}; known: {SCENARIOS}")
    report: dict[str, Any] = {
        "bench": "ledger",
        "environment": environment(),
        "plan": asdict(plan),
        "load_start": load(),
        "figures": [],
        "profiles": [],
    }
    progress("ceilings")
    before = ceiling.measure(
        kinds, seconds=plan.ceiling_seconds, clients=plan.ceiling_clients, pg_admin=pg_admin
    )
    bodies = shopify_bodies(plan.orders, plan.order_skus, plan.seed) if "ingest" in parts else []
    figures: list[dict[str, Any]] = report["figures"]
    profiles: list[str] | None = report["profiles"] if profile else None
    with tempfile.TemporaryDirectory(prefix="stocksync-ledger-") as tmp:
        folder = Path(tmp)
        for kind in kinds:
            if "ingest" in parts:
                for workers in plan.workers:
                    progress(f"ingest {kind} x{workers}")
                    with ledger(kind, folder, pg_admin) as led:
                        figures.append(run_ingest(led, bodies, plan, workers))
                progress(f"ingest {kind}, one by one")
                with ledger(kind, folder, pg_admin) as led:
                    figures.append(run_ingest_one_by_one(led, bodies, plan))
                if profile:
                    progress(f"ingest {kind}, profiled")
                    with ledger(kind, folder, pg_admin) as led:
                        run_ingest(led, bodies, plan, 1, profiles)
            if "release" in parts:
                progress(f"release {kind}")
                with ledger(kind, folder, pg_admin) as led:
                    figures.append(run_release(led, plan.backorders, None))
                if profile:
                    progress(f"release {kind}, profiled")
                    with ledger(kind, folder, pg_admin) as led:
                        run_release(led, plan.backorders, profiles)
            if "plan" in parts or "cli" in parts:
                with ledger(kind, folder, pg_admin) as big:
                    progress(f"seed {plan.plan_skus} SKUs ({kind})")
                    big_ids = seed_catalogue(big, plan.plan_skus, datetime.now(UTC))
                    if "plan" in parts:
                        figures.extend(
                            run_plan(big, big_ids, folder, pg_admin, plan, progress, profiles)
                        )
                    if "cli" in parts:
                        progress(f"cli {kind}")
                        figures.extend(run_cli(big, plan.plan_skus, plan.cli_timeout_s, profiles))
            if "import" in parts:
                progress(f"import {kind}")
                figures.append(run_import(kind, folder, pg_admin, plan))
    after = None
    if plan.ceiling_again:
        progress("ceilings again")
        after = ceiling.measure(
            kinds, seconds=plan.ceiling_seconds, clients=plan.ceiling_clients, pg_admin=pg_admin
        )
    report["ceilings"] = ceilings_summary(kinds, before, after)
    report["load_end"] = load()
    for row in figures:
        base = report["ceilings"][row["database"]]["ratio_base_tps"]
        row["ceiling_tps"] = base
        row["ratio"] = significant(row["rate"] / base) if row["rate"] is not None and base else None
    return report


def ceilings_summary(
    kinds: Sequence[str], before: ceiling.Ceilings, after: ceiling.Ceilings | None
) -> dict[str, Any]:
    """Per database: the ceilings before (and after) the scenarios; the ratio's base is their
    mean at 1 client."""
    found: dict[str, Any] = {}
    for kind in kinds:
        values = [c.of(kind) for c in (before, after) if c is not None]
        measured = [v for v in values if v is not None]
        found[kind] = {
            "before_tps": _r(before.of(kind)),
            "after_tps": _r(after.of(kind)) if after is not None else None,
            "ratio_base_tps": _r(sum(measured) / len(measured)) if measured else None,
        }
        if kind == "postgresql":
            found[kind]["clients_tps"] = {
                "before": {str(c): _r(t) for c, t in before.postgresql.items()},
                "after": {str(c): _r(t) for c, t in after.postgresql.items()} if after else None,
            }
    return found


def significant(value: float, digits: int = 3) -> float:
    """`value` rounded to `digits` significant digits (ratios span many orders of magnitude)."""
    return float(f"{value:.{digits}g}")


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


# ------------------------------------------------------------------------------ report
def tables(report: Mapping[str, Any]) -> str:
    out = []
    ceilings = report["ceilings"]
    rows = []
    for kind, c in ceilings.items():
        clients = c.get("clients_tps") or {}
        four = ", ".join(
            f"{n} clients {v:g}" for n, v in (clients.get("before") or {}).items() if n != "1"
        )
        rows.append([kind, c["before_tps"], c["after_tps"], c["ratio_base_tps"], four or None])
    out.append(
        "Ceilings, tx/s (SQLite: stdlib WAL update loop; PostgreSQL: pgbench single-row "
        "UPDATE):\n\n"
        + markdown_table(["database", "before", "after", "ratio base", "more clients"], rows)
    )
    headers = [
        "scenario",
        "database",
        "result",
        "target",
        "met",
        "rate",
        "ceiling tx/s",
        "ratio",
        "statements",
        "per unit",
        "% in DB",
    ]
    body = []
    for f in report["figures"]:
        result = "—" if f["value"] is None else f"{f['value']:g} {f['unit']}"
        rate = None if f["rate"] is None else f"{f['rate']:g} {f['rate_unit']}"
        met = {True: "yes", False: "no", None: None}[f["met"]]
        per = (
            f["statements_per_unit"]
            if f["statements_per_unit"] is not None
            else f.get("statements_per_row")
        )
        body.append(
            [
                f["scenario"],
                f["database"],
                result,
                f["target"],
                met,
                rate,
                f["ceiling_tps"],
                f["ratio"],
                f["statement_count"],
                per,
                f["db_pct"],
            ]
        )
    out.append(markdown_table(headers, body))
    memory = [f for f in report["figures"] if f["scenario"] == "plan memory"]
    if memory:
        rows = [
            [
                f["database"],
                run["skus"],
                run["plan_s"],
                run["tracemalloc_peak_mb"],
                run["maxrss_mb"],
                run["maxrss_growth_mb"],
            ]
            for f in memory
            for run in f["memory"].values()
        ]
        out.append(
            "Full re-evaluation by catalogue size:\n\n"
            + markdown_table(
                ["database", "SKUs", "s", "tracemalloc peak MB", "max RSS MB", "RSS growth MB"],
                rows,
            )
        )
    plans = [f for f in report["figures"] if "run" in f]
    if plans:
        rows = [
            [
                f["scenario"],
                f["database"],
                f["run"]["planned"],
                f["run"]["rounds"],
                f["run"]["plan_s"],
                f["run"]["total_s"],
                f["run"]["first_round_s"],
                f["run"]["last_round_s"],
                f["run"]["statements_per_round"],
            ]
            for f in plans
        ]
        out.append(
            "Planning rounds:\n\n"
            + markdown_table(
                [
                    "scenario",
                    "database",
                    "planned",
                    "rounds",
                    "plan s",
                    "incl. marking s",
                    "first round s",
                    "last round s",
                    "statements / round",
                ],
                rows,
            )
        )
    ingest = [f for f in report["figures"] if f["scenario"].startswith("ingest")]
    if ingest:
        rows = [
            [
                f["scenario"],
                f["database"],
                f["workers"],
                f["orders"],
                f["check"]["lines_per_order"],
                f["process_s"],
                f["store_per_s"],
                f["store_statements_per_event"],
                ", ".join(
                    f"{t['count']}x {t['statement'][:40]}" for t in f["statements"]["top"][:3]
                ),
            ]
            for f in ingest
        ]
        out.append(
            "Ingest detail:\n\n"
            + markdown_table(
                [
                    "scenario",
                    "database",
                    "workers",
                    "orders",
                    "lines/order",
                    "process s",
                    "stored events/s",
                    "statements / stored event",
                    "top statements",
                ],
                rows,
            )
        )
    cli = [f for f in report["figures"] if "startup_s" in f or f["scenario"] == "stock import"]
    if cli:
        rows = [
            [
                f["scenario"],
                f["database"],
                f["value"],
                f.get("startup_s"),
                f.get("in_process_s"),
                (f["statements"] or {}).get("statements"),
                f.get("statements_counted_on_rows"),
                (f.get("check") or {}).get("note") or f.get("note"),
            ]
            for f in cli
        ]
        out.append(
            "Commands (wall s of the `stocksync` subprocess; start-up = a fresh interpreter "
            "importing sync.cli; "
            "statements counted in-process, for `stock import` on a smaller file):\n\n"
            + markdown_table(
                [
                    "command",
                    "database",
                    "wall s",
                    "start-up s",
                    "in-process s",
                    "statements",
                    "counted on rows",
                    "note",
                ],
                rows,
            )
        )
    out.append(f"Load average at start {report['load_start']}, at end {report['load_end']}.")
    return "\n\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ledger",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, 1 s ceilings")
    parser.add_argument("--json-out", type=Path, default=default_json_path("ledger"))
    parser.add_argument("--postgres", default=PG_ADMIN_URL, help="admin URL for fresh databases")
    parser.add_argument("--sqlite-only", action="store_true")
    parser.add_argument("--postgres-only", action="store_true")
    parser.add_argument("--only", action="append", choices=SCENARIOS, help="repeatable")
    parser.add_argument("--orders", type=int, help="orders to ingest")
    parser.add_argument("--workers", help="worker threads per ingest run, e.g. 1,2")
    parser.add_argument("--backorders", type=int, help="backorders to release")
    parser.add_argument("--plan-skus", type=int, help="catalogue size for plan and cli")
    parser.add_argument("--import-rows", type=int, help="rows of the imported CSV")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also profile ingest, release, full planning and status (extra runs)",
    )
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    overrides: dict[str, Any] = {
        "orders": args.orders,
        "backorders": args.backorders,
        "plan_skus": args.plan_skus,
        "import_rows": args.import_rows,
        "workers": tuple(int(w) for w in args.workers.split(",")) if args.workers else None,
    }
    plan = replace(plan, **{k: v for k, v in overrides.items() if v is not None})
    kinds: tuple[str, ...] = KINDS
    if args.sqlite_only:
        kinds = ("sqlite",)
    elif args.postgres_only:
        kinds = ("postgresql",)
    lock = threading.Lock()

    def progress(message: str) -> None:
        with lock:
            print(f"... {message}", flush=True)

    report = run_ledger(
        plan,
        pg_admin=args.postgres,
        kinds=kinds,
        parts=tuple(args.only or SCENARIOS),
        profile=args.profile,
        progress=progress,
    )
    path = write_json(report, args.json_out)
    print(tables(report))
    for text in report["profiles"]:
        print("\n" + text)
    print(f"\nJSON: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
