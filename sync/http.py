"""HTTP edge of the daemon: webhooks in, health, readiness, metrics, PO receipts and cancels.

Handlers do no channel I/O: a webhook is verified on its raw bytes, stored, committed, enqueued,
and answered (Shopify gives us 5 s).

Hostile clients are met in layers: sync/http_guard.py (slow and idle connections, the connection
cap), sync/http_body.py (body size counted on the bytes read), sync/webhook_rejections.py
(rejections counted, logged sparingly), sync/http_errors.py (uncaught errors: one redacted
line, a 500 JSON answer).
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
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from stock import channel_state, purchasing
from stock.tx import LedgerInputError, ReleasedUnits
from sync.actors import Actors
from sync.http_body import MAX_BODY, BodyTooLarge, read_body
from sync.http_campaigns import campaign_routes
from sync.http_errors import ErrorBoundary, internal_error_handler
from sync.jobs import inbox, receipts
from sync.jobs.followups import Followups
from sync.metrics import channel_label, refresh_gauges
from sync.runtime import Runtime
from sync.webhook_rejections import DISCONNECTED, TOO_LARGE, WebhookRejections, reason_code

# Receipt quantities at most this: the ledger's quantity columns are 32-bit integers on
# PostgreSQL, and a larger number would fail inside the transaction instead of being refused.
MAX_QUANTITY = 2**31 - 1


def too_large() -> Response:
    return JSONResponse(
        {"ok": False, "error": f"body too large (limit {MAX_BODY} bytes)"}, status_code=413
    )


def create_app(runtime: Runtime, actors: Actors, broker_ready: Callable[[], bool]) -> ASGIApp:
    rejections = WebhookRejections(runtime.metrics)

    async def webhook(request: Request) -> Response:
        channel = request.path_params["channel"]
        label = channel_label(channel, runtime.config.channels)
        try:
            body = await read_body(request)
        except BodyTooLarge as exc:
            rejections.record(label, channel, TOO_LARGE, 413, str(exc))
            return too_large()
        except ClientDisconnect:
            rejections.record(label, channel, DISCONNECTED, 400, "client went away mid-body")
            return Response(status_code=400)  # nobody reads it: the connection is gone
        headers = {k.lower(): v for k, v in request.headers.items()}
        result = await run_in_threadpool(inbox.ingest_webhook, runtime, channel, headers, body)
        if result.outcome == "rejected":
            code = reason_code(result.status)
            rejections.record(label, channel, code, result.status, result.reason)
            return JSONResponse({"ok": False, "error": result.reason}, status_code=result.status)
        runtime.metrics.webhooks.labels(label, result.outcome).inc()
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
            refresh_gauges(runtime.metrics, session, list(runtime.channels), runtime.config)

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
            body = await read_body(request)
        except BodyTooLarge:
            return too_large()
        try:
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

    app = Starlette(
        routes=[
            Route("/webhooks/{channel}", webhook, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/api/purchase-orders/{ref}/receipts", receipt, methods=["POST"]),
            # reads no body: one sent anyway is left unread, the connection closed after the
            # answer (sync/http_guard.py)
            Route("/api/purchase-orders/{ref}/cancel", cancel, methods=["POST"]),
            *campaign_routes(runtime),
        ],
        exception_handlers={Exception: internal_error_handler},
    )
    return ErrorBoundary(app, runtime.metrics)


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
        if qty > MAX_QUANTITY:
            raise ValueError(f"{sku}: quantity {qty} is above the largest allowed, {MAX_QUANTITY}")
        lines[sku] = lines.get(sku, 0) + qty
        if lines[sku] > MAX_QUANTITY:  # the same SKU on several lines
            raise ValueError(f"{sku}: quantities add up to more than {MAX_QUANTITY}")
    if not lines:
        raise ValueError("a receipt needs at least one line")
    return lines
