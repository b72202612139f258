"""Steady-load benchmark: orders at a constant rate (default 200 orders/s for 60 s) split across
the Shopify and the WooCommerce sandbox, against the real stocksync daemon; how long until an
order on one shop shows on the other shop's available quantity, and whether anything was lost.

`python -m bench.steady [--quick] [--postgres [ADMIN_URL]] [--rate R --duration S --skus N]`

The stack is `sync.stack.start_stack`: both sandboxes on loopback, their signed webhooks sent
straight to the daemon (no added latency: this measures stocksync, not the network) and
concurrently, 16 at a time per shop, as a real channel's senders do (ConcurrentOutbox replaces
each sandbox's serial outbox), the daemon in this process (in-process broker, 4 worker threads,
SQLite or PostgreSQL). Every SKU starts
with `stock` units on both shops and in the ledger, far more than the run sells, so nothing
sells out and no checkout is refused. The Shopify sandbox's cost bucket restores 1,000 points/s
(Shopify Plus: a shop taking 200 orders/s is not on a Standard plan).

Propagation, per order line (q units of SKU s sold on shop A, the checkout answered at t): it
has landed on the other shop B at the first sample (every 50 ms, read in-process under each
sandbox's lock) where

    S - shown_B - (units of s sold on B so far)  >=  (units of s sold on A up to and including it)

The left side is what B has learnt of A's sales (B's own sales are added back); the right side
counts A's sales in the order they were sent, those still in flight included, so an unanswered
checkout can only delay a landing. Latency = that sample's time - t. With two shops this is
exactly "B reflects this sale and every earlier one of A".

Nothing lost: when the settle window closes (the load's end + up to `settle_s`, sooner once the
webhooks are delivered, the inbox is applied and every sale landed), the shops' own orders
equal the buyers' sales, every sold order is in the ledger (and no other) with its units, and
nothing is in the exception queue. Reported beside: inbox events still pending, webhooks not
yet delivered or failed (not answered 2xx within 5 s, Shopify's limit), and SKUs whose shown
quantity is not S - units sold on both shops. The database's ceiling (bench.ceiling) is
measured just before the run and printed beside the figures, with the order rate ÷ ceiling.

`--processes` (with `--postgres`): `stocksync run` and `stocksync worker` run as child processes
over a private redis-server, as deployed, instead of threads sharing this interpreter (and its
GIL) with the sandboxes, the buyers and the monitor.
"""

from __future__ import annotations

import argparse
import random
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import func, select

from bench import ceiling
from bench.common import (
    PG_ADMIN_URL,
    default_json_path,
    environment,
    free_ports,
    fresh_postgres,
    latency_summary,
    markdown_table,
    stocksync_config,
    stocksync_executable,
    write_json,
)
from connectors.sandbox.common import Delivery
from connectors.sandbox.shopify import ShopifySandbox
from connectors.sandbox.woocommerce import WooCommerceSandbox
from stock import models as m
from sync.stack import LoopbackStack, start_stack

CHANNELS = ("shop", "woo")


@dataclass(frozen=True)
class SteadyPlan:
    rate: float = 200.0  # orders per second, both shops together
    duration_s: float = 60.0
    skus: int = 100
    stock: int = 10_000  # per SKU, on both shops and in the ledger
    max_lines: int = 2  # each order has 1..max_lines distinct SKUs, 1-2 units each
    settle_s: float = 60.0  # at most this long after the load for everything to land
    buyer_threads: int = 32
    worker_threads: int = 4
    sample_every_s: float = 0.05
    shopify_restore_rate: float = 1000.0
    ceiling_seconds: float = 3.0  # the database's ceiling, measured before the run (0: skip)
    log_level: str = "ERROR"  # the daemon's
    webhook_threads: int = 16  # concurrent webhook deliveries per shop
    processes: bool = False  # daemon and worker as child processes over a private Redis
    seed: int = 5


FULL = SteadyPlan()
QUICK = SteadyPlan(
    rate=20.0, duration_s=2.0, skus=10, settle_s=20.0, buyer_threads=8, ceiling_seconds=0.5
)


# ------------------------------------------------------------------------------ the buyers
@dataclass(frozen=True, slots=True)
class Order:
    at: float  # seconds after the load starts
    channel: str
    lines: tuple[tuple[str, int], ...]


def sku_code(i: int) -> str:
    return f"ST-{i:04d}"


def plan_orders(plan: SteadyPlan) -> list[Order]:
    """Evenly spaced orders at `rate`, each on a random shop, 1..max_lines distinct SKUs."""
    if plan.rate <= 0 or plan.duration_s <= 0 or plan.skus < 1:
        raise ValueError("need a positive rate, a positive duration and at least one SKU")
    rng = random.Random(plan.seed)
    codes = [sku_code(i) for i in range(plan.skus)]
    count = round(plan.rate * plan.duration_s)
    orders = []
    for i in range(count):
        picked = rng.sample(codes, min(rng.randint(1, plan.max_lines), len(codes)))
        orders.append(
            Order(
                at=i / plan.rate,
                channel=rng.choice(CHANNELS),
                lines=tuple((code, rng.choice((1, 1, 2))) for code in picked),
            )
        )
    return orders


# ------------------------------------------------------------------------------ propagation
PENDING, SOLD, REFUSED = "pending", "sold", "refused"


@dataclass(slots=True)
class Sale:
    """One order line on one shop, as the propagation book sees it."""

    order: int
    quantity: int
    cum: int  # units of this SKU on this shop up to and including this sale (send order)
    state: str = PENDING
    done_at: float | None = None
    landed: bool = False


@dataclass
class PropagationBook:
    """Sales per (SKU, shop) in send order, and the lags of those that landed on the other
    shop. Thread-safe: buyers add and finish sales, the monitor observes."""

    initial: int
    lags: list[float] = field(default_factory=list)
    _sales: dict[tuple[str, str], list[Sale]] = field(default_factory=lambda: defaultdict(list))
    _total: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    _next: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def begin(self, order: int, channel: str, lines: Sequence[tuple[str, int]]) -> list[Sale]:
        """A checkout is being sent: its lines count as sold on `channel` from now on."""
        with self._lock:
            found = []
            for sku, qty in lines:
                key = (sku, channel)
                self._total[key] += qty
                sale = Sale(order, qty, self._total[key])
                self._sales[key].append(sale)
                found.append(sale)
            return found

    def finish(
        self,
        sales: Sequence[Sale],
        channel: str,
        lines: Sequence[tuple[str, int]],
        sold: bool,
        at: float,
    ) -> None:
        with self._lock:
            for sale in sales:
                sale.state = SOLD if sold else REFUSED
                sale.done_at = at
            if not sold:  # its units never left: later sales of the shop count fewer before them
                for sku, _qty in lines:
                    self._recount((sku, channel))

    def _recount(self, key: tuple[str, str]) -> None:
        total = 0
        for sale in self._sales[key]:
            if sale.state != REFUSED:
                total += sale.quantity
            sale.cum = total
        self._total[key] = total

    def observe(self, shown: Mapping[tuple[str, str], int], now: float) -> None:
        """`shown[(sku, shop)]` was read at `now` (before this call: sales sent since only make
        the test stricter)."""
        with self._lock:
            for (sku, shop_b), quantity in shown.items():
                known = self.initial - quantity - self._total[(sku, shop_b)]
                for shop_a in CHANNELS:
                    if shop_a != shop_b:
                        self._land((sku, shop_a), known, now)

    def _land(self, key: tuple[str, str], known: int, now: float) -> None:
        sales = self._sales.get(key, [])
        i = self._next[key]
        contiguous = True
        while i < len(sales) and sales[i].cum <= known:
            sale = sales[i]
            if sale.state == SOLD and not sale.landed and sale.done_at is not None:
                sale.landed = True
                self.lags.append(max(now - sale.done_at, 0.0))
            if sale.state == PENDING:
                contiguous = False  # cannot land before it is answered: look again later
            if contiguous:
                self._next[key] = i + 1
            i += 1

    def unresolved(self) -> int:
        with self._lock:
            return sum(
                1
                for sales in self._sales.values()
                for s in sales
                if s.state == SOLD and not s.landed
            )

    def sold_units(self) -> dict[tuple[str, str], int]:
        """Units sold per (SKU, shop), refused checkouts left out."""
        with self._lock:
            found: dict[tuple[str, str], int] = defaultdict(int)
            for key, sales in self._sales.items():
                found[key] += sum(s.quantity for s in sales if s.state == SOLD)
            return dict(found)


# ------------------------------------------------------------------------------ webhooks
class ConcurrentOutbox:
    """Stands in for a sandbox's webhook outbox: delivers each webhook at once from a pool of
    threads over kept-alive connections, as a real channel's many senders do. (The sandbox's
    own outbox is one thread opening a connection per delivery: in this one interpreter it
    delivered about 54 webhooks/s, so at 200 orders/s it measured itself, not stocksync.)
    Failed deliveries are kept, counted and reported like the sandbox's."""

    def __init__(self, threads: int = 16, on_result: Any = None, timeout: float = 5.0) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="steady-hook")
        self._local = threading.local()
        self._lock = threading.Lock()
        self._pending = 0
        self._timeout = timeout
        self.on_result = on_result
        self.sent: list[Delivery] = []
        self.dropped: list[Delivery] = []
        self.failed = 0
        self.errors: list[str] = []

    def send(self, url: str, headers: dict[str, str], body: bytes) -> None:
        with self._lock:
            self._pending += 1
        self._pool.submit(self._deliver, Delivery(url, dict(headers), body))

    def _deliver(self, delivery: Delivery) -> None:
        http = getattr(self._local, "http", None)
        if http is None:
            http = self._local.http = requests.Session()
        try:
            reply = http.post(
                delivery.url, data=delivery.body, headers=delivery.headers, timeout=self._timeout
            )
            delivery.status = reply.status_code
        except requests.RequestException as exc:
            delivery.error = repr(exc)[:300]
        with self._lock:
            self.sent.append(delivery)
            self._pending -= 1
            if delivery.status is None or not 200 <= delivery.status < 300:
                self.failed += 1
                if len(self.errors) < 5:
                    self.errors.append(delivery.error or f"answered {delivery.status}")
        if self.on_result is not None:
            self.on_result(delivery)

    def pending(self) -> int:
        with self._lock:
            return self._pending

    def flush(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self.pending() and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def concurrent_webhooks(stack: LoopbackStack, threads: int) -> list[ConcurrentOutbox]:
    """Give both sandboxes a ConcurrentOutbox (the started ones' pings already went out)."""
    outboxes = []
    for sandbox in (stack.shopify, stack.woo):
        old = sandbox.outbox
        old.flush()
        old.close()
        outbox = ConcurrentOutbox(threads, on_result=old.on_result)
        sandbox.outbox = outbox  # type: ignore[assignment]  # the same send/pending/flush
        outboxes.append(outbox)
    return outboxes


# ------------------------------------------------------------------------------ the shops
def shown_now(
    shopify: ShopifySandbox, woo: WooCommerceSandbox, skus: Sequence[str]
) -> dict[tuple[str, str], int]:
    """Each storefront's quantity of every SKU, read in-process (no HTTP) under its lock."""
    found: dict[tuple[str, str], int] = {}
    with shopify.lock:
        state = shopify.state
        for sku in skus:
            variant = state.variant_by_sku(sku)
            if variant is None:
                raise RuntimeError(f"the Shopify sandbox has no {sku}")
            found[(sku, "shop")] = int(state.primary_level(variant).available)
    with woo.lock:
        for sku in skus:
            product = woo.store.by_sku(sku)
            if product is None or product.stock_quantity is None:
                raise RuntimeError(f"the WooCommerce sandbox has no managed stock for {sku}")
            found[(sku, "woo")] = int(product.stock_quantity)
    return found


def shop_orders(shopify: ShopifySandbox, woo: WooCommerceSandbox) -> dict[str, dict[str, int]]:
    """Units per SKU each shop sold, from the shops' own orders (the truth)."""
    found: dict[str, dict[str, int]] = {"shop": defaultdict(int), "woo": defaultdict(int)}
    with shopify.lock:
        for order in shopify.state.orders.values():
            for line in order.line_items:
                found["shop"][str(line.sku)] += line.quantity
    with woo.lock:
        for woo_order in woo.store.orders.values():
            for woo_line in woo_order.line_items:
                found["woo"][str(woo_line.sku)] += woo_line.quantity
    return {shop: dict(units) for shop, units in found.items()}


class Monitor:
    def __init__(
        self, stack: LoopbackStack, book: PropagationBook, skus: Sequence[str], every_s: float
    ) -> None:
        self._stack, self._book, self._skus, self._every = stack, book, list(skus), every_s
        self.samples = 0
        self.sample_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="steady-monitor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            self.sample()

    def sample(self) -> None:
        started = time.perf_counter()
        shown = shown_now(self._stack.shopify, self._stack.woo, self._skus)
        self._book.observe(shown, time.monotonic())
        self.samples += 1
        self.sample_s += time.perf_counter() - started

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sample()


# ------------------------------------------------------------------------------ one run
@dataclass
class Checkouts:
    sent: int = 0
    sold: int = 0
    refused: int = 0
    errors: list[str] = field(default_factory=list)
    late_s: list[float] = field(default_factory=list)  # how far behind schedule each was sent
    ids: dict[str, set[str]] = field(default_factory=lambda: {c: set() for c in CHANNELS})
    first_at: float | None = None
    last_at: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


def _buy(
    number: int,
    order: Order,
    urls: Mapping[str, str],
    t0: float,
    book: PropagationBook,
    done: Checkouts,
    local: threading.local,
) -> None:
    wait = t0 + order.at - time.monotonic()
    if wait > 0:
        time.sleep(wait)
    http = getattr(local, "http", None)
    if http is None:
        http = local.http = requests.Session()
    sent_at = time.monotonic()
    sales = book.begin(number, order.channel, order.lines)
    lines = [{"sku": sku, "quantity": qty} for sku, qty in order.lines]
    error = None
    external_id = None
    try:
        reply = http.post(
            f"{urls[order.channel]}/_sandbox/checkout",
            json={"lines": lines, "email": f"b{number}@example.com"},
            timeout=30,
        )
        sold = reply.status_code == 201
        if sold:
            external_id = str(reply.json()["id"])
        else:
            error = f"{order.channel} checkout: {reply.status_code} {reply.text[:200]}"
    except requests.RequestException as exc:
        sold = False
        error = f"{order.channel} checkout: {exc!r}"[:300]
    book.finish(sales, order.channel, order.lines, sold, time.monotonic())
    with done.lock:
        done.sent += 1
        done.late_s.append(max(sent_at - t0 - order.at, 0.0))
        done.first_at = sent_at if done.first_at is None else min(done.first_at, sent_at)
        done.last_at = sent_at if done.last_at is None else max(done.last_at, sent_at)
        if sold and external_id is not None:
            done.sold += 1
            done.ids[order.channel].add(external_id)
        else:
            done.refused += 1
            if error:
                done.errors.append(error)


def ledger_view(stack: LoopbackStack) -> dict[str, Any]:
    """What the ledger holds: orders per channel, units per SKU, the inbox."""
    with stack.ctx.sessions() as session:
        orders = session.execute(select(m.ChannelOrder.channel, m.ChannelOrder.external_id)).all()
        units = session.execute(
            select(m.Sku.code, func.sum(m.OrderLine.quantity))
            .join(m.OrderLine, m.OrderLine.sku_id == m.Sku.id)
            .group_by(m.Sku.code)
        ).all()
        pending = session.scalar(
            select(func.count())
            .select_from(m.InboxEvent)
            .where(m.InboxEvent.processed_at.is_(None), m.InboxEvent.error.is_(None))
        )
        failed = session.scalar(
            select(func.count())
            .select_from(m.InboxEvent)
            .where(m.InboxEvent.processed_at.is_(None), m.InboxEvent.error.is_not(None))
        )
    ids: dict[str, set[str]] = {c: set() for c in CHANNELS}
    for channel, external_id in orders:
        ids.setdefault(str(channel), set()).add(str(external_id))
    return {
        "ids": ids,
        "units": {str(code): int(n or 0) for code, n in units},
        "inbox_pending": int(pending or 0),
        "inbox_failed": int(failed or 0),
    }


def _listings_ready(stack: LoopbackStack, skus: int) -> bool:
    with stack.ctx.sessions() as session:
        listings = session.scalars(select(m.Listing)).all()
    return len(listings) == skus * len(CHANNELS) and all(
        li.external_ids and not li.dirty for li in listings
    )


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


@contextmanager
def child_process(args: Sequence[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A child process writing to `log`; terminated (then killed) when the block ends."""
    with log.open("ab") as out:
        proc = subprocess.Popen(list(args), stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def private_redis(folder: Path) -> Iterator[str]:
    """A redis-server of our own on a free port, no persistence; its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise FileNotFoundError("redis-server is not installed")
    port = free_ports(1)[0]
    args = [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
        "--dir",
        str(folder),
    ]
    with child_process(args, folder / "redis.log"):
        wait_for(lambda: _port_open(port), 10, f"redis on port {port}")
        yield f"redis://127.0.0.1:{port}/0"


def _ready(url: str) -> bool:
    try:
        return requests.get(f"{url}/readyz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _idle(stack: LoopbackStack) -> bool:
    return bool(ledger_view(stack)["inbox_pending"] == 0)


@contextmanager
def steady_stack(
    plan: SteadyPlan, folder: Path, postgres_admin: str | None
) -> Iterator[LoopbackStack]:
    """Both sandboxes and a settled daemon whose start-up push has mapped every listing: in this
    process, or (`plan.processes`) `stocksync run` and `stocksync worker` as child processes
    over a private Redis, as deployed."""
    if plan.processes and not postgres_admin:
        raise ValueError("--processes needs --postgres (SQLite deployments run in one process)")
    with ExitStack() as stack:
        database = stack.enter_context(fresh_postgres(postgres_admin)) if postgres_admin else None
        config = replace(stocksync_config(database=database), log_level=plan.log_level)
        if plan.processes:
            config = replace(config, broker=stack.enter_context(private_redis(folder)))
        catalog = {sku_code(i): plan.stock for i in range(plan.skus)}
        loopback = stack.enter_context(
            start_stack(
                LoopbackStack,
                folder,
                config,
                catalog,
                actor="bench",
                in_process_daemon=not plan.processes,
                worker_threads=plan.worker_threads,
            )
        )
        rate = plan.shopify_restore_rate
        loopback.shopify.bucket.configure(
            {"restore_rate": rate, "maximum": rate * 20, "available": rate * 20}
        )
        if plan.processes:
            command = [stocksync_executable(), "--config", str(loopback.config_path)]
            stack.enter_context(
                child_process([*command, "run", "--port", str(loopback.port)], folder / "run.log")
            )
            stack.enter_context(
                child_process(
                    [*command, "worker", "--threads", str(plan.worker_threads)],
                    folder / "worker.log",
                )
            )
            wait_for(lambda: _ready(loopback.daemon_url), 60, "stocksync run to be ready")
        wait_for(lambda: _listings_ready(loopback, plan.skus), 60, "the daemon's first push")
        concurrent_webhooks(loopback, plan.webhook_threads)
        if loopback.daemon is not None:
            loopback.daemon.wait_idle(timeout=30)
        else:
            wait_for(lambda: _idle(loopback), 30, "the inbox to be applied")
        yield loopback


def measure_ceiling(plan: SteadyPlan, postgres_admin: str | None) -> float | None:
    """The ledger database's single-row-update ceiling (bench.ceiling), tx/s; None if skipped."""
    if plan.ceiling_seconds <= 0:
        return None
    if postgres_admin:
        return ceiling.pgbench_tps(postgres_admin, max(plan.ceiling_seconds, 1), 1)
    return ceiling.sqlite_wal_tps(plan.ceiling_seconds)


def run_steady(plan: SteadyPlan, *, postgres_admin: str | None = None) -> dict[str, Any]:
    ceiling_tps = measure_ceiling(plan, postgres_admin)
    orders = plan_orders(plan)
    skus = [sku_code(i) for i in range(plan.skus)]
    with (
        tempfile.TemporaryDirectory(prefix="stocksync-steady-") as tmp,
        steady_stack(plan, Path(tmp), postgres_admin) as stack,
    ):
        before = {"shop": dict(stack.shopify.request_count), "woo": dict(stack.woo.request_count)}
        book = PropagationBook(plan.stock)
        done = Checkouts()
        monitor = Monitor(stack, book, skus, plan.sample_every_s)
        urls = {"shop": stack.shopify.url, "woo": stack.woo.url}
        local = threading.local()
        monitor.start()
        t0 = time.monotonic() + 0.2
        with ThreadPoolExecutor(max_workers=plan.buyer_threads) as pool:
            for future in [
                pool.submit(_buy, i, order, urls, t0, book, done, local)
                for i, order in enumerate(orders)
            ]:
                future.result()
        load_s = time.monotonic() - t0
        # settle: the shops' webhooks delivered, the inbox applied, every sale landed
        deadline = time.monotonic() + plan.settle_s
        while time.monotonic() < deadline:
            view = ledger_view(stack)
            outboxes = stack.shopify.outbox.pending() + stack.woo.outbox.pending()
            if not outboxes and not view["inbox_pending"] and not book.unresolved():
                break
            time.sleep(0.25)
        settled_s = time.monotonic() - t0 - load_s
        monitor.stop()
        view = ledger_view(stack)
        view["webhooks_failed"] = sum(
            getattr(sandbox.outbox, "failed", 0) for sandbox in (stack.shopify, stack.woo)
        )
        view["webhooks_undelivered"] = stack.shopify.outbox.pending() + stack.woo.outbox.pending()
        view["webhook_errors"] = [
            e
            for sandbox in (stack.shopify, stack.woo)
            for e in getattr(sandbox.outbox, "errors", [])
        ]
        shops = shop_orders(stack.shopify, stack.woo)
        final = shown_now(stack.shopify, stack.woo, skus)
        after = {"shop": dict(stack.shopify.request_count), "woo": dict(stack.woo.request_count)}
    report = report_of(
        plan, orders, book, done, monitor, view, shops, final, before, after, load_s, settled_s
    )
    report["database"] = ("postgresql" if postgres_admin else "sqlite") + (
        ", processes" if plan.processes else ""
    )
    report["ceiling_tps"] = None if ceiling_tps is None else round(ceiling_tps, 1)
    achieved = report["checkouts"]["achieved_rate"]
    report["load_ratio"] = (
        round(achieved / ceiling_tps, 4) if achieved is not None and ceiling_tps else None
    )
    return report


def report_of(
    plan: SteadyPlan,
    orders: Sequence[Order],
    book: PropagationBook,
    done: Checkouts,
    monitor: Monitor,
    view: Mapping[str, Any],
    shops: Mapping[str, Mapping[str, int]],
    final: Mapping[tuple[str, str], int],
    before: Mapping[str, Mapping[str, int]],
    after: Mapping[str, Mapping[str, int]],
    load_s: float,
    settled_s: float,
) -> dict[str, Any]:
    sold = book.sold_units()
    buyers = {
        shop: {sku: n for (sku, channel), n in sold.items() if channel == shop and n}
        for shop in CHANNELS
    }
    by_sku: dict[str, int] = defaultdict(int)
    for (sku, _shop), n in sold.items():
        by_sku[sku] += n
    missing = {c: len(done.ids[c] - view["ids"].get(c, set())) for c in CHANNELS}
    extra = {c: len(view["ids"].get(c, set()) - done.ids[c]) for c in CHANNELS}
    units_wrong = sorted(
        sku
        for sku in set(by_sku) | set(view["units"])
        if by_sku.get(sku, 0) != view["units"].get(sku, 0)
    )
    not_converged = sorted(
        f"{sku}@{shop}" for (sku, shop), q in final.items() if q != plan.stock - by_sku.get(sku, 0)
    )
    shops_agree = {c: dict(shops[c]) == buyers[c] for c in CHANNELS}
    # what the ledger lacks or got wrong when the settle window closed; pending inbox events
    # whose orders are all in the ledger (e.g. polled versions of them) are not counted
    lost = sum(missing.values()) + sum(extra.values()) + len(units_wrong) + view["inbox_failed"]
    sent_span = (done.last_at or 0) - (done.first_at or 0)
    calls = {
        c: sum(after[c].values()) - sum(before[c].get(k, 0) for k in after[c]) for c in CHANNELS
    }
    return {
        "bench": "steady",
        "environment": environment(),
        "plan": asdict(plan),
        "orders_planned": len(orders),
        "checkouts": {
            "sent": done.sent,
            "sold": done.sold,
            "refused_or_failed": done.refused,
            "achieved_rate": round(done.sent / sent_span, 1) if sent_span > 0 else None,
            "late_p99_ms": latency_summary(done.late_s)["p99_ms"],
        },
        "load_s": round(load_s, 2),
        "settle_s": round(settled_s, 2),
        "propagation": latency_summary(book.lags) | {"unresolved": book.unresolved()},
        "ledger": {
            "orders": {c: len(view["ids"].get(c, set())) for c in CHANNELS},
            "orders_missing": missing,
            "orders_unexpected": extra,
            "skus_with_wrong_units": units_wrong[:10],
            "inbox_pending": view["inbox_pending"],
            "inbox_failed": view["inbox_failed"],
            "webhooks_failed": view.get("webhooks_failed", 0),
            "webhooks_undelivered": view.get("webhooks_undelivered", 0),
            "webhook_errors": view.get("webhook_errors", []),
        },
        "shops_agree_with_buyers": shops_agree,
        "not_converged": not_converged[:10],
        "not_converged_count": len(not_converged),
        "lost": lost,
        "nothing_lost": lost == 0 and all(shops_agree.values()) and done.refused == 0,
        "settled": not view["inbox_pending"]
        and not view.get("webhooks_undelivered", 0)
        and not book.unresolved(),
        "api_calls": calls,
        "monitor": {
            "samples": monitor.samples,
            "sample_ms": round(1000 * monitor.sample_s / max(monitor.samples, 1), 2),
        },
        "errors": done.errors[:20],
        "error_count": len(done.errors),
    }


def table(report: Mapping[str, Any]) -> str:
    p, c, led = report["propagation"], report["checkouts"], report["ledger"]
    plan = report["plan"]
    rows = [
        [
            report.get("database"),
            f"{plan['rate']:g}/s x {plan['duration_s']:g} s",
            f"{c['sent']} ({c['achieved_rate']}/s)",
            p["p50_ms"],
            p["p95_ms"],
            p["p99_ms"],
            p["max_ms"],
            f"{p['count']} / {p['unresolved']}",
            f"{led['orders']['shop'] + led['orders']['woo']} of {c['sold']}",
            f"{led['inbox_pending']} / {led['webhooks_undelivered']}",
            led["inbox_failed"],
            led["webhooks_failed"],
            "yes" if report["nothing_lost"] else f"NO ({report['lost']})",
            report["not_converged_count"],
            report.get("ceiling_tps"),
            report.get("load_ratio"),
        ]
    ]
    return markdown_table(
        [
            "database",
            "load",
            "checkouts (achieved)",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "max ms",
            "landed / unresolved",
            "orders in ledger",
            "inbox pending / webhooks undelivered",
            "exception queue",
            "webhooks failed",
            "nothing lost",
            "SKUs not converged",
            "ceiling tx/s",
            "orders/s ÷ ceiling",
        ],
        rows,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.steady",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="20 orders/s for 2 s, 10 SKUs")
    parser.add_argument("--json-out", type=Path, default=default_json_path("steady"))
    parser.add_argument(
        "--postgres",
        nargs="?",
        const=PG_ADMIN_URL,
        default=None,
        help="run the ledger on a fresh PostgreSQL database (admin URL)",
    )
    parser.add_argument("--rate", type=float, help="orders/s across both shops")
    parser.add_argument("--duration", type=float, help="seconds of load")
    parser.add_argument("--skus", type=int)
    parser.add_argument("--settle", type=float, help="max seconds to wait after the load")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--log-level", help="the daemon's log level (default ERROR)")
    parser.add_argument(
        "--processes",
        action="store_true",
        default=None,
        help="with --postgres: `stocksync run` and `stocksync worker` as child processes over "
        "a private redis-server (as deployed), not threads of this process",
    )
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    overrides = {
        "rate": args.rate,
        "duration_s": args.duration,
        "skus": args.skus,
        "settle_s": args.settle,
        "seed": args.seed,
        "log_level": args.log_level,
        "processes": args.processes,
    }
    plan = replace(plan, **{k: v for k, v in overrides.items() if v is not None})
    report = run_steady(plan, postgres_admin=args.postgres)
    path = write_json(report, args.json_out)
    print(table(report))
    if report["errors"]:
        print("\nerrors:", *report["errors"][:5], sep="\n  ")
    print(f"\nJSON: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
