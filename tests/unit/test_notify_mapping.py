"""The pure parts of the notifier: which audit action tells whom what, one message per order and
transaction, which entries a webhook wants, keys, the cursor over gaps, backoff, signatures."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from notify.notifier import (
    GAP_GRACE,
    KEY_MAX,
    Entry,
    classify,
    hooked,
    mailbox,
    message_key,
    occasions,
    safe_end,
    webhook_body,
)
from notify.outbox import retry_delay
from notify.send import signature

AT = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def entry(
    action: str, subject: str, detail: dict[str, Any], id_: int = 1, at: datetime = AT
) -> Entry:
    return Entry(id_, at, "worker", action, subject, detail)


MAPPING = [
    # (action, subject, detail, message, about)
    ("order.recorded", "shop/1001",
     {"status": "open", "reserved": {"1": 1}, "backordered": {"1": 2}}, "backorder_created",
     "shop/1001"),
    ("order.ship", "popup/7", {"shipped": {"MUG": 1}, "status": "open"}, "partly_shipped",
     "popup/7"),
    ("backorder.release", "MUG", {"order": "woo/55", "line": "3", "units": 2},
     "released_shipping", "woo/55"),
    ("backorder.promise_moved", "MUG",
     {"order": "shop/9", "line": "1", "units": 1, "from": "2026-03-01", "to": "2026-03-14"},
     "date_moved", "shop/9"),
    ("campaign.waiting", "drop", {"entry": 4, "sku": "D", "qty": 1}, "waitlist_confirmed", 4),
    ("campaign.allocated", "drop", {"entry": 4, "expires_at": "2026-03-02T09:00:00+00:00",
                                     "pay_state": None}, "allocated", 4),
    ("campaign.payment", "drop", {"entry": 4, "payment": "open", "pay_url": "https://p/x"},
     "allocated", 4),
    ("campaign.payment", "drop", {"entry": 4, "payment": "failed", "why": "refused"},
     "allocated", 4),
    ("campaign.reminder", "drop", {"entry": 4, "deadline": "2026-03-02T09:00:00+00:00"},
     "reminder", 4),
    ("campaign.expired", "drop", {"entry": 4}, "expired", 4),
    ("campaign.not_allocated", "drop", {"entry": 4}, "not_allocated", 4),
    ("campaign.refund_refunded", "drop", {"entry": 4, "amount": "30.00 EUR"},
     "deposit_refunded", 4),
    ("campaign.refund_by_hand", "drop", {"entry": 4, "amount": "30.00 EUR"},
     "deposit_refunded", 4),
]  # fmt: skip


@pytest.mark.parametrize(("action", "subject", "detail", "message", "about"), MAPPING)
def test_audit_actions_tell_their_message(
    action: str, subject: str, detail: dict[str, Any], message: str, about: str | int
) -> None:
    found = classify(entry(action, subject, detail, id_=42))
    assert found is not None
    assert found.message == message
    assert found.audit_id == 42
    assert (found.order if isinstance(about, str) else found.entry) == about


@pytest.mark.parametrize(
    ("action", "detail"),
    [
        ("order.recorded", {"status": "open", "reserved": {"1": 2}, "backordered": {}}),
        ("order.recorded", {"status": "cancelled", "backordered": {"1": 2}}),
        ("order.ship", {"shipped": {"MUG": 1}, "status": "fulfilled"}),  # all of it shipped
        ("campaign.allocated", {"entry": 4, "pay_state": "requested"}),  # told with its link
        ("campaign.payment", {"entry": 4, "payment": "open", "why": "reminder sent"}),
        ("campaign.payment", {"entry": 4, "payment": "withdrawn"}),
        ("campaign.refund_planned", {"entry": 4, "amount": "3.00 EUR"}),
        ("campaign.confirmed", {"entry": 4}),
        ("stock.set", {"before": 1, "after": 2}),
        ("po.add", {"eta": "2026-03-01"}),
        ("campaign.expired", {"entry": "4"}),  # not an entry id
    ],
)
def test_other_actions_tell_no_customer(action: str, detail: dict[str, Any]) -> None:
    assert classify(entry(action, "x/1", detail)) is None


def test_one_transactions_releases_of_one_order_are_one_message() -> None:
    later = AT + timedelta(seconds=1)
    entries = [
        entry("backorder.release", "MUG", {"order": "shop/1", "line": "1", "units": 2}, 10),
        entry("backorder.release", "CAP", {"order": "shop/1", "line": "2", "units": 1}, 11),
        entry("backorder.release", "MUG", {"order": "shop/2", "line": "1", "units": 1}, 12),
        entry("backorder.release", "MUG", {"order": "shop/1", "line": "1", "units": 1}, 13, later),
        entry("backorder.promise_moved", "MUG", {"order": "shop/3", "line": "1"}, 14, later),
        entry("backorder.promise_moved", "CAP", {"order": "shop/3", "line": "2"}, 15, later),
    ]
    found = occasions(entries)
    assert [(o.message, o.order, o.audit_id) for o in found] == [
        ("released_shipping", "shop/1", 10),
        ("released_shipping", "shop/2", 12),
        ("released_shipping", "shop/1", 13),  # another transaction: another message
        ("date_moved", "shop/3", 14),
    ]
    assert [dict(i)["sku"] for i in found[0].items or ()] == ["MUG", "CAP"]
    assert [dict(i)["sku"] for i in found[3].items or ()] == ["MUG", "CAP"]


def test_webhooks_take_names_and_globs() -> None:
    recorded = entry("order.recorded", "shop/1", {})
    assert hooked(recorded, ["order.recorded"])
    assert hooked(recorded, ["campaign.*", "order.*"])
    assert hooked(recorded, ["*"])
    assert not hooked(recorded, ["order"])
    assert not hooked(recorded, ["ORDER.*"])  # names are matched as written


def test_webhook_body_is_the_entry() -> None:
    body = webhook_body(entry("order.ship", "popup/7", {"shipped": {"MUG": 1}}, 9), "x")
    assert json.loads(body) == {
        "id": 9, "event": "order.ship", "at": AT.isoformat(), "actor": "worker",
        "subject": "popup/7", "detail": {"shipped": {"MUG": 1}}, "message": "x",
    }  # fmt: skip
    assert "message" not in json.loads(webhook_body(entry("stock.set", "MUG", {}), None))


def test_keys_are_per_entry_kind_and_target_and_fit_the_column() -> None:
    assert message_key(7, "email", "ann@example.com") == "audit-7-email-ann@example.com"
    long_url = "https://hooks.example.com/" + "x" * 400
    key = message_key(7, "webhook", long_url)
    assert len(key) <= KEY_MAX
    assert key == f"audit-7-webhook-sha256:{hashlib.sha256(long_url.encode()).hexdigest()}"
    assert key != message_key(8, "webhook", long_url)


def test_the_cursor_stops_before_a_fresh_gap() -> None:
    now = AT + timedelta(minutes=1)

    def ids(*numbers: int, at: datetime = AT) -> list[Entry]:
        return [entry("stock.set", "MUG", {}, n, at) for n in numbers]

    assert safe_end(10, ids(11, 12, 13), now) == 13
    assert safe_end(10, ids(11, 13, 14), now) == 11  # 12 may still commit
    assert safe_end(10, ids(12, 13), now) == 10
    old = now - GAP_GRACE - timedelta(seconds=1)
    assert safe_end(10, ids(11, 13, 14, at=old), now) == 14  # 12 rolled back long ago
    assert safe_end(10, [], now) == 10


def test_backoff_doubles_up_to_its_cap() -> None:
    delays = [retry_delay(n, 30, 3600).total_seconds() for n in range(1, 10)]
    assert delays == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert retry_delay(10_000, 1, 60) == timedelta(seconds=60)


def test_signature_is_hex_hmac_sha256_of_the_raw_body() -> None:
    body = b'{"event":"order.ship"}'
    expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert signature("s3cret", body) == f"sha256={expected}"


def test_only_real_addresses_are_mailed() -> None:
    assert mailbox("ann@example.com") == "ann@example.com"
    assert mailbox("Ann Smith <ann@example.com>") == "ann@example.com"
    for bad in (None, "", "ann", "ann@localhost", "not an address", "@example.com",
                "ann@example.com\r\nBcc: all@example.com"):  # fmt: skip
        assert mailbox(bad) is None, bad
