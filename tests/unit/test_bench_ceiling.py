"""The ceiling benchmark: pgbench's output, its connection options, the SQLite loop."""

from __future__ import annotations

import pytest

from bench.ceiling import Ceilings, libpq_args, parse_tps, pgbench_tps, sqlite_wal_tps
from bench.common import PG_ADMIN_URL

PGBENCH_OUTPUT = """\
transaction type: /tmp/update.sql
number of clients: 1
latency average = 0.270 ms
initial connection time = 2.512 ms
tps = 3701.234567 (without initial connection time)
"""


def test_parse_tps_reads_pgbench_and_refuses_other_output() -> None:
    assert parse_tps(PGBENCH_OUTPUT) == pytest.approx(3701.234567)
    with pytest.raises(ValueError, match="tps"):
        parse_tps("connection refused")


def test_libpq_args_from_a_sqlalchemy_url() -> None:
    args, name = libpq_args("postgresql+psycopg://postgres@127.0.0.1:5432/stocksync_x")
    assert args == ["-h", "127.0.0.1", "-p", "5432", "-U", "postgres"]
    assert name == "stocksync_x"


def test_sqlite_loop_counts_committed_transactions() -> None:
    assert sqlite_wal_tps(0.2) > 100
    with pytest.raises(ValueError, match="positive"):
        sqlite_wal_tps(0)


def test_the_ratio_base_is_one_client() -> None:
    found = Ceilings(1.0, sqlite=100.0, postgresql={1: 50.0, 4: 150.0})
    assert (found.of("sqlite"), found.of("postgresql")) == (100.0, 50.0)
    assert found.as_dict()["pgbench_update_tps"] == {"1": 50.0, "4": 150.0}
    with pytest.raises(ValueError, match="kind"):
        found.of("mysql")


@pytest.mark.postgres
@pytest.mark.slow
def test_pgbench_runs_on_a_fresh_database() -> None:
    assert pgbench_tps(PG_ADMIN_URL, seconds=1, clients=1) > 0
