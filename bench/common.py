"""What every benchmark shares: percentiles, JSON and markdown output, loopback helpers, the
webhook delay relay, API-call counting and starting a stocksync daemon over both sandboxes.

Nothing runs at import; every resource is made by a function and closed by its caller.
"""

from __future__ import annotations

import json
import math
import platform
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sync import stack
from sync.stack import StackConfig
from sync.stack import free_ports as free_ports  # re-exported: what bench/drop.py imports

RESULTS_DIR = Path(__file__).resolve().parent / "results"


# ------------------------------------------------------------------------------ numbers
def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between closest ranks."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"q must be within 0..100, got {q}")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = math.ceil(rank)
    if low == high:
        return float(ordered[low])
    return float(ordered[low] + (ordered[high] - ordered[low]) * (rank - low))


def latency_summary(seconds: Sequence[float]) -> dict[str, Any]:
    """Count and p50/p95/p99/max in milliseconds; the percentiles are null for no samples."""
    if not seconds:
        return {"count": 0, "p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None}
    return {
        "count": len(seconds),
        "p50_ms": round(percentile(seconds, 50) * 1000, 1),
        "p95_ms": round(percentile(seconds, 95) * 1000, 1),
        "p99_ms": round(percentile(seconds, 99) * 1000, 1),
        "max_ms": round(max(seconds) * 1000, 1),
    }


def ratio(value: float, reference: float) -> float | None:
    """value / reference, rounded; None when the reference is zero (no meaningful ratio)."""
    return round(value / reference, 3) if reference > 0 else None


# ------------------------------------------------------------------------------ output
def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub markdown table; None shows as an em dash."""
    for row in rows:
        if len(row) != len(headers):
            raise ValueError(f"row {row!r} has {len(row)} cells, headers have {len(headers)}")

    def cell(value: Any) -> str:
        if value is None:
            return "—"
        if isinstance(value, float):
            return f"{value:g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"
        return str(value).replace("|", "\\|")

    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" for _ in headers) + "|",
    ]
    lines.extend("| " + " | ".join(cell(v) for v in row) + " |" for row in rows)
    return "\n".join(lines)


def environment() -> dict[str, Any]:
    """Where the numbers were taken, so results from different machines are not confused."""
    import os

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def default_json_path(name: str) -> Path:
    return RESULTS_DIR / f"{name}.json"


def write_json(result: Mapping[str, Any], path: Path) -> Path:
    """Write the result (pretty, sorted keys), creating the folder; returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, sort_keys=True, default=str) + "\n", "utf-8")
    return path


# ------------------------------------------------------------------------------ loopback
def api_calls(counts: Mapping[str, int]) -> int:
    """Requests to a sandbox's API routes (SandboxServer.request_count excludes /_sandbox/*)."""
    return sum(counts.values())


def count_delta(after: Mapping[str, int], before: Mapping[str, int]) -> dict[str, int]:
    """Per-route requests made between two snapshots of SandboxServer.request_count."""
    delta = {key: after.get(key, 0) - before.get(key, 0) for key in after}
    return {key: n for key, n in sorted(delta.items()) if n}


Deliver = Callable[[dict[str, str], bytes], None]
HOP_HEADERS = frozenset({"host", "content-length", "connection", "transfer-encoding"})


@dataclass
class RelayStats:
    received: int = 0
    delivered: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


class DelayRelay:
    """A loopback webhook receiver that answers 200 at once and hands each delivery on after
    its own delay, concurrently: real channels deliver many webhooks at once, each some hundreds
    of ms after the order. (The sandboxes' `webhook_delay_ms` sleeps before every delivery of one
    serial outbox, so at 200 ms a shop could deliver only 5 webhooks a second.)"""

    def __init__(
        self, deliver: Deliver, delay_ms: tuple[int, int] = (100, 300), seed: int = 1
    ) -> None:
        if delay_ms[0] < 0 or delay_ms[1] < delay_ms[0]:
            raise ValueError(f"delay range must be 0 <= low <= high, got {delay_ms}")
        self._deliver = deliver
        self._delay_ms = delay_ms
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._timers: set[threading.Timer] = set()
        self.stats = RelayStats()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("relay is not started")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> str:
        relay = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                relay.accept(headers, body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 stdlib name
                return

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self.url

    def accept(self, headers: dict[str, str], body: bytes) -> None:
        with self._lock:
            self.stats.received += 1
            delay = self._rng.uniform(*self._delay_ms) / 1000
            timer = threading.Timer(delay, self._forward, args=(headers, body))
            timer.daemon = True
            self._timers.add(timer)
        timer.start()

    def _forward(self, headers: dict[str, str], body: bytes) -> None:
        try:
            self._deliver(headers, body)
        except Exception as exc:  # recorded and reported: a benchmark must not hide lost events
            with self._lock:
                self.stats.failed += 1
                self.stats.errors.append(repr(exc)[:300])
        else:
            with self._lock:
                self.stats.delivered += 1
        finally:
            with self._lock:
                self._timers = {t for t in self._timers if t.is_alive()}

    def pending(self) -> int:
        with self._lock:
            return self.stats.received - self.stats.delivered - self.stats.failed

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        with self._lock:
            timers = list(self._timers)
        for timer in timers:
            timer.cancel()


def post_to(url: str, timeout: float = 5.0) -> Deliver:
    """A Deliver that POSTs the webhook on to `url` and fails on a non-2xx answer."""
    import requests

    def deliver(headers: dict[str, str], body: bytes) -> None:
        # one connection per delivery: deliveries run concurrently from timer threads
        reply = requests.post(url, data=body, headers=headers, timeout=timeout)
        if not 200 <= reply.status_code < 300:
            raise RuntimeError(f"{url} answered {reply.status_code}: {reply.text[:200]}")

    return deliver


# ------------------------------------------------------------------------------ stocksync
RULES = {
    "tiers": ["vip", "regular"],
    "defaults": {
        "safety_buffer": 0,
        "backorders": {"enabled": True, "incoming_share": 1.0, "horizon_days": 30},
        "release": {"order": ["priority", "tier", "placed_at"], "partial": True},
    },
    "channel_rules": {"shop": {"priority": 1}, "woo": {"priority": 2}},
    "sku_rules": [{"match": "DROP-*", "backorders": {"enabled": False}, "safety_buffer": 0}],
}


def stocksync_config(
    *,
    database: str | None = None,
    poll_interval: float = 60,
    rules: Mapping[str, Any] = RULES,
) -> StackConfig:
    """The benchmarks' config: no safety buffer, all incoming offered, no backorders on a drop
    (`rules` replaces the rule keys: bench.drop's pooled strategy adds a pool)."""
    return StackConfig(
        rules=rules,
        database=database,
        api_token="bench-token",  # noqa: S106 a loopback token, not a secret
        daemon={"poll_interval_s": poll_interval},
        log_level="ERROR",
    )


@contextmanager
def running_daemon(
    folder: Path,
    shopify_url: str,
    woo_url: str,
    stock: Mapping[str, int],
    *,
    port: int,
    database: str | None = None,
    worker_threads: int = 4,
    poll_interval: float = 60,
    rules: Mapping[str, Any] = RULES,
) -> Iterator[Any]:
    """A migrated ledger with `stock` counted in, and a started Daemon on `port`."""
    from rules import load_config
    from sync.stack import start_daemon

    config = stocksync_config(database=database, poll_interval=poll_interval, rules=rules)
    path = config.write(folder / "stocksync.yaml", shopify_url, woo_url)
    daemon = start_daemon(
        load_config(path), port, stock, actor="bench", worker_threads=worker_threads
    )
    try:
        yield daemon
    finally:
        daemon.stop()


def fresh_postgres(admin_url: str) -> AbstractContextManager[str]:
    """A new, empty PostgreSQL database for one benchmark run (sync.stack's); dropped afterwards."""
    return stack.fresh_postgres(admin_url, prefix="stocksync_bench_")


PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"


def stocksync_executable() -> str:
    """The `stocksync` console script of this interpreter (its folder first, then PATH)."""
    import os
    import shutil
    import sys

    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    found = shutil.which("stocksync", path=search)
    if found is None:
        raise FileNotFoundError("`stocksync` is not installed: run `python3 -m pip install -e .`")
    return found


class Stopwatch:
    """Monotonic elapsed seconds since construction."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.started
