"""The ledger benchmark: its targets, its order bodies, and every scenario in a tiny mode
(each checks its own outcome and raises when the ledger ends up wrong)."""

from __future__ import annotations

import json

import pytest

from bench.common import PG_ADMIN_URL
from bench.ledger import (
    LedgerPlan,
    body_units,
    figure,
    meets,
    plan_offer,
    run_ledger,
    shopify_bodies,
    significant,
    tables,
)

TINY = LedgerPlan(
    orders=8,
    order_skus=40,
    backorders=30,
    plan_skus=400,
    small_plan_skus=200,
    replan_limit=100,
    import_rows=30,
    import_statement_rows=10,
    ceiling_seconds=0.2,
    ceiling_clients=(1,),
    ceiling_again=False,
    isolate=False,
)


def test_bodies_are_shopify_orders_of_one_to_three_lines() -> None:
    bodies = shopify_bodies(12, 40, 1)
    orders = [json.loads(b) for b in bodies]
    assert len({o["id"] for o in orders}) == 12
    assert all(1 <= len(o["line_items"]) <= 3 for o in orders)
    assert all(li["sku"].startswith("ING-") for o in orders for li in o["line_items"])
    lines, units, short = body_units(bodies)
    assert lines == sum(len(o["line_items"]) for o in orders)
    assert units >= lines >= 12 and 0 <= short < units


def test_targets_and_figures() -> None:
    assert meets(1200.0, (">=", 1000)) and not meets(2.5, ("<", 2))
    assert meets(None, ("<", 1)) is False and meets(3.0, None) is None
    row = figure("ingest", "sqlite", 350.0, "orders/s", rate=350.0, rate_unit="orders/s")
    assert (row["target"], row["met"]) == (">= 300", True)
    assert figure("release", "postgresql", 2.5, "s", rate=4000.0, rate_unit="/s")["met"] is False
    assert significant(0.000123456) == 0.000123 and significant(1234.5) == 1230.0
    assert plan_offer("P-000050") == 5 + 50 % 20 + 10 and plan_offer("P-000001") == 6


@pytest.mark.slow
def test_tiny_ledger_run_on_sqlite() -> None:
    report = run_ledger(TINY, kinds=("sqlite",))
    found = {f["scenario"]: f for f in report["figures"]}
    assert list(found) == [
        "ingest",
        "ingest one by one",
        "release",
        "plan 1% changed",
        "plan all",
        "plan memory",
        "status --json",
        "explain --json",
        "stock import",
    ]
    assert found["ingest"]["check"]["orders"] == 8
    assert found["ingest"]["statements_per_unit"] > 0
    assert found["release"]["check"]["released"] == 30
    assert found["plan 1% changed"]["run"]["planned"] == 4
    assert found["plan all"]["run"]["rounds"] == 4
    assert found["plan memory"]["memory"]["200"]["tracemalloc_peak_mb"] > 0
    assert found["stock import"]["check"]["skus"] == 30
    assert all(f["ceiling_tps"] > 0 for f in report["figures"])
    assert found["ingest"]["ratio"] > 0
    assert "| ingest | sqlite |" in tables(report)


@pytest.mark.postgres
@pytest.mark.slow
def test_tiny_release_on_postgresql() -> None:
    report = run_ledger(TINY, pg_admin=PG_ADMIN_URL, kinds=("postgresql",), parts=("release",))
    (row,) = report["figures"]
    assert (row["database"], row["check"]["released"]) == ("postgresql", 30)
    assert row["ratio"] > 0
