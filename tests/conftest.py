"""Shared fixtures: real SQLite files and real PostgreSQL databases (never skipped when down)."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sync.stack import fresh_postgres
from tests.support.ledger import LEDGER_KINDS

PG_ADMIN_URL = os.environ.get("STOCKSYNC_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("STOCKSYNC_TEST_REDIS", "redis://127.0.0.1:6379/0")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test; dropped afterwards."""
    with fresh_postgres(PG_ADMIN_URL, prefix="stocksync_t_") as url:
        yield url


@pytest.fixture(scope="session")
def migrated_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file; tests copy it instead of migrating again."""
    from stock.db import upgrade

    path = tmp_path_factory.mktemp("template") / "ledger.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def fresh_sqlite(migrated_sqlite_template: Path) -> Callable[[Path], str]:
    def make(folder: Path) -> str:
        target = folder / f"ledger-{uuid.uuid4().hex[:8]}.db"
        shutil.copyfile(migrated_sqlite_template, target)
        return f"sqlite:///{target}"

    return make


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[str], Path]:
    def write(text: str, name: str = "stocksync.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture(params=LEDGER_KINDS)
def ledger_url(
    request: pytest.FixtureRequest, tmp_path: Path, fresh_sqlite: Callable[[Path], str]
) -> Iterator[str]:
    """A migrated, empty ledger: a SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield fresh_sqlite(tmp_path)
        return
    from stock.db import upgrade

    with fresh_postgres(PG_ADMIN_URL, prefix="stocksync_t_") as url:
        upgrade(url)
        yield url
