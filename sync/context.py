"""Composition root for commands: config -> database -> ledger transactions, made on demand,
never at import."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from rules import Config, load_config
from stock.db import (
    MIGRATIONS_DIR,
    DatabaseError,
    head_revision,
    make_engine,
    safe_url,
    session_factory,
    unit_of_work,
)
from stock.tx import LedgerTx
from stock.uow import finish

DEFAULT_CONFIG = "stocksync.yaml"


def config_path(explicit: str | None) -> Path:
    return Path(explicit or os.environ.get("STOCKSYNC_CONFIG") or DEFAULT_CONFIG)


_REVISION = re.compile(r"^revision\s*(?::[^=]*)?=\s*['\"]([^'\"]+)['\"]", re.MULTILINE)
_DOWN_REVISION = re.compile(r"^down_revision\s*(?::[^=]*)?=(.*)$", re.MULTILINE)


@cache
def code_revision() -> str | None:
    """The migration head the code needs, read from the version files' `revision` and
    `down_revision` lines (the one revision no other names as its parent) without loading
    Alembic, which costs a read command ~0.15 s; Alembic decides when the files are not that
    simple (a branch, a merge, a line we do not understand)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        source = path.read_text(encoding="utf-8")
        revision, down = _REVISION.search(source), _DOWN_REVISION.search(source)
        if revision is None or down is None:
            return head_revision()
        revisions.add(revision.group(1))
        parents.update(re.findall(r"['\"]([^'\"]+)['\"]", down.group(1)))
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else head_revision()


def database_revision(engine: Engine) -> str | None:
    """The revision recorded in the database (`alembic_version`); None before the first
    migration. Raises OperationalError when the database cannot be reached."""
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        found = connection.execute(text("SELECT version_num FROM alembic_version")).scalars()
        return ",".join(sorted(str(revision) for revision in found)) or None


class NotMigrated(Exception):
    def __init__(self, url: str, current: str | None, head: str | None) -> None:
        super().__init__(
            f"database {url} is at revision {current or 'none'}, the code needs {head}: "
            "run `stocksync db upgrade`"
        )
        self.url = url
        self.current = current
        self.head = head


@dataclass
class AppContext:
    config: Config
    engine: Engine
    sessions: sessionmaker[Session]

    @classmethod
    def open(cls, config: Config, *, require_migrated: bool = True) -> AppContext:
        engine = make_engine(config.database)
        if require_migrated:
            try:
                current = database_revision(engine)
            except OperationalError as exc:
                engine.dispose()
                raise DatabaseError(safe_url(config.database), str(exc.orig)) from exc
            head = code_revision()
            if current != head:
                engine.dispose()
                raise NotMigrated(safe_url(config.database), current, head)
        return cls(config, engine, session_factory(engine))

    @classmethod
    def from_file(cls, path: Path, *, require_migrated: bool = True) -> AppContext:
        return cls.open(load_config(path), require_migrated=require_migrated)

    @property
    def channel_names(self) -> list[str]:
        return list(self.config.channels)

    @property
    def listed_channel_names(self) -> list[str]:
        """Channels with listings to push: every kind but manual."""
        return [name for name, ch in self.config.channels.items() if ch.kind != "manual"]

    @contextmanager
    def ledger(self, actor: str = "cli", now: datetime | None = None) -> Iterator[LedgerTx]:
        """One ledger transaction. Before it commits, what it made due is settled (releases
        after a receipt or a count, demotions after a count went down), in the same
        transaction; an exception rolls everything back."""
        from backorders.promising import replan  # the order workflow: not for read commands
        from backorders.settle import settle

        with unit_of_work(self.sessions) as session:
            tx = LedgerTx(
                session,
                self.config,
                self.channel_names,
                now=now or datetime.now(UTC),
                actor=actor,
                listed_channels=self.listed_channel_names,
            )
            yield tx
            settle(tx)
            replan(tx)
            finish(tx)

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading (no ledger rules, nothing settled)."""
        with unit_of_work(self.sessions) as session:
            yield session

    def close(self) -> None:
        self.engine.dispose()
