"""Which Shopify failures are worth retrying: one table, fed to tenacity.

Keys name a failure class: transport failures, HTTP status classes, GraphQL error codes.
Anything not in the table is permanent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

import tenacity

from connectors.base import ChannelError

RETRYABLE: Final[Mapping[str, bool]] = {
    "transport:timeout": True,  # no answer in time: the call may or may not have landed
    "transport:connection": True,  # refused, reset, DNS: nothing reached Shopify
    "http:429": True,  # rate limited (REST-style or THROTTLED at 429)
    "http:5xx": True,  # Shopify or a proxy in front of it failed
    "http:4xx": False,  # bad token, bad request, not found: retrying cannot help
    "graphql:THROTTLED": True,  # cost bucket empty; wait for it to refill
    "graphql:INTERNAL_SERVER_ERROR": True,
    "graphql:SERVICE_UNAVAILABLE": True,
    "graphql:IDEMPOTENCY_CONCURRENT_REQUEST": True,  # same key still running on Shopify
    "graphql:MAX_COST_EXCEEDED": False,  # the document itself is too expensive
    "graphql:ACCESS_DENIED": False,  # a missing scope
    "payload:invalid": False,  # a body that is not the API's JSON
}

MAX_WAIT_SECONDS: Final = 10.0


def http_key(status: int) -> str:
    if status == 429:
        return "http:429"
    if 500 <= status <= 599:
        return "http:5xx"
    return "http:4xx"


def is_retryable(key: str) -> bool:
    return RETRYABLE.get(key, False)


class ShopifyCallError(ChannelError):
    """A ChannelError that may say how long to wait (from throttleStatus) before retrying."""

    def __init__(
        self,
        channel: str,
        operation: str,
        message: str,
        *,
        key: str,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(
            channel, operation, message, status=status, code=code, retryable=is_retryable(key)
        )
        self.key = key
        self.retry_after = retry_after


def _should_retry(exc: BaseException) -> bool:
    return isinstance(exc, ChannelError) and exc.retryable


def _wait(backoff: tenacity.wait.wait_base) -> Callable[[tenacity.RetryCallState], float]:
    def wait(state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, ShopifyCallError) and exc.retry_after is not None:
            return min(exc.retry_after, MAX_WAIT_SECONDS)  # the server told us its refill time
        return float(backoff(state))

    return wait


def retrying(
    max_attempts: int,
    *,
    initial_wait: float = 0.1,
    sleep: Callable[[float], None] = tenacity.nap.sleep,
) -> tenacity.Retrying:
    """Retry retryable ChannelErrors with jittered exponential backoff, re-raising the last."""
    return tenacity.Retrying(
        retry=tenacity.retry_if_exception(_should_retry),
        stop=tenacity.stop_after_attempt(max(max_attempts, 1)),
        wait=_wait(
            tenacity.wait_exponential_jitter(
                multiplier=initial_wait, max=MAX_WAIT_SECONDS, jitter=initial_wait
            )
        ),
        sleep=sleep,
        reraise=True,
    )
