"""Which WooCommerce failures are worth another attempt, in one table, and the tenacity policy
that acts on it.

wc/v3 has no rate limiter in core, but hosts and security plugins answer 429 (often with
Retry-After) and 5xx under load. A 413 means we sent a batch above 100 items: a bug on our side
that repeating cannot fix.
"""

from __future__ import annotations

import email.utils
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

import requests
import tenacity

from connectors.base import ChannelError

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Rule:
    match: range | type[BaseException]  # HTTP statuses, or an exception class from requests
    retryable: bool
    reason: str


# first match wins; anything unmatched is not retried
CLASSIFICATION: tuple[Rule, ...] = (
    Rule(range(413, 414), False, "batch above the 100-item limit: a caller bug"),
    Rule(range(408, 409), True, "the host timed the request out"),
    Rule(range(429, 430), True, "rate limited by the host"),
    Rule(range(500, 600), True, "server error"),
    Rule(range(400, 500), False, "refused by the API"),
    Rule(requests.Timeout, True, "timed out"),
    Rule(requests.ConnectionError, True, "could not connect"),
    Rule(requests.RequestException, False, "request could not be sent"),
)
_UNMATCHED = Rule(range(0), False, "unclassified failure")


def classify(failure: int | BaseException) -> Rule:
    """The rule for an HTTP status or a transport exception."""
    for rule in CLASSIFICATION:
        if isinstance(rule.match, range):
            if isinstance(failure, int) and failure in rule.match:
                return rule
        elif isinstance(failure, rule.match):
            return rule
    return _UNMATCHED


class WooCommerceError(ChannelError):
    """A failed WooCommerce call; `retry_after` is the host's Retry-After in seconds, if any."""

    def __init__(
        self,
        channel: str,
        operation: str,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
        maybe_applied: bool = False,
    ) -> None:
        super().__init__(channel, operation, message, status=status, code=code, retryable=retryable)
        self.retry_after = retry_after
        # the request may have reached the shop and been (partly) applied: a read timeout, a
        # connection lost after sending, a 5xx; not a refused connection or a 429
        self.maybe_applied = maybe_applied


def maybe_applied(failure: int | BaseException) -> bool:
    """Whether a failed request may still have changed the shop (see WooCommerceError)."""
    if isinstance(failure, int):
        return failure == 408 or failure >= 500
    return not isinstance(failure, requests.ConnectTimeout)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - now).total_seconds(), 0.0)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 5
    backoff: float = 0.5  # first exponential wait, seconds
    max_wait: float = 30.0  # cap for both backoff and Retry-After
    # writes: a failure that may have been applied is not repeated blindly, the caller reads
    # the shop again first (a repeated absolute write could land after a newer one)
    retry_maybe_applied: bool = True

    def wait_seconds(self, attempt: int, failure: BaseException | None) -> float:
        """Retry-After when the host sent one, else exponential backoff; both capped."""
        if isinstance(failure, WooCommerceError) and failure.retry_after is not None:
            return min(failure.retry_after, self.max_wait)
        return min(self.backoff * 2.0 ** max(attempt - 1, 0), self.max_wait)


def call_with_retries(policy: RetryPolicy, attempt: Callable[[], T]) -> T:
    """Run `attempt`, retrying retryable ChannelErrors (for a write policy, only those that
    cannot have been applied); the last error is raised as it was."""

    def retryable(failure: BaseException) -> bool:
        if not isinstance(failure, ChannelError) or not failure.retryable:
            return False
        if policy.retry_maybe_applied:
            return True
        return isinstance(failure, WooCommerceError) and not failure.maybe_applied

    def wait(state: tenacity.RetryCallState) -> float:
        failure = state.outcome.exception() if state.outcome is not None else None
        return policy.wait_seconds(state.attempt_number, failure)

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(max(policy.max_attempts, 1)),
        wait=wait,
        retry=tenacity.retry_if_exception(retryable),
        reraise=True,
    )
    return retrying(attempt)
