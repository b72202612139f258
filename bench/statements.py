"""Count the SQL statements an Engine runs, and the time spent inside the database.

    with count_statements(runtime.ctx.engine) as stats:
        ...
    stats.statements, stats.rows, stats.db_seconds, stats.top(5)

A statement is one `cursor.execute` or `cursor.executemany` (SQLAlchemy's
`before_cursor_execute` / `after_cursor_execute`): an executemany counts as ONE statement, and
`rows` counts its parameter sets (1 for a plain execute). SQLite's `BEGIN IMMEDIATE` is a
statement (the ledger issues it); PostgreSQL's implicit BEGIN and every COMMIT are driver calls,
not statements: `commits` counts them (SQLAlchemy's `commit` event), their time is not in
`db_seconds`. `db_seconds` is the time between the two events: the driver and the database,
not SQLAlchemy's compilation or the ORM. Thread-safe; one listener pair per block.

Pass `Engine` (the class) to count every engine made inside the block, e.g. a CLI command
that opens its own.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, event

_SPACE = re.compile(r"\s+")
SHAPE_CHARS = 90


def shape(statement: str) -> str:
    """A statement's first SHAPE_CHARS characters, whitespace collapsed: its 'kind'."""
    return _SPACE.sub(" ", statement).strip()[:SHAPE_CHARS]


@dataclass
class StatementStats:
    statements: int = 0
    rows: int = 0  # parameter sets: an executemany of N rows adds 1 statement and N rows
    commits: int = 0
    db_seconds: float = 0.0
    shapes: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, statement: str, rows: int, seconds: float) -> None:
        with self._lock:
            self.statements += 1
            self.rows += rows
            self.db_seconds += seconds
            self.shapes[shape(statement)] += 1

    def note_commit(self) -> None:
        with self._lock:
            self.commits += 1

    def per(self, units: int) -> float | None:
        """Statements per unit of work (order, backorder, ...), or None for no units."""
        return float(f"{self.statements / units:.3g}") if units else None

    def db_share(self, wall_seconds: float, threads: int = 1) -> float | None:
        """Percent of the threads' wall time spent inside the database."""
        busy = wall_seconds * threads
        return round(100 * self.db_seconds / busy, 1) if busy > 0 else None

    def top(self, count: int = 8) -> list[tuple[str, int]]:
        with self._lock:
            return self.shapes.most_common(count)

    def as_dict(self, units: int | None = None, wall_seconds: float | None = None,
                threads: int = 1, top: int = 8) -> dict[str, Any]:  # fmt: skip
        found: dict[str, Any] = {
            "statements": self.statements,
            "rows": self.rows,
            "commits": self.commits,
            "db_s": round(self.db_seconds, 3),
            "top": [{"statement": s, "count": n} for s, n in self.top(top)],
        }
        if units is not None:
            found["statements_per_unit"] = self.per(units)
        if wall_seconds is not None:
            found["db_pct"] = self.db_share(wall_seconds, threads)
        return found


@contextmanager
def count_statements(
    target: Engine | type[Engine], into: StatementStats | None = None
) -> Iterator[StatementStats]:
    """Count what `target` (an Engine, or the Engine class for all engines) executes inside the
    block, adding to `into` if given (several blocks, one tally); the listeners are removed
    when it ends."""
    stats = into if into is not None else StatementStats()
    started: dict[int, list[float]] = {}  # per thread: a stack, re-entrant executes nest
    guard = threading.Lock()

    def before(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
               executemany: bool) -> None:  # fmt: skip
        key = threading.get_ident()
        with guard:
            started.setdefault(key, []).append(time.perf_counter())

    def after(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
              executemany: bool) -> None:  # fmt: skip
        now = time.perf_counter()
        key = threading.get_ident()
        with guard:
            stack = started.get(key)
            began = stack.pop() if stack else now
        rows = len(parameters) if executemany and parameters is not None else 1
        stats.record(statement, rows, now - began)

    def failed(context: Any) -> None:
        key = threading.get_ident()
        with guard:
            stack = started.get(key)
            if stack:
                stack.pop()  # no after_cursor_execute follows a failed statement

    def commit(conn: Any) -> None:
        stats.note_commit()

    event.listen(target, "before_cursor_execute", before)
    event.listen(target, "after_cursor_execute", after)
    event.listen(target, "handle_error", failed)
    event.listen(target, "commit", commit)
    try:
        yield stats
    finally:
        event.remove(target, "before_cursor_execute", before)
        event.remove(target, "after_cursor_execute", after)
        event.remove(target, "handle_error", failed)
        event.remove(target, "commit", commit)
