"""Helpers for the Shopify tests: a sandbox per test, a channel pointed at it, raw GraphQL calls,
a webhook receiver that records what arrives, and the bodies of the sandbox and receiver fixtures
the sandbox tests share."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

from connectors.sandbox.shopify import ShopifySandbox
from connectors.sandbox.shopify_scopes import DEFAULT_SCOPES, DEPOSIT_SCOPES
from connectors.shopify import ShopifyChannel

TOKEN = "shpat_sandbox"
SECRET = "sandbox-secret"
VERSION = "2026-07"
# an app the merchant has granted the pre-order deposit calls as well
DEPOSIT_APP_SCOPES = (*DEFAULT_SCOPES, *DEPOSIT_SCOPES)


class Clock:
    """The shop's clock, moved by the test instead of waiting."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A loopback HTTP endpoint standing in for the daemon's webhook route."""

    url: str = ""
    deliveries: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.deliveries) >= count:
                    return list(self.deliveries)
            time.sleep(0.01)
        with self.lock:
            raise AssertionError(f"expected {count} webhooks, got {len(self.deliveries)}")


def start_receiver() -> tuple[Receiver, ThreadingHTTPServer]:
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with receiver.lock:
                receiver.deliveries.append(Received(dict(self.headers.items()), body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 stdlib signature
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/webhooks/shop"
    return receiver, server


def receiver_fixture() -> Iterator[Receiver]:
    receiver, server = start_receiver()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


def make_channel(sandbox: ShopifySandbox, **overrides: Any) -> ShopifyChannel:
    options: dict[str, Any] = {
        "shop": sandbox.shop,
        "token": TOKEN,
        "webhook_secrets": [SECRET],
        "api_url": sandbox.url,
        "timeout": 2.0,
        "max_attempts": 4,
    }
    options.update(overrides)
    return ShopifyChannel("shop", **options)


def graphql(
    sandbox: ShopifySandbox,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    token: str | None = TOKEN,
    version: str = VERSION,
) -> requests.Response:
    headers = {"X-Shopify-Access-Token": token} if token else {}
    return requests.post(
        f"{sandbox.url}/admin/api/{version}/graphql.json",
        json={"query": query, "variables": variables or {}},
        headers=headers,
        timeout=5,
    )


def checkout(sandbox: ShopifySandbox, lines: dict[str, int], email: str = "a@example.com") -> Any:
    body = {"lines": [{"sku": s, "quantity": n} for s, n in lines.items()], "email": email}
    response = requests.post(f"{sandbox.url}/_sandbox/checkout", json=body, timeout=5)
    assert response.status_code == 201, response.text
    return response.json()


def graphql_data(sandbox: ShopifySandbox, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    """A GraphQL answer's `data`, asserting it carries no errors."""
    body = graphql(sandbox, query, variables).json()
    assert "errors" not in body, body
    result: dict[str, Any] = body["data"]
    return result


def variant_id(sandbox: ShopifySandbox, sku: str) -> str:
    return str(sandbox.state_snapshot()["inventory"][sku]["variant_id"])


def wire_receiver(sandbox: ShopifySandbox) -> Iterator[Receiver]:
    """A webhook receiver the sandbox sends to (a fixture's body)."""
    for found in receiver_fixture():
        sandbox.webhook_url = found.url
        yield found


def sandbox_fixture(
    clock: Callable[[], datetime] | None = None,
    access_scopes: Sequence[str] = DEFAULT_SCOPES,
    *,
    seed: int | None = None,
) -> Iterator[ShopifySandbox]:
    """A sandbox on `clock` (the real one when None) whose app is granted `access_scopes`, its
    catalog from `seed` (a fixture's body). An Enterprise-sized bucket keeps tests that are not
    about throttling from waiting on it."""
    with ShopifySandbox(
        restore_rate=2000, clock=clock, access_scopes=access_scopes, seed=seed
    ) as sb:
        yield sb


def channel_fixture(sandbox: ShopifySandbox, **overrides: Any) -> Iterator[ShopifyChannel]:
    """make_channel(sandbox, **overrides), closed after the test (a fixture's body)."""
    channel = make_channel(sandbox, **overrides)
    yield channel
    channel.close()


def grant_scopes(sandbox: ShopifySandbox, scopes: Sequence[str]) -> None:
    """The merchant grants the app `scopes`, in place of what it had (`PUT /_sandbox/app`)."""
    granted = requests.put(
        f"{sandbox.url}/_sandbox/app", json={"access_scopes": list(scopes)}, timeout=5
    )
    granted.raise_for_status()
