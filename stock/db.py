"""Engines, explicit transactions, row locks and migrations.

SQLite: WAL, busy_timeout and `BEGIN IMMEDIATE` for every transaction, because `FOR UPDATE`
compiles to nothing there and two deferred readers that both upgrade to writers deadlock.
PostgreSQL: `SELECT ... FOR UPDATE` on stock rows in sku-id order (one helper, one order).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, select
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool, QueuePool

from rules import redact_url
from stock.models import StockLevel

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000


class DatabaseError(Exception):
    """The database cannot be used as configured; carries the URL without its password."""

    def __init__(self, url: str, message: str) -> None:
        super().__init__(f"{url}: {message}")
        self.url = url
        self.message = message


def safe_url(url: str) -> str:
    """The URL to show (messages, `check`, logs): without its password, whatever the text is.

    Not SQLAlchemy's ``render_as_string(hide_password=True)``: it raises on a URL it cannot read
    (a bad port) and shows a password that ran into the host (``u:p@ss@host``)."""
    return redact_url(url)


def _parse(url: str) -> URL:
    """SQLAlchemy's reading of ``url``, or DatabaseError (which never holds the password)."""
    try:
        return make_url(url)
    except ArgumentError as exc:
        raise DatabaseError(safe_url(url), "not a database URL") from exc
    except ValueError as exc:  # the parser's int() of the port
        raise DatabaseError(safe_url(url), "the port must be a number") from exc


def make_engine(url: str, *, echo: bool = False) -> Engine:
    parsed = _parse(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            parent = Path(database).parent
            if not parent.exists():
                raise DatabaseError(safe_url(url), f"folder {parent} does not exist")
        in_memory = database in ("", ":memory:")
        engine = create_engine(
            url,
            echo=echo,
            # Keep connections open: closing the last one checkpoints and drops the WAL, which
            # costs ~10 ms per transaction. Each checkout still runs one BEGIN IMMEDIATE at a time.
            poolclass=NullPool if in_memory else QueuePool,
            **({} if in_memory else {"pool_size": 8, "max_overflow": 8, "pool_timeout": 60}),
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        )
        _configure_sqlite(engine)
        return engine
    if parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(parsed, echo=echo, pool_pre_ping=True)
    raise DatabaseError(safe_url(url), "only sqlite:/// and postgresql+psycopg:// are supported")


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # take transaction control from pysqlite so we can issue BEGIN IMMEDIATE ourselves
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False, autoflush=True)


@contextmanager
def unit_of_work(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One transaction: commit only when the block says so by finishing; roll back otherwise."""
    session = factory()
    try:
        with session.begin():
            yield session
    finally:
        session.close()


def upsert_insert(session: Session) -> Any:
    """The database's INSERT that takes ON CONFLICT. PostgreSQL's dialect module (~60 ms to
    import) loads only when the database is PostgreSQL."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


def lock_stock_rows(session: Session, sku_ids: Iterable[int]) -> dict[int, StockLevel]:
    """Lock the stock rows of these SKUs in sku-id order (the one lock order everywhere)."""
    ordered = sorted(set(sku_ids))
    if not ordered:
        return {}
    rows = session.scalars(
        select(StockLevel)
        .where(StockLevel.sku_id.in_(ordered))
        .order_by(StockLevel.sku_id)
        .with_for_update()
        # objects already in the session must show the values read under the lock
        .execution_options(populate_existing=True)
    ).all()
    return {row.sku_id: row for row in rows}


def alembic_config(url: str) -> Any:
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Apply migrations up to `revision`."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
