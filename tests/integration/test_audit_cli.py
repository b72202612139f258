"""`stocksync audit` on the ledger (issue #18), SQLite and PostgreSQL: every filter (SKU as
subject or in the detail, action names and globs, subject, user, time window), newest-first
pages after a cursor — through entries that share their time — a fixed number of statements
whatever the log holds, the indexes the filters are meant for, and the command itself (JSON,
CSV, table, bad input)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from bench.statements import StatementStats, count_statements
from stock import audit_log
from stock.audit_log import AuditFilter
from sync.cli import main
from sync.context import AppContext
from tests.support.ledger import config_head, ledger_fixture

T0 = datetime(2026, 4, 1, 8, 0, tzinfo=UTC)
CONFIG = config_head("shop")

ctx = ledger_fixture(CONFIG, {"TEE": 0}, T0)  # entry 1: stock.set TEE by "test" at T0

ENTRIES: list[tuple[float, str, list[tuple[str, str, dict[str, Any]]]]] = [
    (1, "cli", [("po.add", "PO-1", {"lines": {"TEE": 5}})]),  # the SKU nested: not matched
    (2, "worker", [("campaign.signed_up", "drop-1", {"entry": 1, "sku": "TEE"}),
                   ("campaign.signed_up", "drop-1", {"entry": 2, "sku": "CAP"})]),
    (3, "api", [("backorder.release", "TEE", {"order": "shop/1", "line": "1", "units": 2}),
                ("backorder.release", "CAP", {"order": "shop/1", "line": "2", "units": 1})]),
    (4, "cli", [("stock.set", "CAP", {"before": 0, "after": 3})]),
    (5, "campaigns", [("campaign.reminder", "drop-1", {"entry": 1, "sku": "TEE"})]),
    (6, "cli", [("order.recorded", "shop/1", {"backordered": {"1": 2}})]),
]  # fmt: skip
# the entries above as ids (1 is the fixture's count), each of one transaction sharing its time
ALL = [9, 8, 7, 6, 5, 4, 3, 2, 1]


def h(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


@pytest.fixture
def log(ctx: AppContext) -> AppContext:
    for hours, actor, entries in ENTRIES:
        with ctx.ledger(actor=actor, now=h(hours)) as tx:
            for action, subject, detail in entries:
                tx.audit(action, subject, detail)
    return ctx


def ids(app: AppContext, limit: int = 100, **where: Any) -> list[int]:
    with app.read() as session:
        return [row.id for row in audit_log.page(session, AuditFilter(**where), limit).entries]


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ({}, ALL),
        # subject TEE (the count, a release) or detail.sku TEE (sign-up, reminder)
        ({"sku": "TEE"}, [8, 5, 3, 1]),
        ({"sku": "CAP"}, [7, 6, 4]),
        ({"sku": "NONE"}, []),
        ({"action": "campaign.*"}, [8, 4, 3]),
        ({"action": "campaign.signed_up"}, [4, 3]),
        ({"action": "*.release"}, [6, 5]),
        ({"action": "[bo]*"}, [9, 6, 5]),
        ({"action": "nothing.*"}, []),
        ({"action": "campaign"}, []),  # a name is exact
        ({"action": "Campaign.*"}, []),  # and a glob case-sensitive
        ({"subject": "drop-1"}, [8, 4, 3]),
        ({"subject": "TEE"}, [5, 1]),
        ({"action": "stock.set", "subject": "CAP"}, [7]),
        ({"user": "api"}, [6, 5]),
        ({"since": h(2), "until": h(4)}, [6, 5, 4, 3]),  # since inclusive, until exclusive
        ({"since": h(6)}, [9]),
        ({"until": h(0)}, []),
        ({"sku": "TEE", "action": "campaign.*"}, [8, 3]),
        ({"sku": "CAP", "user": "worker"}, [4]),
        ({"subject": "drop-1", "sku": "TEE", "since": h(3)}, [8]),
    ],
)
def test_filters(log: AppContext, where: dict[str, Any], expected: list[int]) -> None:
    assert ids(log, **where) == expected


def test_pages_follow_the_cursor_through_entries_of_one_instant(log: AppContext) -> None:
    for limit in (1, 2, 3, 4, 9, 10):
        seen: list[int] = []
        cursor: int | None = None
        with log.read() as session:
            while True:
                found = audit_log.page(session, AuditFilter(before_id=cursor), limit)
                seen += [row.id for row in found.entries]
                assert len(found.entries) <= limit
                if found.next is None:
                    break
                assert found.next == found.entries[-1].id
                cursor = found.next
        assert seen == ALL, limit
    with log.read() as session:
        first = audit_log.page(session, AuditFilter(sku="TEE"), 2)
        assert ([r.id for r in first.entries], first.next) == ([8, 5], 5)
        second = audit_log.page(session, AuditFilter(sku="TEE", before_id=5), 2)
        assert ([r.id for r in second.entries], second.next) == ([3, 1], None)
        # entries of one instant (4 and 3 share theirs): the cursor splits them
        split = audit_log.page(session, AuditFilter(before_id=4), 1)
        assert [r.id for r in split.entries] == [3]
        with pytest.raises(audit_log.NoSuchEntry):
            audit_log.page(session, AuditFilter(before_id=999), 5)


def test_an_entry_reads_back_whole(log: AppContext) -> None:
    with log.read() as session:
        (row,) = audit_log.page(session, AuditFilter(action="po.add"), 5).entries
    assert row.as_dict() == {"id": 2, "at": h(1).isoformat(), "actor": "cli",
                             "action": "po.add", "subject": "PO-1",
                             "detail": {"lines": {"TEE": 5}}}  # fmt: skip


def test_distinct_actions(log: AppContext) -> None:
    with log.read() as session:
        assert audit_log.actions(session) == [
            "backorder.release", "campaign.reminder", "campaign.signed_up", "order.recorded",
            "po.add", "stock.set",
        ]  # fmt: skip


def selects(counted: StatementStats) -> int:
    """The reads (SQLite's read transaction starts with a BEGIN statement of its own)."""
    return sum(n for shape, n in counted.shapes.items() if shape.startswith(("SELECT", "WITH")))


def reads(app: AppContext, where: AuditFilter, limit: int = 3) -> int:
    with count_statements(app.engine) as counted, app.read() as session:
        audit_log.page(session, where, limit)
    return selects(counted)


def test_a_page_is_a_fixed_number_of_statements(log: AppContext) -> None:
    shapes = [
        AuditFilter(),
        AuditFilter(sku="TEE", user="cli", since=h(1), until=h(9)),
        AuditFilter(action="campaign.signed_up"),
        AuditFilter(action="campaign.*"),  # + the distinct actions
        AuditFilter(subject="TEE"),  # + the distinct actions
        AuditFilter(action="campaign.*", subject="drop-1", before_id=8),  # + the cursor's time
    ]
    before = [reads(log, where) for where in shapes]
    assert before == [1, 1, 1, 2, 2, 3]
    with log.ledger(actor="bulk", now=h(7)) as tx:
        from stock import audit

        audit.record_many(tx.session, tx.now, tx.actor, [
            (f"bulk.{n % 5}", f"SKU-{n}", {"sku": "TEE"}) for n in range(300)])  # fmt: skip
    assert [reads(log, where) for where in shapes] == before
    assert len(ids(log, limit=1000, sku="TEE")) == 4 + 300


@contextmanager
def captured(app: AppContext) -> Iterator[list[tuple[str, Any]]]:
    """The SQL statements (and their parameters) run on the app's engine in the block."""
    found: list[tuple[str, Any]] = []

    def note(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_rest: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            found.append((statement, parameters))

    event.listen(app.engine, "before_cursor_execute", note)
    try:
        yield found
    finally:
        event.remove(app.engine, "before_cursor_execute", note)


def plan(app: AppContext, statement: str, parameters: Any) -> str:
    """The database's plan of a statement; on PostgreSQL with sequential scans priced out, so
    that the plan of a tiny test table shows which index the statement can use."""
    with app.engine.connect() as conn:
        if app.engine.dialect.name == "sqlite":
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
            return "\n".join(str(row[-1]) for row in rows)
        conn.exec_driver_sql("SET enable_seqscan = off")
        rows = conn.exec_driver_sql("EXPLAIN " + statement, parameters).all()
        return "\n".join(str(row[0]) for row in rows)


@pytest.mark.parametrize(
    ("where", "index"),
    [
        (AuditFilter(), "ix_audit_entry_at"),
        (AuditFilter(since=h(2), until=h(4)), "ix_audit_entry_at"),
        (AuditFilter(subject="TEE"), "ix_audit_entry_action"),
        (AuditFilter(action="campaign.*"), "ix_audit_entry_action"),
        (AuditFilter(action="stock.set", subject="CAP"), "ix_audit_entry_action"),
    ],
)
def test_the_filters_use_their_index(log: AppContext, where: AuditFilter, index: str) -> None:
    with captured(log) as statements, log.read() as session:
        audit_log.page(session, where, 2)
    *walks, (statement, parameters) = statements
    assert index in plan(log, statement, parameters)
    for walk, walk_parameters in walks:  # the distinct actions: seeks in the action index
        assert "ix_audit_entry_action" in plan(log, walk, walk_parameters)


def run(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> tuple[int, str, str]:
    try:
        main(["--config", str(config), *args])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_command(log: AppContext, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "stocksync.yaml"
    url = log.engine.url.render_as_string(hide_password=False)
    config.write_text(CONFIG.format(url=url), encoding="utf-8")

    code, out, _err = run(capsys, config, "audit", "--sku", "TEE", "--limit", "2", "--json")
    assert code == 0
    data = json.loads(out)
    assert set(data) == {"entries", "next"}
    assert [set(e) for e in data["entries"]] == [
        {"id", "at", "actor", "action", "subject", "detail"}
    ] * 2
    assert [(e["id"], e["action"], e["actor"]) for e in data["entries"]] == [
        (8, "campaign.reminder", "campaigns"), (5, "backorder.release", "api"),
    ]  # fmt: skip
    assert data["entries"][0]["at"] == h(5).isoformat()
    assert data["entries"][0]["detail"] == {"entry": 1, "sku": "TEE"}
    assert data["next"] == 5
    code, out, _err = run(capsys, config, "audit", "--sku", "TEE", "--limit", "2",
                          "--before-id", "5", "--json")  # fmt: skip
    assert json.loads(out) == {"entries": json.loads(out)["entries"], "next": None}
    assert [e["id"] for e in json.loads(out)["entries"]] == [3, 1]

    since = "2026-04-01T09:30:00+00:00"
    code, out, err = run(capsys, config, "audit", "--action", "campaign.*", "--user", "worker",
                         "--since", since, "--csv", "--limit", "1")  # fmt: skip
    assert code == 0
    assert list(csv.reader(io.StringIO(out))) == [
        ["id", "at", "actor", "action", "subject", "detail"],
        ["4", h(2).isoformat(), "worker", "campaign.signed_up", "drop-1",
         '{"entry":2,"sku":"CAP"}'],
    ]  # fmt: skip
    assert err == "next page: --before-id 4\n"  # stdout stays one CSV document

    code, out, _err = run(capsys, config, "audit", "--since", "2026-04-01T12:00:00",
                          "--limit", "1")  # fmt: skip
    assert code == 0
    assert "order.recorded" in out and "shop/1" in out and '{"backordered":{"1":2}}' in out
    assert "next page: --before-id 9" in out
    code, out, _err = run(capsys, config, "audit", "--action", "nothing.*")
    assert (code, out) == (0, "No audit entries.\n")

    for args, message in [
        (("--since", "yesterday"), "'yesterday': expected an ISO time"),
        (("--until", "2026-13-01"), "'2026-13-01': expected an ISO time"),
        (("--since", "2026-04-02", "--until", "2026-04-01"), "--since must be before --until"),
        (("--before-id", "999"), "--before-id 999: no audit entry has this id"),
    ]:
        code, _out, err = run(capsys, config, "audit", *args)
        assert code == 2 and err.startswith(f"error: {message}"), (args, err)
    code, out, _err = run(capsys, config, "audit", "--before-id", "999", "--json")
    assert (code, json.loads(out)["ok"]) == (2, False)
    code, out, _err = run(capsys, config, "audit", "--json", "--csv")
    assert code == 2 and json.loads(out) == {"ok": False, "error": "--csv and --json: choose one"}
    code, _out, err = run(capsys, config, "audit", "--limit", "0")
    assert code == 2 and "--limit" in err
