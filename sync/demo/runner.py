"""`stocksync demo`: both sandboxes and the live daemon on loopback, with customers buying.

A throw-away folder holds the SQLite ledger, the config and the log. The ledger gets a small
catalog and one purchase order; seeded customers buy on both shops; halfway through, the PO is
received through the daemon's receipts API. A live table (off a terminal: a snapshot every few
seconds) shows the ledger, what each shop offers, pushes and propagation lag; a summary ends it.
Exit 0 when the day balanced (nothing oversold, ledger equals the shops, shops settled), else 1.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, TextIO

import requests
from rich.console import Console, RenderableType
from rich.live import Live

from sync import logs
from sync.demo.customers import Customers
from sync.demo.lag import LagTracker
from sync.demo.ledger import SkuLedger, inbox_pending, sku_rows, totals
from sync.demo.plan import (
    CATALOG,
    CHANNELS,
    NEXT_PO_ETA_DAYS,
    NEXT_PO_REF,
    PO_ETA_DAYS,
    PO_LINES,
    PO_REF,
    Timeline,
    plan_traffic,
    timeline,
)
from sync.demo.report import PushCounter, Summary, live_view, sku_table, summarize, summary_lines
from sync.demo.stack import DemoStack, start_demo_stack
from sync.demo.watch import ShopView, Watcher

DEFAULT_SEED = 7
REFRESH_S = 0.25  # the live table's refresh, ~4 per second
SNAPSHOT_EVERY_S = 5.0  # off a terminal, print the table this often
WARMUP_TIMEOUT_S = 10.0  # the daemon's first pushes must land before customers come
RAISE_WAIT_S = 4.0  # after the receipt, how long to wait for each listing's raise


class Show(Protocol):
    def __call__(self, renderable: RenderableType, force: bool = False) -> None: ...


def run_demo(
    console: Console, duration: float, *, seed: int = DEFAULT_SEED, live: bool | None = None
) -> int:
    started = time.monotonic()
    live = console.is_terminal if live is None else live
    with tempfile.TemporaryDirectory(prefix="stocksync-demo-") as name:
        folder = Path(name)
        log_path = folder / "demo.log"
        with log_path.open("a", encoding="utf-8") as log_file, _quiet_logs(log_file):
            console.print(
                f"stocksync demo: Shopify and WooCommerce sandboxes, the daemon and a SQLite "
                f"ledger in {folder}; seed {seed}, {duration:g} s",
                markup=False,
                highlight=False,
            )
            try:
                stack = start_demo_stack(folder, datetime.now(UTC).date())
                try:
                    summary = DemoDay(console, stack, started, duration, seed).run(live)
                finally:
                    stack.stop()
            except (RuntimeError, OSError, requests.RequestException) as exc:
                # setup or the daemon failed: say what, and where the log was
                console.print(f"demo failed: {exc}", markup=False, highlight=False)
                for line in log_path.read_text(encoding="utf-8").splitlines()[-5:]:
                    console.print(f"  log: {line}", markup=False, highlight=False)
                return 1
        log_lines = [ln for ln in log_path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    summary = replace(summary, warnings_logged=len(log_lines))
    for line in summary_lines(summary):
        console.print(line, markup=False, highlight=False)
    for line in log_lines[-5:]:
        console.print(f"  log: {line}", markup=False, highlight=False)
    problems = summary.problems()
    for problem in problems:
        console.print(f"problem: {problem}", markup=False, highlight=False)
    console.print(f"demo took {time.monotonic() - started:.1f} s", highlight=False)
    return 1 if problems else 0


@dataclass
class DemoDay:
    """One trading day: customers buy, the watcher watches, the PO arrives halfway."""

    console: Console
    stack: DemoStack
    started: float  # monotonic
    duration: float
    seed: int
    tracker: LagTracker = field(default_factory=lambda: LagTracker(CHANNELS))
    pushes: PushCounter = field(default_factory=PushCounter)
    phase: str = f"{PO_REF} due in {PO_ETA_DAYS} days, {NEXT_PO_REF} in {NEXT_PO_ETA_DAYS}"

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def run(self, live: bool) -> Summary:
        self._wait_settled(WARMUP_TIMEOUT_S)
        times = timeline(self.duration, self.elapsed())
        watcher = Watcher(self.stack, self.tracker)
        plan = plan_traffic(self.seed, times.traffic_end - times.traffic_start)
        customers = Customers(
            plan, self.stack.sandbox_urls, self.stack.shown_one, self.tracker,
            self.started + times.traffic_start,
        )  # fmt: skip
        watcher.start()
        customers.start()
        try:
            with _display(self.console, live) as show:
                self._trade(times, watcher, customers, show)
                customers.stop()
                customers.join()
                self.phase = "customers gone, settling"
                self._settle(times, watcher, customers, show)
                watcher.sample()
                rows = self._rows()
                view = watcher.view()
                self.phase = "day over"
                show(self._render(rows, view, customers), force=True)
        finally:
            customers.stop()
            watcher.stop()
            customers.join(timeout=10)
            watcher.join(timeout=10)
        if watcher.error is not None:
            raise watcher.error
        return summarize(
            opening=CATALOG,
            sales=customers.log.copy(),
            totals=totals(self.stack.ctx),
            rows=rows,
            view=view,
            lag=self.tracker.snapshot(),
            pushes=self._pushes_landed(),
        )

    def _trade(self, times: Timeline, watcher: Watcher, customers: Customers, show: Show) -> None:
        """Refresh the view until traffic ends; receive the PO halfway."""
        awaiting_raise: dict[tuple[str, str], str | None] = {}
        received_at: float | None = None
        while self.elapsed() < times.traffic_end:
            if watcher.error is not None:
                raise watcher.error
            rows = self._rows()
            if received_at is None and self.elapsed() >= times.receipt_at:
                awaiting_raise = {(ch, r.sku): r.pushed_at.get(ch) for r in rows for ch in CHANNELS}
                self.stack.receive_po(dict(PO_LINES))
                received_at = self.elapsed()
                self.phase = f"{PO_REF} received at {received_at:.1f} s"
            elif received_at is not None and awaiting_raise:
                self._raises_landed(rows, awaiting_raise, self.elapsed() - received_at)
            show(self._render(rows, watcher.view(), customers))
            time.sleep(REFRESH_S)

    def _raises_landed(
        self, rows: list[SkuLedger], awaiting: dict[tuple[str, str], str | None], since: float
    ) -> None:
        """The receipt raises quantities; a drop in flight across a raise cannot be seen, so
        probes on a listing are dropped when its first push after the receipt lands."""
        for row in rows:
            for ch in CHANNELS:
                key = (ch, row.sku)
                if key in awaiting and row.pushed_at.get(ch) != awaiting[key]:
                    self.tracker.discard(ch, row.sku)
                    del awaiting[key]
        if since > RAISE_WAIT_S:
            awaiting.clear()  # listings the receipt did not change get no push

    def _settle(self, times: Timeline, watcher: Watcher, customers: Customers, show: Show) -> None:
        """Let the last webhooks, events and pushes land; what does not shows in the summary."""
        self.stack.flush_webhooks()
        ctx = self.stack.ctx
        while self.elapsed() < times.settled_by:
            watcher.sample()
            rows = self._rows()
            if inbox_pending(ctx) == 0 and _shops_show(rows, self.stack.shown()):
                return
            show(self._render(rows, watcher.view(), customers))
            time.sleep(0.05)

    def _wait_settled(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not _shops_show(self._rows(), self.stack.shown()):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the daemon's first pushes did not land within {timeout} s")
            time.sleep(0.05)

    def _rows(self) -> list[SkuLedger]:
        rows = sku_rows(self.stack.ctx)
        self.pushes.update(rows)
        return rows

    def _render(
        self, rows: list[SkuLedger], view: ShopView, customers: Customers
    ) -> RenderableType:
        lags = self.tracker.snapshot().resolved
        table = sku_table(rows, view, lags, self.pushes.by_sku(), CHANNELS)
        sales = customers.log.copy()
        return live_view(self.elapsed(), self.duration, self.phase, sales, table, view)

    def _pushes_landed(self) -> dict[str, int]:
        daemon = self.stack.daemon
        assert daemon is not None  # the demo's daemon runs in this process
        registry = daemon.runtime.metrics.registry
        return {
            ch: int(
                registry.get_sample_value("stocksync_push_total", {"channel": ch, "outcome": "ok"})
                or 0
            )
            for ch in CHANNELS
        }


def _shops_show(rows: list[SkuLedger], shown: dict[str, dict[str, int]]) -> bool:
    return all(shown[ch][row.sku] == row.offered[ch] for row in rows for ch in CHANNELS)


@contextmanager
def _display(console: Console, live: bool) -> Iterator[Show]:
    """Yields show(renderable, force=False): a live table, or a snapshot every few seconds."""
    if live:
        with Live(console=console, refresh_per_second=4, transient=False) as screen:

            def update(renderable: RenderableType, force: bool = False) -> None:
                screen.update(renderable, refresh=force)

            yield update
        return
    last = [float("-inf")]

    def snapshot(renderable: RenderableType, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - last[0] >= SNAPSHOT_EVERY_S:
            last[0] = now
            console.print(renderable)

    yield snapshot


@contextmanager
def _quiet_logs(stream: TextIO) -> Iterator[None]:
    """Warnings and errors of the daemon go to the demo's log file, not over the table."""
    logs.configure("WARNING", json=True, stream=stream)
    try:
        yield
    finally:
        # the file closes with the demo; later messages go to stderr again
        logs.configure("WARNING")
