"""Real receivers for the notify tests: an SMTP server (aiosmtpd, in this process, on a free
loopback port) that keeps what arrives, and an HTTP server that keeps the webhooks posted to it
and answers what the test says."""

from __future__ import annotations

import email
import email.policy
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller

from sync.stack import free_port


class _Keep:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address in self.sink.refuse:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self.sink.lock:
            self.sink.messages.append(message)
            self.sink.recipients.append(list(envelope.rcpt_tos))
        return "250 OK"


@dataclass
class SmtpSink:
    """What arrived at the SMTP server, in order."""

    port: int
    messages: list[EmailMessage] = field(default_factory=list)
    recipients: list[list[str]] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)  # addresses answered 550
    lock: threading.Lock = field(default_factory=threading.Lock)

    def bodies(self) -> list[str]:
        return [str(message.get_content()) for message in self.messages]


@contextmanager
def smtp_server(port: int | None = None) -> Iterator[SmtpSink]:
    """An SMTP server on `port` (a free one by default) until the block ends."""
    sink = SmtpSink(port or free_port())
    controller = Controller(_Keep(sink), hostname="127.0.0.1", port=sink.port)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


@dataclass
class Posted:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class WebhookSink:
    url: str
    posts: list[Posted] = field(default_factory=list)
    status: int = 200  # what the receiver answers (the test may change it)


@contextmanager
def webhook_server() -> Iterator[WebhookSink]:
    """A local HTTP server that keeps every POST and answers `sink.status`."""
    port = free_port()
    sink = WebhookSink(f"http://127.0.0.1:{port}/hooks/stocksync")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            sink.posts.append(Posted(self.path, dict(self.headers.items()), body))
            self.send_response(sink.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base's name)
            return

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
