"""Drop benchmark: a hype drop of 500 units, 2,000 buyers in a short burst across a Shopify and a
WooCommerce sandbox, run for stocksync (with and without a channel pool) and the baselines one
after another on fresh sandboxes, for two buyer splits (even, and 80 % on WooCommerce).

Per strategy and split: units oversold, sell-through, stranded refusals (a buyer refused while
the other shop still showed units), units left unsold, the most the shops could have sold at
any one moment (exposure), propagation latency p50/p95/p99 where it means something, and API
calls. `python -m bench.drop --quick` runs a smaller drop in a few minutes.

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
unresolved. Under a pool each shop shows only what is left of its own allotment, so the rule
holds at the first sample by construction: the pooled rows report exposure instead.
"""

from __future__ import annotations

import argparse
import enum
import functools
import itertools
import json
import math
import random
import re
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Protocol, cast

import requests

from bench.baselines import EventBaseline, PeriodicBaseline, sandbox_channels
from bench.common import (
    PG_ADMIN_URL,
    RESULTS_DIR,
    RULES,
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

DOUBLE_SHARE = 0.1  # of buyers who take 2 units


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
    double_share: float = DOUBLE_SHARE,
    weights: Mapping[str, float] | None = None,
) -> list[Buyer]:
    """`count` checkout attempts spread uniformly over the burst, each on a channel drawn by
    `weights` (None: uniformly, the drop the bench always ran), one unit each (some two),
    sorted by time; the same seed gives the same drop."""
    if count < 0 or burst_s <= 0:
        raise ValueError(f"need count >= 0 and a positive burst, got {count}, {burst_s}")
    names = list(channels)
    if weights is not None and (
        set(weights) != set(names)
        or any(w < 0 for w in weights.values())
        or not any(weights.values())
    ):
        raise ValueError(f"weights must be >= 0 for exactly the channels {names}, got {weights}")
    rng = random.Random(seed)

    def channel() -> str:
        if weights is None:
            return rng.choice(names)
        return rng.choices(names, weights=[weights[n] for n in names])[0]

    buyers = [
        Buyer(
            at=round(rng.uniform(0, burst_s), 4),
            channel=channel(),
            quantity=2 if rng.random() < double_share else 1,
        )
        for _ in range(count)
    ]
    return sorted(buyers, key=lambda b: b.at)


@dataclass(frozen=True, slots=True)
class Split:
    """How the buyers divide over the shops: `woo_share` of them buy on WooCommerce."""

    name: str
    woo_share: float

    def weights(self) -> dict[str, float] | None:
        """plan_buyers' weights; None for an even split (the same buyers as before splits)."""
        if self.woo_share == 0.5:
            return None
        return {"shop": 1 - self.woo_share, "woo": self.woo_share}


EVEN = Split("even", 0.5)
SKEWED = Split("skewed", 0.8)
SPLITS = (EVEN, SKEWED)


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
    other_shown: int | None = None  # a refusal: what the other shop showed right after it


class SaleLog:
    """Every checkout attempt in the order it was sent; thread-safe."""

    def __init__(self) -> None:
        self._sales: list[Sale] = []
        self._lock = threading.Lock()

    def begin(self, channel: str, quantity: int) -> int:
        with self._lock:
            self._sales.append(Sale(len(self._sales), channel, quantity))
            return len(self._sales) - 1

    def finish(self, seq: int, sold: bool, at: float, other_shown: int | None = None) -> None:
        with self._lock:
            sale = self._sales[seq]
            sale.state = SaleState.SOLD if sold else SaleState.REFUSED
            sale.done_at = at
            sale.other_shown = other_shown

    def snapshot(self) -> list[Sale]:
        with self._lock:
            return [
                Sale(s.seq, s.channel, s.quantity, s.state, s.done_at, s.other_shown)
                for s in self._sales
            ]


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


# ------------------------------------------------------------------------------ outcome figures
@dataclass(frozen=True, slots=True)
class Sample:
    """Both shops at one moment: what each showed and had sold (each shop read atomically)."""

    at: float  # seconds after the drop opened
    shown: Mapping[str, int]
    sold: Mapping[str, int]

    @property
    def exposure(self) -> int:
        """Units sold plus units still offered: the most the shops could sell from here."""
        return sum(self.shown.values()) + sum(self.sold.values())


def exposure(samples: Sequence[Sample], units: int) -> dict[str, Any]:
    """The largest exposure seen and how many samples exceeded the units there were."""
    worst = max((s.exposure for s in samples), default=0)
    over = sum(1 for s in samples if s.exposure > units)
    return {"max": worst, "samples_over_units": over, "samples": len(samples)}


def stranded_seconds(samples: Sequence[Sample], until: float) -> dict[str, float]:
    """Per shop: seconds (up to `until`, the end of the burst) it showed 0 while another shop
    showed units, by the time between consecutive samples."""
    found: dict[str, float] = {}
    for sample, following in itertools.pairwise(samples):
        if sample.at >= until:
            break
        step = min(following.at, until) - sample.at
        for name, shown in sample.shown.items():
            found.setdefault(name, 0.0)
            others = sum(v for n, v in sample.shown.items() if n != name)
            if shown <= 0 < others:
                found[name] += step
    return {name: round(seconds, 3) for name, seconds in found.items()}


def timeline(samples: Sequence[Sample]) -> list[list[Any]]:
    """[seconds, shown per shop..., sold per shop...] at the first sample and at every sample
    where a shop's shown quantity changed: when each shop ran out and got units again."""
    rows: list[list[Any]] = []
    last: Mapping[str, int] | None = None
    for sample in samples:
        if last is None or sample.shown != last:
            rows.append([sample.at, *sample.shown.values(), *sample.sold.values()])
            last = sample.shown
    return rows


def refusals(sales: Sequence[Sale]) -> dict[str, Any]:
    """Refused checkouts, and the stranded ones: refused while the other shop showed units.
    A stranded refusal's units are what it asked for, at most what the other shop showed."""
    refused = [s for s in sales if s.state is SaleState.REFUSED]
    stranded = [s for s in refused if (s.other_shown or 0) > 0]
    by_channel: dict[str, dict[str, int]] = {}
    for sale in refused:
        entry = by_channel.setdefault(sale.channel, {"refused": 0, "stranded": 0})
        entry["refused"] += 1
        entry["stranded"] += sale in stranded
    return {
        "refused": len(refused),
        "refused_units": sum(s.quantity for s in refused),
        "stranded": len(stranded),
        "stranded_units": sum(min(s.quantity, s.other_shown or 0) for s in stranded),
        "max_other_shown": max((s.other_shown or 0 for s in stranded), default=0),
        "by_channel": dict(sorted(by_channel.items())),
    }


def sell_through(units: int, sold: int, demand: int) -> float:
    """Units sold ÷ units there were (÷ units asked for, when demand fell short of supply), in
    percent; units left on a shop while buyers were refused elsewhere count against it."""
    base = min(units, demand)
    if base <= 0:
        return 100.0
    return round(100 * min(sold, base) / base, 1)


def unsold(units: int, sold: int, shown: Mapping[str, int]) -> dict[str, int]:
    """Units not sold at the end, and where they were: on each shop (still shown) or held by
    the ledger (shown nowhere: a pool's reserve or units in transit)."""
    left = max(units - sold, 0)
    on_shops = {name: min(max(qty, 0), left) for name, qty in shown.items()}
    return {"total": left, **on_shops, "held": max(left - sum(on_shops.values()), 0)}


# ------------------------------------------------------------------------------ the pool
# WooCommerce writes absolutely: a push reads the product, then writes the new stock; a checkout
# that lands between the two is overwritten, so the shop may sell that many units beyond its
# allotment. The reserve is sized to absorb such races: the peak WooCommerce sell rate (the
# skewed split, the worse one) times the read-then-write gap, for RACES_COVERED writes before
# the ledger learns of the oversell (a webhook later) and takes units back.
RACE_GAP_S = 0.02  # a WooCommerce push's read -> write gap on loopback under the drop's load
RACES_COVERED = 2
POOL_WEIGHTS = {"shop": 1, "woo": 1}
REBALANCE_S = 1.0  # the pool's rebalance_interval_s, in the bench's own (scaled) time


def pool_reserve(buyers: int, burst_s: float, woo_share: float = SKEWED.woo_share) -> int:
    """The pool's reserve for a drop: at least 2, else the units WooCommerce sells at its peak
    rate over RACES_COVERED read-then-write gaps (500 units / 2,000 buyers / 15 s: 5)."""
    rate = buyers * (1 + DOUBLE_SHARE) * woo_share / burst_s
    return max(2, math.ceil(rate * RACE_GAP_S * RACES_COVERED))


def pool_rules(reserve: int, rebalance_interval_s: float) -> dict[str, Any]:
    """The benchmarks' rules with the drop SKU under a pool of equal weights."""
    sku_rules = cast(Sequence[Mapping[str, Any]], RULES["sku_rules"])
    drop_rule = dict(sku_rules[0])
    drop_rule["pool"] = {
        "weights": dict(POOL_WEIGHTS),
        "reserve": reserve,
        "rebalance_interval_s": rebalance_interval_s,
    }
    return {**RULES, "sku_rules": [drop_rule]}


def pool_audit_summary(entries: Iterable[tuple[float, str, Mapping[str, Any]]]) -> dict[str, Any]:
    """What the ledger's audit says the pool did: (seconds after the drop opened, action,
    detail) of `pool.*` entries. Units granted from and taken back to the unallocated units,
    moves started (taken from the donor) and given (to the recipient), units the shops sold
    beyond their allotments (covered afterwards), and the end-of-drop grant of the reserve."""
    granted: Counter[str] = Counter()
    taken_back: Counter[str] = Counter()
    started: Counter[str] = Counter()
    given: Counter[str] = Counter()
    covered: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    sold_meanwhile = 0
    first_move: float | None = None
    last_units: list[dict[str, Any]] = []
    for at, action, detail in entries:
        if action == "pool.cover_sold":
            covered[str(detail.get("channel"))] += int(detail.get("units", 0))
            counts["cover_sold"] += 1
        elif action == "pool.start":
            counts["start"] += 1
        elif action == "pool.move":
            source, target = str(detail.get("from")), str(detail.get("to"))
            units = int(detail.get("units", 0))
            state = detail.get("state")
            if state == "shrinking":
                started[f"{source}->{target}"] += units
                counts["moves_started"] += 1
                first_move = at if first_move is None else min(first_move, at)
            elif state == "given":
                given[f"{source}->{target}"] += units
                sold_meanwhile += int(detail.get("sold_by_donor_meanwhile", 0))
                counts["moves_given"] += 1
            elif source == "unallocated":
                granted[target] += units
                counts["grants"] += 1
                if str(detail.get("why", "")).startswith("end of the drop"):
                    last_units.append({"at_s": round(at, 3), "to": target, "units": units})
            else:
                taken_back[source] += units
                counts["take_backs"] += 1
    return {
        "entries": dict(sorted(counts.items())),
        "granted": dict(sorted(granted.items())),
        "taken_back": dict(sorted(taken_back.items())),
        "moves_started": dict(sorted(started.items())),
        "moves_given": dict(sorted(given.items())),
        "sold_by_donor_meanwhile": sold_meanwhile,
        "sold_beyond_allotment": dict(sorted(covered.items())),
        "first_move_at_s": None if first_move is None else round(first_move, 3),
        "reserve_granted": last_units,
    }


LOG_EVENTS = ("pool_started", "pool_rebalanced", "pool_move_given", "push_sent", "order_applied")


def log_summary(lines: Iterable[str]) -> dict[str, Any]:
    """The daemon's JSON log lines: how many of each event, per level; the pool's events and
    pushes counted out (pushes per channel, and those that found the shop moved)."""
    events: Counter[str] = Counter()
    levels: Counter[str] = Counter()
    pushes: Counter[str] = Counter()
    stale: Counter[str] = Counter()
    problems: list[str] = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict):
            continue
        event, level = str(record.get("event")), str(record.get("level", "?"))
        events[event] += 1
        levels[level] += 1
        if event == "push_sent":
            channel = str(record.get("channel"))
            pushes[channel] += 1
            stale[channel] += int(record.get("stale") or 0)
        if level in ("warning", "error", "critical") and len(problems) < 10:
            problems.append(line.strip()[:300])
    return {
        "events": {name: events[name] for name in LOG_EVENTS},
        "levels": dict(sorted(levels.items())),
        "pushes": dict(sorted(pushes.items())),
        "pushes_stale_rows": dict(sorted(stale.items())),
        "problems": problems,
    }


# ====================================================================================== harness
SKU = "DROP-1"
CHANNELS = ("shop", "woo")
REAL_DROP_S = 600.0  # a real hype drop lasts about ten minutes; the burst compresses it
REAL_PERIODS_S = (60.0, 300.0)  # what common sync apps poll at
MONITOR_EVERY_S = 0.02
QUEUE_EVERY_S = 0.05


@dataclass(frozen=True)
class DropPlan:
    units: int = 500
    buyers: int = 2000
    burst_s: float = 15.0
    settle_s: float = 10.0
    seed: int = 7
    webhook_delay_ms: tuple[int, int] = (100, 300)
    buyer_threads: int = 32
    reserve: int | None = None  # the pool's; None: pool_reserve(buyers, burst_s)
    rebalance_s: float = REBALANCE_S  # the pool's interval (bench time, like the burst)
    ceiling_s: float = 0.0  # database ceilings measured before and after the runs (0: not)

    @property
    def scale(self) -> float:
        """How much faster than a real drop the burst runs."""
        return REAL_DROP_S / self.burst_s

    def scaled(self, real_seconds: float) -> float:
        return round(real_seconds / self.scale, 3)

    @property
    def pool_reserve(self) -> int:
        return self.reserve if self.reserve is not None else pool_reserve(self.buyers, self.burst_s)


FULL = DropPlan(ceiling_s=3.0)
# the quick drop is scaled 1:120 (600 s in 5 s) where the full one is 1:40: its pool rebalances
# every 1/3 s of bench time, the same 40 s of the real drop as the full run's 1 s
QUICK = DropPlan(
    units=100, buyers=400, burst_s=5.0, settle_s=3.0, ceiling_s=1.0,
    rebalance_s=REBALANCE_S * 5.0 / 15.0,
)  # fmt: skip

ShopReader = Callable[[], tuple[dict[str, int], dict[str, int]]]


@dataclass
class Env:
    """Where one strategy runs: fixed loopback ports known before anything starts; the shops'
    reader and the drop's opening time once they exist."""

    plan: DropPlan
    folder: Path
    shop_url: str
    woo_url: str
    daemon_port: int
    shops: ShopReader | None = None  # (shown, sold) per shop, read in-process
    opened_at: datetime | None = None  # the drop opened (UTC)
    log_path: Path | None = None  # the daemon's JSON log lines go here


class Strategy(Protocol):
    label: str

    def webhook_targets(self, env: Env) -> dict[str, Deliver] | None:
        """Where each channel's webhooks go (after the relay's delay); None: no webhooks."""
        ...

    def start(self, env: Env) -> None: ...

    def collect(self) -> None:
        """Read what the strategy knows at the end of the window, before it stops."""
        ...

    def stop(self) -> None: ...

    def errors(self) -> list[str]: ...

    def details(self) -> dict[str, Any]: ...


class StocksyncStrategy:
    """The real daemon: in-process broker, SQLite in a temp dir (or PostgreSQL); `pooled`: the
    drop SKU under a pool of equal weights (bench.drop.pool_rules), whose first allotments are
    on both shops before the drop opens (the merchant sets the pool up beforehand)."""

    def __init__(self, *, postgres_admin: str | None = None, pooled: bool = False) -> None:
        kind = "PostgreSQL" if postgres_admin else "SQLite"
        self.label = f"stocksync{' pooled' if pooled else ''} ({kind})"
        self.pooled = pooled
        self._pg = postgres_admin
        self._stack = ExitStack()
        self._daemon: Any = None
        self._env: Env | None = None
        self._log: IO[str] | None = None
        self._collected: dict[str, Any] = {}
        self._depths: list[int] = []  # the in-process queue's length, every QUEUE_EVERY_S
        self._sampling = threading.Event()

    def webhook_targets(self, env: Env) -> dict[str, Deliver]:
        base = f"http://127.0.0.1:{env.daemon_port}/webhooks"
        return {name: post_to(f"{base}/{name}") for name in CHANNELS}

    def start(self, env: Env) -> None:
        from stock.pool_policy import first_allotments

        self._env = env
        database = None
        if self._pg:
            database = self._stack.enter_context(fresh_postgres(self._pg))
        if env.log_path is not None:
            from sync import logs

            self._log = env.log_path.open("w", encoding="utf-8")
            logs.configure("INFO", json=True, stream=self._log)
        plan = env.plan
        rules = pool_rules(plan.pool_reserve, plan.rebalance_s) if self.pooled else RULES
        self._daemon = self._stack.enter_context(
            running_daemon(
                env.folder,
                env.shop_url,
                env.woo_url,
                {SKU: plan.units},
                port=env.daemon_port,
                database=database,
                rules=rules,
            )
        )
        wait_for(lambda: _listings_ready(self._daemon), 30, "the daemon's first push")
        if self.pooled:
            if env.shops is None:
                raise RuntimeError("a pooled run needs the shops' reader")
            reader = env.shops
            first = first_allotments(CHANNELS, POOL_WEIGHTS, plan.units - plan.pool_reserve)
            wait_for(lambda: reader()[0] == first, 30, f"the pool's first allotments {first}")
        # a merchant's daemon runs long before a drop: start from a settled, idle one
        self._daemon.wait_idle(timeout=30)
        threading.Thread(target=self._sample_queue, name="drop-queue", daemon=True).start()

    def _sample_queue(self) -> None:
        """Jobs waiting in the daemon's in-process queue (the broker is dramatiq's StubBroker):
        a queue that keeps growing means the workers fall behind (and so do pushes)."""
        from sync.actor_names import QUEUE

        queue = self._daemon.broker.queues[QUEUE]
        while not self._sampling.wait(QUEUE_EVERY_S):
            self._depths.append(int(queue.qsize()))

    def collect(self) -> None:
        self._sampling.set()
        if self._daemon is not None:
            opened = self._env.opened_at if self._env is not None else None
            self._collected = ledger_view(self._daemon, opened)
            depths = self._depths or [0]
            self._collected["queue_depth"] = {
                "max": max(depths),
                "mean": round(sum(depths) / len(depths), 1),
                "samples": len(self._depths),
            }

    def stop(self) -> None:
        self._sampling.set()
        try:
            self._stack.close()
        finally:
            if self._log is not None:
                from sync import logs

                logs.configure("WARNING", json=True)  # stderr again: the file closes now
                self._log.close()
                self._log = None

    def errors(self) -> list[str]:
        return []

    def details(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "database": "postgresql" if self._pg else "sqlite",
            "safety_buffer": 0,
            "backorders": "disabled for DROP-*",
            "worker_threads": 4,
            "ledger": self._collected,
        }
        if self.pooled and self._env is not None:
            plan = self._env.plan
            found["pool"] = {
                "weights": dict(POOL_WEIGHTS),
                "reserve": plan.pool_reserve,
                "rebalance_interval_s": plan.rebalance_s,
            }
        if self._env is not None and self._env.log_path is not None:
            with self._env.log_path.open(encoding="utf-8") as lines:
                found["log"] = log_summary(lines) | {"path": str(self._env.log_path)}
        return found


def ledger_view(daemon: Any, opened: datetime | None) -> dict[str, Any]:
    """The ledger at the end of the window: units of the drop's orders per channel, the stock
    row (oversold is what it had to record), the pool's shares and what its audit says."""
    from sqlalchemy import func, select

    from stock import models as m
    from stock import pools

    with daemon.runtime.ctx.read() as session:
        level = session.execute(
            select(m.StockLevel.on_hand, m.StockLevel.reserved, m.StockLevel.oversold)
            .join(m.Sku, m.Sku.id == m.StockLevel.sku_id)
            .where(m.Sku.code == SKU)
        ).one()
        ordered = session.execute(
            select(m.ChannelOrder.channel, func.sum(m.OrderLine.quantity - m.OrderLine.cancelled))
            .join(m.OrderLine, m.OrderLine.order_id == m.ChannelOrder.id)
            .group_by(m.ChannelOrder.channel)
        ).all()
        shares = [s for found in pools.shares(session, None).values() for s in found]
        audit = session.execute(
            select(m.AuditEntry.at, m.AuditEntry.action, m.AuditEntry.detail)
            .where(m.AuditEntry.action.like("pool.%"))
            .order_by(m.AuditEntry.id)
        ).all()
        open_moves = session.scalar(
            select(func.count()).select_from(m.PoolMove).where(m.PoolMove.status == "shrinking")
        )

    def since(at: datetime) -> float:
        if opened is None:
            return 0.0
        return (
            at.replace(tzinfo=UTC) if at.tzinfo is None else at
        ).timestamp() - opened.timestamp()

    view: dict[str, Any] = {
        "on_hand": level.on_hand,
        "reserved": level.reserved,
        "oversold": level.oversold,
        "ordered_units": {str(c): int(u or 0) for c, u in sorted(ordered)},
    }
    if shares:
        entries = [(since(at), str(action), dict(detail)) for at, action, detail in audit]
        view["pool"] = {
            "shares": {s.channel: {"allotted": s.allotted, "sold": s.sold} for s in shares},
            "moves_open": int(open_moves or 0),
            **pool_audit_summary(entries),
            "audit": [
                {"at_s": round(at, 3), "action": action, **detail} for at, action, detail in entries
            ],
        }
    return view


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

    def collect(self) -> None:
        return None

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

    def collect(self) -> None:
        return None

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


def strategies(
    plan: DropPlan, *, postgres_admin: str | None = None, pools: bool = True
) -> list[Strategy]:
    found: list[Strategy] = [StocksyncStrategy()]
    if postgres_admin:
        found.append(StocksyncStrategy(postgres_admin=postgres_admin))
    if pools:
        found.append(StocksyncStrategy(pooled=True))
        if postgres_admin:
            found.append(StocksyncStrategy(postgres_admin=postgres_admin, pooled=True))
    found.extend(PeriodicStrategy(real, plan.scaled(real)) for real in REAL_PERIODS_S)
    found.append(EventStrategy())
    return found


# ------------------------------------------------------------------------------ one run
def read_shops(
    shopify: ShopifySandbox, woo: WooCommerceSandbox
) -> tuple[dict[str, int], dict[str, int]]:
    """Each storefront's quantity and the units it sold (from its own orders), each shop read
    under its own lock, in-process (no HTTP, so the reading costs the shops nothing)."""
    with shopify.lock:
        shop_shown = shopify.available(SKU)
        shop_sold = sum(
            line.quantity
            for order in shopify.state.orders.values()
            for line in order.line_items
            if line.sku == SKU
        )
    with woo.lock:
        product = woo.store.by_sku(SKU)
        woo_qty = product.stock_quantity if product is not None else None
        woo_sold = sum(
            line.quantity
            for order in woo.store.orders.values()
            for line in order.line_items
            if line.sku == SKU
        )
    if woo_qty is None:
        raise RuntimeError(f"woocommerce sandbox has no managed stock for {SKU}")
    return {"shop": shop_shown, "woo": int(woo_qty)}, {"shop": shop_sold, "woo": woo_sold}


def _other(channel: str) -> str:
    return next(name for name in CHANNELS if name != channel)


def _buy(
    buyer: Buyer,
    urls: Mapping[str, str],
    t0: float,
    log: SaleLog,
    local: threading.local,
    shops: ShopReader,
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
    sold = reply.status_code == 201
    # a refusal: did the other shop still show units? (read right after, in-process)
    other = None if sold else shops()[0][_other(buyer.channel)]
    log.finish(seq, sold, time.monotonic(), other)
    if reply.status_code not in (201, 409):
        return f"{buyer.channel} checkout: {reply.status_code} {reply.text[:200]}"
    return None


class Monitor:
    """Samples both shops every 20 ms, keeps the samples and resolves propagation probes."""

    def __init__(self, shops: ShopReader, log: SaleLog, initial: int, t0: float) -> None:
        self._shops, self._log, self._t0 = shops, log, t0
        self.propagation = Propagation(CHANNELS, initial)
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="drop-monitor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(MONITOR_EVERY_S):
            self.sample()

    def sample(self) -> None:
        shown, sold = self._shops()
        now = time.monotonic()
        # the sales are read after the shops: a sale in between only makes the test stricter
        self.propagation.observe(self._log.snapshot(), shown, now)
        self.samples.append(Sample(round(now - self._t0, 4), shown, sold))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sample()


def run_strategy(
    strategy: Strategy,
    plan: DropPlan,
    folder: Path,
    split: Split = EVEN,
    log_path: Path | None = None,
) -> dict[str, Any]:
    """Fresh sandboxes, the strategy, the burst of buyers and the settle window; the numbers."""
    ports = free_ports(3)
    env = Env(
        plan,
        folder,
        f"http://127.0.0.1:{ports[0]}",
        f"http://127.0.0.1:{ports[1]}",
        ports[2],
        log_path=log_path,
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
    shops: ShopReader = functools.partial(read_shops, shopify, woo)
    env.shops = shops
    buyer_errors: list[str] = []
    with ExitStack() as stack:
        for relay in relays.values():
            stack.callback(relay.stop)
        shopify.start(port=int(env.shop_url.rsplit(":", 1)[1]))
        stack.callback(shopify.stop)
        woo.start(port=int(env.woo_url.rsplit(":", 1)[1]))
        stack.callback(woo.stop)
        stack.callback(strategy.stop)
        strategy.start(env)
        before = {"shop": dict(shopify.request_count), "woo": dict(woo.request_count)}
        log = SaleLog()
        buyers = plan_buyers(
            plan.buyers, plan.burst_s, plan.seed, CHANNELS, weights=split.weights()
        )
        urls = {"shop": shopify.url, "woo": woo.url}
        local = threading.local()
        t0 = time.monotonic()
        env.opened_at = datetime.now(UTC)
        monitor = Monitor(shops, log, plan.units, t0)
        monitor.start()
        with ThreadPoolExecutor(max_workers=plan.buyer_threads) as pool:
            futures = [pool.submit(_buy, b, urls, t0, log, local, shops) for b in buyers]
            buyer_errors = [e for e in (f.result() for f in futures) if e is not None]
        burst_took = time.monotonic() - t0
        time.sleep(max(plan.burst_s + plan.settle_s - burst_took, 0))
        monitor.stop()
        window = time.monotonic() - t0
        after = {"shop": dict(shopify.request_count), "woo": dict(woo.request_count)}
        final, sold = shops()
        strategy.collect()
    details = strategy.details()
    calls = {name: count_delta(after[name], before[name]) for name in CHANNELS}
    total_sold = sum(sold.values())
    sales = log.snapshot()
    demand = sum(s.quantity for s in sales)
    prop = monitor.propagation
    return {
        "strategy": strategy.label,
        "split": {"name": split.name, "woo_share": split.woo_share},
        "details": details,
        "units": plan.units,
        "demand_units": demand,
        "units_sold": sold,
        "units_sold_total": total_sold,
        "oversold": max(total_sold - plan.units, 0),
        "sell_through_pct": sell_through(plan.units, total_sold, demand),
        "unsold": unsold(plan.units, total_sold, final),
        "refusals": refusals(sales),
        "stranded_s": stranded_seconds(monitor.samples, plan.burst_s),
        "exposure": exposure(monitor.samples, plan.units),
        "timeline": {
            "columns": [
                "at_s",
                *(f"shown_{c}" for c in CHANNELS),
                *(f"sold_{c}" for c in CHANNELS),
            ],
            "rows": timeline(monitor.samples),
        },
        "checkouts": {
            "attempted": len(sales),
            "sold": sum(1 for s in sales if s.state is SaleState.SOLD),
            "refused": sum(1 for s in sales if s.state is SaleState.REFUSED),
            "by_channel": dict(sorted(Counter(s.channel for s in sales).items())),
        },
        "buyer_units_sold": sum(s.quantity for s in sales if s.state is SaleState.SOLD),
        "final_shown": final,
        "propagation": latency_summary(prop.lags)
        | {
            "unresolved": len(prop.open),
            "overtaken": prop.overtaken,
            "oversell_sales": len(prop.oversells),
            # a pool's shop shows only its own allotment: every sale "lands" at once
            "meaningful": not (isinstance(strategy, StocksyncStrategy) and strategy.pooled),
        },
        "api_calls": {name: api_calls(calls[name]) for name in CHANNELS},
        "api_calls_total": sum(api_calls(c) for c in calls.values()),
        "api_calls_by_route": calls,
        "window_s": round(window, 2),
        "monitor_samples": len(monitor.samples),
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
def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def measure_ceilings(plan: DropPlan, postgres_admin: str | None) -> dict[str, Any] | None:
    """The ledger databases' single-row-update ceilings (bench.ceiling, 1 client), tx/s."""
    if plan.ceiling_s <= 0:
        return None
    from bench import ceiling

    kinds = ("sqlite", "postgresql") if postgres_admin else ("sqlite",)
    found = ceiling.measure(
        kinds, seconds=plan.ceiling_s, clients=(1,), pg_admin=postgres_admin or PG_ADMIN_URL
    )
    return found.as_dict()


def _mean_ceilings(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    def mean(a: float | None, b: float | None) -> float | None:
        known = [v for v in (a, b) if v is not None]
        return round(sum(known) / len(known), 1) if known else None

    pg_before = before["pgbench_update_tps"].get("1")
    pg_after = after["pgbench_update_tps"].get("1")
    return {
        "sqlite": mean(before["sqlite_wal_update_tps"], after["sqlite_wal_update_tps"]),
        "postgresql": mean(pg_before, pg_after),
    }


def source_version() -> dict[str, Any]:
    """The commit the run measured and whether the working tree differed from it."""
    import subprocess

    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        try:
            done = subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.SubprocessError):
            return ""
        return done.stdout.strip() if done.returncode == 0 else ""

    changed = git("status", "--porcelain", "--untracked-files=no")
    return {
        "commit": git("rev-parse", "--short", "HEAD") or None,
        "working_tree_changed": bool(changed),
    }


def run_drop(
    plan: DropPlan,
    *,
    postgres_admin: str | None = None,
    only: Sequence[str] | None = None,
    splits: Sequence[Split] = SPLITS,
    pools: bool = True,
    log_dir: Path | None = None,
) -> dict[str, Any]:
    """Every strategy on every split, one run after another, the same seeded buyers per split.
    `log_dir`: keep each stocksync run's daemon log (JSON lines at INFO) there."""
    results = []
    ceilings: dict[str, Any] = {}
    measured = measure_ceilings(plan, postgres_admin)
    if measured is not None:
        ceilings["before"] = measured
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="stocksync-drop-") as tmp:
        for split in splits:
            found = strategies(plan, postgres_admin=postgres_admin, pools=pools)
            for i, strategy in enumerate(found):
                if only and not any(word in strategy.label for word in only):
                    continue
                folder = Path(tmp) / f"{split.name}-{i}"
                folder.mkdir()
                log_path = None
                if log_dir is not None and isinstance(strategy, StocksyncStrategy):
                    log_path = log_dir / f"{split.name}-{_slug(strategy.label)}.log"
                results.append(run_strategy(strategy, plan, folder, split, log_path))
    measured = measure_ceilings(plan, postgres_admin)
    if measured is not None:
        ceilings["after"] = measured
        ceilings["mean"] = _mean_ceilings(ceilings["before"], measured)
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
            "arrivals": "uniform over the burst, channel by split, qty 1 (10% qty 2)",
            "splits": {s.name: s.woo_share for s in splits},
            "pool": {
                "weights": dict(POOL_WEIGHTS),
                "reserve": plan.pool_reserve,
                "rebalance_interval_s": plan.rebalance_s,
                # what the interval stands for in the real drop the burst compresses
                "rebalance_real_s": round(plan.rebalance_s * plan.scale, 3),
            },
        },
        "ceilings_tps": ceilings or None,
        "environment": environment() | source_version(),
        "results": results,
    }


def _pair(values: Mapping[str, Any], keys: Sequence[str] = CHANNELS) -> str:
    return "/".join(str(values.get(k, 0)) for k in keys)


def table(report: Mapping[str, Any]) -> str:
    headers = [
        "split",
        "strategy",
        "oversold",
        "sell-through",
        "unsold (shop/woo/held)",
        "stranded refusals (units)",
        "sold out while the other had stock, s (shop/woo)",
        "max exposure",
        "p50 / p95 / p99 ms",
        "landed / overtaken / unresolved",
        "API calls (shop/woo)",
    ]
    rows = []
    for r in report["results"]:
        p = r["propagation"]
        left = r["unsold"]
        refused = r["refusals"]
        if p.get("meaningful", True):
            lags = f"{p['p50_ms']} / {p['p95_ms']} / {p['p99_ms']}" if p["count"] else "—"
            probes = f"{p['count']} / {p['overtaken']} / {p['unresolved']}"
        else:
            lags, probes = "— (allotments)", "—"
        rows.append(
            [
                r["split"]["name"],
                r["strategy"],
                r["oversold"],
                f"{r['sell_through_pct']}%",
                f"{left['total']} ({_pair(left)}/{left['held']})",
                f"{refused['stranded']} of {refused['refused']} ({refused['stranded_units']})",
                _pair(r["stranded_s"]),
                f"{r['exposure']['max']} ({r['exposure']['samples_over_units']} over)",
                lags,
                probes,
                f"{r['api_calls_total']} ({r['api_calls']['shop']}/{r['api_calls']['woo']})",
            ]
        )
    plan = report["plan"]
    lo, hi = plan["webhook_delay_ms"]
    pool = plan["pool"]
    head = (
        f"Drop: {plan['units']} units of {plan['sku']} on both shops, {plan['buyers']} buyers over "
        f"{plan['burst_s']} s (time scale 1:{plan['time_scale']:g} of a {plan['real_drop_s']:g} s "
        f"drop), webhook latency {lo}-{hi} ms, calls counted over burst + {plan['settle_s']} s. "
        f"Pool: weights {pool['weights']}, reserve {pool['reserve']}, rebalance every "
        f"{pool['rebalance_interval_s']:g} s (bench time: {pool['rebalance_real_s']:g} s of the "
        "real drop)."
    )
    ceilings = report.get("ceilings_tps")
    if ceilings and "mean" in ceilings:
        mean = ceilings["mean"]
        head += f" Database ceilings (mean of before/after, tx/s): SQLite {mean['sqlite']}"
        head += f", PostgreSQL {mean['postgresql']}." if mean["postgresql"] else "."
    text = head + "\n\n" + markdown_table(headers, rows)
    pooled = pool_table(report)
    return text + ("\n\n" + pooled if pooled else "")


def pool_table(report: Mapping[str, Any]) -> str:
    """What the pooled runs' ledgers did: moves, races, the reserve, the ledger's own view."""
    headers = [
        "split",
        "strategy",
        "moves started shop→woo / woo→shop (units)",
        "given (sold by donor meanwhile)",
        "sold beyond allotment (shop/woo)",
        "taken back",
        "reserve granted",
        "rebalances / moves given (log)",
        "ledger oversold",
        "shares at end (allotted / sold)",
        "daemon queue max / mean",
    ]
    rows = []
    for r in report["results"]:
        ledger = r["details"].get("ledger") or {}
        pool = ledger.get("pool")
        if not pool:
            continue
        started, given = pool["moves_started"], pool["moves_given"]
        logged = (r["details"].get("log") or {}).get("events", {})
        granted = pool["reserve_granted"]
        queue = ledger.get("queue_depth") or {}
        rows.append(
            [
                r["split"]["name"],
                r["strategy"],
                f"{started.get('shop->woo', 0)} / {started.get('woo->shop', 0)} "
                f"({pool['entries'].get('moves_started', 0)} moves)",
                f"{sum(given.values())} ({pool['sold_by_donor_meanwhile']})",
                _pair(pool["sold_beyond_allotment"]),
                sum(pool["taken_back"].values()),
                ", ".join(f"{g['units']} to {g['to']} at {g['at_s']:g} s" for g in granted) or "no",
                f"{logged.get('pool_rebalanced', '—')} / {logged.get('pool_move_given', '—')}",
                ledger.get("oversold"),
                ", ".join(
                    f"{name} {s['allotted']} / {s['sold']}" for name, s in pool["shares"].items()
                ),
                f"{queue.get('max', '—')} / {queue.get('mean', '—')}",
            ]
        )
    return markdown_table(headers, rows) if rows else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.drop", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="100 units, 400 buyers over 5 s")
    parser.add_argument("--json-out", type=Path, default=default_json_path("drop"))
    parser.add_argument(
        "--postgres",
        nargs="?",
        const=PG_ADMIN_URL,
        default=PG_ADMIN_URL,
        help="admin URL of the PostgreSQL runs (default: %(default)s)",
    )
    parser.add_argument("--sqlite-only", action="store_true", help="no PostgreSQL runs")
    parser.add_argument("--no-pools", action="store_true", help="leave the pooled runs out")
    parser.add_argument("--units", type=int)
    parser.add_argument("--buyers", type=int)
    parser.add_argument("--burst", type=float, help="seconds")
    parser.add_argument("--settle", type=float, help="seconds after the burst")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--reserve", type=int, help="the pool's reserve (default: sized)")
    parser.add_argument(
        "--rebalance",
        type=float,
        help="the pool's interval, s of bench time (default: 40 s of the real drop: 1, quick 1/3)",
    )
    parser.add_argument("--ceiling-seconds", type=float, help="0: no database ceilings")
    parser.add_argument(
        "--split", action="append", choices=[s.name for s in SPLITS], help="default: all"
    )
    parser.add_argument("--only", action="append", help="run strategies whose label has WORD")
    parser.add_argument(
        "--log-dir",
        type=Path,
        default=RESULTS_DIR / "drop-logs",
        help="the stocksync runs' daemon logs (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    overrides = {
        "units": args.units,
        "buyers": args.buyers,
        "burst_s": args.burst,
        "settle_s": args.settle,
        "seed": args.seed,
        "reserve": args.reserve,
        "rebalance_s": args.rebalance,
        "ceiling_s": args.ceiling_seconds,
    }
    plan = replace(plan, **{k: v for k, v in overrides.items() if v is not None})
    splits = [s for s in SPLITS if not args.split or s.name in args.split]
    if args.log_dir.exists():
        shutil.rmtree(args.log_dir)  # the last run's logs only
    report = run_drop(
        plan,
        postgres_admin=None if args.sqlite_only else args.postgres,
        only=args.only,
        splits=splits,
        pools=not args.no_pools,
        log_dir=args.log_dir,
    )
    path = write_json(report, args.json_out)
    print(table(report))
    print(f"\nJSON: {path}\nDaemon logs: {args.log_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
