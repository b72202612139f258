"""The two sync strategies common apps use, honestly and simply implemented over our connectors,
for the drop benchmark to compare stocksync with.

- PeriodicBaseline: every N seconds pull the orders of both channels since the last pull,
  compute remaining = initial - all units sold, and set both channels to it absolutely
  (no compare-and-set: WooCommerce's set is absolute, Shopify gets changeFromQuantity null).
- EventBaseline: on each order webhook, set the other channel to remaining at once (absolute set,
  no compare-and-set, no pull before a raise), from a few worker threads.

Both keep one number per order (its current units of the SKU), so a duplicate or updated order
is counted once. Errors are collected in `errors` and reported, never dropped.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from connectors.base import Channel, ChannelOrder, OfferPush, OrderStatus, WebhookEvent
from connectors.shopify import ShopifyChannel
from connectors.woocommerce import WooCommerceChannel

SANDBOX_SECRET = "sandbox-secret"  # noqa: S105 the sandboxes' documented webhook secret


def sandbox_channels(shopify_url: str, woo_url: str) -> dict[str, Channel]:
    """Connectors for the two sandboxes with their documented default credentials."""
    return {
        "shop": ShopifyChannel(
            "shop",
            shop="sandbox.myshopify.com",
            token="shpat_sandbox",  # noqa: S106 sandbox default, not a credential
            webhook_secrets=[SANDBOX_SECRET],
            api_url=shopify_url,
        ),
        "woo": WooCommerceChannel(
            "woo",
            url="http://shop.example.com",
            consumer_key="ck_sandbox",
            consumer_secret="cs_sandbox",  # noqa: S106 sandbox default, not a credential
            webhook_secrets=[SANDBOX_SECRET],
            api_url=woo_url,
        ),
    }


def units_of(order: ChannelOrder, sku: str) -> int:
    """Units of `sku` an order takes now (0 once cancelled)."""
    if order.status is OrderStatus.CANCELLED:
        return 0
    return sum(line.quantity for line in order.lines if line.sku == sku)


def remaining(initial: int, sold: Mapping[tuple[str, str], int]) -> int:
    return max(initial - sum(sold.values()), 0)


class SoldBook:
    """Units sold per (channel, order id), thread-safe; what a sync app keeps."""

    def __init__(self, sku: str, initial: int) -> None:
        self.sku = sku
        self.initial = initial
        self._sold: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def record(self, channel: str, order: ChannelOrder) -> int:
        """Note the order's current units; returns remaining after it."""
        with self._lock:
            self._sold[(channel, order.external_id)] = units_of(order, self.sku)
            return remaining(self.initial, self._sold)

    def remaining(self) -> int:
        with self._lock:
            return remaining(self.initial, self._sold)


class PeriodicBaseline:
    """Pull orders and set stock absolutely every `period_s` seconds."""

    name = "periodic"

    def __init__(
        self,
        channels: Mapping[str, Channel],
        sku: str,
        initial: int,
        period_s: float,
        *,
        overlap_s: float = 2.0,
    ) -> None:
        if period_s <= 0:
            raise ValueError(f"period must be positive, got {period_s}")
        self.channels = dict(channels)
        self.book = SoldBook(sku, initial)
        self.period_s = period_s
        self.overlap = timedelta(seconds=overlap_s)
        self.errors: list[str] = []
        self.rounds = 0
        self._since = {name: datetime.now(UTC) - self.overlap for name in self.channels}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="periodic-baseline", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            self.run_once()

    def run_once(self) -> None:
        """One sync: pull what changed on every channel, then set every channel."""
        for name, channel in self.channels.items():
            started = datetime.now(UTC)
            try:
                for polled in channel.pull_orders(self._since[name]):
                    self.book.record(name, polled.order)
            except Exception as exc:  # kept and reported; the next round tries again
                self.errors.append(f"pull {name}: {exc!r}"[:300])
                continue
            self._since[name] = started - self.overlap
        left = self.book.remaining()
        for name, channel in self.channels.items():
            try:
                results = channel.push_offers([OfferPush(self.book.sku, left, None)])
            except Exception as exc:
                self.errors.append(f"push {name}: {exc!r}"[:300])
                continue
            self.errors.extend(
                f"push {name}: {r.error_code} {r.message}"[:300] for r in results if not r.ok
            )
        self.rounds += 1

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def close(self) -> None:
        for channel in self.channels.values():
            channel.close()


_Job = tuple[str, WebhookEvent] | None


class EventBaseline:
    """Webhook-driven: each order sets the other channel to remaining, absolutely, at once."""

    name = "event"

    def __init__(
        self, channels: Mapping[str, Channel], sku: str, initial: int, *, workers: int = 4
    ) -> None:
        self.channels = dict(channels)
        self.book = SoldBook(sku, initial)
        self.errors: list[str] = []
        self.handled = 0
        self._queue: queue.Queue[_Job] = queue.Queue()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._work, name=f"event-baseline-{i}", daemon=True)
            for i in range(workers)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def receive(self, channel: str, headers: Mapping[str, str], body: bytes) -> None:
        """A webhook arrived: verify it and queue it (pings are acknowledged and dropped)."""
        event = self.channels[channel].verify_webhook(headers, body)
        if event is not None:
            self._queue.put((channel, event))

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            try:
                if job is None:
                    return
                self._handle(*job)
            except Exception as exc:  # kept and reported; one bad event must not stop a worker
                with self._lock:
                    self.errors.append(repr(exc)[:300])
            finally:
                self._queue.task_done()

    def _handle(self, source: str, event: WebhookEvent) -> None:
        order = self.channels[source].parse_order(event.topic, event.body)
        left = self.book.record(source, order)
        for name, channel in self.channels.items():
            if name == source:
                continue
            results = channel.push_offers([OfferPush(self.book.sku, left, None)])
            with self._lock:
                self.errors.extend(
                    f"push {name}: {r.error_code} {r.message}"[:300] for r in results if not r.ok
                )
        with self._lock:
            self.handled += 1

    def pending(self) -> int:
        return self._queue.unfinished_tasks

    def stop(self) -> None:
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout=30)

    def close(self) -> None:
        for channel in self.channels.values():
            channel.close()
