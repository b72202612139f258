"""Helpers for the WooCommerce tests: fixture files, a webhook receiver, sandbox shortcuts, a
channel on the sandbox, and the bodies of the receiver, sandbox and REST client fixtures the
sandbox tests share."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from woocommerce import API

from connectors.sandbox.woocommerce import WooCommerceSandbox
from connectors.woocommerce import WooCommerceChannel
from tests.shared_fixtures import needs_shared, require_shared, shared_missing

# the project's own fixtures, hand-written in the sandbox's wc/v3 shape: for every test
OWN_FIXTURES = Path(__file__).resolve().parent / "fixtures" / "woocommerce"
# WooCommerce's documented payloads beside the checkout: only for the tests that compare with them
REFERENCE = "fixtures/woocommerce"
REFERENCE_WHY = "the reference-payload tests need it"
needs_reference = needs_shared(REFERENCE, REFERENCE_WHY)


def own_fixture(name: str) -> Any:
    """A fresh copy of one of the project's own fixtures (tests/fixtures/woocommerce)."""
    return json.loads((OWN_FIXTURES / name).read_text(encoding="utf-8"))


def fixture(name: str) -> Any:
    """A reference payload from ../shared; skips the calling test when the folder is absent."""
    folder = require_shared(REFERENCE, REFERENCE_WHY)
    return json.loads((folder / name).read_text(encoding="utf-8"))


def order_fixture_bodies() -> Iterator[tuple[str, dict[str, Any]]]:
    """Every order JSON in the reference fixtures, named by where it came from."""
    for name in ("order_retrieve.json", "order_update_status_completed.json"):
        yield name, fixture(name)
    for index, order in enumerate(fixture("order_list.json")):
        yield f"order_list.json[{index}]", order
    for group, orders in fixture("orders_batch_response.json").items():
        for index, order in enumerate(orders):
            yield f"orders_batch_response.json:{group}[{index}]", order
    delivery = fixture("webhook_delivery_order_updated.COMPUTED.json")
    yield "webhook_delivery_order_updated", json.loads(delivery["raw_body"])


def order_fixture_params() -> list[Any]:
    """order_fixture_bodies() as pytest params, read at collection; without ../shared, one
    param that is skipped with the reason (never an error at collection)."""
    reason = shared_missing(REFERENCE, REFERENCE_WHY)
    if reason is not None:
        skipped = pytest.mark.skip(reason=reason)
        return [pytest.param("reference", {}, id="reference", marks=skipped)]
    return [pytest.param(name, data, id=name) for name, data in order_fixture_bodies()]


@dataclass
class Received:
    headers: dict[str, str]  # names lower-cased
    body: bytes


class WebhookReceiver:
    """A loopback endpoint that records what it is sent and answers `status`."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.received: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver.received.append(
                        Received({k.lower(): v for k, v in self.headers.items()}, body)
                    )
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 stdlib name
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # a short poll so close() returns quickly
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/hook"

    def events(self) -> list[Received]:
        with self._lock:
            return [r for r in self.received if not r.body.startswith(b"webhook_id=")]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def flush(base_url: str) -> None:
    requests.post(f"{base_url}/_sandbox/webhooks/flush", timeout=10).raise_for_status()


def state(base_url: str) -> dict[str, Any]:
    response = requests.get(f"{base_url}/_sandbox/state", timeout=10)
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


def checkout(base_url: str, sku: str, quantity: int, email: str = "a@example.com") -> Any:
    return requests.post(
        f"{base_url}/_sandbox/checkout",
        json={"sku": sku, "quantity": quantity, "email": email},
        timeout=10,
    )


def set_faults(base_url: str, **values: Any) -> None:
    requests.put(f"{base_url}/_sandbox/faults", json=values, timeout=10).raise_for_status()


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def receiver_fixture() -> Iterator[WebhookReceiver]:
    """A webhook receiver, closed after the test (a fixture's body)."""
    hook = WebhookReceiver()
    yield hook
    hook.close()


def sandbox_fixture(receiver: WebhookReceiver, seed: int) -> Iterator[WooCommerceSandbox]:
    """A sandbox that sends its webhooks to `receiver` (a fixture's body)."""
    with WooCommerceSandbox(webhook_url=receiver.url, seed=seed) as sandbox:
        yield sandbox


def rest_api(shop: WooCommerceSandbox) -> API:
    """The real `woocommerce` client, signed in with the sandbox's key."""
    return API(
        url=shop.url,
        consumer_key="ck_sandbox",
        consumer_secret="cs_sandbox",
        version="wc/v3",
        timeout=5,
    )


def woo_channel(shop: WooCommerceSandbox, **options: Any) -> WooCommerceChannel:
    """A "woo" channel on the sandbox's REST API, signed in with its key, taking its webhook
    secret, with a 5 s timeout and a short backoff; `options` go to WooCommerceChannel in place
    of these."""
    settings: dict[str, Any] = {
        "webhook_secrets": ["sandbox-secret"],
        "timeout": 5.0,
        "backoff": 0.01,
        **options,
    }
    return WooCommerceChannel(
        "woo",
        url="https://shop.example.com",
        api_url=shop.url,
        consumer_key="ck_sandbox",
        consumer_secret="cs_sandbox",
        **settings,
    )


def stock(shop: WooCommerceSandbox, sku: str) -> int | None:
    value: int | None = state(shop.url)["stock"][sku]
    return value


def order_updates(receiver: WebhookReceiver) -> list[Received]:
    """The order.updated deliveries the receiver has had, in order."""
    return [e for e in receiver.events() if e.headers["x-wc-webhook-topic"] == "order.updated"]
