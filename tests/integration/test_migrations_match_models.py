"""The migrations build exactly the schema the models describe (tables, columns, indexes,
constraints), on SQLite and PostgreSQL: a model change without its migration fails here."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from stock import models as m


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_no_difference_between_migrations_and_models(
    kind: str, tmp_path: Path, fresh_sqlite: Callable[[Path], str]
) -> None:
    if kind == "sqlite":
        url = fresh_sqlite(tmp_path)
        check(url)
        return
    from stock.db import upgrade
    from sync.stack import fresh_postgres
    from tests.conftest import PG_ADMIN_URL

    with fresh_postgres(PG_ADMIN_URL, prefix="stocksync_t_") as url:
        upgrade(url)
        check(url)


def check(url: str) -> None:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "compare_server_default": False}
            )
            diff = [d for d in compare_metadata(context, m.Base.metadata) if not _ignored(d)]
    finally:
        engine.dispose()
    assert diff == []


def _ignored(item: object) -> bool:
    """alembic's own bookkeeping table is not a model."""
    return (
        isinstance(item, tuple) and item[0] == "remove_table" and item[1].name == "alembic_version"
    )
