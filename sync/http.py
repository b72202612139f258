"""HTTP edge of the daemon: webhooks in, health, readiness, metrics, PO receipts.

Handlers do no channel I/O: a webhook is verified on its raw bytes, stored, committed, enqueued,
and answered (Shopify gives us 5 s).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from stock.tx import LedgerInputError
from sync.actors import Actors
from sync.jobs import inbox, receipts
from sync.logs import get_logger
from sync.metrics import refresh_gauges
from sync.runtime import Runtime

log = get_logger("stocksync.http")
MAX_BODY = 5 * 1024 * 1024  # orders are small; refuse anything absurd before reading it all


def create_app(runtime: Runtime, actors: Actors, broker_ready: Callable[[], bool]) -> Starlette:
    async def webhook(request: Request) -> Response:
        channel = request.path_params["channel"]
        if int(request.headers.get("content-length") or 0) > MAX_BODY:
            return JSONResponse({"ok": False, "error": "body too large"}, status_code=413)
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        result = await run_in_threadpool(inbox.ingest_webhook, runtime, channel, headers, body)
        runtime.metrics.webhooks.labels(channel, result.outcome).inc()
        if result.outcome == "rejected":
            log.warning("webhook_rejected", channel=channel, status=result.status,
                        reason=result.reason)  # fmt: skip
            return JSONResponse({"ok": False, "error": result.reason}, status_code=result.status)
        if result.event_id is not None:
            await run_in_threadpool(actors.process_event.send, result.event_id)
        return JSONResponse({"ok": True, "outcome": result.outcome})

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    def _ready() -> dict[str, str]:
        checks: dict[str, str] = {}
        try:
            with runtime.ctx.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:  # readiness reports any failure, it never raises
            checks["database"] = f"error: {type(exc).__name__}"
        try:
            checks["broker"] = "ok" if broker_ready() else "error: unreachable"
        except Exception as exc:
            checks["broker"] = f"error: {type(exc).__name__}"
        return checks

    async def readyz(_request: Request) -> Response:
        checks = await run_in_threadpool(_ready)
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse({"ready": ok, **checks}, status_code=200 if ok else 503)

    async def metrics(_request: Request) -> Response:
        await run_in_threadpool(_refresh_gauges)
        return Response(runtime.metrics.render(), media_type="text/plain; version=0.0.4")

    def _refresh_gauges() -> None:
        with runtime.ctx.sessions.begin() as session:
            refresh_gauges(runtime.metrics, session, list(runtime.channels))

    async def receipt(request: Request) -> Response:
        token = runtime.config.server.api_token
        if token is None:
            return JSONResponse(
                {"ok": False, "error": "receipts API disabled: set server.api_token"},
                status_code=403,
            )
        presented = request.headers.get("authorization", "")
        expected = f"Bearer {token.get_secret_value()}"
        if not hmac.compare_digest(presented.encode(), expected.encode()):
            return JSONResponse({"ok": False, "error": "bad or missing token"}, status_code=401)
        try:
            lines = _receipt_lines(await request.body())
        except ValueError as exc:
            return JSONResponse({"ok": False, "error": str(exc)}, status_code=400)
        ref = request.path_params["ref"]
        try:
            # booked and released in one transaction, committed before we answer
            released, followups = await run_in_threadpool(
                receipts.receive_purchase_order, runtime, ref, lines
            )
        except LedgerInputError as exc:
            status = 404 if "no such" in exc.message else 400
            return JSONResponse({"ok": False, "error": str(exc)}, status_code=status)
        await run_in_threadpool(actors.dispatch, followups)
        return JSONResponse(
            {
                "ok": True,
                "ref": ref,
                "received": lines,
                "released": [
                    {"channel": r.channel, "order": r.order_external_id,
                     "line": r.external_line_id, "sku": r.sku, "qty": r.qty}
                    for r in released
                ],
            }
        )  # fmt: skip

    return Starlette(
        routes=[
            Route("/webhooks/{channel}", webhook, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/api/purchase-orders/{ref}/receipts", receipt, methods=["POST"]),
        ]
    )


def _receipt_lines(body: bytes) -> dict[str, int]:
    """{"lines": {"SKU": qty}} or {"lines": [{"sku": S, "quantity": N}]} -> {sku: qty}."""
    try:
        data: Any = json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"body is not JSON: {exc}") from exc
    raw = data.get("lines") if isinstance(data, dict) else None
    pairs: list[tuple[Any, Any]]
    if isinstance(raw, dict):
        pairs = list(raw.items())
    elif isinstance(raw, list):
        pairs = [(e.get("sku"), e.get("quantity")) if isinstance(e, dict) else (None, None)
                 for e in raw]  # fmt: skip
    else:
        raise ValueError('expected {"lines": {"SKU": quantity, ...}}')
    lines: dict[str, int] = {}
    for sku, qty in pairs:
        if not isinstance(sku, str) or not sku:
            raise ValueError(f"each line needs a SKU, got {sku!r}")
        if not isinstance(qty, int) or isinstance(qty, bool) or qty <= 0:
            raise ValueError(f"{sku}: quantity must be a positive whole number, got {qty!r}")
        lines[sku] = lines.get(sku, 0) + qty
    if not lines:
        raise ValueError("a receipt needs at least one line")
    return lines
