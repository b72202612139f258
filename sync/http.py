"""HTTP edge of the daemon: webhooks in, health, readiness, metrics, PO receipts and cancels.

Handlers do no channel I/O: a webhook is verified on its raw bytes, stored, committed, enqueued,
and answered (Shopify gives us 5 s).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from stock import channel_state, purchasing
from stock.tx import LedgerInputError, ReleasedUnits
from sync.actors import Actors
from sync.jobs import inbox, receipts
from sync.jobs.followups import Followups
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
        else:
            try:
                checks.update(_channels())
            except Exception as exc:
                checks["channels"] = f"error: {type(exc).__name__}"
        try:
            checks["broker"] = "ok" if broker_ready() else "error: unreachable"
        except Exception as exc:
            checks["broker"] = f"error: {type(exc).__name__}"
        return checks

    def _channels() -> dict[str, str]:
        """`channel:<name>`: "ok", or the auth error its calls are held for (sync/channel_auth)."""
        with runtime.ctx.sessions.begin() as session:
            held = channel_state.auth_holds(session)
        now = datetime.now(UTC)
        return {
            f"channel:{name}": "ok"
            if name not in held
            else channel_state.describe_hold(held[name], now)
            for name in runtime.channels
        }

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

    def _refused(request: Request) -> Response | None:
        """The purchase-order API's token check: a refusal, or None to go on."""
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
        return None

    async def receipt(request: Request) -> Response:
        refused = _refused(request)
        if refused is not None:
            return refused
        try:
            body = await request.body()
            lines = _receipt_lines(body)
            allow_over = _allow_over(body)
        except ValueError as exc:
            return JSONResponse({"ok": False, "error": str(exc)}, status_code=400)
        ref = request.path_params["ref"]
        try:
            # booked and released in one transaction, committed before we answer
            released, followups, over = await run_in_threadpool(_receive, ref, lines, allow_over)
        except purchasing.OverReceipt as exc:
            return JSONResponse(
                {
                    "ok": False, "error": str(exc),
                    "over": {i.sku: i.over for i in exc.items},
                    "hint": 'send "allow_over": true to book the units anyway',
                },
                status_code=409,
            )  # fmt: skip
        except LedgerInputError as exc:
            status = 404 if "no such" in exc.message else 400
            return JSONResponse({"ok": False, "error": str(exc)}, status_code=status)
        await run_in_threadpool(actors.dispatch, followups)
        return JSONResponse(
            {
                "ok": True,
                "ref": ref,
                "received": lines,
                "over_received": over,
                "released": [
                    {"channel": r.channel, "order": r.order_external_id,
                     "line": r.external_line_id, "sku": r.sku, "qty": r.qty}
                    for r in released
                ],
            }
        )  # fmt: skip

    def _receive(
        ref: str, lines: dict[str, int], allow_over: bool
    ) -> tuple[list[ReleasedUnits], Followups, dict[str, int]]:
        if not allow_over:
            released, followups = receipts.receive_purchase_order(runtime, ref, lines)
            return released, followups, {}
        # an over-receipt the caller allowed: the same transaction, the check lifted
        with runtime.ctx.ledger(actor="api") as tx:
            over = purchasing.receive_po(tx, ref, lines, allow_over=True)
        return tx.effects.released, Followups.of(tx.effects, list(runtime.channels)), over

    async def cancel(request: Request) -> Response:
        """Cancel a PO: its open lines stop counting as incoming; the answer lists the units no
        longer expected and the backorders now at risk. A cancelled or fully received PO: 409."""
        refused = _refused(request)
        if refused is not None:
            return refused
        ref = request.path_params["ref"]
        try:
            data, followups = await run_in_threadpool(_cancel, ref)
        except LedgerInputError as exc:
            status = 404 if "no such" in exc.message else 409
            return JSONResponse({"ok": False, "error": str(exc)}, status_code=status)
        await run_in_threadpool(actors.dispatch, followups)  # the lower offers are pushed
        return JSONResponse({"ok": True, "ref": ref, **data})

    def _cancel(ref: str) -> tuple[dict[str, Any], Followups]:
        from backorders import settle

        with runtime.ctx.ledger(actor="api") as tx:
            cancelled = purchasing.cancel_po(tx, ref)
            at_risk = settle.flag_at_risk(tx, f"po.cancel {ref}", cancelled)
        data = {"status": "cancelled", "cancelled": cancelled, "at_risk": at_risk}
        return data, Followups.of(tx.effects, list(runtime.channels))

    return Starlette(
        routes=[
            Route("/webhooks/{channel}", webhook, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/api/purchase-orders/{ref}/receipts", receipt, methods=["POST"]),
            Route("/api/purchase-orders/{ref}/cancel", cancel, methods=["POST"]),
        ]
    )


def _allow_over(body: bytes) -> bool:
    """The receipt body's optional `"allow_over": true` (book units beyond the ordered ones)."""
    data: Any = json.loads(body)  # _receipt_lines read it already
    value = data.get("allow_over", False)
    if not isinstance(value, bool):
        raise ValueError(f"allow_over must be true or false, got {value!r}")
    return value


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
