"""Merchant alerts on the ledger (issue #17), SQLite and PostgreSQL: an incident opens once
when a condition starts (one `alert.<kind>` audit entry, which is what the merchant is sent),
stays quiet while it lasts, and closes once when it ends (`alert.resolved`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from backorders import orders
from backorders.orders import LineInput, OrderInput
from notify import alerts
from notify.alert_rules import AlertRules
from stock import channel_state
from stock import models as m
from sync.context import AppContext
from tests.support.ledger import ledger_fixture

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
CONFIG = """\
database: {url}
channels:
  popup: {{kind: manual}}
"""
RULES = AlertRules(spike_factor=3.0, spike_min_units=5, trailing_days=7)


ctx = ledger_fixture(CONFIG, {"TEE": 100}, T0)


def sell(app: AppContext, ref: str, qty: int, at: datetime) -> None:
    with app.ledger(actor="test", now=at) as tx:
        orders.record_order(
            tx, OrderInput("popup", ref, at, at, "open", (LineInput("1", "TEE", qty),))
        )


def run(app: AppContext, now: datetime) -> dict[str, list[dict[str, object]]]:
    with app.sessions.begin() as session:
        return alerts.run(session, now, RULES)


def alert_entries(app: AppContext) -> list[tuple[str, str]]:
    with app.read() as session:
        return [
            (e.action, e.subject)
            for e in session.scalars(
                select(m.AuditEntry)
                .where(m.AuditEntry.action.like("alert.%"))
                .order_by(m.AuditEntry.id)
            )
        ]


def test_one_alert_per_incident_not_per_sample(ctx: AppContext) -> None:
    sell(ctx, "a", 2, T0 - timedelta(days=3))  # 2 in a week: a daily rate of 2/7
    for index in range(3):
        sell(ctx, f"s{index}", 2, T0 + timedelta(minutes=10 * index))  # 6 in the hour
    now = T0 + timedelta(minutes=40)
    first = run(ctx, now)
    assert [(x["kind"], x["subject"]) for x in first["opened"]] == [("spike", "TEE")]
    assert first["opened"][0]["sold_last_hour"] == 6
    # the spike lasts: sampled again and again, nothing more is sent
    assert run(ctx, now + timedelta(minutes=1)) == {"opened": [], "closed": []}
    assert run(ctx, now + timedelta(minutes=2)) == {"opened": [], "closed": []}

    # a channel starts failing auth while the spike goes on: a second incident, of its own
    with ctx.sessions.begin() as session:
        channel_state.hold_for_auth(session, "popup", "401 Unauthorized", now, trial=False)
    opened = run(ctx, now + timedelta(minutes=3))["opened"]
    assert [(x["kind"], x["subject"]) for x in opened] == [("channel_auth", "popup")]

    # an hour later the sales are ordinary again: the spike closes, once; auth still fails
    later = now + timedelta(hours=2)
    closed = run(ctx, later)["closed"]
    assert [(x["kind"], x["subject"]) for x in closed] == [("spike", "TEE")]
    assert run(ctx, later + timedelta(minutes=1)) == {"opened": [], "closed": []}
    assert alert_entries(ctx) == [
        ("alert.spike", "TEE"), ("alert.channel_auth", "popup"), ("alert.resolved", "TEE"),
    ]  # fmt: skip
    with ctx.read() as session:
        assert [(x["kind"], x["subject"]) for x in alerts.open_incidents(session)] == [
            ("channel_auth", "popup")
        ]


def test_the_merchant_is_emailed_once_when_an_alert_opens_and_once_when_it_ends(
    tmp_path: Path, fresh_sqlite: Callable[[Path], str]
) -> None:
    from rules import parse_config
    from stock.db import upgrade
    from sync.jobs.notify_deliver import notify_tick
    from sync.runtime import Runtime
    from tests.support.notify import smtp_server

    url = fresh_sqlite(tmp_path)
    upgrade(url)
    with smtp_server() as smtp:
        text = CONFIG.format(url=url) + (
            "notify:\n"
            f"  smtp: {{host: 127.0.0.1, port: {smtp.port}, starttls: false, "
            "from: shop@example.com}\n"
            "  alerts: {email: owner@example.com, exception_queue_threshold: 0}\n"
        )
        runtime = Runtime.build(parse_config(text, str(tmp_path / "stocksync.yaml"), env={}))
        try:
            notify_tick(runtime, T0)  # starts at the end of the log
            with runtime.ctx.sessions.begin() as session:
                channel_state.hold_for_auth(session, "popup", "401 Unauthorized", T0, trial=False)
            for minute in (1, 2, 3):  # sampled three times: one incident, one email
                notify_tick(runtime, T0 + timedelta(minutes=minute))
            assert smtp.recipients == [["owner@example.com"]]
            assert [x["Subject"] for x in smtp.messages] == [
                "[stocksync] alert: channel_auth popup"
            ]
            assert "401 Unauthorized" in smtp.bodies()[0]
            with runtime.ctx.sessions.begin() as session:
                channel_state.clear_auth_hold(session, "popup")
            notify_tick(runtime, T0 + timedelta(minutes=4))
            notify_tick(runtime, T0 + timedelta(minutes=5))
            assert [x["Subject"] for x in smtp.messages][1:] == [
                "[stocksync] resolved: channel_auth popup"
            ]
        finally:
            runtime.close()
