"""The pieces that meet hostile HTTP clients, each on its own and fast: header and body
deadlines and the connection cap on a real loopback server (sub-second timeouts), the log
throttle, the open-file arithmetic, the environment settings, rejection reason codes, receipt
quantities and the error boundary. tests/integration/test_hostile_clients.py runs them in
`stocksync run`.
"""

from __future__ import annotations

import asyncio
import json
import resource
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from structlog.testing import capture_logs
from uvicorn.server import ServerState

from sync.fd_limit import FD_RESERVE, MIN_CONNECTIONS, connection_cap
from sync.http import MAX_QUANTITY, _receipt_lines
from sync.http_errors import ErrorBoundary, internal_error_handler
from sync.http_guard import ConnectionGuard, guarded_h11
from sync.http_limits import MAX_CONNECTIONS, HttpLimits
from sync.log_throttle import Throttle
from sync.metrics import UNKNOWN_CHANNEL, Metrics, channel_label
from sync.webhook_rejections import reason_code


# ------------------------------------------------------------------------ a loopback server
async def echo_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """/early answers 413 without reading the body; anything else reads it, answers its size."""
    assert scope["type"] == "http"
    size = 0
    if scope["path"] != "/early":
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            size += len(message.get("body", b""))
            more = message.get("more_body", False)
    status = 413 if scope["path"] == "/early" else 200
    body = str(size).encode()
    headers = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@asynccontextmanager
async def server(limits: HttpLimits, cap: int = 100) -> AsyncIterator[tuple[int, Metrics]]:
    """echo_app behind the guarded protocol on a free loopback port."""
    metrics = Metrics()
    guard = ConnectionGuard(limits, cap, metrics)
    config = uvicorn.Config(echo_app, http=guarded_h11(guard), lifespan="off", log_config=None)
    config.load()
    state = ServerState()
    loop = asyncio.get_running_loop()

    def protocol() -> asyncio.Protocol:
        return config.http_protocol_class(  # type: ignore[call-arg]
            config=config, server_state=state, app_state={}, _loop=loop
        )

    listener = await loop.create_server(protocol, "127.0.0.1", 0)
    try:
        yield listener.sockets[0].getsockname()[1], metrics
    finally:
        listener.close()
        for connection in list(state.connections):
            connection.shutdown()


def closed(metrics: Metrics, reason: str) -> float:
    value = metrics.registry.get_sample_value(
        "stocksync_http_connections_closed_total", {"reason": reason}
    )
    return value or 0.0


async def closed_after(reader: asyncio.StreamReader, timeout: float) -> tuple[bytes, float]:
    """What the server sent before closing, and when it closed (seconds from now)."""
    start = time.monotonic()
    data = await asyncio.wait_for(reader.read(), timeout)
    return data, time.monotonic() - start


def run(coro: Callable[[], Any]) -> None:
    asyncio.run(coro())


def test_trickled_header_bytes_do_not_move_the_header_deadline() -> None:
    async def scenario() -> None:
        async with server(HttpLimits(header_timeout_s=0.4)) as (port, metrics):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"POST /x HTTP/1.1\r\nHost: a\r\nX-Slow: ")

            async def trickle() -> None:  # a byte every 50 ms, as slowloris does
                while True:
                    await asyncio.sleep(0.05)
                    writer.write(b"x")

            trickling = asyncio.create_task(trickle())
            data, elapsed = await closed_after(reader, 3)
            trickling.cancel()
            assert data == b"" and 0.35 <= elapsed < 1.0, (data, elapsed)
            assert closed(metrics, "header_timeout") == 1
            writer.close()

    run(scenario)


def test_a_body_must_arrive_within_the_body_deadline() -> None:
    async def scenario() -> None:
        limits = HttpLimits(header_timeout_s=5, body_timeout_s=0.3)
        async with server(limits) as (port, metrics):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
            data, elapsed = await closed_after(reader, 3)
            assert data == b"" and 0.25 <= elapsed < 1.5, (data, elapsed)
            assert closed(metrics, "body_timeout") == 1
            writer.close()

    run(scenario)


def test_kept_alive_connections_serve_requests_and_then_time_out_idle() -> None:
    async def scenario() -> None:
        async with server(HttpLimits(header_timeout_s=0.35)) as (port, metrics):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            for _ in range(3):  # together longer than one header deadline, each inside its own
                await asyncio.sleep(0.2)
                writer.write(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc")
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
                assert head.startswith(b"HTTP/1.1 200"), head
                assert await reader.readexactly(1) == b"3"
            data, elapsed = await closed_after(reader, 3)  # then idle: the next deadline
            assert data == b"" and elapsed < 1.5
            assert closed(metrics, "header_timeout") == 1
            writer.close()

    run(scenario)


def test_beyond_the_cap_the_longest_waiting_idle_connection_makes_room() -> None:
    async def scenario() -> None:
        async with server(HttpLimits(header_timeout_s=30), cap=2) as (port, metrics):
            oldest = await asyncio.open_connection("127.0.0.1", port)
            oldest[1].write(b"GET /")  # partial: still waiting for its headers
            await asyncio.sleep(0.1)
            second = await asyncio.open_connection("127.0.0.1", port)
            await asyncio.sleep(0.1)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            assert (await closed_after(oldest[0], 2))[0] == b""
            writer.write(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nok")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
            assert head.startswith(b"HTTP/1.1 200")
            assert not second[0].at_eof()
            assert closed(metrics, "evicted") == 1
            gauge = metrics.registry.get_sample_value("stocksync_http_connections_open")
            assert gauge == 2
            for _, w in (oldest, second, (reader, writer)):
                w.close()

    run(scenario)


def test_when_no_connection_is_idle_the_new_one_is_refused() -> None:
    async def scenario() -> None:
        async with server(HttpLimits(body_timeout_s=30), cap=1) as (port, metrics):
            busy_reader, busy = await asyncio.open_connection("127.0.0.1", port)
            busy.write(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 9\r\n\r\nabc")
            await asyncio.sleep(0.1)  # its headers are in: it receives a body
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            assert (await closed_after(reader, 2))[0] == b""
            assert closed(metrics, "refused") == 1 and closed(metrics, "evicted") == 0
            busy.write(b"defghi")
            head = await asyncio.wait_for(busy_reader.readuntil(b"\r\n\r\n"), 2)
            assert head.startswith(b"HTTP/1.1 200")
            busy.close()
            writer.close()

    run(scenario)


def test_an_answer_before_the_body_ends_the_connection_without_reading_the_rest() -> None:
    async def scenario() -> None:
        async with server(HttpLimits(body_timeout_s=30, linger_s=0.2)) as (port, metrics):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(
                b"POST /early HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                + b"10000\r\n" + b"x" * 0x10000 + b"\r\n"
            )  # fmt: skip
            answer, elapsed = await closed_after(reader, 3)  # the answer, then its end
            assert answer.startswith(b"HTTP/1.1 413"), answer
            assert elapsed < 1.0
            await asyncio.sleep(0.5)  # the linger: then the server closes its side
            assert closed(metrics, "body_unread") == 1
            writer.close()

    run(scenario)


# ------------------------------------------------------------------------ the arithmetic
def test_connection_cap_leaves_a_reserve_under_the_open_file_limit() -> None:
    assert connection_cap(1024, maximum=4096) == 768
    assert connection_cap(65536, maximum=4096) == 4096
    assert connection_cap(100, maximum=4096) == MIN_CONNECTIONS
    assert connection_cap(resource.RLIM_INFINITY, maximum=500) == 500


def test_the_systemd_unit_leaves_room_for_every_connection_and_the_reserve() -> None:
    unit = Path(__file__).resolve().parents[2] / "deploy" / "systemd" / "stocksync-run.service"
    (limit,) = [
        int(line.split("=", 1)[1])
        for line in unit.read_text(encoding="utf-8").splitlines()
        if line.startswith("LimitNOFILE=")
    ]
    assert limit >= MAX_CONNECTIONS + FD_RESERVE
    assert connection_cap(limit, maximum=MAX_CONNECTIONS) == MAX_CONNECTIONS


def test_limits_come_from_the_environment_and_bad_values_are_named() -> None:
    assert HttpLimits.from_env({}) == HttpLimits()
    limits = HttpLimits.from_env(
        {"STOCKSYNC_HEADER_TIMEOUT_S": "2.5", "STOCKSYNC_BODY_TIMEOUT_S": "7",
         "STOCKSYNC_MAX_CONNECTIONS": "300"}
    )  # fmt: skip
    assert (limits.header_timeout_s, limits.body_timeout_s, limits.max_connections) == (
        2.5, 7.0, 300,
    )  # fmt: skip
    for name, value in (
        ("STOCKSYNC_HEADER_TIMEOUT_S", "0"),
        ("STOCKSYNC_BODY_TIMEOUT_S", "soon"),
        ("STOCKSYNC_MAX_CONNECTIONS", "-1"),
    ):
        with pytest.raises(ValueError, match=name):
            HttpLimits.from_env({name: value})


def test_throttle_logs_the_first_then_one_per_interval_with_the_count_held_back() -> None:
    now = [0.0]
    throttle = Throttle(interval_s=60, clock=lambda: now[0])
    assert throttle.allow("a") == 0
    assert [throttle.allow("a") for _ in range(5)] == [None] * 5
    assert throttle.allow("b") == 0  # keys are independent
    now[0] = 61
    assert throttle.allow("a") == 5
    assert throttle.allow("a") is None


def test_labels_and_reasons_come_from_fixed_sets() -> None:
    assert channel_label("shop", {"shop": 1}) == "shop"
    assert channel_label("x" * 50, {"shop": 1}) == UNKNOWN_CHANNEL
    assert [reason_code(s) for s in (401, 404, 413, 400, 422)] == [
        "bad_signature", "unknown_channel", "too_large", "bad_body", "other",
    ]  # fmt: skip


def test_receipt_quantities_beyond_the_ledger_integers_are_refused() -> None:
    assert _receipt_lines(json.dumps({"lines": {"A": MAX_QUANTITY}}).encode()) == {
        "A": MAX_QUANTITY
    }
    for body in (
        {"lines": {"A": 2**31}},
        {"lines": [{"sku": "A", "quantity": 2**30}, {"sku": "A", "quantity": 2**30}]},
    ):
        with pytest.raises(ValueError, match="A: quantit"):
            _receipt_lines(json.dumps(body).encode())


# ------------------------------------------------------------------------ the error boundary
def test_error_boundary_logs_one_line_answers_500_json_and_does_not_raise() -> None:
    async def broken(_request: Request) -> Response:
        raise RuntimeError("the ledger is gone")

    app = Starlette(
        routes=[Route("/boom", broken)], exception_handlers={Exception: internal_error_handler}
    )
    boundary = ErrorBoundary(app, Metrics())
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/boom", "headers": [],
             "query_string": b"", "root_path": ""}  # fmt: skip
    with capture_logs() as logs:
        asyncio.run(boundary(scope, receive, send))  # does not raise
    assert sent[0]["status"] == 500
    assert json.loads(sent[1]["body"]) == {"ok": False, "error": "internal error"}
    (line,) = logs
    assert (line["event"], line["error"], line["path"]) == ("http_error", "RuntimeError", "/boom")
    assert "RuntimeError: the ledger is gone" in line["exception"]
    assert boundary.metrics.registry.get_sample_value("stocksync_http_errors_total") == 1
