"""One GraphQL call to Shopify: timeout, error classification, retries, pacing.

Why not `shopify.GraphQL().execute`: it reads the site and the token header from
`ShopifyResource`'s thread-local (and class-level) session state, so a session activated in one
thread is invisible in a worker thread and two shops would trample each other; and it calls
`urlopen` without a timeout. We still use the package for what it owns - `shopify.Session`
builds the versioned `/admin/api/<ver>` site and validates the version, and the endpoint and
headers are the ones its GraphQL client would send - but each transport keeps its own endpoint
and headers (no activate_session, no global state) and sends with `requests`, a timeout on every
call, and one `requests.Session` per thread (held in a thread-local owned by this transport).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import requests
import shopify

from connectors.pacing import ThrottleStatus, delay_for
from connectors.shopify_retry import ShopifyCallError, http_key, retrying

DEFAULT_COST = 10.0  # until an operation's real cost is known, assume a mutation's


class ShopifyTransport:
    def __init__(
        self,
        channel: str,
        *,
        shop: str,
        token: str,
        api_version: str,
        api_url: str | None = None,
        timeout: float = 10.0,
        max_attempts: int = 5,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        session = shopify.Session(shop, api_version, token)
        # for a sandbox, the same versioned path on another origin (DESIGN §5)
        site = session.version.api_path(api_url.rstrip("/")) if api_url else session.site
        self.channel = channel
        self.endpoint = f"{site}/graphql.json"
        self.headers = {
            "Accept": "application/json",
            "Content-Type": "application/json",
            "User-Agent": f"ShopifyPythonAPI/{shopify.VERSION} stocksync",
            "X-Shopify-Access-Token": session.token,
        }
        self.timeout = timeout
        self.max_attempts = max_attempts
        self._sleep = sleep
        self._clock = clock
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()
        self._throttle: ThrottleStatus | None = None
        self._throttle_at = 0.0
        self._costs: dict[str, float] = {}
        self.calls = 0  # attempts sent, for tests and metrics

    # -- public --------------------------------------------------------------------------
    def execute(
        self,
        operation: str,
        query: str,
        variables: Mapping[str, Any] | None = None,
        *,
        attempts: int | None = None,
    ) -> dict[str, Any]:
        """Run one document; returns `data`. Raises ChannelError (ShopifyCallError).
        `attempts` caps the tries of this call (default `max_attempts`)."""
        payload = {"query": query, "variables": dict(variables or {}), "operationName": None}
        retry = retrying(attempts or self.max_attempts, sleep=self._sleep)
        return retry(self._attempt, operation, payload)

    def close(self) -> None:
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for http in sessions:
            http.close()

    # -- one attempt ---------------------------------------------------------------------
    def _http(self) -> requests.Session:
        http = getattr(self._local, "session", None)
        if http is None:
            http = requests.Session()
            self._local.session = http
            with self._lock:
                self._sessions.append(http)
        return http

    def _attempt(self, operation: str, payload: dict[str, Any]) -> dict[str, Any]:
        self._pace(operation)
        with self._lock:
            self.calls += 1
        try:
            response = self._http().post(
                self.endpoint, json=payload, headers=self.headers, timeout=self.timeout
            )
        except requests.Timeout as exc:
            raise self._error(operation, f"timed out: {exc}", key="transport:timeout") from exc
        except requests.RequestException as exc:
            raise self._error(
                operation, f"connection failed: {exc}", key="transport:connection"
            ) from exc
        body = _json_or_none(response)
        if isinstance(body, dict):
            self._record(operation, body.get("extensions"))
        if response.status_code != 200:
            code = _first_code(body)
            raise self._error(
                operation,
                f"HTTP {response.status_code}: {_describe(body, response.text)}",
                key=http_key(response.status_code),
                status=response.status_code,
                code=code,
                retry_after=self._throttle_wait(body) if code == "THROTTLED" else None,
            )
        if not isinstance(body, dict):
            raise self._error(
                operation, f"not JSON: {response.text[:200]!r}", key="payload:invalid", status=200
            )
        errors = body.get("errors")
        if errors:
            code = _first_code(body) or "GRAPHQL_ERROR"
            raise self._error(
                operation,
                _describe(body, ""),
                key=f"graphql:{code}",
                status=200,
                code=code,
                retry_after=self._throttle_wait(body) if code == "THROTTLED" else None,
            )
        data = body.get("data")
        if not isinstance(data, dict):
            raise self._error(operation, "response has no data", key="payload:invalid", status=200)
        return data

    def _error(
        self,
        operation: str,
        message: str,
        *,
        key: str,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> ShopifyCallError:
        return ShopifyCallError(
            self.channel,
            operation,
            message,
            key=key,
            status=status,
            code=code,
            retry_after=retry_after,
        )

    # -- pacing --------------------------------------------------------------------------
    def _pace(self, operation: str) -> None:
        with self._lock:
            status, at = self._throttle, self._throttle_at
            cost = self._costs.get(operation, DEFAULT_COST)
        wait = delay_for(cost, status, self._clock() - at)
        if wait > 0:
            self._sleep(wait)

    def _record(self, operation: str, extensions: Any) -> None:
        cost = extensions.get("cost") if isinstance(extensions, dict) else None
        status = ThrottleStatus.from_cost(cost if isinstance(cost, dict) else None)
        if status is None or not isinstance(cost, dict):
            return
        with self._lock:
            self._throttle, self._throttle_at = status, self._clock()
            requested = cost.get("requestedQueryCost")
            if isinstance(requested, int | float):
                self._costs[operation] = float(requested)

    def _throttle_wait(self, body: Any) -> float | None:
        """How long until the bucket holds what the throttled request asked for."""
        cost = body.get("extensions", {}).get("cost") if isinstance(body, dict) else None
        if not isinstance(cost, dict):
            return None
        status = ThrottleStatus.from_cost(cost)
        requested = cost.get("requestedQueryCost")
        if status is None or not isinstance(requested, int | float):
            return None
        return delay_for(float(requested), status, 0.0)


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _first_code(body: Any) -> str | None:
    if not isinstance(body, dict) or not isinstance(body.get("errors"), list):
        return None
    for error in body["errors"]:
        code = error.get("extensions", {}).get("code") if isinstance(error, dict) else None
        if isinstance(code, str):
            return code
    return None


def _describe(body: Any, fallback: str) -> str:
    if isinstance(body, dict) and "errors" in body:
        errors = body["errors"]
        if isinstance(errors, list):
            return "; ".join(
                str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in errors
            )
        return json.dumps(errors)[:300]
    return fallback[:300]
