"""Infrastructure restarts under traffic, with `stocksync run` and a `stocksync worker` as
processes: a private Redis killed and restarted without persistence (every queued message is
lost), and a private PostgreSQL cluster restarted (`pg_ctl restart -m fast`) while webhooks and
workers are processing. The checker runs after each."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from sync.stack import wait_until
from tests.support.processes import (
    ProcessStack,
    checkout,
    private_postgres,
    private_redis,
    process_stack,
    receive,
)

CATALOG = {"SR-1": 40, "SR-2": 40, "SR-3": 3}
PURCHASE_ORDERS = {"PO-SR": {"SR-3": 10}}


def traffic(stack: ProcessStack, rounds: range, *, midway: Callable[[], None]) -> int:
    """Checkouts alternating between the channels; `midway` runs halfway (the fault)."""
    accepted = 0
    half = rounds.start + len(rounds) // 2
    for i in rounds:
        if i == half:
            midway()
        url = stack.shopify.url if i % 2 else stack.woo.url
        lines = [("SR-1", 1), ("SR-2", 1 + i % 2)] if i % 3 else [("SR-3", 2)]
        reply = checkout(url, lines, f"c{i}@example.com")
        assert reply.status_code in (201, 409), reply.text  # 409: the shop's own stock refused
        accepted += reply.status_code == 201
    return accepted


def finish(stack: ProcessStack, what: str) -> None:
    try:
        stack.checker.wait_consistent(90, what=what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{stack.logs()}") from None
    codes = stack.stop_all()
    assert all(code == 0 for code in codes.values()), f"{codes}\n{stack.logs()}"


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.slow
def test_redis_restart_loses_queued_jobs_but_no_order(tmp_path: Path, pg_url: str) -> None:
    with (
        private_redis(tmp_path) as redis_server,
        process_stack(tmp_path, database=pg_url, broker=redis_server.url, catalog=CATALOG,
                      purchase_orders=PURCHASE_ORDERS) as stack,
    ):  # fmt: skip
        stack.start_run()
        worker = stack.start_worker()
        stack.checker.wait_consistent(60, what="opening offers")

        def restart_redis() -> None:
            redis_server.kill()  # SIGKILL, no persistence: queued and unacked messages are gone
            # sales go on while it is down: webhooks are stored, their jobs cannot be queued
            for i in range(2):
                url = stack.shopify.url if i else stack.woo.url
                assert checkout(url, [("SR-1", 1)], f"down{i}@example.com").status_code == 201
            # their webhooks were stored, but the daemon could not queue them: it answered 500
            assert stack.failed_deliveries() >= 2
            redis_server.start()

        accepted = traffic(stack, range(10), midway=restart_redis)
        assert accepted >= 6
        receive(stack.daemon_url, "PO-SR", {"SR-3": 10})
        assert worker.alive() and stack.run is not None and stack.run.alive()
        finish(stack, "redis restart")


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.slow
def test_postgres_restart_during_processing(tmp_path: Path) -> None:
    with (
        private_postgres() as cluster,
        private_redis(tmp_path) as redis_server,
        process_stack(tmp_path, database=cluster.url, broker=redis_server.url, catalog=CATALOG,
                      purchase_orders=PURCHASE_ORDERS) as stack,
    ):  # fmt: skip
        stack.start_run()
        stack.start_worker()
        stack.checker.wait_consistent(60, what="opening offers")

        def restart_postgres() -> None:
            # `restart -m fast` in two steps, so these sales' webhooks land while it is down
            cluster.stop_fast()
            for i in range(2):
                url = stack.shopify.url if i else stack.woo.url
                assert checkout(url, [("SR-2", 1)], f"pg{i}@example.com").status_code == 201
            assert stack.failed_deliveries() >= 2  # not stored: polling must find these orders
            cluster.start()

        accepted = traffic(stack, range(10), midway=restart_postgres)
        assert accepted >= 6
        # a receipt, then a second restart while the release and its write-backs run
        receive(stack.daemon_url, "PO-SR", {"SR-3": 10})
        cluster.restart()
        wait_until(lambda: stack.run is not None and stack.run.alive(), 5, "run survives")
        finish(stack, "postgres restart")
