"""The actors' one failure policy and per-job log context, run by a real dramatiq Worker.

The broker is the daemon's own (`get_broker("memory")`: a StubBroker with the production
middleware); the runtime is real, on a migrated SQLite file, with one fake connector that fails
as each test scripts it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import dramatiq
import pytest
import structlog
from dramatiq import Broker, Message, Middleware, Worker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import Retries
from sqlalchemy.exc import OperationalError

from connectors.base import ChannelError, ChannelOrder, PolledOrder
from rules import parse_config
from stock import models as m
from stock.tx import LedgerInputError
from sync import actor_names as job
from sync import enqueue
from sync.actor_names import QUEUE
from sync.actors import Actors, declare_actors
from sync.broker import MAX_RETRIES, get_broker
from sync.failures import is_transient, never, transient_only
from sync.jobs import inbox
from sync.middleware import JobContext
from sync.runtime import Runtime

# message options: retry within milliseconds
FAST: dict[str, Any] = {"min_backoff": 1, "max_backoff": 20}
JOIN_MS = 10_000


def transient_error() -> ChannelError:
    return ChannelError("shop", "orders", "503 Service Unavailable", status=503, retryable=True)


@dataclass
class FakeChannel:
    """A connector that fails as scripted, noting each call's log context.

    Each call raises the next of `failures`; once they are used up, `pull_orders` finds no
    new orders (`parse_order` is only ever scripted to fail).
    """

    failures: list[Exception]
    name: str = "shop"
    calls: list[dict[str, Any]] = field(default_factory=list)

    def _next(self) -> None:
        self.calls.append(structlog.contextvars.get_contextvars())
        if len(self.calls) <= len(self.failures):
            raise self.failures[len(self.calls) - 1]

    def parse_order(self, topic: str, body: bytes) -> ChannelOrder:
        self._next()
        raise AssertionError("parse_order ran out of scripted failures")

    def pull_orders(self, updated_after: datetime) -> Iterator[PolledOrder]:
        self._next()
        return iter(())

    def close(self) -> None:
        pass


class ContextProbe(Middleware):
    """Placed before JobContext: sees the context just before it is bound and after it is
    cleared (after-hooks run in reverse order), in the worker thread itself."""

    def __init__(self) -> None:
        self.before: list[dict[str, Any]] = []
        self.after: list[dict[str, Any]] = []

    def before_process_message(self, broker: Broker, message: Any) -> None:
        self.before.append(structlog.contextvars.get_contextvars())

    def after_process_message(self, broker: Broker, message: Any, **_: Any) -> None:
        self.after.append(structlog.contextvars.get_contextvars())


@pytest.fixture
def runtime(tmp_path: Path, fresh_sqlite: Callable[[Path], str]) -> Iterator[Runtime]:
    config = parse_config(
        f"database: {fresh_sqlite(tmp_path)}\nchannels:\n  shop: {{kind: manual}}\n",
        str(tmp_path / "stocksync.yaml"),
        {},
    )
    runtime = Runtime.build(config)
    yield runtime
    runtime.close()


@pytest.fixture
def broker() -> Iterator[StubBroker]:
    stub = get_broker("memory")
    assert isinstance(stub, StubBroker)
    yield stub
    stub.close()


@pytest.fixture
def run(broker: StubBroker) -> Iterator[Callable[[], None]]:
    """Start one worker thread (after the test declared its actors); returns a `drain()`."""
    workers: list[Worker] = []

    def drain() -> None:
        if not workers:
            workers.append(Worker(broker, worker_timeout=20, worker_threads=1))
            workers[0].start()
        broker.join(QUEUE, timeout=JOIN_MS, fail_fast=False)
        workers[0].join()

    yield drain
    for worker in workers:
        worker.stop()


@pytest.fixture
def logs() -> Iterator[list[MutableMapping[str, Any]]]:
    """Every structlog event, from any thread, with the context bound where it was logged."""
    capture = structlog.testing.LogCapture()
    saved = structlog.get_config()
    structlog.configure(processors=[structlog.contextvars.merge_contextvars, capture])
    yield capture.entries
    structlog.configure(**saved)


def connect(runtime: Runtime, fake: FakeChannel) -> None:
    runtime.channels["shop"] = fake  # type: ignore[assignment]  # a partial connector


def inbox_event(runtime: Runtime) -> int:
    event_id = inbox.store_event(runtime, "shop", "evt-1", "orders/updated", b"{}")
    assert event_id is not None
    return event_id


def event_row(runtime: Runtime, event_id: int) -> m.InboxEvent:
    with runtime.ctx.sessions() as session:
        row = session.get(m.InboxEvent, event_id)
        assert row is not None
        session.expunge(row)
        return row


# ------------------------------------------------------------------------------ through the actors
def test_a_transient_failure_is_retried_until_the_job_succeeds(
    runtime: Runtime, broker: StubBroker, run: Callable[[], None]
) -> None:
    fake = FakeChannel([transient_error(), transient_error()])
    connect(runtime, fake)
    actors = declare_actors(broker, runtime)

    actors.poll.send_with_options(args=("shop",), **FAST)
    run()

    assert len(fake.calls) == 3  # two failed attempts, retried by dramatiq, then a clean poll
    with runtime.ctx.sessions() as session:
        state = session.get(m.ChannelState, "shop")
        assert state is not None
        assert state.last_poll_at is not None
    assert broker.dead_letters == []


def test_a_permanent_failure_is_recorded_on_the_inbox_row_and_not_retried(
    runtime: Runtime,
    broker: StubBroker,
    run: Callable[[], None],
    logs: list[MutableMapping[str, Any]],
) -> None:
    fake = FakeChannel([KeyError("line_items")])  # a connector bug: retrying cannot fix it
    connect(runtime, fake)
    event_id = inbox_event(runtime)
    actors = declare_actors(broker, runtime)

    actors.process_event.send_with_options(args=(event_id,), **FAST)
    run()

    assert len(fake.calls) == 1
    row = event_row(runtime, event_id)
    assert row.processed_at is None
    assert row.error == repr(KeyError("line_items"))
    assert row.attempts == 1  # in the exception queue: `stocksync inbox list --failed`
    assert [d.actor_name for d in broker.dead_letters] == [job.PROCESS_EVENT]
    failed = [e for e in logs if e["event"] == "job_failed"]
    assert len(failed) == 1
    assert failed[0]["log_level"] == "error"
    assert failed[0]["job"] == job.PROCESS_EVENT
    assert failed[0]["event_id"] == event_id
    assert failed[0]["error"] == repr(KeyError("line_items"))


def test_log_context_is_bound_during_the_job_and_cleared_after(
    runtime: Runtime, broker: StubBroker, run: Callable[[], None]
) -> None:
    probe = ContextProbe()
    broker.add_middleware(probe, before=JobContext)
    fake = FakeChannel([transient_error(), ValueError("bug")])
    connect(runtime, fake)
    event_id = inbox_event(runtime)
    actors = declare_actors(broker, runtime)

    message = actors.process_event.send_with_options(args=(event_id,), **FAST)
    run()

    expected = {"job": job.PROCESS_EVENT, "message_id": message.message_id, "event_id": event_id}
    assert fake.calls == [expected, expected]  # bound for the first attempt and for the retry
    assert probe.before == [{}, {}]
    assert probe.after == [{}, {}]
    assert event_row(runtime, event_id).error == repr(ValueError("bug"))


# ------------------------------------------------------------------------------ the middleware
@dataclass
class Recorded:
    transient: list[tuple[int, str]] = field(default_factory=list)
    permanent: list[tuple[int, str]] = field(default_factory=list)

    def on_transient(self, item: int, *, error: str) -> None:
        self.transient.append((item, error))

    def on_permanent(self, item: int, *, error: str) -> None:
        self.permanent.append((item, error))


def test_each_transient_attempt_is_recorded_and_a_permanent_failure_once(
    broker: StubBroker, run: Callable[[], None]
) -> None:
    """write_back's shape: every failed attempt counted, the permanent one marks it failed."""
    recorded = Recorded()
    calls: list[int] = []

    def flaky(item: int) -> None:
        calls.append(item)
        if len(calls) < 3:
            raise OperationalError("SELECT 1", {}, Exception("server closed the connection"))
        raise LedgerInputError("A", "unknown SKU")

    actor = dramatiq.Actor(
        flaky, broker=broker, actor_name="flaky", queue_name=QUEUE, priority=0,
        options={
            "on_transient_failure": recorded.on_transient,
            "on_permanent_failure": recorded.on_permanent,
        },
    )  # fmt: skip
    actor.send_with_options(args=(7,), **FAST)
    run()

    assert calls == [7, 7, 7]
    assert [item for item, _ in recorded.transient] == [7, 7]
    assert "OperationalError" in recorded.transient[0][1]
    assert recorded.permanent == [(7, repr(LedgerInputError("A", "unknown SKU")))]
    assert [d.actor_name for d in broker.dead_letters] == ["flaky"]


def test_a_job_with_retry_when_never_is_not_retried_even_when_transient(
    broker: StubBroker, run: Callable[[], None]
) -> None:
    calls: list[int] = []

    def once() -> None:
        calls.append(1)
        raise transient_error()

    actor = dramatiq.Actor(
        once, broker=broker, actor_name="once", queue_name=QUEUE, priority=0,
        options={"retry_when": never},
    )  # fmt: skip
    actor.send_with_options(**FAST)
    run()

    assert calls == [1]
    assert [d.actor_name for d in broker.dead_letters] == ["once"]


# ------------------------------------------------------------------------------ the declarations
@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (transient_error(), True),
        (ChannelError("shop", "push", "422 invalid", status=422), False),
        (OperationalError("SELECT 1", {}, Exception("gone")), True),
        (ConnectionError("refused"), True),
        (LedgerInputError("A", "unknown SKU"), False),
        (ValueError("a bug"), False),
    ],
)
def test_one_classifier_decides_retries(exc: BaseException, transient: bool) -> None:
    assert is_transient(exc) is transient
    retry_when = transient_only(MAX_RETRIES)
    assert retry_when(0, exc) is transient
    assert retry_when(MAX_RETRIES, exc) is False


def test_declared_actors_share_the_queue_names_and_policy(
    runtime: Runtime, broker: StubBroker
) -> None:
    actors: Actors = declare_actors(broker, runtime)
    declared = {
        actors.process_event: job.PROCESS_EVENT,
        actors.push: job.PUSH,
        actors.write_back: job.WRITE_BACK,
        actors.poll: job.POLL,
        actors.sweep: job.SWEEP,
        actors.reconcile: job.RECONCILE,
        actors.release: job.RELEASE,
    }
    for actor, name in declared.items():
        assert (actor.actor_name, actor.queue_name) == (name, QUEUE)
        assert broker.get_actor(name) is actor
    assert actors.sweep.options["retry_when"] is never  # the next scheduled sweep retries
    retries = next(mw for mw in broker.middleware if isinstance(mw, Retries))
    assert retries.retry_when is not None
    assert set(actors.process_event.options) == {"on_permanent_failure"}
    assert set(actors.write_back.options) == {"on_transient_failure", "on_permanent_failure"}


def test_a_job_enqueued_by_name_reaches_the_declared_actor(
    runtime: Runtime, broker: StubBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`stocksync` commands enqueue by name (sync/enqueue.py): same queue, same name."""
    declare_actors(broker, runtime)
    monkeypatch.setattr(enqueue, "get_broker", lambda _url: broker)
    enqueue.enqueue("redis://127.0.0.1:6379/0", job.RELEASE, ["A", "B"])

    message = Message.decode(broker.queues[QUEUE].get_nowait())
    assert (message.queue_name, message.actor_name, message.args) == (
        QUEUE,
        job.RELEASE,
        (["A", "B"],),
    )
    assert broker.get_actor(message.actor_name).queue_name == QUEUE
