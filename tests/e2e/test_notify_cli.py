"""`stocksync notify ...` as a merchant runs it: send what is due to a real SMTP server
(aiosmtpd in the test process), list the outbox, preview a message for a real order in any
language, a message that failed for good retried by hand; bad arguments exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from stock.db import upgrade
from sync.stack import free_port
from tests.e2e import Cli
from tests.support.notify import smtp_server

MESSAGE_KEYS = {
    "id", "key", "event", "kind", "target", "language", "subject", "state", "attempts",
    "next_attempt_at", "last_error", "created_at", "sent_at",
}  # fmt: skip


@pytest.mark.slow
def test_send_list_preview_and_retry(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "stocksync.yaml"
    config.write_text(
        f"""\
database: sqlite:///{tmp_path / "ledger.db"}
channels:
  popup: {{kind: manual}}
defaults:
  backorders: {{enabled: true, incoming_share: 1.0, horizon_days: 90}}
notify:
  max_attempts: 1
  smtp: {{host: 127.0.0.1, port: {port}, starttls: false, from: shop@mugs.example}}
""",
        encoding="utf-8",
    )
    upgrade(f"sqlite:///{tmp_path / 'ledger.db'}")
    cli = Cli(tmp_path, config)
    started = cli("notify", "send", "--json").json()
    assert started == {"ok": True, "made": {}, "sent": {}, "retrying": 0, "failed": []}
    cli("stock", "set", "MUG", "1")

    with smtp_server(port) as smtp:
        cli("order", "add", "popup", "1001", "MUG=3", "--email", "ann@example.com",
            "--language", "nl-BE")  # fmt: skip
        sent = cli("notify", "send", "--json").json()
        assert (sent["made"], sent["sent"]) == ({"email": 1}, {"email": 1})
        (mail,) = smtp.messages
        assert (mail["To"], mail["Subject"]) == (
            "ann@example.com", "Bestelling 1001: een deel wordt later verzonden",
        )  # fmt: skip
        again = cli("notify", "send", "--json").json()
        assert (again["made"], again["sent"]) == ({}, {})
        assert len(smtp.messages) == 1

    listed = cli("notify", "list", "--json").json()["messages"]
    assert [set(row) for row in listed] == [MESSAGE_KEYS]
    (row,) = listed
    assert (row["event"], row["kind"], row["state"], row["language"]) == (
        "backorder_created", "email", "sent", "nl",
    )  # fmt: skip

    as_sent, in_swedish, human = cli.many([
        ("notify", "preview", "backorder_created", "--order", "popup:1001", "--json"),
        ("notify", "preview", "backorder_created", "--order", "popup:1001", "--language",
         "sv-SE", "--json"),
        ("notify", "preview", "backorder_created", "--order", "popup:1001", "--language", "ru"),
    ])  # fmt: skip
    data = as_sent.json()
    assert (data["language"], data["to"], data["order"]) == ("nl", "ann@example.com", "popup/1001")
    assert data["subject"] == mail["Subject"]
    assert data["body"] == mail.get_content().replace("\r\n", "\n")
    assert in_swedish.json()["subject"] == "Order 1001: en del skickas senare"
    russian = "Заказ 1001: часть товаров будет отправлена позже"
    lines = human.stdout.splitlines()
    assert lines[:5] == ["To: ann@example.com", "Language: ru", "Subject: " + russian, "",
                         "Здравствуйте!"]  # fmt: skip

    refused = cli.many(
        [
            ("notify", "preview", "no_such", "--order", "popup:1001"),
            ("notify", "preview", "backorder_created"),
            ("notify", "preview", "backorder_created", "--order", "popup-1001"),
            ("notify", "preview", "backorder_created", "--order", "popup:nope"),
            ("notify", "preview", "backorder_created", "--order", "popup:1001", "--language",
             "de"),
            ("notify", "preview", "allocated", "--order", "popup:1001"),
            ("notify", "preview", "partly_shipped", "--order", "popup:1001"),  # none shipped
            ("notify", "retry"),
            ("notify", "retry", "999"),
            ("notify", "retry", str(row["id"])),  # sent: nothing to retry
        ],
        expect=2,
    )  # fmt: skip
    said = [result.stderr for result in refused]
    assert "unknown template 'no_such'; one of backorder_created" in said[0]
    assert "backorder_created is about an order: give --order CHANNEL:REF" in said[1]
    assert "--order wants CHANNEL:REF, got 'popup-1001'" in said[2]
    assert "nothing to show: no order popup/nope" in said[3]
    assert "no 'de' template for backorder_created; languages: en, nl, ru, sv" in said[4]
    assert "allocated is about a campaign entry: give --entry ID" in said[5]
    assert "nothing to show: nothing shipped" in said[6]
    assert "name message ids or --all-failed" in said[7]
    assert "message 999: no such message" in said[8]
    assert f"message {row['id']}: is sent, not failed" in said[9]

    # the SMTP server is down: with max_attempts 1 the message fails at once
    cli("order", "add", "popup", "1002", "MUG=3", "--email", "bob@example.com")
    bad = cli("order", "add", "popup", "1003", "MUG=1", "--email", "bob", expect=2)
    assert "not an email address" in bad.stderr
    bad = cli("order", "add", "popup", "1003", "MUG=1", "--language", "dutch!", expect=2)
    assert "not a language tag" in bad.stderr
    down = cli("notify", "send", "--json", expect=1).json()
    assert down["ok"] is False and down["made"] == {"email": 1}
    (failed,) = cli("notify", "list", "--failed", "--json").json()["messages"]
    assert failed["state"] == "failed" and "cannot connect" in failed["last_error"]
    human_list = cli("notify", "list", "--failed")
    assert "FAILED" in human_list.stdout and "bob@example.com" in human_list.stdout

    with smtp_server(port) as smtp:
        retried = cli("notify", "retry", str(failed["id"]), "--json").json()
        assert retried == {"ok": True, "retried": [failed["id"]]}
        assert cli("notify", "send", "--json").json()["sent"] == {"email": 1}
        (mail,) = smtp.messages
        assert (mail["To"], mail["Subject"]) == (
            "bob@example.com", "Order 1002: some items will ship later",
        )  # fmt: skip
    assert cli("notify", "list", "--failed", "--json").json()["messages"] == []


def test_send_needs_a_notify_block(tmp_path: Path) -> None:
    config = tmp_path / "stocksync.yaml"
    config.write_text(
        f"database: sqlite:///{tmp_path / 'ledger.db'}\nchannels:\n  popup: {{kind: manual}}\n",
        encoding="utf-8",
    )
    upgrade(f"sqlite:///{tmp_path / 'ledger.db'}")
    result = Cli(tmp_path, config)("notify", "send", expect=2)
    assert "no `notify:` block in the config" in result.stderr
