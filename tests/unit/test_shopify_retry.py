"""One classification table decides retries; tenacity retries only what it marks retryable."""

from __future__ import annotations

import pytest

from connectors.shopify_retry import RETRYABLE, ShopifyCallError, http_key, is_retryable, retrying


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("transport:timeout", True),
        ("transport:connection", True),
        (http_key(429), True),
        (http_key(500), True),
        (http_key(503), True),
        (http_key(401), False),
        (http_key(404), False),
        ("graphql:THROTTLED", True),
        ("graphql:MAX_COST_EXCEEDED", False),
        ("graphql:undefinedField", False),  # anything unknown is permanent
    ],
)
def test_classification(key: str, expected: bool) -> None:
    assert is_retryable(key) is expected


def test_table_keys_are_namespaced() -> None:
    assert all(
        key.split(":", 1)[0] in {"transport", "http", "graphql", "payload"} for key in RETRYABLE
    )


def failing(key: str, calls: list[int], *, retry_after: float | None = None) -> None:
    calls.append(1)
    raise ShopifyCallError("shop", "op", "boom", key=key, retry_after=retry_after)


def test_retryable_errors_are_retried_until_attempts_run_out() -> None:
    calls: list[int] = []
    waits: list[float] = []
    with pytest.raises(ShopifyCallError) as caught:
        retrying(3, sleep=waits.append)(failing, "http:5xx", calls)
    assert len(calls) == 3
    assert len(waits) == 2
    assert caught.value.retryable


def test_permanent_errors_are_not_retried() -> None:
    calls: list[int] = []
    with pytest.raises(ShopifyCallError) as caught:
        retrying(5, sleep=lambda _: None)(failing, "http:4xx", calls)
    assert len(calls) == 1
    assert not caught.value.retryable


def test_throttle_wait_comes_from_the_server() -> None:
    calls: list[int] = []
    waits: list[float] = []
    with pytest.raises(ShopifyCallError):
        retrying(2, sleep=waits.append)(failing, "graphql:THROTTLED", calls, retry_after=1.25)
    assert waits == [1.25]


def test_success_after_a_transient_failure() -> None:
    attempts: list[int] = []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise ShopifyCallError("shop", "op", "timeout", key="transport:timeout")
        return "ok"

    assert retrying(5, sleep=lambda _: None)(flaky) == "ok"
    assert len(attempts) == 3
