"""Statement counting: executes and executemany, rows, shapes, commits; listeners removed."""

from __future__ import annotations

from sqlalchemy import create_engine, text

from bench.statements import count_statements, shape


def test_counts_statements_rows_and_commits_then_stops_listening() -> None:
    engine = create_engine("sqlite://")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER)"))
    with count_statements(engine) as stats, engine.begin() as conn:
        conn.execute(text("INSERT INTO t (v) VALUES (:v)"), [{"v": i} for i in range(5)])
        conn.execute(text("SELECT   count(*)\n FROM t")).scalar_one()
    assert (stats.statements, stats.rows, stats.commits) == (2, 6, 1)
    assert stats.top(1)[0] == ("INSERT INTO t (v) VALUES (?)", 1)
    assert "SELECT count(*) FROM t" in dict(stats.top())
    assert stats.per(4) == 0.5 and stats.per(0) is None
    assert stats.db_seconds > 0 and stats.db_share(stats.db_seconds) == 100.0
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    assert stats.statements == 2  # nothing counted after the block


def test_a_failed_statement_is_counted_once_and_does_not_skew_timing() -> None:
    engine = create_engine("sqlite://")
    with count_statements(engine) as stats, engine.connect() as conn:
        try:
            conn.execute(text("SELECT * FROM missing"))
        except Exception:
            conn.rollback()
        conn.execute(text("SELECT 1"))
    assert stats.statements == 1
    assert stats.as_dict(units=1, wall_seconds=1.0)["statements_per_unit"] == 1.0


def test_shape_collapses_whitespace_and_truncates() -> None:
    assert shape("SELECT  a,\n  b FROM t") == "SELECT a, b FROM t"
    assert len(shape("x" * 500)) == 90
