"""Drop benchmark: a hype drop of 500 units, 2,000 buyers in a short burst across a Shopify and a
WooCommerce sandbox, run for stocksync and the baselines one after another on fresh sandboxes.

Per strategy: units oversold, sell-through, propagation latency p50/p95/p99 and API calls.
`python -m bench.drop --quick` runs a smaller drop in under a minute.

The drop's plain parts: who buys when, the log of sales, and when a sale has landed on the
other channel. No I/O and no clock reads: times are passed in.

Propagation (a sale of q units on channel A, completed at time t): it has landed on channel B at
the first sample where

    shown_B + (units sold on B after that sale)  <=  S - (units sold on both channels up to and
                                                         including that sale)

with S the units both channels started with. Adding B's own later sales back means B's own
checkouts never count as propagation; "up to and including" means B must reflect this sale and
every earlier one. Sales still in flight (sent, not answered) count as sold on both sides of
the inequality, so uncertainty can only delay a landing, never advance it. Sales beyond S
(oversells) open no probe; a probe where B itself later sold more than that sale left (B
oversold, so no quantity of B can satisfy the rule) is "overtaken": neither landed nor
unresolved.
"""

from __future__ import annotations

import argparse
import enum
import functools
import random
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import requests

from bench.baselines import EventBaseline, PeriodicBaseline, sandbox_channels
from bench.common import (
    PG_ADMIN_URL,
    DelayRelay,
    Deliver,
    api_calls,
    count_delta,
    default_json_path,
    environment,
    free_ports,
    fresh_postgres,
    latency_summary,
    markdown_table,
    post_to,
    running_daemon,
    write_json,
)
from connectors.sandbox.shopify import ShopifySandbox
from connectors.sandbox.woocommerce import WooCommerceSandbox


@dataclass(frozen=True, slots=True)
class Buyer:
    at: float  # seconds after the burst starts
    channel: str
    quantity: int


def plan_buyers(
    count: int,
    burst_s: float,
    seed: int,
    channels: Sequence[str] = ("shop", "woo"),
    double_share: float = 0.1,
) -> list[Buyer]:
    """`count` checkout attempts spread uniformly over the burst, on a random channel, one unit
    each (some two), sorted by time; the same seed gives the same drop."""
    if count < 0 or burst_s <= 0:
        raise ValueError(f"need count >= 0 and a positive burst, got {count}, {burst_s}")
    rng = random.Random(seed)
    buyers = [
        Buyer(
            at=round(rng.uniform(0, burst_s), 4),
            channel=rng.choice(list(channels)),
            quantity=2 if rng.random() < double_share else 1,
        )
        for _ in range(count)
    ]
    return sorted(buyers, key=lambda b: b.at)


class SaleState(enum.StrEnum):
    PENDING = "pending"
    SOLD = "sold"
    REFUSED = "refused"


@dataclass(slots=True)
class Sale:
    seq: int
    channel: str
    quantity: int
    state: SaleState = SaleState.PENDING
    done_at: float | None = None


class SaleLog:
    """Every checkout attempt in the order it was sent; thread-safe."""

    def __init__(self) -> None:
        self._sales: list[Sale] = []
        self._lock = threading.Lock()

    def begin(self, channel: str, quantity: int) -> int:
        with self._lock:
            self._sales.append(Sale(len(self._sales), channel, quantity))
            return len(self._sales) - 1

    def finish(self, seq: int, sold: bool, at: float) -> None:
        with self._lock:
            sale = self._sales[seq]
            sale.state = SaleState.SOLD if sold else SaleState.REFUSED
            sale.done_at = at

    def snapshot(self) -> list[Sale]:
        with self._lock:
            return [Sale(s.seq, s.channel, s.quantity, s.state, s.done_at) for s in self._sales]


def sold_through(sales: Sequence[Sale]) -> dict[int, int]:
    """Units sold on both channels up to and including each live (not refused) sale."""
    total = 0
    found: dict[int, int] = {}
    for sale in sales:
        if sale.state is not SaleState.REFUSED:
            total += sale.quantity
            found[sale.seq] = total
    return found


def landed(
    sales: Sequence[Sale],
    shown: Mapping[str, int],
    initial: int,
    open_probes: set[tuple[int, str]],
) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """Probes (sale seq, channel B) that landed on B given what B shows now, and probes that
    B's own later sales overtook (B sold more than was left: it cannot show the sale)."""
    through = sold_through(sales)
    # units sold on each channel after each live sale
    after: dict[tuple[int, str], int] = {}
    running = dict.fromkeys(shown, 0)
    for sale in reversed(sales):
        if sale.state is SaleState.REFUSED:
            continue
        for channel in shown:
            after[(sale.seq, channel)] = running[channel]
        if sale.channel in running:
            running[sale.channel] += sale.quantity
    done: list[tuple[int, str]] = []
    overtaken: list[tuple[int, str]] = []
    for seq, channel in sorted(open_probes):
        if seq not in through:
            continue  # refused after all: nothing to land
        left = initial - through[seq]
        own = after[(seq, channel)]
        if own > left:
            overtaken.append((seq, channel))
        elif shown[channel] + own <= left:
            done.append((seq, channel))
    return done, overtaken


@dataclass
class Propagation:
    """Probes opened by sold checkouts and the lags of those that landed.

    A sale beyond the initial units (an oversell) opens no probe: the other shop may well show
    0 already, which would count as an instant landing; oversells are reported on their own.
    """

    channels: tuple[str, ...]
    initial: int
    lags: list[float] = field(default_factory=list)
    open: dict[tuple[int, str], float] = field(default_factory=dict)  # probe -> sale completed
    done: set[tuple[int, str]] = field(default_factory=set)
    oversells: set[int] = field(default_factory=set)
    overtaken: int = 0  # the other shop itself oversold after the sale

    def observe(self, sales: Sequence[Sale], shown: Mapping[str, int], now: float) -> None:
        through = sold_through(sales)
        for sale in sales:
            if sale.state is not SaleState.SOLD or sale.done_at is None:
                continue
            if through[sale.seq] > self.initial:
                self.oversells.add(sale.seq)
                continue
            for other in self.channels:
                key = (sale.seq, other)
                if other != sale.channel and key not in self.open and key not in self.done:
                    self.open[key] = sale.done_at
        done, overtaken = landed(sales, shown, self.initial, set(self.open))
        for key in done:
            self.lags.append(max(now - self.open.pop(key), 0.0))
            self.done.add(key)
        for key in overtaken:
            del self.open[key]
            self.done.add(key)
            self.overtaken += 1


# ====================================================================================== harness
SKU = "DROP-1"
CHANNELS = ("shop", "woo")
REAL_DROP_S = 600.0  # a real hype drop lasts about ten minutes; the burst compresses it
REAL_PERIODS_S = (60.0, 300.0)  # what common sync apps poll at
MONITOR_EVERY_S = 0.02


@dataclass(frozen=True)
class DropPlan:
    units: int = 500
    buyers: int = 2000
    burst_s: float = 15.0
    settle_s: float = 10.0
    seed: int = 7
    webhook_delay_ms: tuple[int, int] = (100, 300)
    buyer_threads: int = 32

    @property
    def scale(self) -> float:
        """How much faster than a real drop the burst runs."""
        return REAL_DROP_S / self.burst_s

    def scaled(self, real_seconds: float) -> float:
        return round(real_seconds / self.scale, 3)


FULL = DropPlan()
QUICK = DropPlan(units=100, buyers=400, burst_s=5.0, settle_s=3.0)


@dataclass
class Env:
    """Where one strategy runs: fixed loopback ports known before anything starts."""

    plan: DropPlan
    folder: Path
    shop_url: str
    woo_url: str
    daemon_port: int


class Strategy(Protocol):
    label: str

    def webhook_targets(self, env: Env) -> dict[str, Deliver] | None:
        """Where each channel's webhooks go (after the relay's delay); None: no webhooks."""
        ...

    def start(self, env: Env) -> None: ...

    def stop(self) -> None: ...

    def errors(self) -> list[str]: ...

    def details(self) -> dict[str, Any]: ...


class StocksyncStrategy:
    """The real daemon: in-process broker, SQLite in a temp dir (or PostgreSQL)."""

    def __init__(self, *, postgres_admin: str | None = None) -> None:
        self.label = "stocksync" + (" (PostgreSQL)" if postgres_admin else "")
        self._pg = postgres_admin
        self._stack = ExitStack()
        self._daemon: Any = None

    def webhook_targets(self, env: Env) -> dict[str, Deliver]:
        base = f"http://127.0.0.1:{env.daemon_port}/webhooks"
        return {name: post_to(f"{base}/{name}") for name in CHANNELS}

    def start(self, env: Env) -> None:
        database = None
        if self._pg:
            database = self._stack.enter_context(fresh_postgres(self._pg))
        self._daemon = self._stack.enter_context(
            running_daemon(
                env.folder,
                env.shop_url,
                env.woo_url,
                {SKU: env.plan.units},
                port=env.daemon_port,
                database=database,
            )
        )
        wait_for(lambda: _listings_ready(self._daemon), 30, "the daemon's first push")
        # a merchant's daemon runs long before a drop: start from a settled, idle one
        self._daemon.wait_idle(timeout=30)

    def stop(self) -> None:
        self._stack.close()

    def errors(self) -> list[str]:
        return []

    def details(self) -> dict[str, Any]:
        return {
            "database": "postgresql" if self._pg else "sqlite",
            "safety_buffer": 0,
            "backorders": "disabled for DROP-*",
            "worker_threads": 4,
        }


class PeriodicStrategy:
    def __init__(self, real_period_s: float, period_s: float) -> None:
        self.label = f"periodic absolute set, N={real_period_s:g} s (run at {period_s:g} s)"
        self.real_period_s = real_period_s
        self.period_s = period_s
        self._baseline: PeriodicBaseline | None = None

    def webhook_targets(self, env: Env) -> None:
        return None

    def start(self, env: Env) -> None:
        channels = sandbox_channels(env.shop_url, env.woo_url)
        self._baseline = PeriodicBaseline(channels, SKU, env.plan.units, self.period_s)
        self._baseline.start()

    def stop(self) -> None:
        if self._baseline is not None:
            self._baseline.stop()
            self._baseline.close()

    def errors(self) -> list[str]:
        return list(self._baseline.errors) if self._baseline else []

    def details(self) -> dict[str, Any]:
        rounds = self._baseline.rounds if self._baseline else 0
        return {"real_period_s": self.real_period_s, "period_s": self.period_s, "rounds": rounds}


class EventStrategy:
    label = "event-driven absolute set, no CAS"

    def __init__(self) -> None:
        self._baseline: EventBaseline | None = None

    def webhook_targets(self, env: Env) -> dict[str, Deliver]:
        channels = sandbox_channels(env.shop_url, env.woo_url)
        self._baseline = EventBaseline(channels, SKU, env.plan.units)
        baseline = self._baseline
        return {name: functools.partial(baseline.receive, name) for name in CHANNELS}

    def start(self, env: Env) -> None:
        if self._baseline is None:
            raise RuntimeError("webhook_targets must run before start")
        self._baseline.start()

    def stop(self) -> None:
        if self._baseline is not None:
            self._baseline.stop()
            self._baseline.close()

    def errors(self) -> list[str]:
        return list(self._baseline.errors) if self._baseline else []

    def details(self) -> dict[str, Any]:
        return {"handled": self._baseline.handled if self._baseline else 0, "workers": 4}


def _listings_ready(daemon: Any) -> bool:
    """Every listing of the drop SKU is mapped and clean: the daemon's start-up push is done."""
    from sqlalchemy import select

    from stock import models as m

    with daemon.runtime.ctx.sessions() as session:
        listings = session.scalars(select(m.Listing)).all()
    return len(listings) == len(CHANNELS) and all(
        li.external_ids and not li.dirty for li in listings
    )


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def strategies(plan: DropPlan, *, postgres_admin: str | None = None) -> list[Strategy]:
    found: list[Strategy] = [StocksyncStrategy()]
    if postgres_admin:
        found.append(StocksyncStrategy(postgres_admin=postgres_admin))
    found.extend(PeriodicStrategy(real, plan.scaled(real)) for real in REAL_PERIODS_S)
    found.append(EventStrategy())
    return found


# ------------------------------------------------------------------------------ one run
def shown_now(shopify: ShopifySandbox, woo: WooCommerceSandbox) -> dict[str, int]:
    """Each storefront's quantity, read in-process (no HTTP, so the reading costs nothing)."""
    shop = shopify.available(SKU)
    with woo.lock:
        product = woo.store.by_sku(SKU)
        woo_qty = product.stock_quantity if product is not None else None
    if woo_qty is None:
        raise RuntimeError(f"woocommerce sandbox has no managed stock for {SKU}")
    return {"shop": shop, "woo": int(woo_qty)}


def units_sold(shopify: ShopifySandbox, woo: WooCommerceSandbox) -> dict[str, int]:
    """Units each shop sold, from the shops' own orders (the truth, not the buyers' view)."""
    with shopify.lock:
        shop = sum(
            line.quantity
            for order in shopify.state.orders.values()
            for line in order.line_items
            if line.sku == SKU
        )
    with woo.lock:
        woo_units = sum(
            line.quantity
            for order in woo.store.orders.values()
            for line in order.line_items
            if line.sku == SKU
        )
    return {"shop": shop, "woo": woo_units}


def _buy(
    buyer: Buyer, urls: Mapping[str, str], t0: float, log: SaleLog, local: threading.local
) -> str | None:
    wait = t0 + buyer.at - time.monotonic()
    if wait > 0:
        time.sleep(wait)
    http = getattr(local, "http", None)
    if http is None:
        http = local.http = requests.Session()
    seq = log.begin(buyer.channel, buyer.quantity)
    try:
        reply = http.post(
            f"{urls[buyer.channel]}/_sandbox/checkout",
            json={"sku": SKU, "quantity": buyer.quantity},
            timeout=10,
        )
    except requests.RequestException as exc:
        log.finish(seq, False, time.monotonic())
        return f"{buyer.channel} checkout: {exc!r}"[:300]
    log.finish(seq, reply.status_code == 201, time.monotonic())
    if reply.status_code not in (201, 409):
        return f"{buyer.channel} checkout: {reply.status_code} {reply.text[:200]}"
    return None


class Monitor:
    """Samples both shops every 20 ms and resolves propagation probes."""

    def __init__(
        self, shopify: ShopifySandbox, woo: WooCommerceSandbox, log: SaleLog, initial: int
    ) -> None:
        self._shopify, self._woo, self._log = shopify, woo, log
        self.propagation = Propagation(CHANNELS, initial)
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="drop-monitor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(MONITOR_EVERY_S):
            self.sample()

    def sample(self) -> None:
        shown = shown_now(self._shopify, self._woo)
        now = time.monotonic()
        # the sales are read after the shops: a sale in between only makes the test stricter
        self.propagation.observe(self._log.snapshot(), shown, now)
        self.samples += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sample()


def run_strategy(strategy: Strategy, plan: DropPlan, folder: Path) -> dict[str, Any]:
    """Fresh sandboxes, the strategy, the burst of buyers and the settle window; the numbers."""
    ports = free_ports(3)
    env = Env(
        plan,
        folder,
        f"http://127.0.0.1:{ports[0]}",
        f"http://127.0.0.1:{ports[1]}",
        ports[2],
    )
    targets = strategy.webhook_targets(env)
    relays: dict[str, DelayRelay] = {}
    if targets is not None:
        for i, (name, deliver) in enumerate(sorted(targets.items())):
            relays[name] = DelayRelay(deliver, plan.webhook_delay_ms, seed=plan.seed + i)
            relays[name].start()
    catalog = {SKU: plan.units}
    shopify = ShopifySandbox(
        catalog=catalog, webhook_url=relays["shop"].url if relays else None, seed=plan.seed
    )
    woo = WooCommerceSandbox(
        catalog=dict(catalog), webhook_url=relays["woo"].url if relays else None, seed=plan.seed
    )
    buyer_errors: list[str] = []
    with ExitStack() as stack:
        for relay in relays.values():
            stack.callback(relay.stop)
        shopify.start(port=int(env.shop_url.rsplit(":", 1)[1]))
        stack.callback(shopify.stop)
        woo.start(port=int(env.woo_url.rsplit(":", 1)[1]))
        stack.callback(woo.stop)
        strategy.start(env)
        stack.callback(strategy.stop)
        before = {"shop": dict(shopify.request_count), "woo": dict(woo.request_count)}
        log = SaleLog()
        monitor = Monitor(shopify, woo, log, plan.units)
        buyers = plan_buyers(plan.buyers, plan.burst_s, plan.seed, CHANNELS)
        urls = {"shop": shopify.url, "woo": woo.url}
        local = threading.local()
        monitor.start()
        t0 = time.monotonic()
        with ThreadPoolExecutor(max_workers=plan.buyer_threads) as pool:
            futures = [pool.submit(_buy, b, urls, t0, log, local) for b in buyers]
            buyer_errors = [e for e in (f.result() for f in futures) if e is not None]
        burst_took = time.monotonic() - t0
        time.sleep(max(plan.burst_s + plan.settle_s - burst_took, 0))
        monitor.stop()
        window = time.monotonic() - t0
        after = {"shop": dict(shopify.request_count), "woo": dict(woo.request_count)}
        sold = units_sold(shopify, woo)
        final = shown_now(shopify, woo)
    calls = {name: count_delta(after[name], before[name]) for name in CHANNELS}
    total_sold = sum(sold.values())
    sales = log.snapshot()
    prop = monitor.propagation
    return {
        "strategy": strategy.label,
        "details": strategy.details(),
        "units": plan.units,
        "units_sold": sold,
        "units_sold_total": total_sold,
        "oversold": max(total_sold - plan.units, 0),
        "sell_through_pct": round(100 * min(total_sold, plan.units) / plan.units, 1),
        "checkouts": {
            "attempted": len(sales),
            "sold": sum(1 for s in sales if s.state is SaleState.SOLD),
            "refused": sum(1 for s in sales if s.state is SaleState.REFUSED),
        },
        "buyer_units_sold": sum(s.quantity for s in sales if s.state is SaleState.SOLD),
        "final_shown": final,
        "propagation": latency_summary(prop.lags)
        | {
            "unresolved": len(prop.open),
            "overtaken": prop.overtaken,
            "oversell_sales": len(prop.oversells),
        },
        "api_calls": {name: api_calls(calls[name]) for name in CHANNELS},
        "api_calls_total": sum(api_calls(c) for c in calls.values()),
        "api_calls_by_route": calls,
        "window_s": round(window, 2),
        "monitor_samples": monitor.samples,
        "webhooks_relayed": {
            name: {
                "received": r.stats.received,
                "delivered": r.stats.delivered,
                "failed": r.stats.failed,
            }
            for name, r in relays.items()
        },
        "errors": (buyer_errors + strategy.errors())[:20],
        "error_count": len(buyer_errors) + len(strategy.errors()),
    }


# ------------------------------------------------------------------------------ report
def run_drop(
    plan: DropPlan, *, postgres_admin: str | None = None, only: Sequence[str] | None = None
) -> dict[str, Any]:
    results = []
    with tempfile.TemporaryDirectory(prefix="stocksync-drop-") as tmp:
        for i, strategy in enumerate(strategies(plan, postgres_admin=postgres_admin)):
            if only and not any(word in strategy.label for word in only):
                continue
            folder = Path(tmp) / f"run-{i}"
            folder.mkdir()
            results.append(run_strategy(strategy, plan, folder))
    return {
        "bench": "drop",
        "plan": {
            "units": plan.units,
            "buyers": plan.buyers,
            "burst_s": plan.burst_s,
            "settle_s": plan.settle_s,
            "seed": plan.seed,
            "webhook_delay_ms": list(plan.webhook_delay_ms),
            "sku": SKU,
            "time_scale": round(plan.scale, 2),
            "real_drop_s": REAL_DROP_S,
            "arrivals": "uniform over the burst, random channel, qty 1 (10% qty 2)",
        },
        "environment": environment(),
        "results": results,
    }


def table(report: Mapping[str, Any]) -> str:
    headers = [
        "strategy",
        "oversold",
        "sell-through",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "landed / overtaken / unresolved",
        "API calls (shop/woo)",
    ]
    rows = []
    for r in report["results"]:
        p = r["propagation"]
        rows.append(
            [
                r["strategy"],
                r["oversold"],
                f"{r['sell_through_pct']}%",
                p["p50_ms"],
                p["p95_ms"],
                p["p99_ms"],
                f"{p['count']} / {p['overtaken']} / {p['unresolved']}",
                f"{r['api_calls_total']} ({r['api_calls']['shop']}/{r['api_calls']['woo']})",
            ]
        )
    plan = report["plan"]
    lo, hi = plan["webhook_delay_ms"]
    head = (
        f"Drop: {plan['units']} units of {plan['sku']} on both shops, {plan['buyers']} buyers over "
        f"{plan['burst_s']} s (time scale 1:{plan['time_scale']:g} of a {plan['real_drop_s']:g} s "
        f"drop), webhook latency {lo}-{hi} ms, calls counted over burst + {plan['settle_s']} s."
    )
    return head + "\n\n" + markdown_table(headers, rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.drop", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="100 units, 400 buyers over 5 s")
    parser.add_argument("--json-out", type=Path, default=default_json_path("drop"))
    parser.add_argument(
        "--postgres",
        nargs="?",
        const=PG_ADMIN_URL,
        default=None,
        help="also run stocksync on PostgreSQL (admin URL)",
    )
    parser.add_argument("--units", type=int)
    parser.add_argument("--buyers", type=int)
    parser.add_argument("--burst", type=float, help="seconds")
    parser.add_argument("--settle", type=float, help="seconds after the burst")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--only", action="append", help="run strategies whose label has WORD")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    overrides = {
        "units": args.units,
        "buyers": args.buyers,
        "burst_s": args.burst,
        "settle_s": args.settle,
        "seed": args.seed,
    }
    plan = replace(plan, **{k: v for k, v in overrides.items() if v is not None})
    report = run_drop(plan, postgres_admin=args.postgres, only=args.only)
    path = write_json(report, args.json_out)
    print(table(report))
    print(f"\nJSON: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
