"""`stocksync campaign report` (issue #15) on SQLite and PostgreSQL with an injected clock: two
waves, one payment, one expiry, a review rejection, someone still waiting -> the numbers per
wave and per SKU; the CSV and the errors of the real CLI."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from rules import parse_config
from stock import campaigns, counts
from stock.db import upgrade
from stock.tx import LedgerInputError
from sync import campaign_report
from sync import campaign_service as service
from sync.context import AppContext

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
CONFIG = """\
database: {url}
channels:
  popup: {{kind: manual}}
campaigns:
  spring-drop:
    skus: {{HOODIE-S: 2, HOODIE-L: 1}}
    channels: [popup]
    signup: {{opens: {opens}, closes: {closes}}}
    method: fcfs
    limits: {{per_customer: 1, identity: [email]}}
    window_hours: 12
    wave_every_hours: 2
"""
WINDOW = ("2026-12-01T10:00:00+00:00", "2026-12-04T10:00:00+00:00")


def config_text(url: str, window: tuple[str, str] = WINDOW) -> str:
    return CONFIG.format(url=url, opens=window[0], closes=window[1])


def opened(url: str) -> AppContext:
    upgrade(url)
    ctx = AppContext.open(parse_config(config_text(url), "stocksync.yaml", env={}))
    with ctx.ledger(actor="test", now=T0 - timedelta(days=1)) as tx:
        counts.set_stock(tx, "HOODIE-S", 5)
        counts.set_stock(tx, "HOODIE-L", 5)
    return ctx


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def ctx(
    request: pytest.FixtureRequest, tmp_path: Path, fresh_sqlite: Callable[[Path], str]
) -> Iterator[AppContext]:
    if request.param == "sqlite":
        made = opened(fresh_sqlite(tmp_path))
        yield made
        made.close()
        return
    from sync.stack import fresh_postgres
    from tests.conftest import PG_ADMIN_URL

    with fresh_postgres(PG_ADMIN_URL, prefix="stocksync_t_") as url:
        made = opened(url)
        yield made
        made.close()


def sign_up(ctx: AppContext, minutes: int, email: str, sku: str) -> campaigns.EntryRow:
    with ctx.ledger(actor="test", now=T0 + timedelta(minutes=minutes)) as tx:
        return service.sign_up(tx, ctx.config, "spring-drop", service.SignUp(email, sku))


def tick(ctx: AppContext, at: datetime) -> dict[str, Any]:
    with ctx.ledger(actor="test", now=at) as tx:
        return service.tick(tx, ctx.config, "spring-drop")


def report(ctx: AppContext) -> dict[str, Any]:
    with ctx.read() as session:
        return campaign_report.report(session, ctx.config, "spring-drop")


def without_units(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if not k.startswith("units_")}


def test_two_waves_one_paid_one_expired_give_the_report_s_numbers(ctx: AppContext) -> None:
    a = sign_up(ctx, 1, "ann@example.com", "HOODIE-S")
    b = sign_up(ctx, 2, "bob@example.com", "HOODIE-S")
    c = sign_up(ctx, 3, "cy@example.com", "HOODIE-S")
    d = sign_up(ctx, 4, "di@example.com", "HOODIE-L")
    f = sign_up(ctx, 5, "fay@example.com", "HOODIE-L")
    again = sign_up(ctx, 6, "Ann@Example.com", "HOODIE-S")  # the same email: review
    assert again.status == "review"
    first = tick(ctx, T0 + timedelta(minutes=10))  # wave 1: a, b (2 units of S), d (1 of L)
    assert sorted(row["entry"] for row in first["wave"]["allocated"]) == [a.id, b.id, d.id]
    with ctx.ledger(actor="test", now=T0 + timedelta(hours=1)) as tx:
        service.confirm(tx, ctx.config, a.id)  # paid within the window
        service.review(tx, again.id, False, "a second sign-up")  # declined, never allocated
    second = tick(ctx, T0 + timedelta(hours=12, minutes=11))  # b and d expire; wave 2: c, f
    assert sorted(second["expired"]) == [b.id, d.id]
    assert sorted(row["entry"] for row in second["wave"]["allocated"]) == [c.id, f.id]

    found = report(ctx)
    zero = dict.fromkeys(campaign_report.COUNTS, 0)
    assert found["campaign"] == "spring-drop"
    assert without_units(found["totals"]) == without_units(
        {**zero, "signups": 6, "allocated": 5, "confirmed": 1, "pending": 2, "expired": 2,
         "declined": 1, "conversion": 0.2}
    )  # fmt: skip
    assert (found["totals"]["units_allocated"], found["totals"]["units_confirmed"]) == (5, 1)
    by_wave = {row["wave"]: without_units(row) for row in found["by_wave"]}
    assert list(by_wave) == [1, 2, None]
    assert by_wave[1] == {**without_units(zero), "wave": 1, "signups": 3, "allocated": 3,
                          "confirmed": 1, "expired": 2, "conversion": 0.3333}  # fmt: skip
    assert by_wave[2] == {**without_units(zero), "wave": 2, "signups": 2, "allocated": 2,
                          "pending": 2, "conversion": 0.0}  # fmt: skip
    assert by_wave[None] == {**without_units(zero), "wave": None, "signups": 1, "declined": 1,
                             "conversion": None}  # fmt: skip
    by_sku = {row["sku"]: row for row in found["by_sku"]}
    assert list(by_sku) == ["HOODIE-S", "HOODIE-L"]  # the campaign's order
    assert (by_sku["HOODIE-S"]["signups"], by_sku["HOODIE-S"]["allocated"]) == (4, 3)
    assert (by_sku["HOODIE-S"]["confirmed"], by_sku["HOODIE-S"]["conversion"]) == (1, 0.3333)
    assert (by_sku["HOODIE-L"]["expired"], by_sku["HOODIE-L"]["pending"]) == (1, 1)
    assert by_sku["HOODIE-L"]["conversion"] == 0.0
    cells = {(row["wave"], row["sku"]): row["signups"] for row in found["by_wave_sku"]}
    assert cells == {(1, "HOODIE-L"): 1, (1, "HOODIE-S"): 2, (2, "HOODIE-L"): 1,
                     (2, "HOODIE-S"): 1, (None, "HOODIE-S"): 1}  # fmt: skip

    rows = list(csv.DictReader(io.StringIO(campaign_report.to_csv(found))))
    assert [(r["wave"], r["sku"]) for r in rows][-2:] == [("", "HOODIE-S"), ("total", "total")]
    assert rows[-1]["signups"] == "6" and rows[-1]["conversion"] == "0.2"


def test_a_payment_the_tick_had_not_yet_expired_is_counted_late(ctx: AppContext) -> None:
    a = sign_up(ctx, 1, "ann@example.com", "HOODIE-L")
    tick(ctx, T0 + timedelta(minutes=10))
    paid_late = True
    try:  # after the 12 h window, before any tick expired the allocation
        with ctx.ledger(actor="test", now=T0 + timedelta(hours=13)) as tx:
            service.confirm(tx, ctx.config, a.id)
    except LedgerInputError:
        paid_late = False  # confirm refuses payments after the deadline
    totals = report(ctx)["totals"]
    assert (totals["confirmed"], totals["confirmed_late"]) == (int(paid_late), int(paid_late))


def test_the_report_is_one_grouped_query_whatever_the_number_of_entries(ctx: AppContext) -> None:
    from bench.statements import count_statements

    for n in range(30):
        sign_up(ctx, n + 1, f"c{n}@example.com", "HOODIE-S" if n % 3 else "HOODIE-L")
    tick(ctx, T0 + timedelta(hours=1))
    with count_statements(ctx.engine) as stats:
        found = report(ctx)
    assert found["totals"]["signups"] == 30 and found["totals"]["allocated"] == 3
    selects = [s for s, _n in stats.top(20) if s.upper().startswith("SELECT")]
    assert len(selects) == 1, stats.top(20)


def test_the_cli_prints_csv_json_and_a_table_and_refuses_an_unknown_campaign(
    tmp_path: Path,
) -> None:
    path = tmp_path / "stocksync.yaml"
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    path.write_text(config_text(url), encoding="utf-8")
    upgrade(url)
    ctx = AppContext.open(parse_config(config_text(url), str(path), env={}))
    try:
        with ctx.ledger(actor="test", now=T0 - timedelta(days=1)) as tx:
            counts.set_stock(tx, "HOODIE-S", 5)
            counts.set_stock(tx, "HOODIE-L", 5)
        a = sign_up(ctx, 1, "ann@example.com", "HOODIE-S")
        sign_up(ctx, 2, "bob@example.com", "HOODIE-S")
        sign_up(ctx, 3, "cy@example.com", "HOODIE-S")
        tick(ctx, T0 + timedelta(minutes=10))  # wave 1: ann and bob
        with ctx.ledger(actor="test", now=T0 + timedelta(hours=1)) as tx:
            service.confirm(tx, ctx.config, a.id)
        tick(ctx, T0 + timedelta(hours=12, minutes=11))  # bob expires; wave 2: cy
    finally:
        ctx.close()

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["stocksync", "--config", str(path), "campaign", "report", *args],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    done = run("spring-drop", "--csv")
    assert done.returncode == 0, done.stdout + done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert list(rows[0]) == list(campaign_report.CSV_COLUMNS)
    table = {(r["wave"], r["sku"]): r for r in rows}
    assert list(table) == [("1", "HOODIE-S"), ("2", "HOODIE-S"), ("total", "total")]
    assert (table["1", "HOODIE-S"]["confirmed"], table["1", "HOODIE-S"]["expired"]) == ("1", "1")
    assert table["1", "HOODIE-S"]["conversion"] == "0.5"
    assert (table["2", "HOODIE-S"]["pending"], table["2", "HOODIE-S"]["conversion"]) == ("1", "0.0")
    total = table["total", "total"]
    assert (total["signups"], total["allocated"], total["confirmed"]) == ("3", "3", "1")
    assert total["conversion"] == "0.3333"

    as_json = run("spring-drop", "--json")
    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    assert data["ok"] is True
    assert {"campaign", "totals", "by_wave", "by_sku", "by_wave_sku"} <= set(data)
    human = run("spring-drop")
    assert human.returncode == 0 and "By wave" in human.stdout and "33.3 %" in human.stdout

    unknown = run("autumn-drop", "--csv")
    assert unknown.returncode == 2 and unknown.stdout == ""
    assert "unknown campaign 'autumn-drop' (configured: spring-drop)" in unknown.stderr
    refused = run("autumn-drop", "--json")
    assert refused.returncode == 2 and json.loads(refused.stdout)["ok"] is False
