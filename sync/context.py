"""Composition root for commands: config -> database -> ledger transactions, made on demand,
never at import."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from backorders.settle import settle
from rules import Config, load_config
from stock.db import (
    DatabaseError,
    current_revision,
    head_revision,
    make_engine,
    safe_url,
    session_factory,
    unit_of_work,
)
from stock.tx import LedgerTx

DEFAULT_CONFIG = "stocksync.yaml"


def config_path(explicit: str | None) -> Path:
    return Path(explicit or os.environ.get("STOCKSYNC_CONFIG") or DEFAULT_CONFIG)


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
                current = current_revision(engine)
            except OperationalError as exc:
                engine.dispose()
                raise DatabaseError(safe_url(config.database), str(exc.orig)) from exc
            head = head_revision()
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

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading (no ledger rules, nothing settled)."""
        with unit_of_work(self.sessions) as session:
            yield session

    def close(self) -> None:
        self.engine.dispose()
