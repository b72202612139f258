"""The one place a dramatiq broker is made, with its middleware in a deliberate order."""

from __future__ import annotations

from typing import Any

from dramatiq import Broker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)

from sync.failures import transient_only
from sync.middleware import FailurePolicy, JobContext

# Retries: transient failures (database restart, channel 5xx after the connector's own retries)
# back off from 0.5 s to 30 s, up to MAX_RETRIES times; permanent ones are never retried (the
# policy table is in sync/actors.py).
MAX_RETRIES = 8
MIN_BACKOFF_MS = 500
MAX_BACKOFF_MS = 30_000
# A message older than a day is stale: the sweeper re-creates anything that still matters.
MAX_AGE_MS = 24 * 3600 * 1000
# A job that runs longer than this is stuck (channel I/O has its own timeouts well below it).
TIME_LIMIT_MS = 10 * 60 * 1000
# Redis: a killed worker's unacked messages are requeued when its heartbeat is this old.
REDIS_HEARTBEAT_TIMEOUT_MS = 30_000


def middleware() -> list[Any]:
    """Before-hooks run in this order, after-hooks in the reverse one."""
    return [
        # first: binds the job's log context before anything else logs, clears it last
        JobContext(),
        AgeLimit(max_age=MAX_AGE_MS),  # drop expired messages before any work
        TimeLimit(time_limit=TIME_LIMIT_MS),  # interrupt stuck jobs
        # jobs are not interrupted at shutdown: each finishes its transaction (channel calls have
        # timeouts), and the sweeper redoes anything a killed process left behind
        ShutdownNotifications(notify_shutdown=False),
        Callbacks(),
        Pipelines(),
        # a failed job: log and record a permanent failure (per-actor recorders), count a
        # transient attempt where an actor asks for it
        FailurePolicy(),
        # last, so its after-hook runs first: retry transient failures with backoff, fail the
        # rest (max_retries is not consulted once retry_when is set: MAX_RETRIES is inside it)
        Retries(
            retry_when=transient_only(MAX_RETRIES),
            min_backoff=MIN_BACKOFF_MS,
            max_backoff=MAX_BACKOFF_MS,
        ),
    ]


def get_broker(url: str, *, namespace: str = "stocksync") -> Broker:
    """`memory` -> an in-process broker (workers run inside `stocksync run`); redis:// -> Redis."""
    if url == "memory":
        return StubBroker(middleware=middleware())
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisBroker(  # type: ignore[no-untyped-call]  # dramatiq leaves it unannotated
            url=url,
            namespace=namespace,
            middleware=middleware(),
            heartbeat_timeout=REDIS_HEARTBEAT_TIMEOUT_MS,
        )
    raise ValueError(f"broker must be 'memory' or a redis:// URL, got {url!r}")
