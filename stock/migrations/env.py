"""Alembic environment: the URL comes from the caller (stocksync db upgrade), never from a file."""

from __future__ import annotations

from alembic import context

from stock.db import make_engine
from stock.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL given to the migration environment")
    engine = make_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER much
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise RuntimeError(
        "offline (SQL script) migrations are not supported; run `stocksync db upgrade`"
    )
run_migrations_online()
