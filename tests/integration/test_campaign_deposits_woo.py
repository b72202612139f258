"""Deposits on WooCommerce through the daemon (issue #16): a storefront checkout of the deposit
product is the sign-up; the allocated customer's balance is a pending order for the price less
the deposit, and paying it confirms the entry; a customer who cancels before allocation gets
the deposit back through WooCommerce's refunds API — once, even when the worker that made the
refund is killed before it could record it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import update

from rules import load_config
from stock import campaign_money, campaigns
from stock import models as m
from sync import campaign_service as service
from sync import stack
from sync.jobs.campaign_refunds import settle_refund
from sync.runtime import Runtime
from tests.support.campaign_reads import entry_of, money_of, ticked
from tests.support.refund_crash import refund_and_die
from tests.support.stack import Stack, stack_config

pytestmark = pytest.mark.slow

SKU, DEPOSIT_SKU = "DROP-1", "DEPOSIT-1"


def deposit_stack(tmp_path: Path, tick_every: float) -> Stack:
    now = datetime.now(UTC)
    overrides: dict[str, Any] = {
        "daemon": {"campaign_tick_interval_s": tick_every},
        "campaigns": {
            "drop": {
                "skus": {SKU: 1},
                "channels": ["woo"],
                "signup": {"opens": (now - timedelta(minutes=5)).isoformat(),
                           "closes": (now + timedelta(minutes=10)).isoformat()},
                "wave_every_hours": 1,
                "payment": {"mode": "deposit", "currency": "USD", "prices": {SKU: "50.00"},
                            "deposit": {"percent": 20}, "balance_due_hours": 1,
                            "cancellation_fee": "none", "deposit_sku": DEPOSIT_SKU},
            }
        },
    }  # fmt: skip
    config = stack_config(poll_interval=2)
    config = type(config)(**{**config.__dict__, "overrides": overrides})
    running = stack.start_stack(Stack, tmp_path, config, {SKU: 1, DEPOSIT_SKU: 100}, actor="test")
    runtime = Runtime.build(load_config(running.config_path))
    try:  # the deposit product sells at the deposit
        woo = runtime.channels["woo"]
        listing = woo.fetch_listings([DEPOSIT_SKU])[DEPOSIT_SKU]
        woo.call("set_price", "PUT", f"products/{listing.external_ids['product_id']}",  # type: ignore[attr-defined]
                 data={"regular_price": "10.00"})  # fmt: skip
    finally:
        runtime.close()
    # the tick the daemon sends at start: done before a test that drives the jobs begins
    running.wait_until(lambda: ticked(running), what="the daemon's first campaign tick")
    return running


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Stack]:
    with deposit_stack(tmp_path, tick_every=0.5) as s:
        yield s


def buy_deposit(s: Stack, email: str, accept: str = "yes") -> int:
    reply = requests.post(f"{s.woo.url}/_sandbox/checkout", json={
        "sku": DEPOSIT_SKU, "quantity": 1, "email": email, "payment_method": "stripe",
        "meta_data": [{"key": "stocksync_campaign", "value": "drop"},
                      {"key": "stocksync_variant", "value": SKU},
                      {"key": "stocksync_accept_terms", "value": accept}],
    }, timeout=5)  # fmt: skip
    assert reply.status_code < 300, reply.text
    return int(reply.json()["id"])


def status_of(s: Stack, email: str) -> str | None:
    found = entry_of(s, email)
    return None if found is None else found.status


def woo_order(s: Stack, order_id: str | int) -> dict[str, Any]:
    runtime = Runtime.build(load_config(s.config_path))
    try:
        body: dict[str, Any] = runtime.channels["woo"].order("test", str(order_id))  # type: ignore[attr-defined]
        return body
    finally:
        runtime.close()


def refunds_of(s: Stack, order_id: int) -> list[dict[str, Any]]:
    runtime = Runtime.build(load_config(s.config_path))
    try:
        reply = runtime.channels["woo"].call("test", "GET", f"orders/{order_id}/refunds")  # type: ignore[attr-defined]
        return list(reply.body)
    finally:
        runtime.close()


def test_a_deposit_checkout_signs_up_and_the_balance_confirms(running: Stack) -> None:
    s = running
    ann_order = buy_deposit(s, "ann@example.com")
    s.wait_until(lambda: entry_of(s, "ann@example.com") is not None, what="ann's entry")
    ann = entry_of(s, "ann@example.com")
    assert ann is not None and ann.channel == "woo"
    assert money_of(s, ann.id) == [("deposit", "10.00", "paid")]

    # the wave: ann's balance is a pending order for 50.00 less her 10.00 deposit
    s.wait_until(lambda: getattr(entry_of(s, "ann@example.com"), "pay_state", None) == "open",
                 timeout=30, what="ann's balance requested")  # fmt: skip
    ann = entry_of(s, "ann@example.com")
    assert ann is not None and ann.pay_ref is not None
    pending = woo_order(s, ann.pay_ref)
    assert (pending["status"], pending["total"]) == ("pending", "40.00")
    requests.post(f"{s.woo.url}/_sandbox/orders/{ann.pay_ref}/pay", timeout=5)
    s.wait_until(lambda: status_of(s, "ann@example.com") == "confirmed",
                 timeout=20, what="ann confirmed")  # fmt: skip
    assert money_of(s, ann.id) == [("deposit", "10.00", "paid"), ("balance", "40.00", "paid")]
    assert ann_order != int(ann.pay_ref)

    # bob signs up without ticking the terms: his deposit waits in the exception queue
    buy_deposit(s, "bob@example.com", accept="no")
    s.wait_until(lambda: _failed_events(s) == 1, what="bob's deposit in the exception queue")
    assert entry_of(s, "bob@example.com") is None


def _failed_events(s: Stack) -> int:
    with s.ctx.read() as session:
        from sqlalchemy import func, select

        return int(
            session.scalar(
                select(func.count())
                .select_from(m.InboxEvent)
                .where(m.InboxEvent.error.like("%accept the payment terms%"))
            )
            or 0
        )


def test_a_refund_is_made_once_even_when_its_worker_dies_after_the_call(tmp_path: Path) -> None:
    with deposit_stack(tmp_path, tick_every=3600) as s:  # no tick: this test drives the job
        order = buy_deposit(s, "cat@example.com")
        s.wait_until(lambda: entry_of(s, "cat@example.com") is not None, what="cat's entry")
        cat = entry_of(s, "cat@example.com")
        assert cat is not None
        with s.ctx.ledger(actor="test") as tx:
            service.cancel(tx, s.ctx.config, cat.id, "changed her mind")
        [refund] = [r for r in _rows(s, cat.id) if r.kind == "refund"]
        assert (str(refund.amount), refund.state) == ("10.00", "planned")  # before allocation

        # a worker makes the refund on the shop and is killed before it records it
        refund_and_die(s.config_path, refund.id)
        assert len(refunds_of(s, order)) == 1  # the shop refunded
        assert [r.state for r in _rows(s, cat.id) if r.kind == "refund"] == ["planned"]

        # its claim expires; the next attempt finds the refund by its key instead of refunding
        with s.ctx.sessions.begin() as session:
            session.execute(
                update(m.CampaignMoney).where(m.CampaignMoney.id == refund.id)
                .values(claimed_at=datetime.now(UTC) - timedelta(hours=1))
            )  # fmt: skip
        runtime = Runtime.build(load_config(s.config_path))
        try:
            settle_refund(runtime, refund.id)
        finally:
            runtime.close()
        shop_refunds = refunds_of(s, order)
        assert len(shop_refunds) == 1 and f"[{refund.key}]" in shop_refunds[0]["reason"]
        [done] = [r for r in _rows(s, cat.id) if r.kind == "refund"]
        assert (done.state, done.shop_ref) == ("refunded", str(shop_refunds[0]["id"]))
        assert woo_order(s, order)["status"] == "refunded"  # WooCommerce: refunded in full


def _rows(s: Stack, entry_id: int) -> list[campaign_money.MoneyRow]:
    with s.ctx.read() as session:
        return campaign_money.of_entries(session, [entry_id]).get(entry_id, [])


def test_the_customer_chooses_on_changed_terms_over_http(running: Stack) -> None:
    s = running
    buy_deposit(s, "eve@example.com")
    s.wait_until(lambda: entry_of(s, "eve@example.com") is not None, what="eve's entry")
    eve = entry_of(s, "eve@example.com")
    assert eve is not None and eve.terms is not None
    base = f"{s.daemon_url}/api/campaigns/drop/entries/{eve.token}"
    assert requests.post(f"{base}/terms", json={"accept": False}, timeout=5).status_code == 409
    with s.ctx.ledger(actor="test") as tx:  # as the tick offers it after a price change
        campaigns.offer_terms(tx, eve, {**eve.terms, "price": "60.00", "balance": "50.00"},
                              "the campaign's price changed")  # fmt: skip
    page = requests.get(base, timeout=5).json()
    assert "Price: 60.00 USD." in page["terms_changed"]["terms"]
    assert requests.post(f"{base}/terms", json={"accept": "no"}, timeout=5).status_code == 400
    bad = requests.post(f"{s.daemon_url}/api/campaigns/drop/entries/nope/terms",
                        json={"accept": False}, timeout=5)  # fmt: skip
    assert bad.status_code == 404
    chosen = requests.post(f"{base}/terms", json={"accept": False}, timeout=5)
    assert chosen.status_code == 200 and chosen.json()["status"] == "cancelled"
    assert money_of(s, eve.id)[-1][:2] == ("refund", "10.00")  # all of it, no fee


def test_a_deposit_cancelled_on_the_shop_ends_its_entry_without_a_second_refund(
    running: Stack,
) -> None:
    s = running
    order = buy_deposit(s, "fay@example.com")
    s.wait_until(lambda: entry_of(s, "fay@example.com") is not None, what="fay's entry")
    runtime = Runtime.build(load_config(s.config_path))
    try:  # the merchant cancels it in the shop's admin
        runtime.channels["woo"].call("test", "PUT", f"orders/{order}", data={"status": "cancelled"})  # type: ignore[attr-defined]
    finally:
        runtime.close()
    s.wait_until(lambda: status_of(s, "fay@example.com") == "cancelled",
                 what="fay's entry cancelled")  # fmt: skip
    fay = entry_of(s, "fay@example.com")
    assert fay is not None
    assert money_of(s, fay.id) == [("deposit", "10.00", "paid")]  # nothing more from us
