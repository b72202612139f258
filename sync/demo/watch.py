"""The watcher: samples what both shops show, many times a second, for lag and holds."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from sync.demo.lag import LagTracker
from sync.demo.stack import DemoStack

SAMPLE_S = 0.05  # lag resolution; reads are in-process and cheap
HOLDS_EVERY = 5  # hold scans walk every fulfillment order, so less often


@dataclass(frozen=True)
class ShopView:
    shown: dict[str, dict[str, int]]  # channel -> sku -> quantity the shop offers
    holds_now: int  # Shopify fulfillment holds in place
    holds_seen: int  # distinct holds ever seen
    woo_on_hold_now: int
    woo_on_hold_seen: int

    @property
    def holds_released(self) -> int:
        return self.holds_seen - self.holds_now


@dataclass
class _Seen:
    holds: set[int] = field(default_factory=set)
    holds_now: set[int] = field(default_factory=set)
    woo: set[int] = field(default_factory=set)
    woo_now: set[int] = field(default_factory=set)


class Watcher(threading.Thread):
    """Runs until stopped; an exception ends it and is kept in `error` for the caller."""

    def __init__(self, stack: DemoStack, tracker: LagTracker) -> None:
        super().__init__(name="demo-watcher", daemon=True)
        self._stack = stack
        self._tracker = tracker
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self._shown = stack.shown()
        self._seen = _Seen()
        self.error: BaseException | None = None

    def stop(self) -> None:
        self._halt.set()

    def run(self) -> None:
        tick = 0
        try:
            while not self._halt.is_set():
                self.sample(scan_holds=tick % HOLDS_EVERY == 0)
                tick += 1
                self._halt.wait(SAMPLE_S)
        except Exception as exc:  # kept for the main thread, which raises it
            self.error = exc

    def sample(self, *, scan_holds: bool = True) -> None:
        shown = self._stack.shown()
        self._tracker.observe(shown, time.monotonic())
        holds = self._stack.shopify_hold_ids() if scan_holds else None
        woo = self._stack.woo_on_hold() if scan_holds else None
        with self._lock:
            self._shown = shown
            if holds is not None and woo is not None:
                self._seen.holds |= holds
                self._seen.holds_now = holds
                self._seen.woo |= woo
                self._seen.woo_now = woo

    def view(self) -> ShopView:
        with self._lock:
            seen = self._seen
            return ShopView(
                {ch: dict(q) for ch, q in self._shown.items()},
                len(seen.holds_now), len(seen.holds), len(seen.woo_now), len(seen.woo),
            )  # fmt: skip
