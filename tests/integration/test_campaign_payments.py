"""A campaign paid on both sandboxes, end to end through the daemon (issue #15).

Three sign-ups over HTTP for a SKU's two units, both set aside for the campaign. The first wave
makes a Shopify draft order (invoice sent, units reserved until past the deadline) and a
WooCommerce pending order (its payment_url in a customer note). The Shopify customer pays:
the shop's order confirms the entry and takes the unit set aside (no second reservation). The
WooCommerce customer lets the deadline pass after a reminder: the pending order is cancelled
and the third person gets the unit in the next wave, on Shopify, and lets it pass too: her draft
is deleted (its reserved unit offset first, so the storefront never shows it) and the fourth
person is invited and pays. Meanwhile a storefront buyer tries both shops every 100 ms: neither
ever sells a unit to the public.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import func, select

from stock import campaigns
from stock import models as m
from sync import stack
from tests.support.stack import Stack, stack_config

pytestmark = pytest.mark.slow

SKU = "DROP-1"
IN_STOCK = 2
CAMPAIGN_UNITS = 2  # every unit: the public must never get one
WINDOW_H = 0.005  # 18 s to pay
REMINDER_H = 0.0025  # 9 s before the deadline
WAVE_H = 0.001  # a wave every 3.6 s while units are free


def campaign_stack(tmp_path: Path, database: str | None) -> Stack:
    now = datetime.now(UTC)
    overrides: dict[str, Any] = {
        "daemon": {"campaign_tick_interval_s": 0.5},
        "campaigns": {
            "drop": {
                "skus": {SKU: CAMPAIGN_UNITS},
                "channels": ["shop", "woo"],
                "signup": {"opens": (now - timedelta(minutes=5)).isoformat(),
                           "closes": (now + timedelta(minutes=10)).isoformat()},
                "method": "fcfs",
                "limits": {"per_customer": 1, "identity": ["email"]},
                "window_hours": WINDOW_H,
                "reminder_hours_before": REMINDER_H,
                "wave_every_hours": WAVE_H,
            }
        },
    }  # fmt: skip
    config = stack_config(database=database, poll_interval=2)
    config = type(config)(**{**config.__dict__, "overrides": overrides})
    return stack.start_stack(Stack, tmp_path, config, {SKU: IN_STOCK}, actor="test")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def running(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    database = None
    if request.param == "postgres":
        from tests.conftest import PG_ADMIN_URL

        context = stack.fresh_postgres(PG_ADMIN_URL, prefix="stocksync_t_")
        database = context.__enter__()
        request.addfinalizer(lambda: context.__exit__(None, None, None))
    with campaign_stack(tmp_path, database) as s:
        yield s


def sign_up(s: Stack, email: str, channel: str) -> dict[str, Any]:
    reply = requests.post(
        f"{s.daemon_url}/api/campaigns/drop/waitlist",
        json={"email": email, "sku": SKU, "channel": channel},
        timeout=5,
    )
    assert reply.status_code == 201, reply.text
    body: dict[str, Any] = reply.json()
    return body


def entry(s: Stack, entry_id: int) -> campaigns.EntryRow:
    with s.ctx.read() as session:
        return campaigns.entry(session, entry_id)


def status_page(s: Stack, token: str) -> dict[str, Any]:
    reply = requests.get(f"{s.daemon_url}/api/campaigns/drop/entries/{token}", timeout=5)
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


def woo_state(s: Stack) -> dict[str, Any]:
    body: dict[str, Any] = requests.get(f"{s.woo.url}/_sandbox/state", timeout=5).json()
    return body


def woo_order(s: Stack, order_id: str | None) -> dict[str, Any]:
    found = [o for o in woo_state(s)["orders"] if str(o["id"]) == str(order_id)]
    assert len(found) == 1, f"woo order {order_id}: {len(found)} found"
    return found[0]


def reserved_on_shopify(s: Stack) -> int:
    state = requests.get(f"{s.shopify.url}/_sandbox/state", timeout=5).json()
    return int(state["inventory"][SKU]["reserved"])


def reservations(s: Stack, channel: str, external_id: str) -> int:
    with s.ctx.read() as session:
        order = session.scalar(
            select(m.ChannelOrder).where(
                m.ChannelOrder.channel == channel, m.ChannelOrder.external_id == external_id
            )
        )
        if order is None:
            return -1
        return sum(line.reservation.qty for line in order.lines if line.reservation is not None)


class StorefrontBuyer:
    """Tries to buy a unit on each shop every 100 ms."""

    def __init__(self, s: Stack) -> None:
        self.s = s
        self.bought = {"shop": 0, "woo": 0}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> StorefrontBuyer:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._done.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._done.wait(0.1):
            if self.s.checkout_shopify(SKU, 1, "public@example.com").status_code < 300:
                self.bought["shop"] += 1
            if self.s.checkout_woo(SKU, 1, "public@example.com").status_code < 300:
                self.bought["woo"] += 1


def test_campaign_paid_on_both_shops(running: Stack) -> None:
    s = running
    # the sandboxes open with their catalog on sale until the daemon's first push
    s.wait_until(lambda: s.shop_available(SKU) == 0 and s.woo_stock(SKU) == 0,
                 what="the campaign's units taken off sale")  # fmt: skip
    with StorefrontBuyer(s) as buyer:
        ann = sign_up(s, "ann@example.com", "shop")
        bob = sign_up(s, "bob@example.com", "woo")
        cat = sign_up(s, "cat@example.com", "shop")
        dan = sign_up(s, "dan@example.com", "shop")
        ann_id, bob_id, cat_id, dan_id = ann["entry"], bob["entry"], cat["entry"], dan["entry"]

        # the first waves: one Shopify draft (invoice mailed), one WooCommerce pending order
        s.wait_until(
            lambda: entry(s, ann_id).pay_state == "open" and entry(s, bob_id).pay_state == "open",
            timeout=30, what="payment requests made on both shops",
        )  # fmt: skip
        assert entry(s, cat_id).status == "waiting"
        ann_row, bob_row = entry(s, ann_id), entry(s, bob_id)
        assert ann_row.pay_ref is not None and ann_row.pay_ref.startswith(
            "gid://shopify/DraftOrder/"
        )
        assert ann_row.pay_url and status_page(s, ann["token"])["pay_url"] == ann_row.pay_url
        mails = s.shopify.sent_mail()
        assert [mail["to"] for mail in mails] == ["ann@example.com"]
        assert woo_order(s, bob_row.pay_ref)["status"] == "pending"
        assert bob_row.pay_url and "order-pay" in bob_row.pay_url
        assert any(bob_row.pay_url in mail["note"] for mail in s.woo.sent_mail())

        # Ann pays her invoice: the shop's order confirms her entry, reserving once
        draft_id = int(ann_row.pay_ref.rsplit("/", 1)[1])
        paid = s.shopify.pay_draft(draft_id)
        s.wait_until(lambda: entry(s, ann_id).status == "confirmed", timeout=20,
                     what="ann confirmed by the shop's order")  # fmt: skip
        ann_row = entry(s, ann_id)
        assert (ann_row.channel, ann_row.order_ref, ann_row.pay_state) == (
            "shop", str(paid["order_id"]), "paid",
        )  # fmt: skip
        s.wait_until(lambda: reservations(s, "shop", str(paid["order_id"])) == 1, timeout=10,
                     what="ann's order holds her unit")  # fmt: skip

        # Bob is reminded, then lets the deadline pass: his order is cancelled, Cat is invited
        s.wait_until(lambda: entry(s, bob_id).reminded_at is not None, timeout=30,
                     what="bob reminded before his deadline")  # fmt: skip
        s.wait_until(
            lambda: sum(bob_row.pay_url in mail["note"] for mail in s.woo.sent_mail()) >= 2,
            timeout=10, what="the reminder mailed with the link again",
        )  # fmt: skip
        s.wait_until(lambda: entry(s, bob_id).pay_state == "withdrawn", timeout=40,
                     what="bob's allocation expired and his order withdrawn")  # fmt: skip
        assert entry(s, bob_id).status == "expired"
        assert woo_order(s, bob_row.pay_ref)["status"] == "cancelled"
        refused = requests.post(f"{s.woo.url}/_sandbox/orders/{bob_row.pay_ref}/pay", timeout=5)
        assert refused.status_code == 409  # the link no longer takes money

        s.wait_until(lambda: entry(s, cat_id).pay_state == "open", timeout=30,
                     what="cat allocated in the next wave, her draft made")  # fmt: skip
        cat_row = entry(s, cat_id)
        assert cat_row.wave is not None and cat_row.wave > (entry(s, bob_id).wave or 0)
        assert cat_row.pay_ref is not None
        cat_draft = int(cat_row.pay_ref.rsplit("/", 1)[1])
        s.wait_until(lambda: reserved_on_shopify(s) == 1, timeout=10,
                     what="cat's draft reserving her unit on Shopify")  # fmt: skip

        # Cat lets it pass too: her draft is deleted, Dan is invited and pays
        s.wait_until(lambda: entry(s, cat_id).pay_state == "withdrawn", timeout=40,
                     what="cat's draft withdrawn")  # fmt: skip
        assert entry(s, cat_id).status == "expired"
        gone = requests.post(f"{s.shopify.url}/_sandbox/draft_orders/{cat_draft}/pay", timeout=5)
        assert gone.status_code == 404  # deleted: nothing left to pay
        s.wait_until(lambda: entry(s, dan_id).pay_state == "open", timeout=30,
                     what="dan invited")  # fmt: skip
        dan_ref = entry(s, dan_id).pay_ref
        assert dan_ref is not None
        assert reserved_on_shopify(s) == 1  # dan's draft; cat's gave hers back
        s.shopify.pay_draft(int(dan_ref.rsplit("/", 1)[1]))
        s.wait_until(lambda: entry(s, dan_id).status == "confirmed", timeout=20,
                     what="dan confirmed")  # fmt: skip
        s.wait_until(lambda: s.shop_available(SKU) == 0 and s.woo_stock(SKU) == 0, timeout=10,
                     what="both shops settled at nothing for the public")  # fmt: skip

    # never oversold: every unit went to the campaign, none to the public, nothing waits
    assert buyer.bought == {"shop": 0, "woo": 0}
    with s.ctx.read() as session:
        waiting = session.scalar(select(func.coalesce(func.sum(m.Backorder.qty_open), 0)))
        reserved = session.scalar(select(func.coalesce(func.sum(m.Reservation.qty), 0)))
    assert waiting == 0
    assert reserved == CAMPAIGN_UNITS
    assert s.shop_available(SKU) >= 0 and s.woo_stock(SKU) >= 0
