"""dramatiq middleware for every stocksync job: its log context and what a failure leads to.

The retry half of the policy is dramatiq's `Retries(retry_when=...)` (sync/broker.py); the
record-and-log half is `FailurePolicy` below. The policy, per actor, is tabled in sync/actors.py.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import structlog
from dramatiq import Broker, Middleware
from dramatiq.broker import MessageProxy

from sync.failures import is_transient
from sync.logs import get_logger

log = get_logger("stocksync.jobs")

# Actor options FailurePolicy reads. A recorder is called with the job's own arguments plus
# `error=repr(exception)`, e.g. `record_event_failure(runtime, event_id, error=...)` bound
# with functools.partial to the runtime.
ON_PERMANENT_FAILURE = "on_permanent_failure"  # the failure will not be retried: record it
ON_TRANSIENT_FAILURE = "on_transient_failure"  # an attempt failed, dramatiq retries it

Recorder = Callable[..., None]


class JobContext(Middleware):
    """Binds structlog context for one message, cleared when it is done: `job` (the actor's
    name), `message_id`, and the job's arguments by their parameter names (`event_id=42`).

    Each worker thread has its own context, so jobs running side by side do not mix.
    """

    def before_process_message(self, broker: Broker, message: MessageProxy) -> None:
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(
            job=message.actor_name,
            message_id=message.message_id,
            **_arguments(broker, message),
        )

    def after_process_message(
        self,
        broker: Broker,
        message: MessageProxy,
        *,
        result: Any | None = None,
        exception: BaseException | None = None,
    ) -> None:
        structlog.contextvars.clear_contextvars()

    def after_skip_message(self, broker: Broker, message: MessageProxy) -> None:
        structlog.contextvars.clear_contextvars()


def _arguments(broker: Broker, message: MessageProxy) -> dict[str, Any]:
    try:
        fn = broker.get_actor(message.actor_name).fn
        bound = inspect.signature(fn).bind(*message.args, **message.kwargs)
    except Exception:  # an unknown actor or arguments that do not fit: the worker reports it
        return {"args": list(message.args)} if message.args else {}
    return dict(bound.arguments)


class FailurePolicy(Middleware):
    """After a job raised: a permanent failure (not `is_transient`) is logged as `job_failed`
    and handed to the actor's `on_permanent_failure` recorder; a transient one goes to its
    `on_transient_failure` recorder, if any. Whether dramatiq retries is `Retries`' call, made
    with the same classifier, so a recorded permanent failure is never retried.
    """

    @property
    def actor_options(self) -> set[str]:
        return {ON_PERMANENT_FAILURE, ON_TRANSIENT_FAILURE}

    def after_process_message(
        self,
        broker: Broker,
        message: MessageProxy,
        *,
        result: Any | None = None,
        exception: BaseException | None = None,
    ) -> None:
        if exception is None:
            return
        options = broker.get_actor(message.actor_name).options
        error = repr(exception)
        if is_transient(exception):
            recorder: Recorder | None = options.get(ON_TRANSIENT_FAILURE)
        else:
            log.error("job_failed", error=error)
            recorder = options.get(ON_PERMANENT_FAILURE)
        if recorder is not None:
            recorder(*message.args, **message.kwargs, error=error)
