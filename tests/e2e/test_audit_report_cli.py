"""`stocksync audit` and `stocksync report backorders` as a merchant runs them (issue #18): a
day of a pop-up and a phone channel from the command line, then its audit log (filtered, paged,
JSON, CSV, table) and its backorder report; bad arguments exit 2 with one clear line."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from stock.db import upgrade
from tests.e2e import Cli

ENTRY_KEYS = {"id", "at", "actor", "action", "subject", "detail"}
REPORT_KEYS = {"since", "now", "days", "open_age", "time_to_release", "fill_rate"}
FILL_KEYS = {"backordered", "released", "open", "beyond_capacity", "cancelled", "fill_rate"}


@pytest.mark.slow
def test_audit_and_backorder_report(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'ledger.db'}"
    config = tmp_path / "stocksync.yaml"
    config.write_text(
        f"""\
database: {database}
channels:
  popup: {{kind: manual}}
  phone: {{kind: manual}}
defaults:
  backorders: {{enabled: true, incoming_share: 1.0, horizon_days: 60}}
""",
        encoding="utf-8",
    )
    upgrade(database)
    cli = Cli(tmp_path, config)
    eta = (datetime.now(UTC) + timedelta(days=10)).date().isoformat()
    for args in [
        ("stock", "set", "TEE", "1", "--reason", "count"),
        ("po", "add", "PO-1", "--eta", eta, "TEE=10"),
        ("order", "add", "popup", "P-1", "TEE=3"),  # 1 reserved, 2 backordered
        ("order", "add", "phone", "T-1", "TEE=2"),  # 2 backordered
        ("po", "receive", "PO-1", "TEE=3"),  # P-1's 2, T-1's first
        ("order", "add", "phone", "T-2", "TEE=2"),
        ("order", "cancel", "phone", "T-2"),  # its backorder closes, nothing released
    ]:
        cli(*args)

    everything = cli("audit", "--json").json()
    assert set(everything) == {"entries", "next"} and everything["next"] is None
    entries = everything["entries"]
    assert all(set(e) == ENTRY_KEYS for e in entries)
    assert [e["at"] for e in entries] == sorted((e["at"] for e in entries), reverse=True)
    assert {e["actor"] for e in entries} == {"cli"}
    assert entries[-1]["action"] == "stock.set" and entries[-1]["detail"]["reason"] == "count"
    releases = [e for e in entries if e["action"] == "backorder.release"]
    assert [(e["subject"], e["detail"]["order"], e["detail"]["units"]) for e in releases] == [
        ("TEE", "phone/T-1", 1), ("TEE", "popup/P-1", 2),
    ]  # fmt: skip

    page = cli("audit", "--action", "order.*", "--limit", "2", "--json").json()
    assert [e["subject"] for e in page["entries"]] == ["phone/T-2", "phone/T-2"]
    rest = cli("audit", "--action", "order.*", "--before-id", str(page["next"]), "--json").json()
    assert [e["subject"] for e in rest["entries"]] == ["phone/T-1", "popup/P-1"]
    assert rest["next"] is None

    exported = cli("audit", "--sku", "TEE", "--csv")
    rows = list(csv.reader(io.StringIO(exported.stdout)))
    assert rows[0] == ["id", "at", "actor", "action", "subject", "detail"]
    assert {row[4] for row in rows[1:]} == {"TEE"}
    assert (
        '{"line":"1","order":"popup/P-1","rank_by":["priority","tier","placed_at"],"units":2}'
        in {row[5] for row in rows[1:]}
    )
    table = cli("audit", "--subject", "PO-1", "--limit", "1")
    assert "Audit log (newest first)" in table.stdout and "po.receive" in table.stdout
    assert "next page: --before-id" in table.stdout

    report = cli("report", "backorders", "--json").json()
    assert set(report) == REPORT_KEYS
    assert len(report["days"]) == 31  # from 30 days ago (00:00 UTC) to today
    assert sum(d["backordered"] for d in report["days"]) == 4
    assert sum(d["released"] for d in report["days"]) == 3
    assert report["open_age"][0] == {"age": "<1d", "backorders": 1, "units": 1}
    waited = report["time_to_release"]
    assert (waited["releases"], waited["units"], waited["unmatched_units"]) == (2, 3, 0)
    assert 0 <= waited["median_hours"] < 1
    fill = report["fill_rate"]
    assert set(fill["total"]) == FILL_KEYS
    assert fill["total"] == {"backordered": 4, "released": 3, "open": 1, "beyond_capacity": 0,
                             "cancelled": 1, "fill_rate": 0.75}  # fmt: skip
    assert [(c["channel"], c["fill_rate"]) for c in fill["by_channel"]] == [
        ("phone", 0.5), ("popup", 1.0),
    ]  # fmt: skip
    spreadsheet = list(csv.reader(io.StringIO(cli("report", "backorders", "--csv").stdout)))
    assert spreadsheet[0] == ["section", "key", "metric", "value"]
    assert ["fill_channel", "popup", "released", "2"] in spreadsheet
    shown = cli("report", "backorders", "--since", "2020-01-01").stdout
    assert "Fill rate per SKU" in shown and "75%" in shown

    for args, message in [
        (("audit", "--since", "soon"), "error: 'soon': expected an ISO time"),
        (("audit", "--before-id", "9999"), "error: --before-id 9999: no audit entry has this id"),
        (("report", "backorders", "--since", "2026-02-30"), "error: '2026-02-30': expected"),
        (("report", "backorders", "--json", "--csv"), ""),
    ]:
        result = cli(*args, expect=2)
        assert result.stderr.startswith(message), result
