"""The ledger benchmark in its smallest mode: every part runs and checks its own outcome."""

from __future__ import annotations

import pytest

from bench.common import PG_ADMIN_URL
from bench.ledger import LedgerPlan, run_ledger, shopify_bodies, tables

TINY = LedgerPlan(orders=8, order_skus=4, backorders=30, plan_skus=200, threads=2)


def test_bodies_are_shopify_orders_made_by_the_sandbox() -> None:
    import json

    bodies = shopify_bodies(3, 4, seed=1)
    orders = [json.loads(b) for b in bodies]
    assert len({o["id"] for o in orders}) == 3
    assert all(li["sku"].startswith("ING-") for o in orders for li in o["line_items"])


@pytest.mark.slow
def test_tiny_ledger_run_on_sqlite() -> None:
    report = run_ledger(TINY, kinds=("sqlite",))
    assert [(r["threads"], r["orders"]) for r in report["ingest"]] == [(1, 8), (2, 8)]
    assert report["release"][0]["backorders"] == 30
    assert report["release"][0]["pushes_asked"] == ["shop"]  # listed channels are pushed
    plan = report["plan_push"][0]
    assert (plan["planned"], plan["rounds"]) == (200, 1)
    assert plan["tracemalloc_peak_mb"] > 0
    assert "| sqlite | 1 | 8 |" in tables(report)


@pytest.mark.postgres
def test_tiny_release_on_postgresql() -> None:
    report = run_ledger(TINY, pg_admin=PG_ADMIN_URL, kinds=("postgresql",), parts=("release",))
    assert report["release"][0]["database"] == "postgresql"
    assert report["release"][0]["released_per_s"] > 0
