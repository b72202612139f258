"""Propagation lag, measured by watching: a sale on one shop until the other shop shows it.

Each accepted sale of `qty` x SKU on channel A opens a probe on every other channel B: B's
quantity should drop by `qty` (to no less than 0). B's own sales lower B directly, so they are
added back before comparing; sales of the same SKU still in flight are taken off the start value
so one push that reflects several sales resolves them in order. Times are passed in (no clock).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

PROBE_TIMEOUT_S = 15.0


@dataclass
class _Probe:
    key: int
    channel: str  # where the change must show
    sku: str
    started: float
    target: int  # the quantity (plus own sales since) at or below which the sale has landed
    qty: int
    own_since: int = 0


@dataclass
class LagStats:
    resolved: dict[str, list[float]] = field(default_factory=dict)  # sku -> lags in seconds
    unobservable: int = 0  # the other shop showed nothing to lower
    expired: int = 0
    discarded: int = 0  # in flight when stock was received (a raise hides the drop)

    def all_lags(self) -> list[float]:
        return [lag for lags in self.resolved.values() for lag in lags]


class LagTracker:
    """Thread-safe: customers open probes, the watcher resolves them."""

    def __init__(self, channels: Iterable[str], timeout: float = PROBE_TIMEOUT_S) -> None:
        self._channels = tuple(channels)
        self._timeout = timeout
        self._lock = threading.Lock()
        self._probes: dict[int, _Probe] = {}
        self._next = 0
        self.stats = LagStats()

    def sale_started(
        self, channel: str, sku: str, qty: int, now: float, shown: Mapping[str, int]
    ) -> list[int]:
        """Before a checkout is sent: open probes on the other channels; returns their keys.

        `shown` is what each other channel shows for `sku` just before the sale. The seller's
        own pending probes count the sale at once: a sale lowers its own shop before any push.
        """
        opened: list[int] = []
        with self._lock:
            for probe in self._probes.values():
                if probe.channel == channel and probe.sku == sku:
                    probe.own_since += qty
            for other in self._channels:
                if other == channel:
                    continue
                start = shown[other] - self._in_flight(other, sku)
                if start <= 0:
                    self.stats.unobservable += 1
                    continue
                self._next += 1
                self._probes[self._next] = _Probe(
                    self._next, other, sku, now, max(start - qty, 0), qty
                )
                opened.append(self._next)
        return opened

    def sale_refused(self, channel: str, sku: str, qty: int, keys: Iterable[int]) -> None:
        """Undo `sale_started` for a checkout the shop refused."""
        with self._lock:
            for key in keys:
                self._probes.pop(key, None)
            for probe in self._probes.values():
                if probe.channel == channel and probe.sku == sku:
                    probe.own_since = max(probe.own_since - qty, 0)

    def observe(self, shown: Mapping[str, Mapping[str, int]], now: float) -> None:
        """Resolve probes whose channel now shows the sale; expire very old ones."""
        with self._lock:
            for key, probe in sorted(self._probes.items()):
                quantity = shown[probe.channel][probe.sku]
                if quantity + probe.own_since <= probe.target:
                    self.stats.resolved.setdefault(probe.sku, []).append(now - probe.started)
                    del self._probes[key]
                elif now - probe.started > self._timeout:
                    self.stats.expired += 1
                    del self._probes[key]

    def discard(self, channel: str, sku: str) -> None:
        """A raise landed on this listing: the drops in flight there can no longer be seen."""
        with self._lock:
            for key in [k for k, p in self._probes.items() if (p.channel, p.sku) == (channel, sku)]:
                del self._probes[key]
                self.stats.discarded += 1

    def pending(self) -> int:
        with self._lock:
            return len(self._probes)

    def snapshot(self) -> LagStats:
        """A copy, safe to read while customers and the watcher go on."""
        with self._lock:
            stats = self.stats
            return LagStats(
                {sku: list(values) for sku, values in stats.resolved.items()},
                stats.unobservable, stats.expired, stats.discarded,
            )  # fmt: skip

    def _in_flight(self, channel: str, sku: str) -> int:
        return sum(p.qty for p in self._probes.values() if p.channel == channel and p.sku == sku)
