"""Campaign money on the ledger (issue #16), SQLite and PostgreSQL, with an injected clock:
terms accepted and kept per entry, deposits recorded once, balances with confirmations, and the
refund rules — in full until allocation or when no unit came by the date, all but the fee for a
missed balance or a cancellation, after the production lock only if the unit is re-allocated
within a day — each planned once; the payments report adds up."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from rules import ConfigError, parse_config
from stock import campaign_money, campaigns, counts
from stock.tx import LedgerInputError
from sync import campaign_money_report, campaign_report
from sync import campaign_service as service
from sync.context import AppContext
from tests.support.ledger import ledger_fixture

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
CONFIG = """\
database: {url}
channels:
  popup: {{kind: manual}}
  woo: {{kind: woocommerce, url: "http://woo.example.com", consumer_key: ck_x,
         consumer_secret: cs_x, webhook_secret: s}}
campaigns:
  drop:
    skus: {{TEE-M: 2}}
    channels: [popup, woo]
    signup: {{opens: 2026-12-01T10:00:00+00:00, closes: 2026-12-04T10:00:00+00:00}}
    wave_every_hours: 2
    payment:
      mode: deposit
      currency: EUR
      prices: {{TEE-M: "60.00"}}
      deposit: {{percent: 20}}
      balance_due_hours: 12
      refund_unallocated_after: 2026-12-06T10:00:00+00:00
      cancellation_fee: "5.00"
      production_lock: 2026-12-10T10:00:00+00:00
      deposit_sku: DEPOSIT-TEE
"""


ctx = ledger_fixture(CONFIG, {"TEE-M": 2}, T0 - timedelta(days=1))


def sign_up(ctx: AppContext, minute: int, email: str, **more: Any) -> campaigns.EntryRow:
    form = service.SignUp(email, "TEE-M", **more)
    with ctx.ledger(actor="test", now=T0 + timedelta(minutes=minute)) as tx:
        return service.sign_up(tx, ctx.config, "drop", form)


def paid_sign_up(ctx: AppContext, minute: int, email: str) -> campaigns.EntryRow:
    return sign_up(ctx, minute, email, accept_terms=True,
                   deposit_paid=("popup", f"cash-{email}"))  # fmt: skip


def tick(ctx: AppContext, at: datetime) -> dict[str, Any]:
    with ctx.ledger(actor="test", now=at) as tx:
        return service.tick(tx, ctx.config, "drop")


def money(ctx: AppContext, entry_id: int) -> list[tuple[str, str, str]]:
    with ctx.read() as session:
        rows = campaign_money.of_entries(session, [entry_id]).get(entry_id, [])
    return [(r.kind, str(r.amount), r.state) for r in rows]


def test_terms_are_accepted_and_the_deposit_recorded_once(ctx: AppContext) -> None:
    with pytest.raises(LedgerInputError, match=r"accept the payment terms.*12\.00 EUR"):
        sign_up(ctx, 1, "ann@example.com")
    with pytest.raises(LedgerInputError, match=r"takes 12\.00 EUR at sign-up.*DEPOSIT-TEE"):
        sign_up(ctx, 1, "ann@example.com", accept_terms=True)
    ann = paid_sign_up(ctx, 1, "ann@example.com")
    assert paid_sign_up(ctx, 2, "ann@example.com").id == ann.id  # the same deposit again
    assert money(ctx, ann.id) == [("deposit", "12.00", "paid")]
    terms = ann.terms or {}
    assert (terms["price"], terms["deposit"], terms["balance"], terms["cancellation_fee"]) == (
        "60.00", "12.00", "48.00", "5.00",
    )  # fmt: skip
    page = service.status_page(ann, ctx.config.campaign("drop"), T0, [])["payment"]
    assert page["deposit"] == "12.00" and page["balance"] == "48.00"
    assert any("refundable in full" in line for line in page["terms"])


def test_a_confirmed_entry_pays_its_balance_and_the_report_adds_up(ctx: AppContext) -> None:
    ann = paid_sign_up(ctx, 1, "ann@example.com")
    bob = paid_sign_up(ctx, 2, "bob@example.com")
    tick(ctx, T0 + timedelta(minutes=5))
    with ctx.ledger(actor="test", now=T0 + timedelta(hours=1)) as tx:
        service.confirm(tx, ctx.config, ann.id)
    assert money(ctx, ann.id) == [("deposit", "12.00", "paid"), ("balance", "48.00", "paid")]
    done = tick(ctx, T0 + timedelta(hours=12, minutes=6))  # bob missed his balance
    assert done["expired"] == [bob.id]
    # all but the 5.00 fee of his 12.00 deposit comes back, planned on the channel he paid on
    assert money(ctx, bob.id) == [("deposit", "12.00", "paid"), ("refund", "7.00", "planned")]
    assert tick(ctx, T0 + timedelta(hours=13))["refunds"]  # handed to the refund job
    with ctx.read() as session:
        report = campaign_money_report.report(session, ctx.config, "drop")
    totals = report["totals"]
    assert (totals["deposit_paid"], totals["balance_paid"], totals["refund_planned"]) == (
        "24.00", "48.00", "7.00",
    )  # fmt: skip
    assert report["metrics"]["deposit_to_allocation"] == 1.0
    assert report["metrics"]["balance_paid_in_window"] == 0.5
    csv_text = campaign_money_report.to_csv(report)
    assert csv_text.splitlines()[-1].startswith("total,")
    with ctx.read() as session:
        drop = campaign_report.report(session, ctx.config, "drop")["money"]
    assert (drop["deposit_to_allocation"], drop["refund_rate"]) == (1.0, 0.0)  # not made yet
    from sync.metrics import Metrics, refresh_gauges

    metrics = Metrics()
    with ctx.read() as session:
        refresh_gauges(metrics, session, [], ctx.config)
    scraped = metrics.render().decode()
    assert 'stocksync_campaign_money_rate{campaign="drop",metric="balance_paid_in_window"} 0.5' in (
        scraped
    )
    assert 'stocksync_campaign_money{campaign="drop",currency="EUR",kind="deposit_paid"} 24.0' in (
        scraped
    )


def test_no_unit_by_the_date_refunds_everything(ctx: AppContext) -> None:
    with ctx.ledger(actor="test", now=T0) as tx:
        counts.set_stock(tx, "TEE-M", 0)  # nothing to allocate
    ann = paid_sign_up(ctx, 1, "ann@example.com")
    assert tick(ctx, T0 + timedelta(days=2))["not_allocated"] == []  # still open
    done = tick(ctx, datetime(2026, 12, 6, 10, 0, tzinfo=UTC))
    assert done["not_allocated"] == [ann.id]
    assert money(ctx, ann.id)[-1] == ("refund", "12.00", "planned")
    tick(ctx, datetime(2026, 12, 6, 11, 0, tzinfo=UTC))
    assert len(money(ctx, ann.id)) == 2  # never twice


def test_cancellations_refund_as_the_terms_say(ctx: AppContext) -> None:
    ann = paid_sign_up(ctx, 1, "ann@example.com")
    bob = paid_sign_up(ctx, 2, "bob@example.com")
    cat = paid_sign_up(ctx, 3, "cat@example.com")
    dan = paid_sign_up(ctx, 4, "dan@example.com")
    with ctx.ledger(actor="test", now=T0 + timedelta(minutes=5)) as tx:
        service.cancel(tx, ctx.config, dan.id, "changed my mind")  # before allocation: all
    assert money(ctx, dan.id)[-1] == ("refund", "12.00", "planned")
    tick(ctx, T0 + timedelta(minutes=10))  # ann and bob allocated
    with ctx.ledger(actor="test", now=T0 + timedelta(hours=1)) as tx:
        service.confirm(tx, ctx.config, ann.id)
        service.confirm(tx, ctx.config, bob.id)
    with ctx.ledger(actor="test", now=T0 + timedelta(days=2)) as tx:
        service.cancel(tx, ctx.config, ann.id, "moving abroad")  # confirmed: all but the fee
    assert money(ctx, ann.id)[-1] == ("refund", "55.00", "planned")
    assert tick(ctx, T0 + timedelta(days=2, minutes=1))["wave"]["allocated"][0]["entry"] == cat.id
    with ctx.ledger(actor="test", now=T0 + timedelta(days=2, hours=1)) as tx:
        service.confirm(tx, ctx.config, cat.id)
    # after the production lock: bob's refund waits a day for his unit to find a taker
    lock = datetime(2026, 12, 10, 12, 0, tzinfo=UTC)
    with ctx.ledger(actor="test", now=lock) as tx:
        service.cancel(tx, ctx.config, bob.id, "too late, sorry")
    assert money(ctx, bob.id)[-1] == ("refund", "55.00", "planned")
    tick(ctx, lock + timedelta(hours=23))
    assert money(ctx, bob.id)[-1][2] == "planned"
    tick(ctx, lock + timedelta(hours=25))  # nobody took it
    assert money(ctx, bob.id)[-1] == ("refund", "55.00", "waived")
    with (
        pytest.raises(LedgerInputError, match="needs a reason"),
        ctx.ledger(actor="test", now=lock) as tx,
    ):
        service.cancel(tx, ctx.config, cat.id, " ")


def test_changed_terms_are_offered_and_declining_refunds_in_full(ctx: AppContext) -> None:
    ann = paid_sign_up(ctx, 1, "ann@example.com")
    bob = paid_sign_up(ctx, 2, "bob@example.com")
    assert tick(ctx, T0 + timedelta(minutes=3))["terms_offered"] == []  # unchanged
    url = ctx.config.database
    text = CONFIG.format(url=url).replace('"60.00"', '"70.00"')  # the price goes up
    changed = AppContext.open(parse_config(text, "stocksync.yaml", env={}))
    try:
        with changed.ledger(actor="test", now=T0 + timedelta(minutes=4)) as tx:
            assert service.tick(tx, changed.config, "drop")["terms_offered"] == [ann.id, bob.id]
        with changed.ledger(actor="test", now=T0 + timedelta(minutes=5)) as tx:
            assert service.tick(tx, changed.config, "drop")["terms_offered"] == []  # once
        with changed.read() as session:
            offered = campaigns.entry(session, ann.id)
        page = service.status_page(offered, changed.config.campaign("drop"), T0, [])
        assert "Price: 70.00 EUR." in page["terms_changed"]["terms"]
        assert (offered.terms_offer or {})["balance"] == "58.00"  # 70 less the 12 paid
        with changed.ledger(actor="test", now=T0 + timedelta(minutes=6)) as tx:
            service.decide_terms(tx, changed.config, ann.id, False)
            kept = service.decide_terms(tx, changed.config, bob.id, True)
        assert (kept.terms or {})["price"] == "70.00" and kept.terms_offer is None
    finally:
        changed.close()
    # declining the new terms: everything back, whatever the fee
    assert money(ctx, ann.id)[-1] == ("refund", "12.00", "planned")
    assert money(ctx, bob.id) == [("deposit", "12.00", "paid")]


def test_payment_terms_are_checked_with_file_and_line(tmp_path: Path) -> None:
    bad = CONFIG.format(url="sqlite:///x.db").replace('prices: {TEE-M: "60.00"}', "prices: {}")
    with pytest.raises(ConfigError, match=r"stocksync.yaml:\d+: .*prices"):
        parse_config(bad, "stocksync.yaml", env={})
    no_deposit = CONFIG.format(url="sqlite:///x.db").replace("      deposit: {percent: 20}\n", "")
    with pytest.raises(ConfigError, match="mode deposit needs deposit"):
        parse_config(no_deposit, "stocksync.yaml", env={})
    shopify = CONFIG.format(url="sqlite:///x.db").replace(
        "  popup: {kind: manual}",
        "  popup: {kind: shopify, shop: s.myshopify.com, token: t, webhook_secret: s}",
    )
    # a Shopify channel takes the deposit through a pre-order selling plan stocksync keeps
    assert parse_config(shopify, "stocksync.yaml", env={}).pre_order_channels() == {"popup"}
    assert Decimal("12.00") == Decimal(
        str((parse_config(CONFIG.format(url="sqlite:///x.db"), "s.yaml", env={})
             .campaign("drop").payment or object()).__dict__["deposit_percent"] * 60 / 100)
    )  # fmt: skip


def test_the_cli_takes_a_deposit_by_hand_cancels_with_a_dry_run_and_reports(
    tmp_path: Path,
) -> None:
    path = tmp_path / "stocksync.yaml"
    text = CONFIG.format(url=f"sqlite:///{tmp_path / 'l.db'}")
    for old, new in (("2026-12-01T10:00:00+00:00, closes: 2026-12-04T10:00:00+00:00",
                      "2020-01-01T00:00:00+00:00, closes: 2099-01-01T00:00:00+00:00"),
                     ("2026-12-06", "2099-12-06"), ("2026-12-10", "2099-12-10")):  # fmt: skip
        text = text.replace(old, new)
    path.write_text(text, encoding="utf-8")

    def run(*args: str, code: int = 0) -> dict[str, Any]:
        done = subprocess.run(["stocksync", "--config", str(path), *args, "--json"],
                              capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
        assert done.returncode == code, done.stdout + done.stderr
        data: dict[str, Any] = json.loads(done.stdout)
        return data

    subprocess.run(["stocksync", "--config", str(path), "db", "upgrade"], check=True,
                   capture_output=True, timeout=60)  # fmt: skip
    refused = run("waitlist", "add", "drop", "--email", "a@x.com", "--sku", "TEE-M", code=2)
    assert "accept the payment terms" in refused["error"]
    ann = run("waitlist", "add", "drop", "--email", "a@x.com", "--sku", "TEE-M",
              "--accept-terms", "--deposit-paid", "popup:cash-1")  # fmt: skip
    assert ann["status"] == "waiting"
    dry = run("campaign", "cancel", str(ann["id"]), "--reason", "changed mind", "--dry-run")
    assert [(r["amount"], r["state"]) for r in dry["refunds"]] == [("12.00", "planned")]
    report = run("campaign", "payments", "drop")
    assert report["entries"][0]["status"] == "waiting"  # the dry run changed nothing
    assert report["totals"]["deposit_paid"] == "12.00"
    assert report["totals"]["refund_planned"] == "0.00"
    run("campaign", "cancel", str(ann["id"]), "--reason", "changed mind")
    after = run("campaign", "payments", "drop")
    assert (after["entries"][0]["status"], after["totals"]["refund_planned"]) == (
        "cancelled", "12.00",
    )  # fmt: skip
