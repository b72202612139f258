"""The database's own ceiling on this machine, measured in the same run as a benchmark, so every
figure can be read as a ratio to what the database itself does here.

- PostgreSQL: `pgbench` running a custom script of one single-row transaction,
  `UPDATE t SET v = v + 1 WHERE id = 1`, for `seconds` (`-n -T`), with 1 client (and 4), on a
  fresh database made for the run; its `tps` (without initial connection time).
- SQLite: the stdlib `sqlite3` module on a file in a temp dir, `journal_mode=WAL`,
  `synchronous=NORMAL` (what the ledger uses), one connection looping
  `BEGIN IMMEDIATE; UPDATE t SET v = v + 1 WHERE id = 1; COMMIT` for `seconds`; transactions/s.

Both are one-statement write transactions: what a ledger transaction costs at the very least.
`python -m bench.ceiling [--seconds S] [--clients 1,4] [--sqlite-only]` prints them.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from bench.common import PG_ADMIN_URL, markdown_table
from sync import stack

PGBENCH_SCRIPT = "UPDATE t SET v = v + 1 WHERE id = 1;\n"
_TPS = re.compile(r"^tps = ([0-9.]+)", re.MULTILINE)


def find_pgbench() -> Path:
    """`pgbench` on PATH, else in the newest /usr/lib/postgresql/<version>/bin."""
    found = shutil.which("pgbench")
    if found is not None:
        return Path(found)
    root = Path("/usr/lib/postgresql")
    versions = sorted(
        (p for p in root.iterdir() if (p / "bin" / "pgbench").exists()) if root.is_dir() else (),
        key=lambda p: [int(x) if x.isdigit() else 0 for x in p.name.split(".")],
    )
    if not versions:
        raise FileNotFoundError("pgbench is neither on PATH nor in /usr/lib/postgresql/*/bin")
    return versions[-1] / "bin" / "pgbench"


def libpq_args(url: str) -> tuple[list[str], str]:
    """pgbench's -h/-p/-U options and the database name of a (SQLAlchemy or libpq) URL."""
    parts = urlsplit(url)
    args = []
    if parts.hostname:
        args += ["-h", parts.hostname]
    if parts.port:
        args += ["-p", str(parts.port)]
    if parts.username:
        args += ["-U", unquote(parts.username)]
    return args, unquote(parts.path.lstrip("/"))


def parse_tps(output: str) -> float:
    found = _TPS.search(output)
    if found is None:
        raise ValueError(f"no 'tps = ' line in pgbench output: {output[-500:]!r}")
    return float(found.group(1))


def pgbench_tps(admin_url: str = PG_ADMIN_URL, seconds: float = 5, clients: int = 1) -> float:
    """Single-row UPDATE transactions/s of `clients` pgbench clients on a fresh database."""
    import psycopg

    if seconds < 1 or clients < 1:
        raise ValueError(f"need seconds >= 1 and clients >= 1, got {seconds}, {clients}")
    with (
        stack.fresh_postgres(admin_url, prefix="stocksync_ceiling_") as url,
        tempfile.TemporaryDirectory(prefix="stocksync-ceiling-") as tmp,
    ):
        libpq_url = url.replace("postgresql+psycopg://", "postgresql://", 1)
        with psycopg.connect(libpq_url, autocommit=True) as conn:
            conn.execute("CREATE TABLE t (id integer PRIMARY KEY, v bigint NOT NULL)")
            conn.execute("INSERT INTO t VALUES (1, 0)")
            conn.execute("VACUUM ANALYZE t")
        script = Path(tmp) / "update.sql"
        script.write_text(PGBENCH_SCRIPT, encoding="utf-8")
        options, dbname = libpq_args(libpq_url)
        command = [
            str(find_pgbench()),
            "-n",  # no vacuum of pgbench's own tables: there are none
            "-T", str(round(seconds)),
            "-c", str(clients),
            "-j", str(clients),
            "-f", str(script),
            *options,
            dbname,
        ]  # fmt: skip
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=False,
            env={**os.environ, "PGCONNECT_TIMEOUT": "10"},
        )
        if done.returncode != 0:
            raise RuntimeError(f"pgbench failed ({done.returncode}): {done.stderr[-500:]}")
        return parse_tps(done.stdout)


def sqlite_wal_tps(seconds: float = 3, folder: Path | None = None) -> float:
    """Single-row UPDATE transactions/s of one stdlib sqlite3 connection, WAL, synchronous=NORMAL,
    each `BEGIN IMMEDIATE; UPDATE; COMMIT`, on a file in a temp dir (or `folder`)."""
    if seconds <= 0:
        raise ValueError(f"need a positive duration, got {seconds}")
    with tempfile.TemporaryDirectory(prefix="stocksync-ceiling-", dir=folder) as tmp:
        conn = sqlite3.connect(Path(tmp) / "ceiling.db", isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER NOT NULL)")
            conn.execute("INSERT INTO t VALUES (1, 0)")
            done = 0
            started = time.perf_counter()
            deadline = started + seconds
            while True:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("UPDATE t SET v = v + 1 WHERE id = 1")
                conn.execute("COMMIT")
                done += 1
                if done % 100 == 0 and time.perf_counter() >= deadline:
                    break
            elapsed = time.perf_counter() - started
            (value,) = conn.execute("SELECT v FROM t").fetchone()
        finally:
            conn.close()
    if value != done:
        raise RuntimeError(f"the loop committed {done} updates but the row counts {value}")
    return done / elapsed


@dataclass
class Ceilings:
    """Measured ceilings, tx/s: `sqlite`, and `postgresql` per number of clients."""

    seconds: float
    sqlite: float | None = None
    postgresql: dict[int, float] = field(default_factory=dict)

    def of(self, kind: str) -> float | None:
        """The 1-client ceiling of a database kind (sqlite or postgresql): the ratio's base."""
        if kind == "sqlite":
            return self.sqlite
        if kind == "postgresql":
            return self.postgresql.get(1)
        raise ValueError(f"unknown database kind {kind!r}")

    def as_dict(self) -> dict[str, Any]:
        return {
            "seconds": self.seconds,
            "sqlite_wal_update_tps": _round(self.sqlite),
            "pgbench_update_tps": {str(c): _round(t) for c, t in sorted(self.postgresql.items())},
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def measure(
    kinds: Sequence[str] = ("sqlite", "postgresql"),
    *,
    seconds: float = 5,
    clients: Sequence[int] = (1, 4),
    pg_admin: str = PG_ADMIN_URL,
) -> Ceilings:
    """Every requested ceiling, one after another (never concurrently)."""
    found = Ceilings(seconds)
    if "sqlite" in kinds:
        found.sqlite = sqlite_wal_tps(seconds)
    if "postgresql" in kinds:
        for count in clients:
            found.postgresql[count] = pgbench_tps(pg_admin, max(seconds, 1), count)
    return found


def table(ceilings: Ceilings) -> str:
    rows: list[list[Any]] = []
    if ceilings.sqlite is not None:
        rows.append(["SQLite (stdlib sqlite3, WAL, synchronous=NORMAL)", 1,
                     _round(ceilings.sqlite)])  # fmt: skip
    for count, tps in sorted(ceilings.postgresql.items()):
        rows.append(["PostgreSQL (pgbench, single-row UPDATE)", count, _round(tps)])
    return markdown_table(["database", "clients", "tx/s"], rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ceiling", description=__doc__)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--clients", default="1,4", help="pgbench client counts, e.g. 1,4")
    parser.add_argument("--postgres", default=PG_ADMIN_URL, help="admin URL for a fresh database")
    parser.add_argument("--sqlite-only", action="store_true")
    args = parser.parse_args(argv)
    ceilings = measure(
        ("sqlite",) if args.sqlite_only else ("sqlite", "postgresql"),
        seconds=args.seconds,
        clients=[int(c) for c in args.clients.split(",") if c.strip()],
        pg_admin=args.postgres,
    )
    print(table(ceilings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
