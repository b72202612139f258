"""Pre-order deposits on Shopify through the daemon (issue #16).

stocksync keeps a selling plan (20 % at checkout, inventory reserved only at fulfilment) on the
campaign's variant; a storefront checkout through it is the sign-up, taking no stock on either
side. At allocation the balance is charged on the customer's vaulted card: paid, the entry is
confirmed and the pre-order's own line takes the unit set aside. A declined card gets the
order's payment link instead, and paying it confirms the entry the same way. An allocation not
paid by its deadline has its order cancelled and the deposit refunded less the fee; a refund is
made once even when the worker that made it is killed before it could record it.

The daemon takes the shop's webhooks; the test runs the campaign tick and the payment and refund
jobs itself, so each step happens when the test says.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import select, update

from connectors.sandbox.shopify_scopes import DEFAULT_SCOPES, DEPOSIT_SCOPES
from rules import load_config
from stock import campaign_money, campaign_plans, campaigns
from stock import models as m
from sync import campaign_service as service
from sync import stack
from sync.jobs.campaign_payments import settle_payment
from sync.jobs.campaign_refunds import settle_refund
from sync.jobs.campaign_tick import tick_campaigns
from sync.runtime import Runtime
from tests.support.campaign_reads import entry_of, money_of, ticked
from tests.support.refund_crash import refund_and_die
from tests.support.stack import Stack, stack_config

pytestmark = pytest.mark.slow

SKU = "DROP-1"


DEPOSIT = {
    "mode": "deposit",
    "currency": "USD",
    "prices": {SKU: "10.00"},
    "deposit": {"percent": 20},
    "balance_due_hours": 1,
    "cancellation_fee": "0.50",
}


def deposit_stack(
    tmp_path: Path, units: int, payment: dict[str, Any] = DEPOSIT, tick_every: float = 3600
) -> Stack:
    now = datetime.now(UTC)
    overrides: dict[str, Any] = {
        "daemon": {"campaign_tick_interval_s": tick_every},  # 3600: the test runs the tick
        "campaigns": {
            "drop": {
                "skus": {SKU: units},
                "channels": ["shop"],
                "method": "fcfs",
                "signup": {"opens": (now - timedelta(minutes=5)).isoformat(),
                           "closes": (now + timedelta(minutes=30)).isoformat()},
                "wave_every_hours": 1,
                "payment": payment,
            }
        },
    }  # fmt: skip
    config = stack_config()
    config = type(config)(**{**config.__dict__, "overrides": overrides})
    # the app is granted what pre-orders need: selling plans, mandates, refunds
    running = stack.start_stack(Stack, tmp_path, config, {SKU: units}, actor="test",
                                shopify_scopes=(*DEFAULT_SCOPES, *DEPOSIT_SCOPES))  # fmt: skip
    # the tick the daemon sends at start makes the plan: done before a test drives the ticks
    running.wait_until(lambda: ticked(running) and planned(running), what="the first tick")
    return running


def planned(s: Stack) -> bool:
    with s.ctx.read() as session:
        made = campaign_plans.current(session, "drop", "shop")
    return made is not None and made.plan_ref is not None


class Driver:
    """The campaign tick and the jobs it hands out, run by the test, in order."""

    def __init__(self, s: Stack) -> None:
        self.s = s
        self.runtime = Runtime.build(load_config(s.config_path))

    def tick(self) -> None:
        followups = tick_campaigns(self.runtime)
        self.jobs(followups.payments, followups.refunds)

    def jobs(self, payments: set[int], refunds: set[int] = frozenset()) -> None:  # type: ignore[assignment]
        for entry_id in sorted(payments):
            done = settle_payment(self.runtime, entry_id)
            refunds = set(refunds) | done.refunds
        for money_id in sorted(refunds):
            settle_refund(self.runtime, money_id)

    def close(self) -> None:
        self.runtime.close()


@pytest.fixture
def driven(tmp_path: Path) -> Iterator[tuple[Stack, Driver]]:
    with deposit_stack(tmp_path, units=2) as s:
        driver = Driver(s)
        try:
            yield s, driver
        finally:
            driver.close()


def plan_gid(s: Stack) -> str:
    with s.ctx.read() as session:
        made = campaign_plans.current(session, "drop", "shop")
    assert made is not None and made.plan_ref, made
    return f"gid://shopify/SellingPlan/{made.plan_ref}"


def pre_order(s: Stack, email: str) -> int:
    reply = requests.post(f"{s.shopify.url}/_sandbox/checkout", json={
        "sku": SKU, "quantity": 1, "email": email, "selling_plan": plan_gid(s),
    }, timeout=5)  # fmt: skip
    assert reply.status_code < 300, reply.text
    return int(reply.json()["id"])


def reserved(s: Stack, order_id: int) -> int:
    with s.ctx.read() as session:
        order = session.scalar(
            select(m.ChannelOrder).where(
                m.ChannelOrder.channel == "shop", m.ChannelOrder.external_id == str(order_id)
            )
        )
        assert order is not None, f"order {order_id} is not in the ledger"
        return sum(line.reservation.qty for line in order.lines if line.reservation is not None)


def deadline_passed(s: Stack, entry_id: int) -> None:
    """The entry's payment deadline is a minute ago (the tick then expires it)."""
    with s.ctx.sessions.begin() as session:
        session.execute(
            update(m.CampaignEntry).where(m.CampaignEntry.id == entry_id)
            .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )  # fmt: skip


def shop_order(s: Stack, order_id: int) -> dict[str, Any]:
    state = requests.get(f"{s.shopify.url}/_sandbox/state", timeout=5).json()
    [found] = [o for o in state["orders"] if int(o["id"]) == order_id]
    return dict(found)


def shop_state(s: Stack) -> dict[str, Any]:
    body: dict[str, Any] = requests.get(f"{s.shopify.url}/_sandbox/state", timeout=5).json()
    return body


def refunded(refund: dict[str, Any]) -> Decimal:
    return sum((Decimal(t["amount"]) for t in refund["transactions"]), Decimal(0))


def test_pre_orders_sign_up_pay_by_card_or_link_and_cancel(
    driven: tuple[Stack, Driver],
) -> None:
    s, driver = driven
    driver.tick()  # the campaign's selling plan is made on the shop
    [group] = shop_state(s)["selling_plan_groups"]
    [plan] = group["selling_plans"]
    assert group["merchant_code"] == "stocksync-drop"
    assert plan["inventory_policy"]["reserve"] == "ON_FULFILLMENT", plan
    with s.ctx.ledger(actor="test") as tx:
        shown = service.show(tx, s.ctx.config, "drop")["shop_plans"]
    assert shown["shop"] == {"group": group["id"], "plan": str(plan["id"]).rsplit("/", 1)[-1],
                             "error": None}  # fmt: skip
    driver.tick()  # nothing changed: the plan is not made again
    assert len(shop_state(s)["selling_plan_groups"]) == 1

    orders = {name: pre_order(s, f"{name}@example.com") for name in ("ann", "bob", "cat")}
    s.wait_until(lambda: all(entry_of(s, f"{n}@example.com") for n in orders), what="3 entries")
    for name, order_id in orders.items():
        found = entry_of(s, f"{name}@example.com")
        assert found is not None and found.status == "waiting" and found.channel == "shop"
        assert found.terms is not None and found.terms["deposit"] == "2.00"
        assert money_of(s, found.id) == [("deposit", "2.00", "paid")]
        assert reserved(s, order_id) == 0  # a pre-order is money until paid in full
    shown = shop_state(s)["inventory"][SKU]  # nor on the shop: claimed only at fulfilment
    assert (shown["available"], shown["committed"]) == (0, 0)  # the campaign's units: not offered

    # the wave: ann's card is charged; bob's is declined, so he gets the order's payment link
    requests.put(f"{s.shopify.url}/_sandbox/payments",
                 json={"decline_orders": [orders["bob"]]}, timeout=5)  # fmt: skip
    driver.tick()
    ann, bob = entry_of(s, "ann@example.com"), entry_of(s, "bob@example.com")
    assert ann is not None and bob is not None
    assert (ann.status, ann.pay_state, ann.order_ref) == ("confirmed", "paid", str(orders["ann"]))
    assert money_of(s, ann.id) == [("deposit", "2.00", "paid"), ("balance", "8.00", "paid")]
    assert reserved(s, orders["ann"]) == 1  # the pre-order's own line holds the unit
    assert shop_order(s, orders["ann"])["financial_status"] == "paid"
    assert (bob.status, bob.pay_state) == ("allocated", "open")
    assert bob.pay_url and f"/_sandbox/orders/{orders['bob']}/pay_balance" in bob.pay_url
    mail = requests.get(f"{s.shopify.url}/_sandbox/mail", timeout=5).json()
    assert [x["to"] for x in mail] == ["bob@example.com"] and bob.pay_url == mail[0]["invoiceUrl"]

    # bob pays through the link: the shop's order update confirms him, reserving once
    paid = requests.post(bob.pay_url, timeout=5)
    assert paid.status_code == 200, paid.text
    s.wait_until(lambda: getattr(entry_of(s, "bob@example.com"), "status", "") == "confirmed",
                 what="bob confirmed by the shop's order update")  # fmt: skip
    s.wait_until(lambda: reserved(s, orders["bob"]) == 1, what="bob's unit reserved")
    assert money_of(s, bob.id) == [("deposit", "2.00", "paid"), ("balance", "8.00", "paid")]
    with s.ctx.read() as session:
        assert campaigns.counts_by_status(session, "drop") == {SKU: {"confirmed": 2, "waiting": 1}}

    # cat waits for a unit, then changes her mind: her deposit comes back in full, on Shopify
    cat = entry_of(s, "cat@example.com")
    assert cat is not None
    with s.ctx.ledger(actor="test") as tx:
        service.cancel(tx, s.ctx.config, cat.id, "changed her mind")
        payments, refunds = set(tx.effects.payments), set(tx.effects.refunds)
    assert payments == {cat.id} and len(refunds) == 1  # her pre-order is taken back, and refunded
    driver.jobs(payments, refunds)
    assert money_of(s, cat.id) == [("deposit", "2.00", "paid"), ("refund", "2.00", "refunded")]
    cats = shop_order(s, orders["cat"])
    assert cats["cancelled_at"] is not None  # no balance can be paid on it any more
    [shop_refund] = cats["refunds"]
    assert refunded(shop_refund) == Decimal("2.00")
    assert f"[refund-{cat.id}-cancelled]" in shop_refund["note"]
    s.wait_until(lambda: getattr(entry_of(s, "cat@example.com"), "pay_state", "") == "withdrawn",
                 what="cat's pre-order taken back")  # fmt: skip
    with s.ctx.read() as session:  # the shop's cancellation changed nothing more
        assert campaigns.counts_by_status(session, "drop") == {
            SKU: {"confirmed": 2, "cancelled": 1}
        }


def test_a_missed_balance_cancels_the_order_and_a_killed_refund_is_made_once(
    tmp_path: Path,
) -> None:
    with deposit_stack(tmp_path, units=1) as s:
        driver = Driver(s)
        try:
            driver.tick()
            order = pre_order(s, "dan@example.com")
            s.wait_until(lambda: entry_of(s, "dan@example.com") is not None, what="dan's entry")
            requests.put(f"{s.shopify.url}/_sandbox/payments",
                         json={"decline_orders": [order]}, timeout=5)  # fmt: skip
            driver.tick()  # allocated; the card declined: a payment link
            dan = entry_of(s, "dan@example.com")
            assert dan is not None and (dan.status, dan.pay_state) == ("allocated", "open")

            # the deadline passes unpaid: the order is cancelled, the deposit refunded less 0.50
            deadline_passed(s, dan.id)
            with s.ctx.ledger(actor="test") as tx:
                done = service.tick(tx, s.ctx.config, "drop")
                [refund_id] = tx.effects.refunds
            assert done["expired"] == [dan.id]
            driver.jobs({dan.id})  # the withdrawal: the shop's order is cancelled
            assert shop_order(s, order)["cancelled_at"] is not None
            assert requests.post(f"{s.shopify.url}/_sandbox/orders/{order}/pay_balance",
                                 timeout=5).status_code == 409  # fmt: skip

            # the refund's worker is killed right after the shop refunded, before recording it
            refund_and_die(s.config_path, refund_id)
            assert len(shop_order(s, order)["refunds"]) == 1
            with s.ctx.sessions.begin() as session:
                session.execute(
                    update(m.CampaignMoney).where(m.CampaignMoney.id == refund_id)
                    .values(claimed_at=datetime.now(UTC) - timedelta(hours=1))
                )  # fmt: skip
            settle_refund(driver.runtime, refund_id)  # finds the refund by its key
            [shop_refund] = shop_order(s, order)["refunds"]
            assert refunded(shop_refund) == Decimal("1.50")
            assert money_of(s, dan.id) == [("deposit", "2.00", "paid"),
                                           ("refund", "1.50", "refunded")]  # fmt: skip
            with s.ctx.read() as session:
                [row] = [r for r in campaign_money.of_entries(session, [dan.id])[dan.id]
                         if r.kind == "refund"]  # fmt: skip
            assert row.shop_ref == shop_refund["admin_graphql_api_id"]
            assert entry_of(s, "dan@example.com").status == "expired"  # type: ignore[union-attr]
        finally:
            driver.close()


def test_a_balance_paid_after_the_deadline_with_no_unit_left_is_refunded(
    driven: tuple[Stack, Driver],
) -> None:
    s, driver = driven
    driver.tick()
    eve_order = pre_order(s, "eve@example.com")
    pre_order(s, "fay@example.com")
    s.wait_until(lambda: entry_of(s, "fay@example.com") is not None, what="eve and fay")
    requests.put(f"{s.shopify.url}/_sandbox/payments",
                 json={"decline_orders": [eve_order]}, timeout=5)  # fmt: skip
    driver.tick()  # eve: the link; fay: charged
    eve = entry_of(s, "eve@example.com")
    assert eve is not None and eve.pay_url and eve.status == "allocated"

    # eve's deadline passes; her unit goes to gil, who pays at once
    deadline_passed(s, eve.id)
    with s.ctx.ledger(actor="test") as tx:
        assert service.tick(tx, s.ctx.config, "drop")["expired"] == [eve.id]
    pre_order(s, "gil@example.com")
    s.wait_until(lambda: entry_of(s, "gil@example.com") is not None, what="gil's entry")
    with s.ctx.ledger(actor="test") as tx:
        service.allocate(tx, s.ctx.config, "drop")
        gil_payment = set(tx.effects.payments)
    driver.jobs(gil_payment)
    assert getattr(entry_of(s, "gil@example.com"), "status", "") == "confirmed"

    # eve pays her link before her order could be cancelled: no unit is left for her
    assert requests.post(eve.pay_url, timeout=5).status_code == 200
    s.wait_until(lambda: len(money_of(s, eve.id)) == 4, what="eve's late balance")
    assert money_of(s, eve.id) == [
        ("deposit", "2.00", "paid"), ("refund", "1.50", "planned"),  # the deadline: less the fee
        ("balance", "8.00", "paid"), ("refund", "8.00", "planned"),  # paid late: all of it back
    ]  # fmt: skip
    assert getattr(entry_of(s, "eve@example.com"), "status", "") == "expired"
    assert reserved(s, eve_order) == 0  # no unit taken for her
    with s.ctx.read() as session:
        refunds = {r.id for r in campaign_money.of_entries(session, [eve.id])[eve.id]
                   if r.kind == "refund"}  # fmt: skip
    driver.jobs({eve.id}, refunds)
    assert sorted(refunded(r) for r in shop_order(s, eve_order)["refunds"]) == [
        Decimal("1.50"), Decimal("8.00")
    ]  # fmt: skip


def test_mode_none_saves_the_card_at_checkout_and_the_daemon_charges_it_at_allocation(
    tmp_path: Path,
) -> None:
    """All through the daemon: its tick makes the plan, waves, and hands out the charge."""
    terms = {"mode": "none", "currency": "USD", "prices": {SKU: "10.00"}, "balance_due_hours": 1}
    with deposit_stack(tmp_path, units=1, payment=terms, tick_every=0.5) as s:
        s.wait_until(lambda: bool(shop_state(s)["selling_plan_groups"]), what="the plan")
        [group] = shop_state(s)["selling_plan_groups"]
        charge = group["selling_plans"][0]["billing_policy"]["checkoutCharge"]
        assert charge["value"]["percentage"] == 0, charge  # authorisation only
        order = pre_order(s, "hal@example.com")
        s.wait_until(
            lambda: getattr(entry_of(s, "hal@example.com"), "status", "") == "confirmed",
            timeout=30, what="hal signed up, allocated, charged and confirmed",
        )  # fmt: skip
        hal = entry_of(s, "hal@example.com")
        assert hal is not None and hal.pay_state == "paid"
        assert money_of(s, hal.id) == [("deposit", "0.00", "paid"), ("balance", "10.00", "paid")]
        assert shop_order(s, order)["financial_status"] == "paid"
        s.wait_until(lambda: reserved(s, order) == 1, what="hal's unit reserved")
