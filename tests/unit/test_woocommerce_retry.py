"""The one retry classification table and the tenacity policy built on it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import requests

from connectors.base import ChannelError
from connectors.woocommerce_retry import (
    RetryPolicy,
    WooCommerceError,
    call_with_retries,
    classify,
    maybe_applied,
    parse_retry_after,
)


@pytest.mark.parametrize(
    ("failure", "retryable"),
    [
        (429, True),
        (500, True),
        (502, True),
        (503, True),
        (504, True),
        (408, True),
        (413, False),
        (400, False),
        (401, False),
        (404, False),
        (requests.Timeout("slow"), True),
        (requests.ConnectTimeout("slow"), True),
        (requests.ConnectionError("refused"), True),
        (requests.TooManyRedirects("loop"), False),
        (ValueError("not a transport error"), False),
    ],
)
def test_classification(failure: int | BaseException, retryable: bool) -> None:
    assert classify(failure).retryable is retryable


def test_413_is_called_a_caller_bug() -> None:
    assert "caller bug" in classify(413).reason


def test_retry_after_forms() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", now) == 30.0
    assert parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now) == 0.0
    assert parse_retry_after(None, now) is None
    assert parse_retry_after("soon", now) is None


def test_waits_honour_retry_after_and_cap_backoff() -> None:
    policy = RetryPolicy(max_attempts=5, backoff=0.5, max_wait=4.0)
    assert policy.wait_seconds(1, None) == 0.5
    assert policy.wait_seconds(3, None) == 2.0
    assert policy.wait_seconds(10, None) == 4.0
    limited = WooCommerceError("woo", "op", "429", status=429, retryable=True, retry_after=3)
    assert policy.wait_seconds(1, limited) == 3.0
    far = WooCommerceError("woo", "op", "429", status=429, retryable=True, retry_after=999)
    assert policy.wait_seconds(1, far) == 4.0


def test_retryable_errors_are_retried_until_success() -> None:
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise WooCommerceError("woo", "op", "503", status=503, retryable=True)
        return "ok"

    assert call_with_retries(RetryPolicy(max_attempts=5, backoff=0.0), flaky) == "ok"
    assert len(calls) == 3


def test_non_retryable_errors_surface_at_once() -> None:
    calls: list[int] = []

    def refused() -> None:
        calls.append(1)
        raise WooCommerceError("woo", "op", "400", status=400, retryable=False)

    with pytest.raises(ChannelError) as caught:
        call_with_retries(RetryPolicy(max_attempts=5, backoff=0.0), refused)
    assert caught.value.status == 400
    assert len(calls) == 1


def test_attempts_are_bounded_and_the_last_error_kept() -> None:
    calls: list[int] = []

    def down() -> None:
        calls.append(1)
        raise WooCommerceError("woo", "op", f"try {len(calls)}", status=503, retryable=True)

    with pytest.raises(ChannelError, match="try 3"):
        call_with_retries(RetryPolicy(max_attempts=3, backoff=0.0), down)
    assert len(calls) == 3


@pytest.mark.parametrize(
    ("failure", "may_have_landed"),
    [
        (429, False),  # a rate limiter refuses before anything is applied
        (408, True),
        (500, True),
        (503, True),
        (requests.ReadTimeout("slow"), True),  # sent; the shop may still apply it
        (requests.ConnectionError("reset"), True),
        (requests.ConnectTimeout("no connection"), False),
    ],
)
def test_a_write_policy_repeats_only_failures_that_cannot_have_landed(
    failure: int | BaseException, may_have_landed: bool
) -> None:
    """An absolute stock write repeated after a timeout could land after a newer one: the
    write policy leaves such failures to the caller, which reads the shop again first."""
    assert maybe_applied(failure) is may_have_landed
    calls: list[int] = []

    def write() -> None:
        calls.append(1)
        status = failure if isinstance(failure, int) else None
        raise WooCommerceError(
            "woo", "push_offers", "failed", status=status, retryable=True,
            maybe_applied=maybe_applied(failure),
        )  # fmt: skip

    with pytest.raises(ChannelError):
        call_with_retries(
            RetryPolicy(max_attempts=4, backoff=0.0, retry_maybe_applied=False), write
        )
    assert len(calls) == (1 if may_have_landed else 4)
    calls.clear()
    with pytest.raises(ChannelError):
        call_with_retries(RetryPolicy(max_attempts=4, backoff=0.0), write)  # reads: always
    assert len(calls) == 4
