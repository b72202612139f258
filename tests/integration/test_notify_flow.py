"""Customer messages end to end through the ledger (issue #17), SQLite and PostgreSQL: an order
backordered, partly shipped, its date moved, released; what arrives at a real SMTP server
(aiosmtpd, in this process) — To, Subject, the date in the customer's language — once, however
often the notifier and the sender run; retries, failure, a retry by hand; signed webhooks to a
local receiver; a note on a WooCommerce sandbox order; campaign messages."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from backorders import orders
from notify import outbox
from rules import parse_config
from stock import counts, purchasing
from stock.db import upgrade
from sync import campaign_service as service
from sync.jobs.campaign_refunds import settle_refund
from sync.jobs.notify_deliver import notify_tick
from sync.metrics import refresh_gauges
from sync.runtime import Runtime
from sync.stack import free_port
from tests.support.notify import smtp_server, webhook_server

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
X = "\N{MULTIPLICATION SIGN}"  # as in "2 X MUG"
CONFIG = """\
database: {url}
channels:
  popup: {{kind: manual}}
  counter: {{kind: manual}}
{channels}defaults:
  backorders: {{enabled: true, incoming_share: 1.0, horizon_days: 90}}
notify:
  channel_languages: {{counter: nl}}
  timezone: Europe/Amsterdam
  shop_name: Mugs & Co
  max_attempts: 3
  backoff_s: 10
  backoff_max_s: 60
  smtp: {{host: 127.0.0.1, port: {smtp_port}, starttls: false,
         from: "Mugs & Co <shop@mugs.example>"}}
{more}"""


@contextmanager
def running(
    url: str,
    smtp_port: int,
    more: str = "",
    folder: Path | None = None,
    *,
    channels: str = "",
    stock: dict[str, int] | None = None,
) -> Iterator[Runtime]:
    """A migrated ledger with MUG counted, the notifier started (at the end of the log)."""
    upgrade(url)
    name = str((folder or Path()) / "stocksync.yaml")
    text = CONFIG.format(url=url, smtp_port=smtp_port, more=more, channels=channels)
    runtime = Runtime.build(parse_config(text, name, env={}))
    try:
        with runtime.ctx.ledger(actor="test", now=T0 - timedelta(days=1)) as tx:
            for sku, units in (stock or {"MUG": 1}).items():
                counts.set_stock(tx, sku, units)
        notify_tick(runtime, T0)
        yield runtime
    finally:
        runtime.close()


@pytest.fixture
def url(ledger_url: str) -> str:
    """A migrated ledger, SQLite then PostgreSQL (conftest's `ledger_url`)."""
    return ledger_url


def order_input(
    ref: str, qty: int, at: datetime, *, channel: str = "popup", sku: str = "MUG",
    email: str | None = "ann@example.com", language: str | None = None,
) -> orders.OrderInput:  # fmt: skip
    return orders.OrderInput(
        channel, ref, at, at, "open", (orders.LineInput("1", sku, qty),),
        email=email, language=language,
    )  # fmt: skip


def order(runtime: Runtime, ref: str, qty: int, at: datetime, **more: Any) -> orders.Outcome:
    with runtime.ctx.ledger(actor="test", now=at) as tx:
        return orders.record_order(tx, order_input(ref, qty, at, **more))


def messages(runtime: Runtime) -> list[outbox.Message]:
    with runtime.ctx.read() as session:
        return sorted(outbox.listing(session, limit=1000), key=lambda m: m.id)


def test_an_order_told_in_its_language_each_step_once(url: str, tmp_path: Path) -> None:
    with smtp_server() as smtp, running(url, smtp.port) as runtime:
        with runtime.ctx.ledger(actor="test", now=T0) as tx:
            purchasing.add_po(tx, "PO-1", date(2026, 12, 24), {"MUG": 10})
        outcome = order(runtime, "1001", 3, T0 + timedelta(minutes=1), language="sv-SE")
        assert (outcome.reserved, outcome.backordered) == ({"1": 1}, {"1": 2})
        for _ in range(2):  # the notifier and the sender run again: nothing twice
            notify_tick(runtime, T0 + timedelta(minutes=2))
        (first,) = smtp.messages
        assert first["To"] == "ann@example.com"
        assert first["From"] == "Mugs & Co <shop@mugs.example>"
        assert first["Subject"] == "Order 1001: en del skickas senare"
        assert first["Content-Language"] == "sv"
        assert f"- 2 {X} MUG, väntas den 24 december 2026" in first.get_content()
        assert smtp.recipients == [["ann@example.com"]]

        # one unit ships; two still wait for the PO
        with runtime.ctx.ledger(actor="test", now=T0 + timedelta(minutes=3)) as tx:
            orders.ship_order(tx, "popup", "1001", {"MUG": 1})
        # the supplier is late: every waiting customer's date moves
        with runtime.ctx.ledger(actor="test", now=T0 + timedelta(minutes=4)) as tx:
            purchasing.add_po(tx, "PO-1", date(2027, 1, 15), {"MUG": 10})
        notify_tick(runtime, T0 + timedelta(minutes=5))
        shipped, moved = smtp.messages[1:]
        assert shipped["Subject"] == "Order 1001: första delen är på väg"
        assert f"- 1 {X} MUG" in shipped.get_content()
        # rendered when told, from the ledger as it is then: the date already moved
        assert f"- 2 {X} MUG, väntas den 15 januari 2027" in shipped.get_content()
        assert moved["Subject"] == "Order 1001: nytt beräknat datum"
        assert (
            f"- 2 {X} MUG: väntas nu den 15 januari 2027 (tidigare 24 december 2026)"
            in moved.get_content()
        )

        with runtime.ctx.ledger(actor="test", now=T0 + timedelta(minutes=6)) as tx:
            purchasing.receive_po(tx, "PO-1", {"MUG": 10})
        notify_tick(runtime, T0 + timedelta(minutes=7))
        notify_tick(runtime, T0 + timedelta(minutes=8))
        released = smtp.messages[3]
        assert released["Subject"] == "Order 1001: dina varor har kommit in och skickas"
        assert "Därmed är din beställning komplett." in released.get_content()
        assert len(smtp.messages) == 4
        sent = messages(runtime)
        assert [(m.event, m.state, m.attempts, m.language) for m in sent] == [
            ("backorder_created", "sent", 1, "sv"),
            ("partly_shipped", "sent", 1, "sv"),
            ("date_moved", "sent", 1, "sv"),
            ("released_shipping", "sent", 1, "sv"),
        ]
        assert all(m.key.startswith("audit-") and m.key.endswith("-email-ann@example.com")
                   for m in sent)  # fmt: skip


def test_languages_fall_back_and_unknown_addresses_are_skipped(url: str) -> None:
    with smtp_server() as smtp, running(url, smtp.port) as runtime:
        order(runtime, "2001", 2, T0, channel="counter", email="bo@example.nl")  # no language
        order(runtime, "2002", 2, T0, email="cy@example.ru", language="ru")
        order(runtime, "2003", 2, T0, email="di@example.com", language="fi-FI")  # no fi
        order(runtime, "2004", 2, T0, email=None)
        report = notify_tick(runtime, T0 + timedelta(minutes=1))
        assert report.enqueued == {"email": 3}
        subjects = {m["To"]: m["Subject"] for m in smtp.messages}
        assert subjects == {
            "bo@example.nl": "Bestelling 2001: een deel wordt later verzonden",  # the channel's
            "cy@example.ru": "Заказ 2002: часть товаров будет отправлена позже",
            "di@example.com": "Order 2003: some items will ship later",  # the default
        }
        body = next(m for m in smtp.messages if m["To"] == "cy@example.ru").get_content()
        assert "дата пока неизвестна" in body  # no purchase order: no date


def test_smtp_down_retries_then_fails_and_a_retry_by_hand_sends_it(
    tmp_path: Path, fresh_sqlite: Callable[[Path], str]
) -> None:
    port = free_port()  # nothing listens there yet
    with running(fresh_sqlite(tmp_path), port) as runtime:
        order(runtime, "3001", 2, T0)
        at = T0 + timedelta(minutes=1)
        first = notify_tick(runtime, at)
        assert first.delivery.retried == 1
        (message,) = messages(runtime)
        assert (message.state, message.attempts) == ("pending", 1)
        assert message.next_attempt_at == at + timedelta(seconds=10)
        assert "cannot connect" in (message.last_error or "")
        assert notify_tick(runtime, at + timedelta(seconds=5)).delivery.retried == 0  # not due
        notify_tick(runtime, at + timedelta(seconds=10))  # attempt 2, next after 20 s
        (message,) = messages(runtime)
        assert (message.attempts, message.next_attempt_at) == (2, at + timedelta(seconds=30))
        last = notify_tick(runtime, at + timedelta(seconds=30))  # attempt 3 of 3
        assert [i for i, _e in last.delivery.failed] == [message.id]
        (message,) = messages(runtime)
        assert (message.state, message.attempts) == ("failed", 3)
        with runtime.ctx.read() as session:
            refresh_gauges(runtime.metrics, session, list(runtime.channels))
        assert runtime.metrics.registry.get_sample_value(
            "stocksync_notify_failed", {"kind": "email"}
        ) == 1  # fmt: skip
        assert notify_tick(runtime, at + timedelta(hours=5)).delivery.total_sent == 0

        with smtp_server(port) as smtp:
            with runtime.ctx.read() as session:
                assert outbox.retry(session, at + timedelta(hours=6), [message.id]) == [message.id]
            done = notify_tick(runtime, at + timedelta(hours=6))
            assert done.delivery.sent == {"email": 1}
            (mail,) = smtp.messages
            assert mail["Subject"] == "Order 3001: some items will ship later"
        (message,) = messages(runtime)
        assert (message.state, message.attempts, message.last_error) == ("sent", 1, None)
        assert runtime.metrics.registry.get_sample_value(
            "stocksync_notify_sent_total", {"kind": "email"}
        ) == 1  # fmt: skip


def test_a_recipient_the_server_refuses_fails_at_once(
    tmp_path: Path, fresh_sqlite: Callable[[Path], str]
) -> None:
    with smtp_server() as smtp, running(fresh_sqlite(tmp_path), smtp.port) as runtime:
        smtp.refuse.add("gone@example.com")
        order(runtime, "3101", 2, T0, email="gone@example.com")
        report = notify_tick(runtime, T0 + timedelta(minutes=1))
        (message,) = messages(runtime)
        assert message.state == "failed" and message.attempts == 1, message
        assert report.delivery.failed == [(message.id, message.last_error)]
        assert "SMTP refused" in (message.last_error or "")
        assert smtp.messages == []


def test_webhooks_are_signed_retried_and_sent_once_per_entry_and_hook(
    tmp_path: Path, fresh_sqlite: Callable[[Path], str]
) -> None:
    (tmp_path / "hook.secret").write_text("hook-s3cret\n", encoding="utf-8")
    with webhook_server() as hooks, smtp_server() as smtp:
        more = (
            "  webhooks:\n"
            f"    - {{url: '{hooks.url}', events: ['order.*', 'campaign.*'],"
            " secret_file: hook.secret}\n"
        )
        with running(fresh_sqlite(tmp_path), smtp.port, more, tmp_path) as runtime:
            hooks.status = 503
            order(runtime, "4001", 2, T0)
            with runtime.ctx.ledger(actor="test", now=T0) as tx:
                counts.set_stock(tx, "CAP", 5)  # stock.set: not hooked
            first = notify_tick(runtime, T0 + timedelta(minutes=1))
            assert first.enqueued == {"email": 1, "webhook": 1}
            assert len(hooks.posts) == 1 and first.delivery.retried == 1
            hooks.status = 204
            notify_tick(runtime, T0 + timedelta(minutes=2))
            notify_tick(runtime, T0 + timedelta(minutes=3))
            assert len(hooks.posts) == 2  # the retry; then nothing more
            post = hooks.posts[1]
            assert post.body == hooks.posts[0].body  # the same bytes each attempt
            expected = hmac.new(b"hook-s3cret", post.body, hashlib.sha256).hexdigest()
            assert post.headers["X-Stocksync-Signature"] == f"sha256={expected}"
            assert post.headers["X-Stocksync-Event"] == "order.recorded"
            assert post.headers["Content-Type"] == "application/json"
            data = json.loads(post.body)
            assert data["event"] == "order.recorded" and data["subject"] == "popup/4001"
            assert data["detail"]["backordered"] == {"1": 1}
            assert data["message"] == "backorder_created"
            (hook_message,) = [m for m in messages(runtime) if m.kind == "webhook"]
            assert post.headers["X-Stocksync-Delivery"] == str(hook_message.id)
            assert (hook_message.state, hook_message.attempts) == ("sent", 2)
            assert len(smtp.messages) == 1


def test_a_note_on_a_woocommerce_order(tmp_path: Path, fresh_sqlite: Callable[[Path], str]) -> None:
    from connectors.sandbox.woocommerce import WooCommerceSandbox
    from tests.woocommerce_support import rest_api

    with WooCommerceSandbox(catalog={"MUG": 5}) as shop, smtp_server() as smtp:
        answer = requests.post(
            f"{shop.url}/_sandbox/checkout",
            json={"sku": "MUG", "quantity": 2, "email": "eve@example.com"}, timeout=10,
        )  # fmt: skip
        answer.raise_for_status()
        order_id = str(answer.json()["id"])
        woo = (
            f"  woo: {{kind: woocommerce, url: '{shop.url}', consumer_key: ck_sandbox,"
            " consumer_secret: cs_sandbox, webhook_secret: sandbox-secret, poll: false}\n"
        )
        with running(
            fresh_sqlite(tmp_path), smtp.port, "  shop_notes: true\n", channels=woo
        ) as runtime:
            order(runtime, order_id, 3, T0, channel="woo", email="eve@example.com",
                  language="nl")  # fmt: skip
            order(runtime, "7001", 3, T0, email="fay@example.com")  # manual: no note
            report = notify_tick(runtime, T0 + timedelta(minutes=1))
            assert report.enqueued == {"email": 2, "shop_note": 1}
            assert report.delivery.sent == {"email": 2, "shop_note": 1}
            notify_tick(runtime, T0 + timedelta(minutes=2))
            notes = rest_api(shop).get(f"orders/{order_id}/notes").json()
            (note,) = [n for n in notes if n["customer_note"]]
            assert note["note"].startswith("Hallo,")
            assert "verwacht op een datum die we nog niet weten" in note["note"]
            subjects = sorted(str(m["Subject"]) for m in smtp.messages)
            assert subjects == [
                f"Bestelling {order_id}: een deel wordt later verzonden",
                "Order 7001: some items will ship later",
            ]


def test_a_channel_that_takes_no_notes_fails_the_note_clearly(
    tmp_path: Path, fresh_sqlite: Callable[[Path], str]
) -> None:
    from notify.send import SendError
    from sync.jobs.notify_deliver import shop_note

    with smtp_server() as smtp, running(fresh_sqlite(tmp_path), smtp.port) as runtime:
        with pytest.raises(SendError, match="'popup' is not a connected shop") as caught:
            shop_note(runtime, "popup/1", "hello")
        assert caught.value.permanent


CAMPAIGN = """\
campaigns:
  drop:
    skus: {TEE: 1}
    channels: [counter]
    signup: {opens: 2026-12-01T10:00:00+00:00, closes: 2026-12-04T10:00:00+00:00}
    window_hours: 12
    reminder_hours_before: 2
    wave_every_hours: 2
    payment:
      mode: deposit
      currency: EUR
      prices: {TEE: "60.00"}
      deposit: {percent: 20}
"""


def test_campaign_customers_are_told_each_step(url: str, tmp_path: Path) -> None:
    with smtp_server() as smtp:
        upgrade(url)
        text = CONFIG.format(url=url, smtp_port=smtp.port, more="", channels="") + CAMPAIGN
        runtime = Runtime.build(parse_config(text, "stocksync.yaml", env={}))
        try:
            with runtime.ctx.ledger(actor="test", now=T0 - timedelta(days=1)) as tx:
                counts.set_stock(tx, "TEE", 1)
            notify_tick(runtime, T0)

            def ledger(at: datetime) -> Any:
                return runtime.ctx.ledger(actor="test", now=at)

            entries = {}
            for minute, who in enumerate(("ann", "bob"), start=1):
                with ledger(T0 + timedelta(minutes=minute)) as tx:
                    entries[who] = service.sign_up(tx, runtime.config, "drop", service.SignUp(
                        f"{who}@example.com", "TEE", accept_terms=True,
                        deposit_paid=("counter", f"cash-{who}"),
                    ))  # fmt: skip
            notify_tick(runtime, T0 + timedelta(minutes=3))
            assert [(m["To"], m["Subject"]) for m in smtp.messages] == [
                ("ann@example.com", "Je staat op de wachtlijst voor drop"),
                ("bob@example.com", "Je staat op de wachtlijst voor drop"),
            ]
            with ledger(T0 + timedelta(hours=1)) as tx:
                service.tick(tx, runtime.config, "drop")  # the first wave: ann
            notify_tick(runtime, T0 + timedelta(hours=1, minutes=1))
            allocated = smtp.messages[2]
            assert (allocated["To"], allocated["Subject"]) == (
                "ann@example.com", "drop: je exemplaar ligt klaar",
            )  # fmt: skip
            body = allocated.get_content()
            # 12 hours to pay: 23:00 UTC is midnight in Amsterdam; 60.00 less a 20% deposit
            assert "is voor je gereserveerd tot 2 december 2026 om 00:00 CET." in body
            assert "Te betalen: 48,00 EUR." in body
            with ledger(T0 + timedelta(hours=11)) as tx:
                service.tick(tx, runtime.config, "drop")  # two hours before: the reminder
            with ledger(T0 + timedelta(hours=14)) as tx:
                service.tick(tx, runtime.config, "drop")  # ann did not pay
            with ledger(T0 + timedelta(days=4)) as tx:
                service.tick(tx, runtime.config, "drop")  # bob's turn came; then the close
            notify_tick(runtime, T0 + timedelta(days=4, minutes=1))
            told = [(m["To"], m["Subject"]) for m in smtp.messages[3:]]
            assert told[:2] == [
                ("ann@example.com", "Herinnering: drop is voor je gereserveerd tot "
                 "2 december 2026 om 00:00 CET"),
                ("ann@example.com", "drop: je reservering is verlopen"),
            ]  # fmt: skip
            assert ("bob@example.com", "drop: je exemplaar ligt klaar") in told
            # what ann paid comes back (a manual channel: the merchant refunds it by hand)
            with runtime.ctx.read() as session:
                from stock import campaign_money

                ann = entries["ann"].id
                planned = [r.id for r in campaign_money.of_entries(session, [ann])[ann]
                           if r.kind == "refund"]  # fmt: skip
            for money_id in planned:
                settle_refund(runtime, money_id)
            notify_tick(runtime, T0 + timedelta(days=4, minutes=2))
            refunded = smtp.messages[-1]
            assert (refunded["To"], refunded["Subject"]) == (
                "ann@example.com", "drop: je geld komt terug",
            )  # fmt: skip
            assert "We betalen 12,00 EUR aan je terug voor drop" in refunded.get_content()
            from notify import notifier
            from notify.render import Renderer

            with runtime.ctx.read() as session:  # what `notify preview --entry` shows
                _prepared, language, subject, body = notifier.preview(
                    session, runtime.config.notify, Renderer(), "deposit_refunded",
                    entry=entries["ann"].id, language="en",
                )  # fmt: skip
            assert (language, subject) == ("en", "drop: your money is on its way back")
            assert "We are refunding 12.00 EUR for drop" in body
        finally:
            runtime.close()


def test_two_senders_never_claim_one_message(url: str) -> None:
    from notify import notifier
    from notify.render import Renderer

    with smtp_server() as smtp, running(url, smtp.port) as runtime:
        order(runtime, "5001", 2, T0)
        with runtime.ctx.read() as session:  # the message is made; nobody sends it yet
            notifier.run_batch(session, runtime.config.notify, Renderer(), T0)
        at = T0 + timedelta(minutes=2)
        first = runtime.ctx.sessions()
        second = runtime.ctx.sessions()
        try:
            with first.begin():
                claimed = outbox.claim_due(first, at, 10)
                assert len(claimed) == 1
                if runtime.ctx.engine.dialect.name == "postgresql":
                    # while the first holds its rows, the second skips them (SKIP LOCKED)
                    with second.begin():
                        assert outbox.claim_due(second, at, 10) == []
            with second.begin():  # claimed: nobody else takes it within the lease
                assert outbox.claim_due(second, at + timedelta(minutes=1), 10) == []
            later = at + outbox.CLAIM_LEASE + timedelta(seconds=1)
            with second.begin():  # a sender that died: its claim runs out, taken again
                again = outbox.claim_due(second, later, 10)
                assert [m.id for m in again] == [claimed[0].id]
            with first.begin():  # the first sender lost its claim: its outcome is not kept
                assert not outbox.record_sent(first, claimed[0], at)
            with first.begin():
                assert outbox.record_sent(first, again[0], later)
        finally:
            first.close()
            second.close()
        assert smtp.messages == []
        assert [(m.state, m.attempts) for m in messages(runtime)] == [("sent", 1)]


@pytest.mark.postgres
def test_an_entry_committed_late_is_not_skipped(pg_url: str) -> None:
    """PostgreSQL hands out ids before commit: the cursor waits at the gap."""
    from sqlalchemy import func, select

    from stock import models as m
    from stock.tx import LedgerTx

    with smtp_server() as smtp, running(pg_url, smtp.port) as runtime:
        late = runtime.ctx.sessions()
        try:
            with late.begin():  # this order's entries get their ids first, commit last
                tx = LedgerTx(late, runtime.config, list(runtime.config.channels), now=T0,
                              actor="test")  # fmt: skip
                orders.record_order(tx, order_input("6001", 2, T0, email="late@example.com"))
                late.flush()
                order(runtime, "6002", 2, T0, sku="CAP", email="early@example.com")
                report = notify_tick(runtime, T0 + timedelta(minutes=1))
                assert [mail["To"] for mail in smtp.messages] == ["early@example.com"]
                with runtime.ctx.read() as session:
                    newest = session.scalar(select(func.max(m.AuditEntry.id)))
                assert report.cursor < (newest or 0)  # stopped before the uncommitted ids
        finally:
            late.close()
        notify_tick(runtime, T0 + timedelta(minutes=2))
        notify_tick(runtime, T0 + timedelta(minutes=20))
        assert sorted(str(mail["To"]) for mail in smtp.messages) == [
            "early@example.com", "late@example.com",
        ]  # fmt: skip


def test_the_daemon_tells_customers_on_its_schedule(
    tmp_path: Path, fresh_sqlite: Callable[[Path], str]
) -> None:
    from sqlalchemy import select

    from stock import models as m
    from sync.daemon import Daemon
    from sync.stack import wait_until

    with smtp_server() as smtp:
        url = fresh_sqlite(tmp_path)
        text = CONFIG.format(url=url, smtp_port=smtp.port, more="", channels="") + (
            "daemon: {notify_interval_s: 0.2, sweep_interval_s: 3600, poll_interval_s: 3600}\n"
        )
        daemon = Daemon(parse_config(text, "stocksync.yaml", env={}), "127.0.0.1", 0,
                        worker_threads=1)  # fmt: skip
        daemon.start()
        try:
            ctx = daemon.runtime.ctx

            def started() -> bool:
                with ctx.read() as session:
                    return session.scalar(select(m.NotifyCursor.name)) is not None

            wait_until(started, timeout=10)
            with ctx.ledger(actor="test") as tx:
                orders.record_order(tx, order_input("8001", 2, tx.now, email="gus@example.com"))
            wait_until(lambda: len(smtp.messages) == 1, timeout=10)
            assert smtp.messages[0]["Subject"] == "Order 8001: some items will ship later"
        finally:
            daemon.stop()


def test_a_broken_template_fails_its_message_until_fixed_and_retried(
    tmp_path: Path, fresh_sqlite: Callable[[Path], str]
) -> None:
    from notify import notifier
    from notify.render import RenderError

    own = tmp_path / "mail" / "en"
    own.mkdir(parents=True)
    template = own / "backorder_created.j2"
    template.write_text(
        "{% block subject %}Order {{ order.reff }}{% endblock %}{% block body %}x{% endblock %}",
        encoding="utf-8",
    )
    more = "  templates_dir: mail\n"
    with smtp_server() as smtp, running(fresh_sqlite(tmp_path), smtp.port, more, tmp_path) as rt:
        order(rt, "9001", 2, T0)
        order(rt, "9002", 2, T0, language="nl")  # Dutch: the packaged template, unharmed
        report = notify_tick(rt, T0 + timedelta(minutes=1))
        assert report.delivery.sent == {"email": 1}
        broken = next(m for m in messages(rt) if m.state == "failed")
        assert broken.last_error is not None
        assert broken.last_error.startswith("template: en/backorder_created.j2:")
        assert "'reff'" in broken.last_error
        with rt.ctx.read() as session, pytest.raises(RenderError):
            notifier.retry(session, rt.config.notify, T0, [broken.id])  # still broken
        assert [m.state for m in messages(rt)] == ["failed", "sent"]
        template.write_text(
            "{% block subject %}Order {{ order.ref }} waits{% endblock %}"
            "{% block body %}Until {{ promised_on|date if promised_on else 'later' }}."
            "{% endblock %}",
            encoding="utf-8",
        )
        with rt.ctx.read() as session:
            assert notifier.retry(session, rt.config.notify, T0, all_failed=True) == [broken.id]
        notify_tick(rt, T0 + timedelta(minutes=2))
        subjects = sorted(str(mail["Subject"]) for mail in smtp.messages)
        assert subjects == ["Bestelling 9002: een deel wordt later verzonden", "Order 9001 waits"]
        assert smtp.messages[-1].get_content().strip() == "Until later."


def test_a_cancelled_order_is_not_told_it_waits(url: str) -> None:
    with smtp_server() as smtp, running(url, smtp.port) as runtime:
        order(runtime, "9101", 2, T0)
        with runtime.ctx.ledger(actor="test", now=T0 + timedelta(seconds=30)) as tx:
            orders.cancel_order(tx, "popup", "9101")
        report = notify_tick(runtime, T0 + timedelta(minutes=1))
        assert report.enqueued == {} and smtp.messages == []
