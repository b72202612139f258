"""Inbox events under steady load, on real PostgreSQL: batches that drain later events, jobs
that find their event held or applied by another job, polls that do not queue known orders.

The channel is a small scripted connector (orders as JSON), because what is tested here is the
inbox and the jobs around it, not a platform's payload shape.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import func, select

from connectors.base import ChannelOrder, OrderLine, OrderStatus, PolledOrder
from rules import parse_config
from stock import models as m
from stock.counts import set_stock
from sync.actor_names import QUEUE
from sync.actors import PushGate, declare_actors
from sync.broker import get_broker
from sync.jobs import inbox
from sync.jobs.followups import utc_now
from sync.jobs.poll import poll_channel
from sync.metrics import refresh_gauges
from sync.runtime import BatchMemory, BatchState, Runtime

pytestmark = [pytest.mark.postgres]

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def order_json(order_id: str, qty: int, updated: datetime, status: str = "open") -> bytes:
    return json.dumps(
        {"id": order_id, "sku": "TEE", "qty": qty, "updated": updated.isoformat(), "status": status}
    ).encode()


@dataclass
class ScriptedShop:
    """Orders as `{"id", "sku", "qty", "updated", "status"}`; `polled` is what a poll finds."""

    name: str = "shop"
    polled: list[bytes] = field(default_factory=list)

    def parse_order(self, topic: str, body: bytes) -> ChannelOrder:
        data = json.loads(body)
        updated = datetime.fromisoformat(data["updated"])
        return ChannelOrder(
            self.name,
            data["id"],
            T0,
            updated,
            OrderStatus(data["status"]),
            (OrderLine("1", data["sku"], data["qty"]),),
        )

    def needs_fetch(self, topic: str, body: bytes) -> bool:
        return False

    def complete_order(self, topic: str, body: bytes) -> bytes:
        return body

    def pull_orders(self, updated_after: datetime) -> Iterator[PolledOrder]:
        for body in self.polled:
            order = self.parse_order("poll/order", body)
            key = f"{order.external_id}@{order.updated_at.isoformat()}"
            yield PolledOrder(order=order, event_key=key, body=body)

    def close(self) -> None:
        pass


@pytest.fixture
def runtime(pg_url: str, tmp_path: object) -> Iterator[Runtime]:
    from stock.db import upgrade

    upgrade(pg_url)
    config = parse_config(
        f"database: {pg_url}\nchannels:\n  shop: {{kind: manual}}\n", "stocksync.yaml", {}
    )
    runtime = Runtime.build(config)
    runtime.channels["shop"] = ScriptedShop()  # type: ignore[assignment]  # a partial connector
    with runtime.ctx.ledger(actor="test") as tx:
        set_stock(tx, "TEE", 100)
    yield runtime
    runtime.close()


def store(runtime: Runtime, key: str, body: bytes) -> int:
    event_id = inbox.store_event(runtime, "shop", key, "orders/create", body)
    assert event_id is not None
    return event_id


def reserved(runtime: Runtime) -> int:
    with runtime.ctx.sessions() as session:
        return int(session.scalar(select(func.coalesce(func.sum(m.Reservation.qty), 0))) or 0)


def libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def test_a_job_whose_event_another_transaction_holds_comes_back_later(
    runtime: Runtime, pg_url: str
) -> None:
    first, held, third = (store(runtime, f"evt-{i}", order_json(f"O{i}", 1, T0)) for i in range(3))
    with psycopg.connect(libpq(pg_url)) as other:  # another process's batch, mid-transaction
        other.execute("SELECT id FROM inbox_event WHERE id = %s FOR UPDATE", (held,))

        inbox.process_event(runtime, first)  # drains `third`, skips the held one
        assert reserved(runtime) == 2
        assert runtime.batches.state(third) is BatchState.APPLIED

        asked = inbox.process_event(runtime, held)
        assert asked.held_events == [held]  # not waited for: a worker thread is not parked
        assert reserved(runtime) == 2
        other.rollback()  # that batch was refused (or its worker died)

    again = inbox.process_event(runtime, held)
    assert again.held_events == []
    assert reserved(runtime) == 3
    assert inbox.process_event(runtime, third).held_events == []  # answered from memory
    assert reserved(runtime) == 3


def test_the_actor_looks_again_after_a_delay_when_its_event_is_held(
    runtime: Runtime, pg_url: str
) -> None:
    broker = get_broker("memory")
    assert isinstance(broker, StubBroker)
    actors = declare_actors(broker, runtime)
    event_id = store(runtime, "evt-1", order_json("O1", 2, T0))
    with psycopg.connect(libpq(pg_url)) as other:
        other.execute("SELECT id FROM inbox_event WHERE id = %s FOR UPDATE", (event_id,))
        actors.process_event.fn(event_id)
    delayed = [json.loads(m) for m in broker.queues[f"{QUEUE}.DQ"].queue]
    assert [(d["args"], d["kwargs"]) for d in delayed] == [([event_id], {"bounces": 1})]
    assert delayed[0]["options"]["eta"] > 0
    broker.close()


def test_a_poll_queues_only_versions_the_ledger_does_not_hold(runtime: Runtime) -> None:
    shop = runtime.channels["shop"]
    assert isinstance(shop, ScriptedShop)
    for i in range(3):
        inbox.process_event(runtime, store(runtime, f"webhook-{i}", order_json(f"O{i}", 1, T0)))
    later = T0 + timedelta(minutes=1)
    shop.polled = [
        order_json("O0", 1, T0),  # held already (came by webhook under another key)
        order_json("O1", 3, later),  # edited since
        order_json("O2", 1, T0, status="cancelled"),  # cancelled within the same second
        order_json("O3", 2, later),  # its webhook never came
    ]
    followups = poll_channel(runtime, "shop")
    with runtime.ctx.sessions() as session:
        keys = session.scalars(
            select(m.InboxEvent.event_key).where(m.InboxEvent.id.in_(followups.events))
        ).all()
    assert sorted(keys) == sorted(
        [f"O1@{later.isoformat()}", f"O2@{T0.isoformat()}", f"O3@{later.isoformat()}"]
    )
    for event_id in followups.events:
        inbox.process_event(runtime, event_id)
    assert reserved(runtime) == 1 + 3 + 2
    assert poll_channel(runtime, "shop").events == []  # everything polled is held now


def test_batch_memory_forgets_rolled_back_batches_and_old_events() -> None:
    memory = BatchMemory(remember=3)
    memory.begin([1, 2])
    assert memory.state(1) is BatchState.IN_FLIGHT
    memory.end([1, 2], committed=False)
    assert memory.state(1) is None  # its job looks in the database
    memory.begin([3, 4, 5, 6])
    memory.end([3, 4, 5, 6], committed=True)
    assert [memory.state(i) for i in (3, 4, 5, 6)] == [None, *[BatchState.APPLIED] * 3]


def test_push_gate_lets_one_thread_push_and_keeps_every_request() -> None:
    gate = PushGate()
    assert gate.enter()
    assert not gate.enter()  # a request while pushing
    assert gate.again()  # ... makes the pusher go round once more
    assert not gate.again()  # and then it is free
    assert gate.enter()
    gate.leave()  # an error: a retry of the job pushes again
    assert gate.enter()


def test_a_version_already_held_is_counted_as_repeated_not_applied(runtime: Runtime) -> None:
    """One change delivered twice under different keys (two webhook topics, a webhook and a
    poll): the ledger changes once, and `events_processed{outcome="applied"}` counts it once."""
    body = order_json("O1", 2, T0)
    for key in ("orders/create#1", "orders/updated#2"):
        inbox.process_event(runtime, store(runtime, key, body))
    events = runtime.metrics.events
    assert events.labels("shop", "applied")._value.get() == 1
    assert events.labels("shop", "repeated")._value.get() == 1
    assert reserved(runtime) == 2
    inbox.process_event(runtime, store(runtime, "orders/updated#3", order_json("O1", 3, T0)))
    assert events.labels("shop", "applied")._value.get() == 2  # same stamp, new quantity
    assert reserved(runtime) == 3


def test_poll_lag_is_the_time_since_the_last_poll_began_not_the_newest_order_age(
    runtime: Runtime,
) -> None:
    shop = runtime.channels["shop"]
    assert isinstance(shop, ScriptedShop)
    shop.polled = [order_json("O1", 1, T0)]  # an order last changed weeks ago
    poll_channel(runtime, "shop")
    lag = runtime.metrics.poll_lag.labels("shop")
    assert lag._value.get() < 60  # polled just now: not behind, however old the order
    with runtime.ctx.sessions.begin() as session:
        state = session.get(m.ChannelState, "shop")
        assert state is not None
        state.last_poll_at = utc_now() - timedelta(hours=1)  # polls stopped an hour ago
    with runtime.ctx.sessions() as session:
        refresh_gauges(runtime.metrics, session, ["shop"])
    assert 3590 < lag._value.get() < 3700
