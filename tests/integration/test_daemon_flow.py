"""The daemon with both sandboxes over real HTTP (in-process broker, SQLite ledger)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import func, select

from connectors.signatures import sign
from stock import models as m
from stock import offers, purchasing
from tests.support.stack import Stack, running_stack


def shop_holds(stack: Stack, order_id: int) -> list[dict[str, Any]]:
    state = requests.get(f"{stack.shopify.url}/_sandbox/state", timeout=5).json()
    return [
        hold
        for fo in state["fulfillment_orders"]
        if int(fo["order_id"]) == order_id
        for hold in fo["holds"]
    ]


def ledger_counts(stack: Stack) -> dict[str, int]:
    assert stack.daemon is not None
    with stack.daemon.runtime.ctx.sessions() as session:
        return {
            "orders": session.scalar(select(func.count()).select_from(m.ChannelOrder)) or 0,
            "reserved": session.scalar(select(func.coalesce(func.sum(m.Reservation.qty), 0))) or 0,
            "backordered": session.scalar(select(func.coalesce(func.sum(m.Backorder.qty_open), 0)))
            or 0,
            "inbox_unprocessed": session.scalar(
                select(func.count())
                .select_from(m.InboxEvent)
                .where(m.InboxEvent.processed_at.is_(None))
            )
            or 0,
        }


def test_checkout_on_shopify_lowers_woocommerce_stock(tmp_path: Path) -> None:
    with running_stack(tmp_path) as stack:
        stack.wait_until(lambda: stack.woo_stock("DEMO-1") == 20, what="first push")
        assert stack.checkout_shopify("DEMO-1", 3).status_code == 201
        stack.wait_until(lambda: stack.woo_stock("DEMO-1") == 17, what="woo lowered to 17")
        assert stack.checkout_woo("DEMO-1", 2).status_code == 201
        stack.wait_until(lambda: stack.shop_available("DEMO-1") == 15, what="shopify at 15")
        assert stack.daemon is not None
        stack.daemon.wait_idle()
        assert ledger_counts(stack)["reserved"] == 5
        assert stack.woo_stock("DEMO-1") == 15


@pytest.mark.slow
def test_partial_order_is_held_on_shopify_and_released_by_a_receipt(tmp_path: Path) -> None:
    with running_stack(tmp_path, catalog={"DEMO-2": 4}) as stack:
        assert stack.daemon is not None
        runtime = stack.daemon.runtime
        with runtime.ctx.ledger(actor="test") as tx:
            purchasing.add_po(tx, "PO-7", tx.now.date() + timedelta(days=5), {"DEMO-2": 6})
        stack.daemon.actors.push.send("shop")
        # offered = 4 on hand + 6 incoming (share 1.0)
        stack.wait_until(lambda: stack.shop_available("DEMO-2") == 10, what="offer 10")
        reply = stack.checkout_shopify("DEMO-2", 7)
        assert reply.status_code == 201, reply.text
        order_id = int(reply.json()["order"]["id"]) if "order" in reply.json() else None
        order_id = order_id or int(reply.json()["id"])
        stack.wait_until(lambda: bool(shop_holds(stack, order_id)), what="hold placed")
        (hold,) = shop_holds(stack, order_id)
        assert hold["reason"] == "INVENTORY_OUT_OF_STOCK"
        stack.daemon.wait_idle()
        counts = ledger_counts(stack)
        assert (counts["reserved"], counts["backordered"]) == (4, 3)

        receipt = requests.post(
            f"{stack.daemon_url}/api/purchase-orders/PO-7/receipts",
            json={"lines": {"DEMO-2": 6}},
            headers={"Authorization": "Bearer test-token"},
            timeout=10,
        )
        assert receipt.status_code == 200, receipt.text
        stack.wait_until(lambda: not shop_holds(stack, order_id), what="hold released")
        stack.daemon.wait_idle()
        counts = ledger_counts(stack)
        assert (counts["reserved"], counts["backordered"]) == (7, 0)
        # 10 units existed, 7 are sold: 3 left to offer
        stack.wait_until(lambda: stack.shop_available("DEMO-2") == 3, what="shopify at 3")
        stack.wait_until(lambda: stack.woo_stock("DEMO-2") == 3, what="woo at 3")


@pytest.mark.slow
def test_receipts_api_refuses_bad_requests(tmp_path: Path) -> None:
    with running_stack(tmp_path) as stack:
        url = f"{stack.daemon_url}/api/purchase-orders/NOPE/receipts"
        ok_headers = {"Authorization": "Bearer test-token"}
        assert requests.post(url, json={"lines": {"DEMO-1": 1}}, timeout=5).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert (
            requests.post(url, json={"lines": {"X": 1}}, headers=wrong, timeout=5).status_code
            == 401
        )
        assert requests.post(url, data=b"{", headers=ok_headers, timeout=5).status_code == 400
        bad_qty = {"lines": {"DEMO-1": -2}}
        assert requests.post(url, json=bad_qty, headers=ok_headers, timeout=5).status_code == 400
        missing = requests.post(url, json={"lines": {"DEMO-1": 1}}, headers=ok_headers, timeout=5)
        assert missing.status_code == 404
        assert "no such purchase order" in missing.json()["error"]


@pytest.mark.slow
def test_forged_unsigned_and_malformed_webhooks_are_refused(tmp_path: Path) -> None:
    with running_stack(tmp_path) as stack:
        url = f"{stack.daemon_url}/webhooks/shop"
        body = b'{"id": 1}'
        base = {
            "X-Shopify-Topic": "orders/create",
            "X-Shopify-Event-Id": "evt-1",
            "X-Shopify-Webhook-Id": "w-1",
            "X-Shopify-Shop-Domain": "sandbox.myshopify.com",
            "Content-Type": "application/json",
        }
        unsigned = requests.post(url, data=body, headers=base, timeout=5)
        forged = requests.post(
            url,
            data=body,
            headers={**base, "X-Shopify-Hmac-Sha256": sign("wrong", body)},
            timeout=5,
        )
        not_json = requests.post(
            url,
            data=b"not json",
            headers={**base, "X-Shopify-Hmac-Sha256": sign("sandbox-secret", b"not json")},
            timeout=5,
        )
        unknown = requests.post(f"{stack.daemon_url}/webhooks/nope", data=body, timeout=5)
        assert [unsigned.status_code, forged.status_code, not_json.status_code] == [401, 401, 400]
        assert unknown.status_code == 404
        # a WooCommerce creation ping is acknowledged and stores nothing
        ping = requests.post(
            f"{stack.daemon_url}/webhooks/woo",
            data=b"webhook_id=9",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            timeout=5,
        )
        assert ping.status_code == 200
        assert ledger_counts(stack)["inbox_unprocessed"] == 0
        assert stack.daemon is not None
        with stack.daemon.runtime.ctx.sessions() as session:
            assert session.scalar(select(func.count()).select_from(m.InboxEvent)) == 0
        metrics = requests.get(f"{stack.daemon_url}/metrics", timeout=5).text
        assert 'stocksync_webhooks_received_total{channel="shop",outcome="rejected"} 3.0' in metrics


@pytest.mark.slow
def test_duplicated_reordered_and_dropped_webhooks_end_in_the_same_ledger(tmp_path: Path) -> None:
    faults = {
        "webhook_drop_rate": 0.3,
        "webhook_duplicate_rate": 0.5,
        "webhook_reorder_rate": 0.5,
        "seed": 7,
    }
    with running_stack(tmp_path, poll_interval=1.0) as stack:
        for sandbox in (stack.shopify.url, stack.woo.url):
            assert requests.put(f"{sandbox}/_sandbox/faults", json=faults, timeout=5).ok
        sold = 0
        for i in range(12):
            sku = f"DEMO-{1 + i % 3}"
            checkout = stack.checkout_shopify if i % 2 else stack.checkout_woo
            if checkout(sku, 1 + i % 2, email=f"c{i}@example.com").status_code == 201:
                sold += 1 + i % 2
        assert sold == sum(1 + i % 2 for i in range(12))

        def settled() -> bool:
            counts = ledger_counts(stack)
            return counts["orders"] == 12 and counts["reserved"] == sold

        # polling (every second) catches what the dropped webhooks never delivered
        stack.wait_until(settled, timeout=30, what="all 12 orders in the ledger")
        assert stack.daemon is not None
        stack.daemon.wait_idle()
        counts = ledger_counts(stack)
        assert counts == {**counts, "orders": 12, "reserved": sold, "backordered": 0}
        for sku in ("DEMO-1", "DEMO-2", "DEMO-3"):
            with stack.daemon.runtime.ctx.ledger() as tx:
                offered_woo, _ = offers.offer(tx, "woo", sku)
                offered_shop, _ = offers.offer(tx, "shop", sku)
            stack.wait_until(
                lambda s=sku, o=offered_woo: stack.woo_stock(s) == o, what=f"woo {sku} converged"
            )
            stack.wait_until(
                lambda s=sku, o=offered_shop: stack.shop_available(s) == o,
                what=f"shopify {sku} converged",
            )


def woo_order(stack: Stack, order_id: int) -> dict[str, Any]:
    state = requests.get(f"{stack.woo.url}/_sandbox/state", timeout=5).json()
    orders = state["orders"]
    found = orders.get(str(order_id)) if isinstance(orders, dict) else None
    if found is None:
        found = next(o for o in orders if int(o.get("id", -1)) == order_id)
    return dict(found)


@pytest.mark.slow
def test_cancellation_and_refund_free_units_and_release_waiting_backorders(tmp_path: Path) -> None:
    with running_stack(tmp_path, catalog={"DEMO-3": 4}) as stack:
        assert stack.daemon is not None
        with stack.daemon.runtime.ctx.ledger(actor="test") as tx:
            purchasing.add_po(tx, "PO-3", tx.now.date() + timedelta(days=5), {"DEMO-3": 6})
        stack.daemon.actors.push.send("woo")
        stack.daemon.actors.push.send("shop")
        stack.wait_until(lambda: stack.woo_stock("DEMO-3") == 10, what="woo offers 10")
        stack.wait_until(lambda: stack.shop_available("DEMO-3") == 10, what="shop offers 10")
        first = stack.checkout_shopify("DEMO-3", 4)
        assert first.status_code == 201
        shop_order = int(first.json()["id"])
        stack.wait_until(lambda: stack.woo_stock("DEMO-3") == 6, what="woo at 6")
        second = stack.checkout_woo("DEMO-3", 3)
        assert second.status_code == 201, second.text
        woo_id = int(second.json()["id"])
        stack.wait_until(lambda: woo_order(stack, woo_id)["status"] == "on-hold", what="woo hold")
        stack.daemon.wait_idle()
        assert ledger_counts(stack)["backordered"] == 3

        # the merchant cancels the Shopify order: its 4 units free up and fill the backorder
        reply = requests.post(f"{stack.shopify.url}/_sandbox/orders/{shop_order}/cancel", timeout=5)
        assert reply.ok, reply.text
        stack.wait_until(
            lambda: woo_order(stack, woo_id)["status"] == "processing", what="woo released"
        )
        stack.daemon.wait_idle()
        counts = ledger_counts(stack)
        assert (counts["reserved"], counts["backordered"]) == (3, 0)
        # 4 on hand - 3 reserved + 6 incoming = 7 offered everywhere
        stack.wait_until(lambda: stack.woo_stock("DEMO-3") == 7, what="woo at 7")
        stack.wait_until(lambda: stack.shop_available("DEMO-3") == 7, what="shop at 7")

        # a refund of one unit of a new Shopify order frees that unit
        third = stack.checkout_shopify("DEMO-3", 2)
        assert third.status_code == 201
        third_id = int(third.json()["id"])
        line_id = int(third.json()["line_items"][0]["id"])
        stack.wait_until(lambda: stack.woo_stock("DEMO-3") == 5, what="woo at 5")
        refund = requests.post(
            f"{stack.shopify.url}/_sandbox/orders/{third_id}/refund",
            json={"line_items": [{"id": line_id, "quantity": 1}], "restock": True},
            timeout=5,
        )
        assert refund.ok, refund.text
        stack.wait_until(lambda: stack.woo_stock("DEMO-3") == 6, what="woo at 6 after refund")
        stack.daemon.wait_idle()
        assert ledger_counts(stack)["reserved"] == 4


@pytest.mark.slow
def test_an_unparseable_order_lands_in_the_visible_exception_queue(tmp_path: Path) -> None:
    import json
    import shutil
    import subprocess

    with running_stack(tmp_path) as stack:
        body = json.dumps({"id": 991, "line_items": "not a list"}).encode()
        headers = {
            "X-Shopify-Topic": "orders/create",
            "X-Shopify-Event-Id": "evt-broken",
            "X-Shopify-Webhook-Id": "w-9",
            "X-Shopify-Shop-Domain": "sandbox.myshopify.com",
            "X-Shopify-Hmac-Sha256": sign("sandbox-secret", body),
            "Content-Type": "application/json",
        }
        reply = requests.post(
            f"{stack.daemon_url}/webhooks/shop", data=body, headers=headers, timeout=5
        )
        assert reply.status_code == 200  # stored: nothing the channel sent is lost
        assert stack.daemon is not None
        stack.daemon.wait_idle()
        stocksync = shutil.which("stocksync") or "stocksync"
        listed = subprocess.run(
            [stocksync, "--config", str(stack.config_path), "inbox", "list", "--failed", "--json"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert listed.returncode == 0, listed.stderr
        (event,) = json.loads(listed.stdout)["events"]
        # keyed by the body's identity (topic, order id, updated_at, digest), not the header
        assert ":991@" in event["event_key"] and event["attempts"] == 1
        assert "line_items" in event["error"]
        status = subprocess.run(
            [stocksync, "--config", str(stack.config_path), "status", "--json"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert json.loads(status.stdout)["inbox_failed"] == 1
        retried = subprocess.run(
            [stocksync, "--config", str(stack.config_path), "inbox", "retry", str(event["id"])],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert retried.returncode == 1  # still broken: still in the queue, visibly
        metrics = requests.get(f"{stack.daemon_url}/metrics", timeout=5).text
        assert "stocksync_inbox_failed 1.0" in metrics


@pytest.mark.slow
def test_reconcile_reports_drift_and_fixes_it(tmp_path: Path) -> None:
    with running_stack(tmp_path) as stack:
        assert stack.daemon is not None
        stack.wait_until(lambda: stack.shop_available("DEMO-4") == 20, what="first push")
        stack.wait_until(lambda: stack.woo_stock("DEMO-4") == 20, what="first push to woo")
        stack.daemon.wait_idle()  # the first push has mapped every listing
        # a merchant edits quantities by hand in both admins
        stack.shopify.set_inventory("DEMO-4", 50)
        state = requests.get(f"{stack.woo.url}/_sandbox/state", timeout=5).json()
        product = next(p for p in state["products"] if p.get("sku") == "DEMO-5")
        path = (
            f"products/{product['parent_id']}/variations/{product['id']}"
            if product.get("parent_id")
            else f"products/{product['id']}"
        )
        from woocommerce import API

        api = API(url=stack.woo.url, consumer_key="ck_sandbox", consumer_secret="cs_sandbox",
                  version="wc/v3", timeout=10)  # fmt: skip
        edited = api.put(path, {"manage_stock": True, "stock_quantity": 3})
        assert edited.status_code == 200, edited.text
        assert stack.woo_stock("DEMO-5") == 3

        stack.daemon.actors.reconcile.send("shop")
        stack.daemon.actors.reconcile.send("woo")
        stack.wait_until(lambda: stack.shop_available("DEMO-4") == 20, what="shopify fixed")
        stack.wait_until(lambda: stack.woo_stock("DEMO-5") == 20, what="woo fixed")
        stack.daemon.wait_idle()
        metrics = requests.get(f"{stack.daemon_url}/metrics", timeout=5).text
        drift_lines = [line for line in metrics.splitlines() if line.startswith("stocksync_drift")]
        assert 'stocksync_drift_units{channel="shop"} 30.0' in drift_lines, drift_lines
        assert 'stocksync_drift_units{channel="woo"} 17.0' in drift_lines, drift_lines
        with stack.daemon.runtime.ctx.sessions() as session:
            audits = session.scalars(
                select(m.AuditEntry).where(m.AuditEntry.action == "reconcile")
            ).all()
        drifted = {d["sku"] for a in audits for d in a.detail["drift"]}
        assert drifted == {"DEMO-4", "DEMO-5"}


def test_a_partial_woocommerce_refund_frees_the_refunded_units(tmp_path: Path) -> None:
    """The order body lists the refund as id/reason/total only; the daemon reads
    GET orders/{id}/refunds before applying it, so the refunded units stop being reserved and
    completing the order later ships only what was kept."""
    from woocommerce import API

    with running_stack(tmp_path) as stack:
        assert stack.daemon is not None
        reply = stack.checkout_woo("DEMO-1", 3)
        assert reply.status_code == 201, reply.text
        order = reply.json()
        stack.wait_until(lambda: ledger_counts(stack)["reserved"] == 3, what="3 reserved")
        api = API(
            url=stack.woo.url,
            consumer_key="ck_sandbox",
            consumer_secret="cs_sandbox",
            version="wc/v3",
            timeout=5,
        )
        line = order["line_items"][0]
        refunded = api.post(
            f"orders/{order['id']}/refunds",
            {
                "amount": "20.00",
                "reason": "two arrived broken",
                "line_items": [{"id": line["id"], "quantity": 2, "refund_total": 20.0}],
                "api_refund": False,
            },
        )
        assert refunded.status_code == 201, refunded.text
        stack.wait_until(lambda: ledger_counts(stack)["reserved"] == 1, what="2 units freed")
        assert api.put(f"orders/{order['id']}", {"status": "completed"}).ok
        stack.daemon.wait_idle()

        def shipped() -> int:
            with stack.daemon.runtime.ctx.sessions() as session:  # type: ignore[union-attr]
                return int(session.scalar(select(func.sum(m.OrderLine.shipped))) or 0)

        stack.wait_until(lambda: shipped() == 1, what="the kept unit shipped")
        with stack.daemon.runtime.ctx.sessions() as session:
            failed = session.scalar(
                select(func.count())
                .select_from(m.InboxEvent)
                .where(m.InboxEvent.error.is_not(None))
            )
        assert failed == 0
