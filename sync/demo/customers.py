"""Customers: a thread that sends the planned checkouts to the sandboxes' storefronts."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import requests

from sync.demo.lag import LagTracker
from sync.demo.plan import Checkout

ShownFn = Callable[[str, str], int]  # (channel, sku) -> what that shop shows now


@dataclass
class SalesLog:
    """What the storefronts answered; read by the display while customers keep buying."""

    sold: dict[str, dict[str, int]] = field(default_factory=dict)  # channel -> sku -> units
    orders: dict[str, int] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)  # 409: the shop had too little
    errors: list[str] = field(default_factory=list)  # anything else, kept to report
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, checkout: Checkout, status: int, detail: str = "") -> None:
        channel = checkout.channel
        with self._lock:
            if status == 201:
                self.orders[channel] = self.orders.get(channel, 0) + 1
                by_sku = self.sold.setdefault(channel, {})
                by_sku[checkout.sku] = by_sku.get(checkout.sku, 0) + checkout.quantity
            elif status == 409:
                self.refused[channel] = self.refused.get(channel, 0) + 1
            else:
                self.errors.append(f"{channel} checkout {checkout.sku}: {status} {detail}"[:300])

    def copy(self) -> SalesLog:
        with self._lock:
            return SalesLog(
                {ch: dict(skus) for ch, skus in self.sold.items()},
                dict(self.orders), dict(self.refused), list(self.errors),
            )  # fmt: skip

    def units_by_sku(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for by_sku in self.sold.values():
            for sku, units in by_sku.items():
                totals[sku] = totals.get(sku, 0) + units
        return totals


class Customers(threading.Thread):
    """Sends each checkout at its planned time after `started` (monotonic); stops when told."""

    def __init__(
        self,
        plan: Sequence[Checkout],
        urls: Mapping[str, str],
        shown: ShownFn,
        tracker: LagTracker,
        started: float,
    ) -> None:
        super().__init__(name="demo-customers", daemon=True)
        self._plan = list(plan)
        self._urls = dict(urls)
        self._shown = shown
        self._tracker = tracker
        self._t0 = started
        self._halt = threading.Event()
        self.log = SalesLog()

    def stop(self) -> None:
        self._halt.set()

    def run(self) -> None:
        with requests.Session() as http:
            for checkout in self._plan:
                wait = self._t0 + checkout.at - time.monotonic()
                if self._halt.wait(max(wait, 0)):
                    return
                self._buy(http, checkout)

    def _buy(self, http: requests.Session, checkout: Checkout) -> None:
        others = {ch: self._shown(ch, checkout.sku) for ch in self._urls if ch != checkout.channel}
        keys = self._tracker.sale_started(
            checkout.channel, checkout.sku, checkout.quantity, time.monotonic(), others
        )
        try:
            reply = http.post(
                f"{self._urls[checkout.channel]}/_sandbox/checkout",
                json={"sku": checkout.sku, "quantity": checkout.quantity, "email": checkout.email},
                timeout=5,
            )
        except requests.RequestException as exc:
            self._tracker.sale_refused(checkout.channel, checkout.sku, checkout.quantity, keys)
            self.log.record(checkout, 0, repr(exc))
            return
        if reply.status_code != 201:
            self._tracker.sale_refused(checkout.channel, checkout.sku, checkout.quantity, keys)
        self.log.record(checkout, reply.status_code, reply.text[:200])
