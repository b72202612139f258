"""Campaign payments on shops, as the ledger records them (issue #15), on SQLite and
PostgreSQL with an injected clock: an allocation on a shop asks for a payment request; the
shop's paid order confirms the entry (its proof checked, once, late payments too); an ended
allocation withdraws its request; reminders before deadlines; more stock invites the next in
line at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from backorders import orders
from stock import campaigns, counts, offers
from stock import models as m
from sync import campaign_service as service
from sync.context import AppContext
from tests.support.ledger import ledger_fixture

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
CONFIG = """\
database: {url}
channels:
  shop: {{kind: shopify, shop: drop.myshopify.com, token: t, webhook_secret: s}}
  woo: {{kind: woocommerce, url: "http://woo.example.com", consumer_key: ck_x,
         consumer_secret: cs_x, webhook_secret: s}}
  popup: {{kind: manual}}
campaigns:
  drop:
    skus: {{TEE-M: 2}}
    channels: [shop, woo, popup]
    signup: {{opens: 2026-12-01T10:00:00+00:00, closes: 2026-12-04T10:00:00+00:00}}
    method: fcfs
    limits: {{per_customer: 1, identity: [email]}}
    window_hours: 12
    reminder_hours_before: 4
    wave_every_hours: 2
"""


ctx = ledger_fixture(CONFIG, {"TEE-M": 3}, T0 - timedelta(days=1))


def sign_up(ctx: AppContext, minute: int, email: str, channel: str) -> campaigns.EntryRow:
    with ctx.ledger(actor="test", now=T0 + timedelta(minutes=minute)) as tx:
        return service.sign_up(
            tx, ctx.config, "drop", service.SignUp(email, "TEE-M", channel=channel)
        )


def tick(ctx: AppContext, at: datetime) -> tuple[dict[str, Any], set[int]]:
    with ctx.ledger(actor="test", now=at) as tx:
        done = service.tick(tx, ctx.config, "drop")
    return done, set(tx.effects.payments)


def entry(ctx: AppContext, entry_id: int) -> campaigns.EntryRow:
    with ctx.read() as session:
        return campaigns.entry(session, entry_id)


def terms(ctx: AppContext, channel: str, at: datetime) -> dict[str, Any]:
    with ctx.ledger(actor="test", now=at) as tx:
        _value, found = offers.offer(tx, channel, "TEE-M")
    return found


def made_on_shop(ctx: AppContext, entry_id: int, at: datetime, ref: str) -> None:
    """What the payment job records once the shop made the request."""
    with ctx.ledger(actor="test", now=at) as tx:
        assert campaigns.claim_payment(tx, entry_id, timedelta(minutes=2)) is not None
    with ctx.ledger(actor="test", now=at) as tx:
        campaigns.record_payment(tx, entry_id, "open", "payment link sent", pay_ref=ref,
                                 pay_url=f"https://pay.example/{ref}")  # fmt: skip


def shop_order(
    external_id: str, proof: str | None, at: datetime, channel: str = "shop"
) -> orders.OrderInput:
    return orders.OrderInput(
        channel, external_id, at, at, "open", (orders.LineInput("1", "TEE-M", 1),),
        customer_key="c", payment_proof=proof,
    )  # fmt: skip


def pay(ctx: AppContext, order: orders.OrderInput) -> str:
    """As the inbox applies a shop order: the campaign first, then the order."""
    with ctx.ledger(actor="test", now=order.updated_at) as tx:
        orders.prepare(tx, [order])
        result = service.paid_on_shop(tx, ctx.config, order)
        outcome = orders.record_order(tx, order)
    assert not outcome.backordered  # the unit set aside serves it: never short
    return result


def test_a_shop_payment_confirms_once_and_takes_the_unit_set_aside(ctx: AppContext) -> None:
    ann = sign_up(ctx, 1, "ann@example.com", "shop")
    bob = sign_up(ctx, 2, "bob@example.com", "woo")
    done, calls = tick(ctx, T0 + timedelta(minutes=5))
    assert {row["entry"] for row in done["wave"]["allocated"]} == {ann.id, bob.id}
    assert calls == {ann.id, bob.id}  # each asks for its payment request
    ann = entry(ctx, ann.id)
    assert (ann.pay_state, ann.pay_channel, ann.channel) == ("requested", "shop", "shop")
    assert terms(ctx, "shop", T0)["offered"] == 1  # 3 on hand, 2 set aside

    made_on_shop(ctx, ann.id, T0 + timedelta(minutes=6), "gid://shopify/DraftOrder/9")
    proof = service.payment_proof(entry(ctx, ann.id))
    forged = f"{ann.id}:{'x' * 12}"
    at = T0 + timedelta(hours=1)
    assert pay(ctx, shop_order("5001", forged, at)) == "unknown"  # taken as any order
    assert entry(ctx, ann.id).status == "allocated"
    assert pay(ctx, shop_order("5002", proof, at)) == "confirmed"
    ann = entry(ctx, ann.id)
    assert (ann.status, ann.order_ref, ann.pay_state) == ("confirmed", "5002", "paid")
    assert pay(ctx, shop_order("5002", proof, at + timedelta(seconds=1))) == "repeated"
    # the forged order took the public unit; Ann's took hers: still nothing offered, nothing
    # set aside for her any more
    found = terms(ctx, "shop", at)
    assert (found["reserved"], found["campaign_hold"], found["offered"]) == (2, 1, 0)
    with ctx.read() as session:
        actions = set(session.scalars(select(m.AuditEntry.action)))
    assert {"campaign.payment_unknown", "campaign.payment", "campaign.confirmed"} <= actions


def test_a_reminder_then_an_ended_allocation_withdraws_its_request(
    ctx: AppContext,
) -> None:
    ann = sign_up(ctx, 1, "ann@example.com", "shop")
    tick(ctx, T0 + timedelta(minutes=5))
    made_on_shop(ctx, ann.id, T0 + timedelta(minutes=6), "gid://shopify/DraftOrder/9")
    reminded, calls = tick(ctx, T0 + timedelta(hours=8, minutes=5))  # 4 h before the deadline
    assert reminded["reminded"] == [ann.id] and calls == {ann.id}
    assert entry(ctx, ann.id).pay_state == "reminding"
    assert tick(ctx, T0 + timedelta(hours=9))[0]["reminded"] == []  # once
    with ctx.ledger(actor="test", now=T0 + timedelta(hours=9)) as tx:
        campaigns.record_payment(tx, ann.id, "open", "reminder sent")

    done, calls = tick(ctx, T0 + timedelta(hours=12, minutes=6))
    assert done["expired"] == [ann.id] and ann.id in calls
    assert entry(ctx, ann.id).pay_state == "withdrawing"
    at = T0 + timedelta(hours=12, minutes=7)
    with ctx.ledger(actor="test", now=at) as tx:
        assert campaigns.claim_payment(tx, ann.id, timedelta(minutes=2)) is not None
    with ctx.ledger(actor="test", now=at) as tx:
        campaigns.record_payment(tx, ann.id, "withdrawn", "payment request taken back")
    assert entry(ctx, ann.id).pay_state == "withdrawn"
    assert tick(ctx, at + timedelta(minutes=1))[1] == set()  # nothing left to call

    # she pays anyway, through a link she kept: a unit is still free, so she is confirmed
    assert pay(ctx, shop_order("5003", service.payment_proof(ann), at)) == "confirmed_late"


def test_a_late_payment_without_a_free_unit_is_taken_like_any_order(ctx: AppContext) -> None:
    ann = sign_up(ctx, 1, "ann@example.com", "shop")
    bob = sign_up(ctx, 2, "bob@example.com", "woo")
    cat = sign_up(ctx, 3, "cat@example.com", "woo")
    tick(ctx, T0 + timedelta(minutes=5))  # ann and bob
    done, _calls = tick(ctx, T0 + timedelta(hours=12, minutes=6))  # both expire, cat invited
    assert set(done["expired"]) == {ann.id, bob.id}
    assert [row["entry"] for row in done["wave"]["allocated"]] == [cat.id]
    with ctx.ledger(actor="test", now=T0 + timedelta(hours=13)) as tx:  # a unit was damaged
        counts.set_stock(tx, "TEE-M", 1)
    order = shop_order("5004", service.payment_proof(entry(ctx, ann.id)), T0 + timedelta(hours=13))
    with ctx.ledger(actor="test", now=order.updated_at) as tx:
        orders.prepare(tx, [order])
        assert service.paid_on_shop(tx, ctx.config, order) == "late"
        orders.record_order(tx, order)
    assert entry(ctx, ann.id).status == "expired"


def test_more_stock_invites_the_next_in_line_before_the_next_wave(ctx: AppContext) -> None:
    with ctx.ledger(actor="test", now=T0) as tx:
        counts.set_stock(tx, "TEE-M", 1)
    ann = sign_up(ctx, 1, "ann@example.com", "popup")
    bob = sign_up(ctx, 2, "bob@example.com", "popup")
    first, calls = tick(ctx, T0 + timedelta(minutes=5))
    assert [row["entry"] for row in first["wave"]["allocated"]] == [ann.id]
    assert calls == set()  # a manual channel: confirmed by hand, nothing asked of a shop
    assert tick(ctx, T0 + timedelta(minutes=10))[0]["wave"] is None  # next wave at +2 h
    with ctx.ledger(actor="test", now=T0 + timedelta(minutes=20)) as tx:
        counts.set_stock(tx, "TEE-M", 2)  # one more arrives
    invited, _calls = tick(ctx, T0 + timedelta(minutes=21))
    assert invited["wave"]["trigger"] == "stock_up"
    assert [row["entry"] for row in invited["wave"]["allocated"]] == [bob.id]


def test_paying_by_hand_withdraws_the_shop_request(ctx: AppContext) -> None:
    ann = sign_up(ctx, 1, "ann@example.com", "shop")
    tick(ctx, T0 + timedelta(minutes=5))
    made_on_shop(ctx, ann.id, T0 + timedelta(minutes=6), "gid://shopify/DraftOrder/9")
    with ctx.ledger(actor="test", now=T0 + timedelta(hours=1)) as tx:
        service.confirm(tx, ctx.config, ann.id, "popup")
        assert tx.effects.payments == {ann.id}
    ann = entry(ctx, ann.id)
    assert (ann.status, ann.channel, ann.pay_channel, ann.pay_state) == (
        "confirmed", "popup", "shop", "withdrawing",
    )  # fmt: skip


def test_a_request_made_after_its_allocation_ended_is_taken_back(ctx: AppContext) -> None:
    ann = sign_up(ctx, 1, "ann@example.com", "woo")
    tick(ctx, T0 + timedelta(minutes=5))
    with ctx.ledger(actor="test", now=T0 + timedelta(minutes=6)) as tx:
        assert campaigns.claim_payment(tx, ann.id, timedelta(minutes=2)) is not None
    # the shop call takes long; a second claim meanwhile is refused
    with ctx.ledger(actor="test", now=T0 + timedelta(minutes=7)) as tx:
        assert campaigns.claim_payment(tx, ann.id, timedelta(minutes=2)) is None
    with ctx.ledger(actor="test", now=T0 + timedelta(minutes=8)) as tx:
        item = campaigns.entry(tx.session, ann.id)
        campaigns.change(tx, item, "declined", "test: ended", expected=("allocated",))
    with ctx.ledger(actor="test", now=T0 + timedelta(minutes=9)) as tx:
        row = campaigns.record_payment(tx, ann.id, "open", "payment link sent", pay_ref="77")
        assert tx.effects.payments == {ann.id}
    assert row.pay_state == "withdrawing"
