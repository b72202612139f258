"""A migrated ledger on SQLite or a fresh PostgreSQL database, opened with a config: the
fixture body of the ledger-level campaign tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from rules import parse_config
from stock import counts
from stock.db import upgrade
from sync.context import AppContext


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
