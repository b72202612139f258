"""Ledger benchmark: the database side of stocksync, without any channel I/O.

1. ingest: Shopify-shaped `orders/create` bodies (made by the Shopify sandbox's own checkout)
   stored in the inbox and applied through `sync.jobs.inbox.process_event` - the worker path: parse
   with the connector, one transaction per event. Orders per second, single-threaded and with
   4 threads, on SQLite and PostgreSQL. Push jobs the events ask for are not run.
2. release: 10,000 open backorders of one SKU on a manual channel (inserted in bulk), then one
   receipt covering them; the time of `sync.jobs.receipts.receive_purchase_order` (booking
   and release, one transaction).
3. plan: 100,000 SKUs with dirty, mapped listings; the push path's planning
   (`sync.jobs.push.plan_pushes`, 1,000 listings a round, each marked clean before the next) over
   all of them: time per round (first and last, to show growth) and peak memory (tracemalloc
   peak of the Python heap, and the process's maximum resident size).
"""

from __future__ import annotations

import argparse
import random
import resource
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, update

from bench.common import (
    PG_ADMIN_URL,
    RULES,
    default_json_path,
    environment,
    fresh_postgres,
    markdown_table,
    write_json,
)
from connectors.sandbox.shopify import ShopifySandbox
from rules import load_config
from stock import counts, purchasing
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


@dataclass(frozen=True)
class LedgerPlan:
    orders: int = 2000
    order_skus: int = 50
    backorders: int = 10_000
    plan_skus: int = 100_000
    threads: int = 4
    seed: int = 11


FULL = LedgerPlan()
QUICK = LedgerPlan(orders=300, backorders=2000, plan_skus=10_000)


@contextmanager
def ledger_runtime(folder: Path, database: str | None) -> Iterator[Runtime]:
    """A migrated ledger (SQLite in `folder`, or the given URL) and a Runtime over it."""
    url = database or f"sqlite:///{folder / f'ledger-{time.monotonic_ns()}.db'}"
    path = folder / f"stocksync-{time.monotonic_ns()}.yaml"
    replace(CONFIG, database=url).write(path, UNCALLED_SHOP, None)
    config = load_config(path)
    upgrade(config.database)
    runtime = Runtime.build(config)
    try:
        yield runtime
    finally:
        runtime.close()


@contextmanager
def database(kind: str, folder: Path, pg_admin: str) -> Iterator[Runtime]:
    with ExitStack() as stack:
        url = stack.enter_context(fresh_postgres(pg_admin)) if kind == "postgresql" else None
        yield stack.enter_context(ledger_runtime(folder, url))


# ------------------------------------------------------------------------------ 1. ingest
def shopify_bodies(count: int, skus: int, seed: int) -> list[bytes]:
    """`orders/create` bodies exactly as the Shopify sandbox sends them (REST webhook JSON)."""
    import json

    rng = random.Random(seed)
    codes = [f"ING-{i:03d}" for i in range(skus)]
    sandbox = ShopifySandbox(catalog=dict.fromkeys(codes, 10 * count))
    try:
        bodies = []
        for i in range(count):
            lines = [
                (code, rng.choice((1, 1, 2))) for code in rng.sample(codes, rng.choice((1, 2)))
            ]
            order = sandbox.checkout(lines, f"buyer{i}@example.com")
            bodies.append(json.dumps(order).encode())
        return bodies
    finally:
        sandbox.stop()


def run_ingest(runtime: Runtime, bodies: list[bytes], skus: int, threads: int) -> dict[str, Any]:
    with runtime.ctx.ledger(actor="bench") as tx:
        for i in range(skus):
            counts.set_stock(tx, f"ING-{i:03d}", 100 * len(bodies), "bench")
    started = time.monotonic()
    ids = []
    for i, body in enumerate(bodies):
        event_id = inbox.store_event(runtime, "shop", f"bench-{i}", "orders/create", body)
        if event_id is None:
            raise RuntimeError(f"event bench-{i} was stored before")
        ids.append(event_id)
    stored_s = time.monotonic() - started
    started = time.monotonic()
    if threads == 1:
        for event_id in ids:
            inbox.process_event(runtime, event_id)
    else:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(lambda e: inbox.process_event(runtime, e), ids))
    processed_s = time.monotonic() - started
    with runtime.ctx.sessions() as session:
        failed = session.scalars(
            select(m.InboxEvent.error).where(m.InboxEvent.processed_at.is_(None))
        ).all()
    if failed:
        raise RuntimeError(f"{len(failed)} events not processed, e.g. {failed[:3]}")
    return {
        "orders": len(bodies),
        "threads": threads,
        "store_per_s": round(len(bodies) / stored_s, 1),
        "process_per_s": round(len(bodies) / processed_s, 1),
        "process_s": round(processed_s, 3),
    }


# ------------------------------------------------------------------------------ 2. release
def seed_backorders(runtime: Runtime, count: int, now: datetime) -> str:
    """`count` one-unit backorders of one SKU on the manual channel, and a PO for them."""
    sku = "REL-1"
    with runtime.ctx.ledger(actor="bench", now=now) as tx:
        counts.set_stock(tx, sku, 0, "bench")
        purchasing.add_po(tx, "PO-BENCH", now.date() + timedelta(days=3), {sku: count}, "bench")
        sku_id = counts.sku_id(tx, sku)
    with runtime.ctx.sessions.begin() as session:
        session.execute(
            insert(m.ChannelOrder),
            [
                {
                    "channel": "popup",
                    "external_id": f"R{i}",
                    "placed_at": now + timedelta(seconds=i),
                    "status": "open",
                    "source_status": "open",
                    "source_updated_at": now,
                    "tier": "vip" if i % 10 == 0 else "regular",
                }
                for i in range(count)
            ],
        )
        order_ids = dict(
            session.execute(
                select(m.ChannelOrder.external_id, m.ChannelOrder.id).where(
                    m.ChannelOrder.channel == "popup"
                )
            ).all()
        )
        session.execute(
            insert(m.OrderLine),
            [
                {
                    "order_id": order_ids[f"R{i}"],
                    "external_line_id": "1",
                    "sku_id": sku_id,
                    "quantity": 1,
                    "shipped": 0,
                    "cancelled": 0,
                }
                for i in range(count)
            ],
        )
        line_ids = session.scalars(select(m.OrderLine.id).where(m.OrderLine.sku_id == sku_id))
        session.execute(
            insert(m.Backorder),
            [
                {
                    "order_line_id": line_id,
                    "sku_id": sku_id,
                    "qty_open": 1,
                    "qty_released": 0,
                    "accepted_within_capacity": True,
                    "created_at": now,
                }
                for line_id in line_ids
            ],
        )
    return sku


def run_release(runtime: Runtime, count: int) -> dict[str, Any]:
    now = datetime.now(UTC)
    sku = seed_backorders(runtime, count, now)
    started = time.monotonic()
    # the receipt books the units and releases the backorders in one transaction
    released, followups = receipts.receive_purchase_order(runtime, "PO-BENCH", {sku: count})
    release_s = time.monotonic() - started
    if sum(r.qty for r in released) != count:
        raise RuntimeError(f"released {sum(r.qty for r in released)} of {count} units")
    with runtime.ctx.sessions() as session:
        still_open = session.scalar(select(m.Backorder.id).where(m.Backorder.qty_open > 0).limit(1))
    if still_open is not None:
        raise RuntimeError("the receipt covered every backorder, yet some are still open")
    return {
        "backorders": count,
        "release_s": round(release_s, 3),
        "released_per_s": round(count / release_s, 1),
        "pushes_asked": sorted(followups.pushes),
    }


# ------------------------------------------------------------------------------ 3. plan
def seed_listings(runtime: Runtime, count: int, now: datetime) -> None:
    """`count` SKUs with stock and a dirty, mapped Shopify listing each, inserted in bulk."""
    with runtime.ctx.sessions.begin() as session:
        for start in range(0, count, 10_000):
            chunk = range(start, min(start + 10_000, count))
            session.execute(
                insert(m.Sku), [{"code": f"P-{i:06d}", "created_at": now} for i in chunk]
            )
        ids = session.scalars(select(m.Sku.id).where(m.Sku.code.like("P-%"))).all()
        for start in range(0, len(ids), 10_000):
            chunk_ids = ids[start : start + 10_000]
            session.execute(
                insert(m.StockLevel),
                [
                    {"sku_id": i, "on_hand": 5 + i % 20, "oversold": 0, "updated_at": now}
                    for i in chunk_ids
                ],
            )
            session.execute(
                insert(m.Listing),
                [
                    {
                        "channel": "shop",
                        "sku_id": i,
                        "external_ids": {"inventory_item_id": str(i)},
                        "last_seen": 3,
                        "dirty": True,
                        "dirty_since": now,
                    }
                    for i in chunk_ids
                ],
            )


def run_plan(runtime: Runtime, count: int) -> dict[str, Any]:
    seed_listings(runtime, count, datetime.now(UTC))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rounds: list[float] = []
    planned = 0
    tracemalloc.start()
    try:
        started = time.monotonic()
        while True:
            t = time.monotonic()
            plans, unmapped = push.plan_pushes(runtime, "shop")
            if unmapped:
                raise RuntimeError(f"{len(unmapped)} listings unexpectedly unmapped")
            if not plans:
                break
            rounds.append(time.monotonic() - t)
            planned += len(plans)
            with runtime.ctx.sessions.begin() as session:
                session.execute(
                    update(m.Listing)
                    .where(m.Listing.id.in_([p.listing.listing_id for p in plans]))
                    .values(dirty=False, dirty_since=None)
                )
        total_s = time.monotonic() - started
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "skus": count,
        "planned": planned,
        "rounds": len(rounds),
        "total_s": round(total_s, 2),
        "skus_per_s": round(planned / total_s, 1),
        "first_round_s": round(rounds[0], 3) if rounds else None,
        "last_round_s": round(rounds[-1], 3) if rounds else None,
        "tracemalloc_peak_mb": round(peak / 2**20, 1),
        "maxrss_mb": round(rss_after / 1024, 1),
        "maxrss_growth_mb": round((rss_after - rss_before) / 1024, 1),
        "note": "timed with tracemalloc on, which slows Python allocation",
    }


# ------------------------------------------------------------------------------ report
def run_ledger(
    plan: LedgerPlan,
    *,
    pg_admin: str = PG_ADMIN_URL,
    kinds: tuple[str, ...] = ("sqlite", "postgresql"),
    parts: tuple[str, ...] = ("ingest", "release", "plan"),
    progress: Callable[[str], None] = lambda _msg: None,
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "bench": "ledger",
        "environment": environment(),
        "plan": plan.__dict__,
        "ingest": [],
        "release": [],
        "plan_push": [],
    }
    bodies = shopify_bodies(plan.orders, plan.order_skus, plan.seed) if "ingest" in parts else []
    with tempfile.TemporaryDirectory(prefix="stocksync-ledger-") as tmp:
        folder = Path(tmp)
        for kind in kinds:
            if "ingest" in parts:
                for threads in (1, plan.threads):
                    progress(f"ingest {kind} x{threads}")
                    with database(kind, folder, pg_admin) as runtime:
                        row = run_ingest(runtime, bodies, plan.order_skus, threads)
                    result["ingest"].append({"database": kind, **row})
            if "release" in parts:
                progress(f"release {kind}")
                with database(kind, folder, pg_admin) as runtime:
                    result["release"].append(
                        {"database": kind, **run_release(runtime, plan.backorders)}
                    )
            if "plan" in parts:
                progress(f"plan {kind}")
                with database(kind, folder, pg_admin) as runtime:
                    result["plan_push"].append(
                        {"database": kind, **run_plan(runtime, plan.plan_skus)}
                    )
    return result


def tables(report: Mapping[str, Any]) -> str:
    out = []
    if report["ingest"]:
        out.append(
            markdown_table(
                ["database", "threads", "orders", "processed orders/s", "stored events/s"],
                [
                    [r["database"], r["threads"], r["orders"], r["process_per_s"], r["store_per_s"]]
                    for r in report["ingest"]
                ],
            )
        )
    if report["release"]:
        out.append(
            markdown_table(
                ["database", "backorders", "receipt + release s", "released/s"],
                [
                    [r["database"], r["backorders"], r["release_s"], r["released_per_s"]]
                    for r in report["release"]
                ],
            )
        )
    if report["plan_push"]:
        out.append(
            markdown_table(
                [
                    "database",
                    "SKUs",
                    "plan s",
                    "SKUs/s",
                    "first round s",
                    "last round s",
                    "tracemalloc peak MB",
                    "max RSS MB",
                ],
                [
                    [
                        r["database"],
                        r["skus"],
                        r["total_s"],
                        r["skus_per_s"],
                        r["first_round_s"],
                        r["last_round_s"],
                        r["tracemalloc_peak_mb"],
                        r["maxrss_mb"],
                    ]
                    for r in report["plan_push"]
                ],
            )
        )
    return "\n\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ledger", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="300 orders, 2,000 backorders, 10k SKUs"
    )
    parser.add_argument("--json-out", type=Path, default=default_json_path("ledger"))
    parser.add_argument("--postgres", default=PG_ADMIN_URL, help="admin URL for fresh databases")
    parser.add_argument("--sqlite-only", action="store_true")
    parser.add_argument("--only", action="append", choices=["ingest", "release", "plan"])
    parser.add_argument("--orders", type=int, help="orders to ingest")
    parser.add_argument("--backorders", type=int, help="backorders to release")
    parser.add_argument("--plan-skus", type=int, help="SKUs whose pushes are planned")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    overrides = {"orders": args.orders, "backorders": args.backorders, "plan_skus": args.plan_skus}
    plan = replace(plan, **{k: v for k, v in overrides.items() if v is not None})
    lock = threading.Lock()

    def progress(message: str) -> None:
        with lock:
            print(f"... {message}", flush=True)

    report = run_ledger(
        plan,
        pg_admin=args.postgres,
        kinds=("sqlite",) if args.sqlite_only else ("sqlite", "postgresql"),
        parts=tuple(args.only or ("ingest", "release", "plan")),
        progress=progress,
    )
    path = write_json(report, args.json_out)
    print(tables(report))
    print(f"\nJSON: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
