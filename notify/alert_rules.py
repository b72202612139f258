"""Which merchant alerts hold now (issue #17). Pure: figures in, conditions out.

An alert is a condition that holds for a subject (a SKU, a channel): a sale spike, an oversell,
a backorder accepted beyond capacity, a channel failing auth, a growing exception queue, drift
found. notify.alerts turns conditions into incidents: one alert when a condition starts, none
while it lasts, a close when it ends.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rules.notify_model import AlertRules

__all__ = ["KINDS", "AlertRules", "Condition", "Figures", "conditions"]

KINDS = ("spike", "oversell", "beyond_capacity", "channel_auth", "exception_queue", "drift")


@dataclass(frozen=True)
class Figures:
    """What the ledger says now (notify.alerts reads it)."""

    sold_last_hour: Mapping[str, int] = field(default_factory=dict)  # per SKU
    sold_trailing: Mapping[str, int] = field(default_factory=dict)  # per SKU, trailing days
    oversold: Mapping[str, int] = field(default_factory=dict)  # per SKU, units beyond on hand
    beyond_capacity: Mapping[str, int] = field(default_factory=dict)  # per SKU, open units
    auth_held: Mapping[str, str] = field(default_factory=dict)  # channel -> last error
    failed_events: int = 0
    drift: Mapping[str, Sequence[Mapping[str, Any]]] = field(default_factory=dict)  # per channel


@dataclass(frozen=True)
class Condition:
    kind: str
    subject: str
    details: Mapping[str, Any]


def conditions(figures: Figures, rules: AlertRules) -> list[Condition]:
    found: list[Condition] = []
    for sku, hour in sorted(figures.sold_last_hour.items()):
        daily = figures.sold_trailing.get(sku, 0) / max(rules.trailing_days, 1)
        if hour >= rules.spike_min_units and hour > rules.spike_factor * daily:
            found.append(Condition("spike", sku, {
                "sold_last_hour": hour, "daily_rate": round(daily, 2),
                "factor": rules.spike_factor, "trailing_days": rules.trailing_days,
            }))  # fmt: skip
    found += [Condition("oversell", sku, {"units": units})
              for sku, units in sorted(figures.oversold.items()) if units > 0]  # fmt: skip
    found += [Condition("beyond_capacity", sku, {"units": units})
              for sku, units in sorted(figures.beyond_capacity.items()) if units > 0]  # fmt: skip
    found += [Condition("channel_auth", channel, {"error": error})
              for channel, error in sorted(figures.auth_held.items())]  # fmt: skip
    if figures.failed_events > rules.exception_queue_threshold:
        found.append(Condition("exception_queue", "inbox", {"failed": figures.failed_events}))
    found += [Condition("drift", channel, {"skus": len(rows), "drift": list(rows)[:20]})
              for channel, rows in sorted(figures.drift.items()) if rows]  # fmt: skip
    return found
