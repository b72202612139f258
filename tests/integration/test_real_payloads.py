"""Order payloads that Shopify and WooCommerce themselves published, delivered to the daemon as
signed webhooks over HTTP in the order ../shared/fixtures/real-payloads/manifest.json gives:
first sight of every order, a cancellation, older versions delivered late, retries and
duplicates, and topics docs/shopify.md does not subscribe to.

The expected ledger below is written out by hand from the payloads (not computed by the
connectors under test): per order line, units reserved, backordered and shipped.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import func, select

from connectors.signatures import sign
from stock import models as m
from sync.stack import SANDBOX_SECRET
from tests.shared_fixtures import needs_shared, shared_path
from tests.support.stack import Stack, running_stack

pytestmark = [
    needs_shared("fixtures/real-payloads", "the real order payloads are read from there"),
    pytest.mark.slow,
]

FOLDER = "fixtures/real-payloads"
HAPPY_NINJA_ON_HAND = 6  # short: order 560's hoodie line splits into reserved + backordered

# (channel, order) -> {line id: (sku, reserved, backordered, shipped)}; orders with no stock line
# (custom items, bundles, gift cards) are listed with {} and their other lines counted apart.
EXPECTED: dict[tuple[str, str], dict[str, tuple[str, int, int, int]]] = {
    ("shop", "450789469"): {  # cancelled at 11:31:25; the 11:30:52 update came late
        "466157049": ("IPOD2008GREEN", 0, 0, 0),
        "518995019": ("IPOD2008RED", 0, 0, 0),
        "703073504": ("IPOD2008BLACK", 0, 0, 0),
    },
    ("shop", "1073459976"): {},  # one custom item x3, no SKU
    ("shop", "1073459963"): {},  # three custom items
    ("shop", "1073459966"): {"1071823177": ("IPOD2009BLACK", 1, 0, 0)},
    ("shop", "1073459980"): {"1071823192": ("IPOD2009BLACK", 1, 0, 0)},
    ("shop", "1073459983"): {"1071823195": ("IPOD2009BLACK", 1, 0, 0)},
    ("shop", "1073459972"): {"1071823184": ("IPOD2009BLACK", 0, 0, 1)},  # fulfilled
    ("shop", "1073459970"): {"1071823182": ("IPOD2008BLACK", 0, 0, 1)},  # fulfilled
    ("woo", "727"): {"316": ("Bar3", 0, 0, 1)},  # completed; the late "processing" changes nothing
    ("woo", "728"): {"321": ("Bar3", 0, 0, 0)},  # pending payment: WooCommerce holds no stock
    ("woo", "729"): {"324": ("Bar3", 1, 0, 0)},
    ("woo", "560"): {  # processing, four refunds (GET orders/560/refunds)
        "58": ("T-SHIRT-HAPPY-NINJA", 3, 0, 0),
        "59": ("HOODIE-HAPPY-NINJA", HAPPY_NINJA_ON_HAND, 10 - 1 - HAPPY_NINJA_ON_HAND, 0),
        "60": ("T-SHIRT-NINJA-SILHOUETTE", 2 - 1, 0, 0),
        "61": ("HOODIE-PATIENT-NINJA", 3, 0, 0),
        "62": ("T-SHIRT-PREMIUM-QUALITY", 2, 0, 0),
        "63": ("HOODIE-SHIP-YOUR-IDEA-BLACK-L", 4 - 1, 0, 0),
        "64": ("HOODIE-WOO-LOGO", 0, 0, 0),  # refunded down to zero
        "65": ("HOODIE-SHIP-YOUR-IDEA-BLUE-XL", 7 - 2 - 1, 0, 0),
    },
    ("woo", "324"): {  # completed; its two refunds' lines are unknown to a shop without it
        "38": ("POSTER-SHIP-YOUR-IDEA", 0, 0, 1),
        "39": ("POSTER-WOO-LOGO", 0, 0, 2),
        "40": ("POSTER-PREMIUM-QUALITY", 0, 0, 3),
        "41": ("POSTER-WOO-NINJA", 0, 0, 4),
        "42": ("WOO-ALBUM-1", 0, 0, 5),
        "43": ("WOO-ALBUM-3", 0, 0, 6),
        "44": ("WOO-SINGLE-2", 0, 0, 7),
        "45": ("WOO-SINGLE-1", 0, 0, 8),
    },
    ("woo", "357"): {"753": ("Woo-beanie-logo", 1, 0, 0)},  # the bundle line has no SKU
    ("woo", "459"): {"921": ("Woo-beanie-logo", 1, 0, 0)},
    ("woo", "526"): {"1052": ("woo-polo", 1, 0, 0)},
    ("woo", "609"): {},  # refunded; its only line has no SKU
    ("woo", "421"): {},  # a composite product: four lines without SKU
    ("woo", "211"): {"302": ("woo-beanie", 1, 0, 0)},
}
OTHER_LINES = {  # lines kept with their order as not stock
    ("shop", "1073459976"): 1,
    ("shop", "1073459963"): 3,
    ("woo", "727"): 1,
    ("woo", "728"): 2,
    ("woo", "729"): 1,
    ("woo", "357"): 1,
    ("woo", "609"): 1,
    ("woo", "421"): 4,
}
CANCELLED_TEST_ORDER = ("shop", "820982911946154500")  # Shopify's two sample cancellations


def manifest() -> dict[str, Any]:
    return dict(json.loads(shared_path(f"{FOLDER}/manifest.json").read_text()))


def skus_in_payloads() -> set[str]:
    found: set[str] = set()
    for path in shared_path(FOLDER).glob("*/*.json"):
        data = json.loads(path.read_text())
        for item in data.get("line_items", []) if isinstance(data, dict) else []:
            if item.get("sku"):
                found.add(item["sku"])
    return found


class Deliverer:
    """Signs and posts bodies as the shops do; a redelivery repeats a delivery's headers
    (Shopify's retry) or sends the same body under a new delivery id (WooCommerce)."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.sent: dict[str, tuple[str, dict[str, str], bytes]] = {}
        self.outcomes: list[tuple[str, str]] = []

    def deliver(self, item: dict[str, Any]) -> None:
        if "redeliver" in item:
            channel, headers, body = self.sent[item["redeliver"]]
            if channel == "woo":
                headers = {**headers, "X-WC-Webhook-Delivery-ID": str(uuid.uuid4())}
            self.post(item["redeliver"], channel, headers, body)
            return
        body = shared_path(f"{FOLDER}/{item['file']}").read_bytes()
        channel, topic = item["channel"], item["topic"]
        if channel == "shop":
            headers = {
                "X-Shopify-Topic": topic,
                "X-Shopify-Hmac-Sha256": sign(SANDBOX_SECRET, body),
                "X-Shopify-Shop-Domain": "real-payloads.myshopify.com",
                "X-Shopify-API-Version": item.get("api_version", "2026-07"),
                "X-Shopify-Webhook-Id": str(uuid.uuid4()),
                "X-Shopify-Event-Id": str(uuid.uuid4()),
            }
        else:
            resource, event = topic.split(".", 1)
            headers = {
                "X-WC-Webhook-Source": "https://real-payloads.example/",
                "X-WC-Webhook-Topic": topic,
                "X-WC-Webhook-Resource": resource,
                "X-WC-Webhook-Event": event,
                "X-WC-Webhook-Signature": sign(SANDBOX_SECRET, body),
                "X-WC-Webhook-ID": "1",
                "X-WC-Webhook-Delivery-ID": str(uuid.uuid4()),
            }
        self.sent[item["file"]] = (channel, headers, body)
        self.post(item["file"], channel, headers, body)

    def post(self, name: str, channel: str, headers: dict[str, str], body: bytes) -> None:
        reply = requests.post(
            f"{self.stack.daemon_url}/webhooks/{channel}",
            data=body,
            headers={**headers, "Content-Type": "application/json"},
            timeout=10,
        )
        assert reply.status_code == 200, f"{name}: {reply.status_code} {reply.text}"
        self.outcomes.append((name, reply.json()["outcome"]))


def ledger_lines(stack: Stack) -> dict[tuple[str, str], dict[str, tuple[str, int, int, int]]]:
    assert stack.daemon is not None
    found: dict[tuple[str, str], dict[str, tuple[str, int, int, int]]] = {}
    with stack.daemon.runtime.ctx.sessions() as session:
        for order in session.scalars(select(m.ChannelOrder)):
            lines = found.setdefault((order.channel, order.external_id), {})
            for line in order.lines:
                sku = session.get(m.Sku, line.sku_id)
                assert sku is not None
                reserved = line.reservation.qty if line.reservation else 0
                backordered = sum(b.qty_open for b in line.backorders)
                lines[line.external_line_id] = (sku.code, reserved, backordered, line.shipped)
    return found


def test_every_real_payload_lands_in_the_ledger_as_its_newest_version_says(
    tmp_path: Path,
) -> None:
    plan = manifest()
    catalog = dict.fromkeys(skus_in_payloads(), plan["ledger"]["default_on_hand"])
    catalog.update(plan["ledger"]["on_hand"])
    with running_stack(tmp_path, catalog=catalog) as stack:
        assert stack.daemon is not None
        refunds = plan["refunds_not_in_webhook"]
        recorded = json.loads(shared_path(f"{FOLDER}/{refunds['file']}").read_text())
        reply = requests.put(
            f"{stack.woo.url}/_sandbox/orders/{refunds['order']}/refunds", json=recorded, timeout=5
        )
        assert reply.ok, reply.text  # the shop answers GET orders/560/refunds with them

        deliverer = Deliverer(stack)
        for item in plan["deliveries"]:
            deliverer.deliver(item)
            stack.daemon.wait_idle()

        with stack.daemon.runtime.ctx.sessions() as session:
            failed = session.scalars(
                select(m.InboxEvent).where(m.InboxEvent.error.is_not(None))
            ).all()
            assert [(e.topic, e.error) for e in failed] == []  # nothing in the exception queue
            pending = session.scalar(
                select(func.count())
                .select_from(m.InboxEvent)
                .where(m.InboxEvent.processed_at.is_(None))
            )
            assert pending == 0
            invented = session.scalars(select(m.Sku.code).where(m.Sku.code.like("%line:%"))).all()
            assert invented == []  # no SKU made up for a line that has none
            others = {
                (o.channel, o.external_id): len(o.other_lines or [])
                for o in session.scalars(select(m.ChannelOrder))
                if o.other_lines
            }
        assert others == OTHER_LINES

        ignored = [name for name, outcome in deliverer.outcomes if outcome == "ignored"]
        assert sorted(ignored) == sorted(
            item["file"] for item in plan["deliveries"] if item["phase"] == "extra"
        )

        lines = ledger_lines(stack)
        test_order = lines.pop(CANCELLED_TEST_ORDER)
        assert all(counts[1:] == (0, 0, 0) for counts in test_order.values())
        assert lines == EXPECTED

        # nothing is held on a shop for a line that is not stock, and the counters add up
        with stack.daemon.runtime.ctx.sessions() as session:
            level = session.scalar(
                select(m.StockLevel)
                .join(m.Sku, m.Sku.id == m.StockLevel.sku_id)
                .where(m.Sku.code == "HOODIE-HAPPY-NINJA")
            )
            assert level is not None
            assert (level.reserved, level.backordered) == (HAPPY_NINJA_ON_HAND, 3)
