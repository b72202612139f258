"""Webhook faults: every captured delivery replayed 3 times, deliveries reordered (newer before
older), forged and replayed deliveries, the WooCommerce ping; the checker after each step."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from woocommerce import API

from connectors.sandbox.common import Delivery
from connectors.signatures import sign
from stock import purchasing
from sync.stack import wait_until
from tests.support.checker import Checker, read_ledger
from tests.support.processes import checkout, set_faults
from tests.support.stack import Stack, running_stack

pytestmark = pytest.mark.slow  # a fault suite over a whole stack

CATALOG = {"WH-1": 6, "WH-2": 6, "WH-3": 6}


def post(
    delivery: Delivery, headers: dict[str, str] | None = None, body: bytes | None = None
) -> requests.Response:
    """Send a captured delivery again: the same URL, headers and raw bytes unless overridden."""
    return requests.post(
        delivery.url,
        data=delivery.body if body is None else body,
        headers=delivery.headers if headers is None else headers,
        timeout=10,
    )


def woo_api(stack: Stack) -> API:
    return API(url=stack.woo.url, consumer_key="ck_sandbox", consumer_secret="cs_sandbox",
               version="wc/v3", timeout=10)  # fmt: skip


def cancel_woo(stack: Stack, order_id: int) -> None:
    reply = woo_api(stack).put(f"orders/{order_id}", {"status": "cancelled"})
    assert reply.status_code == 200, reply.text


def order_id(reply: requests.Response) -> int:
    assert reply.status_code == 201, reply.text
    return int(reply.json()["id"])


def next_second() -> None:
    """Both sandboxes stamp orders to the second: start at the top of a fresh second."""
    time.sleep(1.0 - time.time() % 1.0 + 0.01)


def captured(stack: Stack) -> list[Delivery]:
    for sandbox in (stack.shopify, stack.woo):
        sandbox.outbox.flush()
    return list(stack.shopify.outbox.sent) + list(stack.woo.outbox.sent)


def test_duplicated_reordered_forged_and_replayed_webhooks(tmp_path: Path) -> None:
    with running_stack(tmp_path, catalog=CATALOG, sweep_age=1) as stack:
        assert stack.daemon is not None
        ctx = stack.daemon.runtime.ctx
        checker = Checker(ctx, stack.shopify.url, stack.woo.url)
        with ctx.ledger(actor="test") as tx:
            purchasing.add_po(tx, "PO-W", tx.now.date() + timedelta(days=3), {"WH-1": 4})
        stack.daemon.actors.push.send("shop")
        stack.daemon.actors.push.send("woo")
        checker.wait_consistent(30, what="opening offers")

        # traffic: sales on both channels, one beyond stock (backordered), two cancellations
        first = order_id(checkout(stack.shopify.url, [("WH-1", 3)], "a@example.com"))
        order_id(checkout(stack.woo.url, [("WH-1", 2), ("WH-2", 1)], "b@example.com"))
        wait_until(lambda: stack.shop_available("WH-1") == 5, 20, "shopify offers WH-1=5")
        order_id(checkout(stack.shopify.url, [("WH-1", 3), ("WH-2", 2)], "c@example.com"))
        woo_cancelled = order_id(checkout(stack.woo.url, [("WH-2", 2)], "d@example.com"))
        next_second()  # the cancellations are newer to the second than the sales
        stack.shopify.cancel_order(first)
        cancel_woo(stack, woo_cancelled)
        checker.wait_consistent(30, what="traffic")
        before = read_ledger(ctx, checker.channels)
        # WH-1: 8 sold, 6 on hand: 2 backordered, then released by the cancellation of 3
        assert sum(line.released for line in before.lines) == 2

        deliveries = [d for d in captured(stack) if d.status == 200]
        # Shopify: 2 creates, orders/cancelled + orders/updated; Woo: 2 creates, 1 update
        assert len(deliveries) >= 7

        # duplicates, 3 of each: each the exact bytes and headers the channel sent
        outcomes: dict[str, int] = {}
        for delivery in deliveries:
            for _ in range(3):
                reply = post(delivery)
                assert reply.status_code == 200, reply.text
                outcome = reply.json()["outcome"]
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
        assert set(outcomes) <= {"duplicate", "ping"}, outcomes
        assert read_ledger(ctx, checker.channels).fingerprint() == before.fingerprint()

        # forged: a changed body under the old signature, or signed with another secret
        order_hooks = [d for d in deliveries if b'"line_items"' in d.body]
        for delivery in order_hooks:
            tampered = delivery.body.replace(b'"quantity":3', b'"quantity":30', 1)
            fresh = {**delivery.headers, "X-Shopify-Event-Id": str(uuid.uuid4())}
            assert post(delivery, fresh, tampered + b" ").status_code == 401
            name = next(
                h for h in delivery.headers if h.lower().endswith(("hmac-sha256", "signature"))
            )
            forged = {**fresh, name: sign("not-the-secret", delivery.body)}
            assert post(delivery, forged).status_code == 401
            unsigned = {k: v for k, v in fresh.items() if k != name}
            assert post(delivery, unsigned).status_code == 401
        # the WooCommerce creation ping: 200, nothing stored
        ping = requests.post(f"{stack.daemon_url}/webhooks/woo", data=b"webhook_id=7",
                             headers={"Content-Type": "application/x-www-form-urlencoded"},
                             timeout=10)  # fmt: skip
        assert ping.status_code == 200 and ping.json()["outcome"] == "ping"
        assert read_ledger(ctx, checker.channels).fingerprint() == before.fingerprint()

        # replayed: valid old deliveries sent later under fresh ids (as an attacker or a confused
        # proxy would); the signature covers the body, not the headers, so the body's own
        # identity (topic, order id, updated_at, digest) finds them: not stored again
        shop_hooks = [d for d in order_hooks if "X-Shopify-Event-Id" in d.headers]
        assert shop_hooks
        for delivery in shop_hooks:
            fresh = {**delivery.headers, "X-Shopify-Event-Id": str(uuid.uuid4())}
            replay = post(delivery, fresh)
            assert replay.status_code == 200 and replay.json()["outcome"] == "duplicate"
        # WooCommerce's Delivery-ID is not unique anyway: its event key comes from the body
        woo_hooks = [d for d in order_hooks if "X-WC-Webhook-Delivery-ID" in d.headers]
        assert woo_hooks
        for delivery in woo_hooks:
            fresh = {**delivery.headers, "X-WC-Webhook-Delivery-ID": uuid.uuid4().hex}
            replay = post(delivery, fresh)
            assert replay.status_code == 200 and replay.json()["outcome"] == "duplicate"
        stack.daemon.wait_idle()
        checker.wait_consistent(30, what="replayed deliveries")
        after = read_ledger(ctx, checker.channels)
        assert after.fingerprint()[:3] == before.fingerprint()[:3]
        assert after.inbox_total == before.inbox_total


def test_reordered_webhooks_never_apply_an_older_version(tmp_path: Path) -> None:
    """Deliveries held back and sent newest first: a sale's create arrives after its
    cancellation, within the same second (both channels stamp to the second) and across one."""
    with running_stack(tmp_path, catalog=CATALOG, sweep_age=1) as stack:
        assert stack.daemon is not None
        ctx = stack.daemon.runtime.ctx
        checker = Checker(ctx, stack.shopify.url, stack.woo.url)
        checker.wait_consistent(30, what="opening offers")
        # capture without delivering: the test decides the order
        for sandbox in (stack.shopify.url, stack.woo.url):
            set_faults(sandbox, webhook_drop_rate=1.0)

        next_second()
        same_second_shop = order_id(checkout(stack.shopify.url, [("WH-3", 2)], "e@example.com"))
        stack.shopify.cancel_order(same_second_shop)
        same_second_woo = order_id(checkout(stack.woo.url, [("WH-3", 1)], "f@example.com"))
        cancel_woo(stack, same_second_woo)
        later_shop = order_id(checkout(stack.shopify.url, [("WH-2", 1)], "g@example.com"))
        kept_woo = order_id(checkout(stack.woo.url, [("WH-2", 2)], "h@example.com"))
        next_second()
        stack.shopify.cancel_order(later_shop)
        assert {later_shop, kept_woo, same_second_shop, same_second_woo}

        for sandbox in (stack.shopify, stack.woo):
            sandbox.outbox.flush()
        held = [d for sandbox in (stack.shopify, stack.woo) for d in sandbox.outbox.dropped]
        # Shopify: 2 creates, 2 x (orders/cancelled + orders/updated); Woo: 2 creates, 1 update
        assert len(held) == 9
        for delivery in reversed(held):  # newest first: every create after its cancellation
            reply = post(delivery)
            assert reply.status_code == 200, reply.text
        for sandbox in (stack.shopify.url, stack.woo.url):
            set_faults(sandbox, webhook_drop_rate=0.0)
        checker.wait_consistent(30, what="reordered deliveries")
