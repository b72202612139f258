"""A migrated ledger on SQLite or a fresh PostgreSQL database, opened with a config: the
fixture body of the ledger-level tests, the `ctx` fixture those tests share, and the head of
their configs."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from rules import parse_config
from stock import counts
from stock.db import upgrade
from sync.context import AppContext

# the databases a ledger test runs on, as fixture params: SQLite, then PostgreSQL
LEDGER_KINDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def config_head(*manual_channels: str) -> str:
    """The start of a config for `str.format`: `database: {url}` and the `manual_channels`, in
    order (a test adds its `defaults:` and the rest)."""
    lines = "".join(f"  {name}: {{{{kind: manual}}}}\n" for name in manual_channels)
    return "database: {url}\nchannels:\n" + lines


@contextmanager
def opened_ledger(
    kind: str,
    folder: Path,
    fresh_sqlite: Callable[[Path], str],
    config_text: str,
    stock: Mapping[str, int],
    counted_at: datetime,
) -> Iterator[AppContext]:
    """`kind` "sqlite" or "postgres"; `config_text` has a `{url}` for the database; `stock`
    is counted in at `counted_at`."""
    context = None
    if kind == "sqlite":
        url = fresh_sqlite(folder)
    else:
        from sync.stack import fresh_postgres
        from tests.conftest import PG_ADMIN_URL

        context = fresh_postgres(PG_ADMIN_URL, prefix="stocksync_t_")
        url = context.__enter__()
    try:
        upgrade(url)
        app = AppContext.open(parse_config(config_text.format(url=url), "stocksync.yaml", env={}))
        try:
            with app.ledger(actor="test", now=counted_at) as tx:
                for sku, units in stock.items():
                    counts.set_stock(tx, sku, units)
            yield app
        finally:
            app.close()
    finally:
        if context is not None:
            context.__exit__(None, None, None)


def ledger_fixture(config_text: str, stock: Mapping[str, int], counted_at: datetime) -> Any:
    """A fixture of `opened_ledger` on each of LEDGER_KINDS: assign it to the fixture's name
    (`ctx = ledger_fixture(CONFIG, {"TEE": 0}, T0)`)."""

    @pytest.fixture(params=LEDGER_KINDS)
    def fixture(
        request: pytest.FixtureRequest, tmp_path: Path, fresh_sqlite: Callable[[Path], str]
    ) -> Iterator[AppContext]:
        with opened_ledger(
            request.param, tmp_path, fresh_sqlite, config_text, stock, counted_at
        ) as app:
            yield app

    return fixture
