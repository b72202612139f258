"""Both channels fail 30 % of API calls (429, then 503) for the whole scenario, customer traffic
and a receipt go on, and the ledger converges with the faults still switched on."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from connectors.sandbox.common import Response, SandboxServer
from stock import purchasing
from sync.stack import wait_until
from tests.support.checker import Checker, LineRow, read_ledger
from tests.support.processes import checkout, receive, set_faults
from tests.support.stack import running_stack

pytestmark = pytest.mark.slow  # a fault suite over a whole stack

CATALOG = {"CF-1": 10, "CF-2": 4, "CF-3": 8}


def count_injected(sandbox: SandboxServer, seen: Counter[tuple[str, int]]) -> None:
    """Count the errors the sandbox injects (a spy around the real fault response)."""
    real: Callable[[int], Response] = sandbox.fault_response

    def counted(status: int) -> Response:
        seen[(sandbox.name, status)] += 1
        return real(status)

    sandbox.fault_response = counted  # type: ignore[method-assign]


def busy_channels(stack: Any) -> None:
    """Enough calls to both channels that each fault status surely shows up (30 % of ~20+)."""
    for _ in range(15):
        for channel in ("shop", "woo"):
            stack.daemon.actors.reconcile.send(channel)


def test_thirty_percent_429_and_503_from_both_channels(tmp_path: Path) -> None:
    injected: Counter[tuple[str, int]] = Counter()
    with running_stack(tmp_path, catalog=CATALOG, poll_interval=1.0, sweep_age=1) as stack:
        assert stack.daemon is not None
        ctx = stack.daemon.runtime.ctx
        checker = Checker(ctx, stack.shopify.url, stack.woo.url)
        for sandbox in (stack.shopify, stack.woo):
            count_injected(sandbox, injected)
            set_faults(sandbox.url, error_rate=0.3, error_status=429)
        busy_channels(stack)
        with ctx.ledger(actor="test") as tx:
            purchasing.add_po(tx, "PO-CF", tx.now.date() + timedelta(days=5), {"CF-2": 6})
        checker.wait_consistent(60, what="opening offers under 429s")

        # customers buy on both channels while a third of the daemon's calls fail
        shop, woo = stack.shopify.url, stack.woo.url
        accepted = 0
        for i in range(6):
            url = shop if i % 2 else woo
            reply = checkout(url, [("CF-1", 1), ("CF-3", 1)], f"c{i}@example.com")
            accepted += reply.status_code == 201
            checker.assert_safe()
        assert accepted == 6
        checker.wait_consistent(60, what="sales under 429s")

        for sandbox in (stack.shopify, stack.woo):
            set_faults(sandbox.url, error_rate=0.3, error_status=503)
        busy_channels(stack)
        # CF-2: 4 on hand + 6 incoming are offered; 7 sold leaves 3 waiting on the PO
        wait_until(lambda: stack.shop_available("CF-2") == 10, 60, "shopify offers CF-2=10")
        assert checkout(shop, [("CF-2", 3)], "p1@example.com").status_code == 201
        wait_until(lambda: stack.woo_stock("CF-2") == 7, 60, "woo offers CF-2=7")
        assert checkout(woo, [("CF-2", 4)], "p2@example.com").status_code == 201
        wait_until(
            lambda: sum(line.backordered for line in checker_lines(checker)) == 3,
            60,
            "3 units of CF-2 backordered",
        )
        checker.assert_safe()
        receive(stack.daemon_url, "PO-CF", {"CF-2": 6})
        cancelled = checkout(shop, [("CF-1", 2)], "x@example.com")
        assert cancelled.status_code == 201
        stack.shopify.cancel_order(int(cancelled.json()["id"]))
        checker.assert_safe()

        # faults stay on: the connectors' retries and the sweeper must get everything through
        report = checker.wait_consistent(120, what="traffic under 503s")
        assert report.orders == 9
        lines = checker_lines(checker)
        assert sum(line.released for line in lines) == 3, "\n".join(map(str, lines))
    for name in ("shopify", "woocommerce"):
        for status in (429, 503):
            assert injected[(name, status)] >= 1, injected


def checker_lines(checker: Checker) -> list[LineRow]:
    return read_ledger(checker.ctx, checker.channels).lines
