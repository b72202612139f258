"""What both loopback sandboxes share: the threaded HTTP server, fault injection, webhook delivery,
the seed catalog.

A sandbox subclass implements `route(request) -> Response` for its API; this module adds
`/_sandbox/faults` (GET/PUT/POST JSON), applies faults to every API route (never to `/_sandbox/*`),
and delivers webhooks from a background thread with drop/duplicate/reorder faults.
"""

from __future__ import annotations

import contextlib
import json
import queue
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import yaml

DEFAULT_CATALOG: dict[str, int] = {f"DEMO-{i}": 20 for i in range(1, 6)}
WEBHOOK_SECRET = "sandbox-secret"  # noqa: S105 documented sandbox default, not a credential


def load_seed(path: str | Path | None) -> dict[str, int]:
    """SKU -> quantity from YAML/JSON ({SKU: qty} or [{sku:, quantity:}]), or the default."""
    if path is None:
        return dict(DEFAULT_CATALOG)
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))  # JSON is YAML too
    if isinstance(data, dict) and "skus" in data:
        data = data["skus"]
    catalog: dict[str, int] = {}
    if isinstance(data, dict):
        items = [(str(k), v) for k, v in data.items()]
    elif isinstance(data, list):
        items = []
        for entry in data:
            if not isinstance(entry, dict) or "sku" not in entry:
                raise ValueError(f"{path}: each seed entry needs a 'sku' and a 'quantity'")
            items.append((str(entry["sku"]), entry.get("quantity", 0)))
    else:
        raise ValueError(f"{path}: seed must map SKUs to quantities")
    for sku, qty in items:
        if not isinstance(qty, int) or isinstance(qty, bool):
            raise ValueError(f"{path}: quantity for {sku!r} must be a whole number, got {qty!r}")
        catalog[sku] = qty
    return catalog


@dataclass
class Faults:
    """Fault settings; every rate is a probability 0..1."""

    error_rate: float = 0.0
    error_status: int = 503
    latency_ms: int = 0
    # extra latency of writes alone (not GET), applied before the write: a client that gives
    # up meanwhile leaves a write that lands late, as a slow shop's does
    write_latency_ms: int = 0
    webhook_drop_rate: float = 0.0
    webhook_duplicate_rate: float = 0.0
    webhook_reorder_rate: float = 0.0  # chance a webhook is held back and sent after the next one
    webhook_delay_ms: int = 0  # delivery latency, as real channels have
    seed: int | None = None

    def update(self, values: Mapping[str, Any]) -> None:
        known = {f.name: f.type for f in fields(self)}
        for key, value in values.items():
            if key not in known:
                raise ValueError(f"unknown fault setting {key!r}; known: {sorted(known)}")
            if key.endswith("_rate"):
                if not isinstance(value, (int, float)) or not 0 <= value <= 1:
                    raise ValueError(f"{key} must be a number from 0 to 1, got {value!r}")
                value = float(value)
            elif key != "seed" and (not isinstance(value, int) or value < 0):
                raise ValueError(f"{key} must be a whole number >= 0, got {value!r}")
            setattr(self, key, value)


@dataclass
class Request:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: Mapping[str, str]  # keys lower-cased
    body: bytes
    scheme: str = "http"
    host: str = ""

    def query_dict(self) -> dict[str, str]:
        return dict(self.query)

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8")) if self.body else None


@dataclass
class Response:
    status: int
    body: Any = None  # JSON-serialisable, or bytes sent as they are
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if self.body is None:
            return b""
        return json.dumps(self.body).encode("utf-8")


@dataclass
class Delivery:
    url: str
    headers: dict[str, str]
    body: bytes
    status: int | None = None  # None: not delivered (dropped, or the receiver did not answer)
    error: str = ""


class WebhookOutbox:
    """Delivers webhooks in order from one thread, applying drop/duplicate/reorder faults."""

    def __init__(self, faults: Faults, rng: random.Random, timeout: float = 5.0) -> None:
        self._faults = faults
        self._rng = rng
        self._timeout = timeout
        self._queue: queue.Queue[Delivery | None] = queue.Queue()
        self._held: Delivery | None = None
        self.sent: list[Delivery] = []
        self.dropped: list[Delivery] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="sandbox-webhooks", daemon=True)
        self._thread.start()
        self.on_result: Any = None  # callable(Delivery) -> None, e.g. to disable after failures

    def send(self, url: str, headers: dict[str, str], body: bytes) -> None:
        self._queue.put(Delivery(url, dict(headers), body))

    def pending(self) -> int:
        return self._queue.unfinished_tasks + (1 if self._held else 0)

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until every queued webhook was handled (a held-back one is sent now)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        with self._lock:
            held, self._held = self._held, None
        if held is not None:
            self._deliver(held)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=2)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                self._handle(item)
            finally:
                self._queue.task_done()

    def _handle(self, delivery: Delivery) -> None:
        faults = self._faults
        if faults.webhook_delay_ms:
            time.sleep(faults.webhook_delay_ms / 1000)
        if self._rng.random() < faults.webhook_drop_rate:
            with self._lock:
                self.dropped.append(delivery)
            return
        with self._lock:
            held = self._held
            if held is None and self._rng.random() < faults.webhook_reorder_rate:
                self._held = delivery  # goes out after the next one
                return
            self._held = None
        self._deliver(delivery)
        if self._rng.random() < faults.webhook_duplicate_rate:
            self._deliver(Delivery(delivery.url, delivery.headers, delivery.body))
        if held is not None:
            self._deliver(held)

    def _deliver(self, delivery: Delivery) -> None:
        # the receiver is a configured http(s) URL of ours (the daemon), never user input
        req = urllib.request.Request(  # noqa: S310
            delivery.url, data=delivery.body, headers=delivery.headers, method="POST"
        )
        try:
            with urllib.request.urlopen(req, timeout=self._timeout) as resp:  # noqa: S310
                delivery.status = resp.status
        except urllib.error.HTTPError as exc:
            delivery.status = exc.code
            delivery.error = str(exc)
        except (urllib.error.URLError, OSError) as exc:
            delivery.error = str(exc)
        with self._lock:
            self.sent.append(delivery)
        if self.on_result is not None:
            self.on_result(delivery)


class SandboxServer:
    """A loopback HTTP server; subclasses implement `route` and `state_snapshot`."""

    name = "sandbox"

    def __init__(self, *, webhook_url: str | None = None, seed: int | None = None) -> None:
        self.faults = Faults(seed=seed)
        self.rng = random.Random(seed)
        self.webhook_url = webhook_url
        self.lock = threading.RLock()  # one lock over the shop's state, like a database would
        self.outbox = WebhookOutbox(self.faults, random.Random(seed))
        self.request_count: dict[str, int] = {}
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- to implement ---------------------------------------------------------------------
    def route(self, request: Request) -> Response:
        raise NotImplementedError

    def state_snapshot(self) -> Any:
        raise NotImplementedError

    def sandbox_route(self, request: Request) -> Response | None:
        """Extra `/_sandbox/*` routes of a subclass (checkout, state); None when unknown."""
        return None

    # -- serving --------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError(f"{self.name} sandbox is not started")
        host, port = self._httpd.server_address[:2]
        host_text = host.decode() if isinstance(host, bytes) else str(host)
        return f"http://{host_text}:{port}"

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        handler = _make_handler(self)
        self._httpd = ThreadingHTTPServer((host, port), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},  # stop() waits up to one poll interval
            name=f"{self.name}-sandbox",
            daemon=True,
        )
        self._thread.start()
        return self.url

    def serve_forever(self, host: str = "127.0.0.1", port: int = 0) -> None:
        handler = _make_handler(self)
        self._httpd = ThreadingHTTPServer((host, port), handler)
        self._httpd.daemon_threads = True
        print(self.url, flush=True)
        try:
            self._httpd.serve_forever()
        finally:
            self._httpd.server_close()

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        self.outbox.close()

    def __enter__(self) -> SandboxServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- dispatch -------------------------------------------------------------------------
    def dispatch(self, request: Request) -> Response:
        if request.path.startswith("/_sandbox/"):
            return self._dispatch_sandbox(request)
        key = f"{request.method} {request.path}"
        with self.lock:
            self.request_count[key] = self.request_count.get(key, 0) + 1
        faults = self.faults
        if faults.latency_ms:
            time.sleep(faults.latency_ms / 1000)
        if faults.write_latency_ms and request.method != "GET":
            time.sleep(faults.write_latency_ms / 1000)
        if faults.error_rate and self.rng.random() < faults.error_rate:
            return self.fault_response(faults.error_status)
        return self.route(request)

    def fault_response(self, status: int) -> Response:
        """The body an injected error carries; subclasses shape it like their API."""
        return Response(status, {"errors": f"sandbox injected fault {status}"})

    def _dispatch_sandbox(self, request: Request) -> Response:
        if request.path == "/_sandbox/faults":
            if request.method == "GET":
                return Response(200, asdict(self.faults))
            try:
                values = request.json() or {}
                if not isinstance(values, dict):
                    raise ValueError("fault settings must be a JSON object")
                self.faults.update(values)
            except (ValueError, UnicodeDecodeError) as exc:
                return Response(400, {"error": str(exc)})
            return Response(200, asdict(self.faults))
        if request.path == "/_sandbox/state" and request.method == "GET":
            with self.lock:
                return Response(200, self.state_snapshot())
        if request.path == "/_sandbox/webhooks/flush" and request.method == "POST":
            self.outbox.flush()
            outbox = self.outbox
            return Response(200, {"sent": len(outbox.sent), "dropped": len(outbox.dropped)})
        try:
            found = self.sandbox_route(request)
        except (ValueError, UnicodeDecodeError) as exc:
            return Response(400, {"error": str(exc)})
        return found if found is not None else Response(404, {"error": f"no route {request.path}"})


def _make_handler(server: SandboxServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            request = Request(
                method=self.command,
                path=parts.path,
                query=parse_qsl(parts.query, keep_blank_values=True),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
                host=self.headers.get("Host", ""),
            )
            try:
                response = server.dispatch(request)
            except Exception as exc:  # a sandbox bug must show as a 500, not a dropped socket
                response = Response(500, {"error": f"sandbox error: {exc!r}"})
            payload = response.encode()
            self.send_response(response.status)
            headers = {"Content-Type": "application/json; charset=utf-8", **response.headers}
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            # the client may have given up (its timeout): what the request did stays done
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 stdlib signature
            return  # quiet: tests and the demo read state through /_sandbox/state

    return Handler
