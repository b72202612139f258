"""A push's plan and clean interleaved with a ledger change's mark, in every order (issue #13).

The lost dirty mark: a push plans a listing at dirty version 8; a change marks it (version 9)
reading the row without a lock; the push lands and cleans it where version = 8; the change
writes version 9 without setting `dirty` again: "clean at v9" while the shop shows the old
number until reconcile. The mark is now one statement (`dirty = true, dirty_version =
dirty_version + 1`, stock/listings.py write_dirty) and the clean compares versions in its own
UPDATE, so every order of the steps leaves the listing dirty unless the push computed the
newest version.

Each actor runs its steps in its own thread and transaction; the test releases one step at a
time, in each of the 20 orders of push (plan, clean, commit) and mark (read, write, commit),
the mark's read being what a ledger change reads before it writes. A step
that waits on the other's row lock is seen as blocked, and the other actor goes on. The same
harness run with a naive read-then-write mark (the old code's shape) must find the lost mark,
so the test can fail.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import Row, select, update
from sqlalchemy.orm import Session

from rules import parse_config
from stock import counts, listings
from stock import models as m
from sync.context import AppContext
from sync.jobs.followups import utc_now

CONFIG = """\
database: {url}
channels:
  shop: {{kind: shopify, shop: s.myshopify.com, token: shpat_x, webhook_secret: whs}}
"""
SKU = "RACE-1"
pytestmark = pytest.mark.slow  # about 20 s: a blocked step is one that waits BLOCKED_AFTER_S
BLOCKED_AFTER_S = 0.3  # a step not done by then waits on the other actor's lock
PUSH_STEPS = ("plan", "clean", "push_commit")
MARK_STEPS = ("mark_read", "mark_write", "mark_commit")


def orders_of_steps() -> list[tuple[str, ...]]:
    """Every interleaving of the two actors' steps, each actor's own order kept."""
    found = []
    total = len(PUSH_STEPS) + len(MARK_STEPS)
    for push_slots in itertools.combinations(range(total), len(PUSH_STEPS)):
        push, mark = iter(PUSH_STEPS), iter(MARK_STEPS)
        found.append(tuple(next(push) if i in push_slots else next(mark) for i in range(total)))
    return found


@dataclass
class Actor:
    """Runs one step at a time when told; `done` reports each finished step (or its error)."""

    name: str
    go: queue.Queue[str] = field(default_factory=queue.Queue)
    done: queue.Queue[tuple[str, BaseException | None]] = field(default_factory=queue.Queue)

    def run(self, script: Callable[[Actor], None]) -> threading.Thread:
        def body() -> None:
            try:
                script(self)
            except BaseException as exc:  # reported to the test, never lost in the thread
                self.done.put(("error", exc))

        thread = threading.Thread(target=body, name=self.name, daemon=True)
        thread.start()
        return thread

    def wait_turn(self, step: str) -> None:
        assert self.go.get(timeout=30) == step

    def finished(self, step: str) -> None:
        self.done.put((step, None))


def read_listing(session: Session, sku_id: int) -> Row[Any]:
    return session.execute(
        select(m.Listing.id, m.Listing.dirty, m.Listing.dirty_version).where(
            m.Listing.sku_id == sku_id
        )
    ).one()


def naive_write(session: Session, row: Row[Any]) -> None:
    """The old shape: write the version after the one read; `dirty` only set when the row read
    was clean (it "already was" dirty otherwise)."""
    values: dict[str, object] = {"dirty_version": row.dirty_version + 1}
    if not row.dirty:
        values["dirty"] = True
    session.execute(update(m.Listing).where(m.Listing.id == row.id).values(**values))


def run_order(ctx: AppContext, sku_id: int, order: tuple[str, ...], marker: str) -> str | None:
    """Play one order; the problem found, or None."""
    planned: list[listings.DirtyListing] = []

    def push_script(actor: Actor) -> None:
        actor.wait_turn("plan")
        with ctx.sessions.begin() as session:
            planned.extend(listings.dirty(session, "shop", 10))
        actor.finished("plan")
        actor.wait_turn("clean")
        with ctx.sessions.begin() as session:
            outcome = listings.PushOutcome(planned[0], "pushed", 5)
            listings.record_push(session, [outcome], utc_now())
            actor.finished("clean")
            actor.wait_turn("push_commit")
        actor.finished("push_commit")

    def mark_script(actor: Actor) -> None:
        actor.wait_turn("mark_read")
        with ctx.ledger(actor="test") as tx:
            row = read_listing(tx.session, sku_id)
            actor.finished("mark_read")
            actor.wait_turn("mark_write")
            if marker == "naive":
                naive_write(tx.session, row)
            else:
                listings.mark_dirty(tx, [sku_id])
                listings.write_dirty(tx)
            actor.finished("mark_write")
            actor.wait_turn("mark_commit")
        actor.finished("mark_commit")

    push, mark = Actor("push"), Actor("mark")
    threads = [push.run(push_script), mark.run(mark_script)]
    actor_of = dict.fromkeys(PUSH_STEPS, push) | dict.fromkeys(MARK_STEPS, mark)
    blocked: set[str] = set()  # actors whose last step waits on the other's lock
    pending: dict[str, list[str]] = {"push": [], "mark": []}  # steps held behind a blocked one

    def collect(actor: Actor, timeout: float) -> bool:
        try:
            _step, error = actor.done.get(timeout=timeout)
        except queue.Empty:
            return False
        if error is not None:
            raise error
        blocked.discard(actor.name)
        return True

    def flush(actor: Actor) -> None:
        while actor.name not in blocked and pending[actor.name]:
            actor.go.put(pending[actor.name].pop(0))
            if not collect(actor, BLOCKED_AFTER_S):
                blocked.add(actor.name)

    for step in order:
        actor = actor_of[step]
        pending[actor.name].append(step)
        flush(actor)
        for other in (push, mark):  # the step may have let the other actor's wait end
            if other.name in blocked and collect(other, 0.05):
                flush(other)
    while blocked or any(pending.values()):
        for actor in (push, mark):
            if actor.name in blocked:
                assert collect(actor, 10), f"{actor.name} stuck ({' → '.join(order)})"
            flush(actor)
    for thread in threads:
        thread.join(10)

    with ctx.read() as session:
        final = session.execute(
            select(m.Listing.dirty, m.Listing.dirty_version).where(m.Listing.sku_id == sku_id)
        ).one()
    planned_version = planned[0].dirty_version
    if not final.dirty and final.dirty_version != planned_version:
        return (
            f"{' → '.join(order)}: clean at v{final.dirty_version}, but the push computed "
            f"v{planned_version}: a mark was lost"
        )
    return None


@pytest.fixture
def ctx(ledger_url: str) -> Iterator[AppContext]:
    context = AppContext.open(parse_config(CONFIG.format(url=ledger_url), "stocksync.yaml", {}))
    yield context
    context.close()


def dirty_listing(ctx: AppContext) -> int:
    """A mapped listing, dirty at some version; its SKU id."""
    with ctx.ledger(actor="test") as tx:
        counts.set_stock(tx, SKU, 10)
    with ctx.sessions.begin() as session:
        listings.record_mapping(session, "shop", {SKU: ({"variant_id": "1"}, 10)})
    with ctx.read() as session:
        sku_id = session.scalar(select(m.Sku.id).where(m.Sku.code == SKU))
    assert sku_id is not None
    return int(sku_id)


def make_dirty(ctx: AppContext, sku_id: int) -> None:
    with ctx.ledger(actor="test") as tx:
        listings.mark_dirty(tx, [sku_id])


def test_no_order_of_plan_mark_and_clean_loses_a_mark(ctx: AppContext) -> None:
    sku_id = dirty_listing(ctx)
    problems = []
    for order in orders_of_steps():
        make_dirty(ctx, sku_id)
        problem = run_order(ctx, sku_id, order, marker="atomic")
        if problem:
            problems.append(problem)
    assert len(orders_of_steps()) == 20
    assert not problems, "\n".join(problems)


@pytest.mark.postgres
@pytest.mark.parametrize("ledger_url", ["postgres"], indirect=True)
def test_the_harness_finds_the_lost_mark_of_a_read_then_write_marker(ctx: AppContext) -> None:
    """The old marker's race, found every time: the push cleans between the mark's read and
    its write."""
    sku_id = dirty_listing(ctx)
    problems = []
    for order in orders_of_steps():
        make_dirty(ctx, sku_id)
        problem = run_order(ctx, sku_id, order, marker="naive")
        if problem:
            problems.append(problem)
    lost = "plan → mark_read → clean → push_commit → mark_write → mark_commit"
    assert any(p.startswith(lost) for p in problems), problems
