"""Thin dramatiq actors: ids in, a service call, follow-ups enqueued after its commit.

Declared per broker and runtime (no import-time broker, no global state). Transient failures
raise so dramatiq retries them with backoff; permanent ones are recorded where an operator sees
them (the inbox's exception queue, a failed write-back) and never retried blindly.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dramatiq
import structlog
from dramatiq import Broker

from connectors.base import ChannelError
from stock.ledger import LedgerInputError
from sync import service
from sync.logs import get_logger
from sync.runtime import Runtime
from sync.service import is_transient

log = get_logger("stocksync.actors")

PUSH_BUSY_DELAY_MS = 300
PUSH_COALESCE_MS = 50  # a burst of orders shares one push per channel
PUSH_BUSY_BOUNCES = 200  # about a minute: longer than a push lease lives


@dataclass
class Actors:
    process_event: dramatiq.Actor[Any, Any]
    push: dramatiq.Actor[Any, Any]
    write_back: dramatiq.Actor[Any, Any]
    poll: dramatiq.Actor[Any, Any]
    sweep: dramatiq.Actor[Any, Any]
    reconcile: dramatiq.Actor[Any, Any]
    release: dramatiq.Actor[Any, Any]
    _push_windows: dict[str, float] = field(default_factory=dict)
    _push_lock: threading.Lock = field(default_factory=threading.Lock)

    def request_push(self, channel: str) -> None:
        """Coalesce push requests: one delayed push serves every request made before it starts.

        A request inside the window of an already scheduled push is covered by it (that push
        starts after the request, so it reads the committed change); otherwise a new push is
        scheduled PUSH_COALESCE_MS from now.
        """
        now = time.monotonic()
        with self._push_lock:
            if self._push_windows.get(channel, 0.0) > now:
                return
            self._push_windows[channel] = now + PUSH_COALESCE_MS / 1000
        self.push.send_with_options(args=(channel,), delay=PUSH_COALESCE_MS)

    def dispatch(self, followups: service.Followups) -> None:
        """Enqueue follow-up jobs; call only after the transaction that made them committed."""
        for event_id in followups.events:
            self.process_event.send(event_id)
        for writeback_id in sorted(followups.writebacks):
            self.write_back.send(writeback_id)
        for channel in sorted(followups.pushes):
            self.request_push(channel)
        for channel in sorted(followups.polls):
            self.poll.send(channel)
        if followups.releases:
            self.release.send(sorted(followups.releases))


def declare_actors(broker: Broker, runtime: Runtime) -> Actors:
    def actor(fn: Callable[..., None], name: str, **options: Any) -> dramatiq.Actor[Any, Any]:
        return dramatiq.Actor(
            fn, broker=broker, actor_name=name, queue_name="stocksync", priority=0,
            options=options,
        )  # fmt: skip

    holder: list[Actors] = []

    def actors() -> Actors:
        return holder[0]

    def process_event(event_id: int) -> None:
        structlog.contextvars.bind_contextvars(job="process_event", event_id=event_id)
        try:
            actors().dispatch(service.process_event(runtime, event_id))
        except Exception as exc:
            if is_transient(exc):
                raise
            # a bug or a ledger refusal: keep the event in the exception queue, visibly
            log.error("event_failed", error=repr(exc))
            service.record_event_failure(runtime, event_id, repr(exc))
        finally:
            structlog.contextvars.clear_contextvars()

    def push(channel: str, bounces: int = 0) -> None:
        structlog.contextvars.bind_contextvars(job="push", channel=channel)
        try:
            report = service.push_channel(runtime, channel)
            if report.busy and bounces < PUSH_BUSY_BOUNCES:
                # another pusher holds the channel; come back in case it misses our changes
                actors().push.send_with_options(
                    args=(channel, bounces + 1), delay=PUSH_BUSY_DELAY_MS
                )
            actors().dispatch(report.followups)
        except Exception as exc:
            if is_transient(exc):
                raise
            log.error("push_failed", error=repr(exc))
        finally:
            structlog.contextvars.clear_contextvars()

    def write_back(writeback_id: int) -> None:
        structlog.contextvars.bind_contextvars(job="write_back", writeback_id=writeback_id)
        try:
            actors().dispatch(service.write_back(runtime, writeback_id))
        except Exception as exc:
            if is_transient(exc):
                service.record_writeback_failure(runtime, writeback_id, repr(exc))
                raise
            log.error("write_back_failed", error=repr(exc))
            service.record_writeback_failure(runtime, writeback_id, repr(exc), permanent=True)
        finally:
            structlog.contextvars.clear_contextvars()

    def poll(channel: str) -> None:
        structlog.contextvars.bind_contextvars(job="poll", channel=channel)
        try:
            actors().dispatch(service.poll_channel(runtime, channel))
        except ChannelError as exc:
            if exc.retryable:
                raise
            log.error("poll_failed", error=str(exc))
        finally:
            structlog.contextvars.clear_contextvars()

    def release(codes: list[str]) -> None:
        structlog.contextvars.bind_contextvars(job="release", skus=codes)
        try:
            actors().dispatch(service.release_skus(runtime, codes))
        finally:
            structlog.contextvars.clear_contextvars()

    def sweep() -> None:
        structlog.contextvars.bind_contextvars(job="sweep")
        try:
            actors().dispatch(service.sweep(runtime))
        finally:
            structlog.contextvars.clear_contextvars()

    def reconcile(channel: str) -> None:
        structlog.contextvars.bind_contextvars(job="reconcile", channel=channel)
        try:
            drifts, followups = service.reconcile_channel(runtime, channel)
            if drifts:
                log.warning("drift", drifts=[d.__dict__ for d in drifts])
            actors().dispatch(followups)
        except (ChannelError, LedgerInputError) as exc:
            if isinstance(exc, ChannelError) and exc.retryable:
                raise
            log.error("reconcile_failed", error=str(exc))
        finally:
            structlog.contextvars.clear_contextvars()

    holder.append(
        Actors(
            process_event=actor(process_event, "process_event"),
            push=actor(push, "push"),
            write_back=actor(write_back, "write_back"),
            poll=actor(poll, "poll"),
            sweep=actor(sweep, "sweep", max_retries=0),
            reconcile=actor(reconcile, "reconcile"),
            release=actor(release, "release"),
        )
    )
    return holder[0]
