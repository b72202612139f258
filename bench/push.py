"""Push benchmark: 10,000 changed SKUs pushed to the Shopify sandbox at 100 points/s.

Two phases, each timed and costed on its own, through `ShopifyChannel` as the daemon uses it:
1. mapping: `fetch_listings` finds every SKU's inventory item and current quantity
   (productVariants by SKU, 100 per query);
2. pushing: `push_offers` sets 10,000 changed quantities (inventorySetQuantities, 250 rows a call,
   compare-and-set against the quantity mapping read).

Throttle-bound minimum of a phase = max(0, points billed in the phase - points in the bucket when
it starts) / restore rate: the bucket can give no more than what it holds plus what it refills.
With a full bucket at the start that is the issue's (total cost - bucket maximum) / restore rate.
Points billed are metered inside the sandbox (requested cost taken, minus the refund down to the
actual cost), so they are Shopify's own accounting, not an estimate. Minimal calls: pushing needs
ceil(SKUs / 250); mapping needs ceil(SKUs / 100) at the connector's page size.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.common import (
    default_json_path,
    environment,
    markdown_table,
    ratio,
    write_json,
)
from connectors.base import OfferPush
from connectors.sandbox.shopify import ShopifySandbox
from connectors.sandbox.shopify_bucket import CostBucket
from connectors.shopify import ShopifyChannel
from connectors.shopify_queries import MAX_ROWS_PER_MUTATION, SKU_BATCH_SIZE


class MeteredBucket(CostBucket):
    """Shopify's bucket, counting what it bills: requested cost taken, refunds given back."""

    def __init__(self, restore_rate: float) -> None:
        super().__init__(restore_rate)
        self.billed = 0.0
        self.granted = 0
        self.throttled = 0

    def take(self, cost: int) -> tuple[bool, dict[str, float]]:
        ok, status = super().take(cost)
        if ok:
            self.billed += cost
            self.granted += 1
        else:
            self.throttled += 1
        return ok, status

    def refund(self, points: int) -> None:
        super().refund(points)
        self.billed -= max(points, 0)

    def available(self) -> float:
        return float(self.status()["currentlyAvailable"])


@dataclass(frozen=True)
class PushPlan:
    skus: int = 10_000
    restore_rate: float = 100.0
    start_quantity: int = 50


FULL = PushPlan()
QUICK = PushPlan(skus=1000)


@dataclass
class Phase:
    name: str
    seconds: float
    calls: int
    throttled: int
    billed: float
    bucket_at_start: float
    restore_rate: float
    minimal_calls: int

    @property
    def minimum_s(self) -> float:
        return max(self.billed - self.bucket_at_start, 0.0) / self.restore_rate

    def as_dict(self) -> dict[str, Any]:
        return {
            "phase": self.name,
            "seconds": round(self.seconds, 3),
            "throttle_bound_min_s": round(self.minimum_s, 3),
            "time_vs_min": ratio(self.seconds, self.minimum_s),
            "calls": self.calls,
            "minimal_calls": self.minimal_calls,
            "calls_vs_min": ratio(self.calls, self.minimal_calls),
            "throttled_responses": self.throttled,
            "points_billed": round(self.billed, 1),
            "bucket_at_start": self.bucket_at_start,
        }


def changed_quantities(skus: list[str], start: int) -> dict[str, int]:
    """A new quantity for every SKU, half lower and half higher, deterministic."""
    return {
        sku: start - 1 - (i % 7) if i % 2 else start + 1 + (i % 5) for i, sku in enumerate(skus)
    }


def _measure(
    name: str, bucket: MeteredBucket, channel: ShopifyChannel, minimal: int, work: Any
) -> tuple[Phase, Any]:
    billed, granted, throttled = bucket.billed, bucket.granted, bucket.throttled
    start_points = bucket.available()
    calls_before = channel.transport.calls
    started = time.monotonic()
    result = work()
    seconds = time.monotonic() - started
    phase = Phase(
        name=name,
        seconds=seconds,
        calls=channel.transport.calls - calls_before,
        throttled=bucket.throttled - throttled,
        billed=bucket.billed - billed,
        bucket_at_start=start_points,
        restore_rate=bucket.restore_rate,
        minimal_calls=minimal,
    )
    if bucket.granted - granted + phase.throttled != phase.calls:
        raise RuntimeError(f"{name}: the sandbox saw other calls than ours")
    return phase, result


def run_push(plan: PushPlan) -> dict[str, Any]:
    skus = [f"PUSH-{i:05d}" for i in range(plan.skus)]
    sandbox = ShopifySandbox(catalog=dict.fromkeys(skus, plan.start_quantity))
    bucket = MeteredBucket(plan.restore_rate)
    sandbox.bucket = bucket
    sandbox.start()
    channel = ShopifyChannel(
        "shop",
        shop="sandbox.myshopify.com",
        token="shpat_sandbox",  # noqa: S106 sandbox default, not a credential
        webhook_secrets=["sandbox-secret"],
        api_url=sandbox.url,
        timeout=30,
    )
    try:
        channel.location_id()  # one small query; not part of either phase
        mapping, listings = _measure(
            "mapping (fetch_listings)",
            bucket,
            channel,
            math.ceil(plan.skus / SKU_BATCH_SIZE),
            lambda: channel.fetch_listings(skus),
        )
        wanted = changed_quantities(skus, plan.start_quantity)
        pushes = [OfferPush(sku, wanted[sku], listings[sku].quantity) for sku in skus]
        pushing, results = _measure(
            "pushing (push_offers)",
            bucket,
            channel,
            math.ceil(plan.skus / MAX_ROWS_PER_MUTATION),
            lambda: channel.push_offers(pushes),
        )
        failed = [r for r in results if not r.ok]
        landed = sum(1 for sku in skus if sandbox.available(sku) == wanted[sku])
    finally:
        channel.close()
        sandbox.stop()
    phases = [mapping, pushing]
    total = Phase(
        "both",
        mapping.seconds + pushing.seconds,
        mapping.calls + pushing.calls,
        mapping.throttled + pushing.throttled,
        mapping.billed + pushing.billed,
        mapping.bucket_at_start,
        plan.restore_rate,
        mapping.minimal_calls + pushing.minimal_calls,
    )
    return {
        "bench": "push",
        "plan": {
            "skus": plan.skus,
            "restore_rate": plan.restore_rate,
            "bucket_maximum": plan.restore_rate * 20,
            "rows_per_mutation": MAX_ROWS_PER_MUTATION,
            "skus_per_mapping_query": SKU_BATCH_SIZE,
            "formula": "max(0, points billed - bucket at phase start) / restore rate",
        },
        "environment": environment(),
        "phases": [p.as_dict() for p in [*phases, total]],
        "pushed_ok": len(results) - len(failed),
        "push_failures": [f"{r.sku}: {r.error_code} {r.message}" for r in failed[:10]],
        "quantities_landed": landed,
    }


def table(report: Mapping[str, Any]) -> str:
    headers = ["phase", "time s", "min s", "time/min", "calls", "min calls", "throttled", "points"]
    rows = [
        [
            p["phase"],
            p["seconds"],
            p["throttle_bound_min_s"],
            p["time_vs_min"],
            p["calls"],
            p["minimal_calls"],
            p["throttled_responses"],
            p["points_billed"],
        ]
        for p in report["phases"]
    ]
    plan = report["plan"]
    head = (
        f"Push: {plan['skus']} changed SKUs to the Shopify sandbox at {plan['restore_rate']:g} "
        f"points/s (bucket {plan['bucket_maximum']:g}); {report['quantities_landed']} quantities "
        f"landed. min = {plan['formula']}."
    )
    return head + "\n\n" + markdown_table(headers, rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.push", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1,000 SKUs")
    parser.add_argument("--skus", type=int)
    parser.add_argument("--restore-rate", type=float)
    parser.add_argument("--json-out", type=Path, default=default_json_path("push"))
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    if args.skus is not None:
        plan = replace(plan, skus=args.skus)
    if args.restore_rate is not None:
        plan = replace(plan, restore_rate=args.restore_rate)
    report = run_push(plan)
    path = write_json(report, args.json_out)
    print(table(report))
    print(f"\nJSON: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
