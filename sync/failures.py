"""Which job failures are worth a retry: the one classifier behind the actors' retry policy.

Depends on nothing of stocksync but the connectors' error type, so the jobs, the broker and its
middleware can all import it.
"""

from __future__ import annotations

from collections.abc import Callable

from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from connectors.base import ChannelError

# dramatiq's `retry_when`: (retries so far, the exception) -> retry this message?
RetryWhen = Callable[[int, BaseException], bool]


def is_transient(exc: BaseException) -> bool:
    """One place that says which failures are worth a retry."""
    if isinstance(exc, ChannelError):
        return exc.retryable  # the connector classified it (and already did its own retries)
    if isinstance(exc, OperationalError | RedisError | ConnectionError | TimeoutError):
        return True
    if isinstance(exc, IntegrityError):
        return True  # a concurrent writer inserted the same row first: a retry sees it
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def transient_only(max_retries: int) -> RetryWhen:
    """Retry a transient failure up to `max_retries` times; never retry a permanent one."""

    def retry_when(retries: int, exc: BaseException) -> bool:
        return retries < max_retries and is_transient(exc)

    return retry_when


def never(_retries: int, _exc: BaseException) -> bool:
    """For jobs that a schedule re-runs anyway (the sweep): a failure waits for the next run."""
    return False
