"""The backorder report on the ledger (issue #18), SQLite and PostgreSQL: a history of orders,
receipts that release them, a cancelled backorder, an order that grew after a release (a line
with two rows) and backorders beyond capacity, read back as per-day volume, ages, time to
release and fill rates — with a fixed handful of statements — and through `stocksync report
backorders` (JSON, CSV, table, bad input)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from backorders import orders, reporting
from backorders.orders import LineInput, OrderInput, OrderState
from bench.statements import StatementStats, count_statements
from stock import purchasing
from sync.cli import main
from sync.context import AppContext
from tests.support.ledger import config_head, ledger_fixture

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
CONFIG = (
    config_head("popup", "phone")
    + """\
defaults:
  safety_buffer: 0
  backorders: {{enabled: true, incoming_share: 1.0, horizon_days: 400}}
"""
)

ctx = ledger_fixture(CONFIG, {"TEE": 0, "CAP": 0}, T0)


def h(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def order(app: AppContext, channel: str, ref: str, hours: float, status: OrderState = "open",
          placed: float | None = None, **lines: int) -> None:  # fmt: skip
    at = h(hours)
    with app.ledger(actor="test", now=at) as tx:
        orders.record_order(tx, OrderInput(
            channel, ref, h(hours if placed is None else placed), at, status,
            tuple(LineInput(str(n), sku, qty) for n, (sku, qty) in enumerate(lines.items(), 1)),
        ))  # fmt: skip


def receive(app: AppContext, hours: float, units: int) -> None:
    with app.ledger(actor="test", now=h(hours)) as tx:
        purchasing.receive_po(tx, "PO-1", {"TEE": units})


def selects(counted: StatementStats) -> int:
    """The reads (SQLite's read transaction starts with a BEGIN statement of its own)."""
    return sum(n for shape, n in counted.shapes.items() if shape.startswith("SELECT"))


@pytest.fixture
def history(ctx: AppContext) -> AppContext:
    """R1..R7: the backorder rows this history makes (hours after T0)."""
    with ctx.ledger(actor="test", now=T0) as tx:
        purchasing.add_po(tx, "PO-1", (T0 + timedelta(days=10)).date(), {"TEE": 20})
    order(ctx, "popup", "o1", 1, TEE=3)  # R1: 3 within capacity
    order(ctx, "phone", "p1", 2, TEE=2)  # R2: 2
    order(ctx, "popup", "o2", 24, CAP=4)  # R3: 4 beyond capacity (nothing coming)
    receive(ctx, 28, 4)  # o1's 3 (waited 27 h), p1's first (26 h)
    order(ctx, "phone", "p2", 48, TEE=1)  # R4
    order(ctx, "phone", "p2", 49, status="cancelled", placed=48, TEE=1)  # R4 cancelled
    receive(ctx, 72, 1)  # p1's second (70 h)
    order(ctx, "popup", "o3", 73, TEE=1)  # R5
    receive(ctx, 73.5, 1)  # o3's first (0.5 h)
    order(ctx, "popup", "o3", 74, placed=73, TEE=3)  # the line grows: R6, 2 more
    receive(ctx, 96, 2)  # o3's two more: R6 (22 h), not R5 (filled already)
    order(ctx, "phone", "p3", 97, TEE=5)  # R7: 5 open
    return ctx


def test_the_report_over_the_whole_history(history: AppContext) -> None:
    with count_statements(history.engine) as counted, history.read() as session:
        data = reporting.report(session, T0, h(120))
    # releases, their rows, earlier releases of o3's two-row line, the grouped backorders
    assert selects(counted) == 4
    assert data["since"] == T0.isoformat() and data["now"] == h(120).isoformat()
    assert data["days"] == [
        {"day": "2026-03-01", "backordered": 5, "released": 0},
        {"day": "2026-03-02", "backordered": 4, "released": 4},
        {"day": "2026-03-03", "backordered": 0, "released": 0},  # p2's backorder: cancelled
        {"day": "2026-03-04", "backordered": 3, "released": 2},
        {"day": "2026-03-05", "backordered": 5, "released": 2},
        {"day": "2026-03-06", "backordered": 0, "released": 0},
    ]
    assert data["open_age"] == [
        {"age": "<1d", "backorders": 1, "units": 5},  # p3, 23 h
        {"age": "1-3d", "backorders": 0, "units": 0},
        {"age": "3-7d", "backorders": 1, "units": 4},  # o2's CAP, 4 days
        {"age": "7-14d", "backorders": 0, "units": 0},
        {"age": ">14d", "backorders": 0, "units": 0},
    ]
    # waits: 0.5 h x 1, 22 h x 2, 26 h x 1, 27 h x 3, 70 h x 1 (8 units, 221.5 unit-hours)
    assert data["time_to_release"] == {"releases": 5, "units": 8, "unmatched_units": 0,
                                       "mean_hours": 27.69, "median_hours": 26.0,
                                       "p90_hours": 70.0}  # fmt: skip
    fill = data["fill_rate"]
    assert fill["by_sku"] == [
        {"sku": "CAP", "backordered": 4, "released": 0, "open": 4, "beyond_capacity": 4,
         "cancelled": 0, "fill_rate": 0.0},
        {"sku": "TEE", "backordered": 13, "released": 8, "open": 5, "beyond_capacity": 0,
         "cancelled": 1, "fill_rate": 0.6154},
    ]  # fmt: skip
    assert fill["by_channel"] == [
        {"channel": "phone", "backordered": 7, "released": 2, "open": 5, "beyond_capacity": 0,
         "cancelled": 1, "fill_rate": 0.2857},
        {"channel": "popup", "backordered": 10, "released": 6, "open": 4, "beyond_capacity": 4,
         "cancelled": 0, "fill_rate": 0.6},
    ]  # fmt: skip
    assert fill["total"] == {"backordered": 17, "released": 8, "open": 9, "beyond_capacity": 4,
                             "cancelled": 1, "fill_rate": 0.4706}  # fmt: skip


def test_since_keeps_older_releases_of_a_line_for_the_replay(history: AppContext) -> None:
    since = h(73.75)  # after o3's first release, before its line grew
    with history.read() as session:
        data = reporting.report(session, since, h(120))
    assert [d["day"] for d in data["days"]] == ["2026-03-04", "2026-03-05", "2026-03-06"]
    assert [(d["backordered"], d["released"]) for d in data["days"]] == [(2, 0), (5, 2), (0, 0)]
    # the release at 96 h filled R6 (created 74 h): 22 h; read alone it would seem to fill R5
    assert data["time_to_release"] == {"releases": 1, "units": 2, "unmatched_units": 0,
                                       "mean_hours": 22.0, "median_hours": 22.0,
                                       "p90_hours": 22.0}  # fmt: skip
    assert data["fill_rate"]["total"] == {"backordered": 7, "released": 2, "open": 5,
                                          "beyond_capacity": 0, "cancelled": 0,
                                          "fill_rate": 0.2857}  # fmt: skip
    # open backorders are aged whenever they were created
    assert [a["backorders"] for a in data["open_age"]] == [1, 0, 1, 0, 0]


def test_an_empty_ledger(ctx: AppContext) -> None:
    with count_statements(ctx.engine) as counted, ctx.read() as session:
        data = reporting.report(session, T0, h(1))
    assert selects(counted) == 2  # no releases: nothing more to read
    assert data["days"] == [{"day": "2026-03-01", "backordered": 0, "released": 0}]
    assert data["time_to_release"]["units"] == 0
    assert data["time_to_release"]["median_hours"] is None
    assert data["fill_rate"]["total"]["fill_rate"] is None


def test_statements_do_not_grow_with_the_history(ctx: AppContext) -> None:
    with ctx.ledger(actor="test", now=T0) as tx:
        purchasing.add_po(tx, "PO-1", (T0 + timedelta(days=10)).date(), {"TEE": 200})
    for n in range(40):
        order(ctx, "popup" if n % 2 else "phone", f"x{n}", 1 + n / 10, TEE=2)
    receive(ctx, 10, 50)
    with count_statements(ctx.engine) as counted, ctx.read() as session:
        data = reporting.report(session, T0, h(20))
    assert data["time_to_release"]["units"] == 50
    assert data["fill_rate"]["total"]["released"] == 50
    assert selects(counted) == 3  # releases, their rows, the groups (no line has two rows)


def run(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> tuple[int, str, str]:
    try:
        main(["--config", str(config), *args])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def config_file(app: AppContext, folder: Path) -> Path:
    url = app.engine.url.render_as_string(hide_password=False)
    path = folder / "stocksync.yaml"
    path.write_text(CONFIG.format(url=url), encoding="utf-8")
    return path


def test_the_command(
    history: AppContext, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_file(history, tmp_path)
    code, out, _err = run(capsys, config, "report", "backorders", "--since", "2026-03-01",
                          "--json")  # fmt: skip
    assert code == 0
    data: dict[str, Any] = json.loads(out)
    assert set(data) == {"since", "now", "days", "open_age", "time_to_release", "fill_rate"}
    assert data["since"] == "2026-03-01T00:00:00+00:00"  # a date: its midnight, UTC
    assert data["days"][0] == {"day": "2026-03-01", "backordered": 5, "released": 0}
    assert data["time_to_release"]["median_hours"] == 26.0
    assert data["fill_rate"]["total"]["fill_rate"] == 0.4706
    # the clock is today's: both open backorders are weeks old by now
    assert sum(a["backorders"] for a in data["open_age"]) == 2
    assert data["open_age"][-1]["backorders"] == 2

    code, out, _err = run(capsys, config, "report", "backorders", "--since",
                          "2026-03-01T10:00:00+00:00", "--csv")  # fmt: skip
    assert code == 0
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["section", "key", "metric", "value"]
    assert ["day", "2026-03-02", "released", "4"] in rows
    assert ["open_age", ">14d", "units", "9"] in rows
    assert ["time_to_release", "all", "p90_hours", "70.0"] in rows
    assert ["fill_sku", "TEE", "fill_rate", "0.6154"] in rows
    assert ["fill_channel", "phone", "cancelled", "1"] in rows
    assert ["fill_total", "all", "backordered", "17"] in rows

    code, out, _err = run(capsys, config, "report", "backorders", "--since", "2026-03-01")
    assert code == 0
    assert "Open backorders by age" in out and "Fill rate per channel" in out
    assert "mean 27.69 h, median 26.0 h, p90 70.0 h" in out
    assert "2026-03-03" not in out  # days without backorders or releases are not in the table

    code, _out, err = run(capsys, config, "report", "backorders", "--since", "last week")
    assert code == 2 and "'last week': expected an ISO time" in err
    code, out, _err = run(capsys, config, "report", "backorders", "--csv", "--json")
    assert code == 2 and json.loads(out) == {"ok": False, "error": "--csv and --json: choose one"}
