"""The public campaign API: the storefront's sign-up form and the customer's status page.

`POST /api/campaigns/{name}/waitlist` (JSON: email, sku, qty, phone, country, address, tier)
answers the entry's id, state and a private token; `GET /api/campaigns/{name}/entries/{token}`
answers what the customer's status page shows. Sign-ups are rate-limited per client address.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from stock import campaign_money, campaigns
from stock.tx import LedgerInputError
from sync import campaign_service as service
from sync.http_body import BodyTooLarge, read_body
from sync.rate_limit import RateLimit
from sync.runtime import Runtime

SIGNUP_LIMIT = 10  # sign-ups per client address per minute
SIGNUP_BODY = 16 * 1024  # a sign-up form is small


def campaign_routes(runtime: Runtime, limit: RateLimit | None = None) -> list[Route]:
    budget = limit or RateLimit(SIGNUP_LIMIT, 60.0)

    async def sign_up(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in runtime.config.campaigns:
            return _error(404, f"no campaign {name!r}")
        client = request.client.host if request.client else "unknown"
        if not budget.allow(client):
            wait = max(int(budget.retry_after(client)) + 1, 1)
            return _error(429, "too many sign-ups from this address", {"Retry-After": str(wait)})
        try:
            body = await read_body(request, SIGNUP_BODY)
            form = service.sign_up_rows(_form(body))
        except BodyTooLarge:
            return _error(413, "body too large")
        except ClientDisconnect:
            return _error(400, "the client went away")
        except ValueError as exc:
            return _error(400, str(exc))
        try:
            entry = await run_in_threadpool(_sign_up, name, form)
        except LedgerInputError as exc:
            return _error(400, str(exc))
        return JSONResponse(
            {"ok": True, "entry": entry.id, "status": entry.status, "token": entry.token,
             "status_url": f"/api/campaigns/{name}/entries/{entry.token}"},
            status_code=201,
        )  # fmt: skip

    def _sign_up(name: str, form: service.SignUp) -> campaigns.EntryRow:
        with runtime.ctx.ledger(actor="api") as tx:
            return service.sign_up(tx, runtime.config, name, form)

    async def entry_status(request: Request) -> Response:
        name, token = request.path_params["name"], request.path_params["token"]
        campaign = runtime.config.campaigns.get(name)
        if campaign is None:
            return _error(404, f"no campaign {name!r}")
        found = await run_in_threadpool(_by_token, name, token)
        if found is None:
            return _error(404, "no such entry")
        entry, money = found
        page = service.status_page(entry, campaign, datetime.now(UTC), money)
        return JSONResponse({"ok": True, **page})

    def _by_token(
        name: str, token: str
    ) -> tuple[campaigns.EntryRow, list[campaign_money.MoneyRow]] | None:
        with runtime.ctx.read() as session:
            entry = campaigns.by_token(session, name, token)
            if entry is None:
                return None
            return entry, campaign_money.of_entries(session, [entry.id]).get(entry.id, [])

    async def decide_terms(request: Request) -> Response:
        """The customer's choice on changed terms, by their private token."""
        name, token = request.path_params["name"], request.path_params["token"]
        if name not in runtime.config.campaigns:
            return _error(404, f"no campaign {name!r}")
        try:
            body = json.loads(await read_body(request, SIGNUP_BODY) or b"null")
        except BodyTooLarge:
            return _error(413, "body too large")
        except (ValueError, UnicodeDecodeError):
            return _error(400, 'expected JSON: {"accept": true} or {"accept": false}')
        accept = body.get("accept") if isinstance(body, dict) else None
        if not isinstance(accept, bool):
            return _error(400, 'expected JSON: {"accept": true} or {"accept": false}')
        found = await run_in_threadpool(_by_token, name, token)
        if found is None:
            return _error(404, "no such entry")
        try:
            entry = await run_in_threadpool(_decide, found[0].id, accept)
        except LedgerInputError as exc:
            return _error(409, str(exc))
        return JSONResponse({"ok": True, "status": entry.status,
                             "accepted": accept, "entry": entry.id})  # fmt: skip

    def _decide(entry_id: int, accept: bool) -> campaigns.EntryRow:
        with runtime.ctx.ledger(actor="api") as tx:
            return service.decide_terms(tx, runtime.config, entry_id, accept)

    return [
        Route("/api/campaigns/{name}/waitlist", sign_up, methods=["POST"]),
        Route("/api/campaigns/{name}/entries/{token}", entry_status, methods=["GET"]),
        Route("/api/campaigns/{name}/entries/{token}/terms", decide_terms, methods=["POST"]),
    ]


def _form(body: bytes) -> dict[str, str]:
    try:
        data: Any = json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"body is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError('expected a JSON object: {"email": ..., "sku": ...}')
    form: dict[str, str] = {}
    for key, value in data.items():
        if value is None:
            continue
        if key == "accept_terms" and isinstance(value, bool):
            form[key] = "true" if value else "false"
            continue
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise ValueError(f"{key} must be text or a number")
        form[str(key)] = str(value)
    return form


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"ok": False, "error": message}, status_code=status, headers=headers)
