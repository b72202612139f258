"""Calls to a channel that refused our credentials wait: one place for every job.

A 401 or 403 (or Shopify's ACCESS_DENIED: a missing scope) is not fixed by calling again; a
person must fix the token, the keys or the app's scopes. So the first refusal holds the
channel's calls (in `channel_state`, seen by every process): 30 s, doubling with each refusal
in a row up to 15 min. While held, no job calls the channel; pushes, polls and write-backs
skip it (their work stays pending: dirty listings, pending write-backs, the poll watermark) and
the sweeper and the schedule bring it back. When the hold runs out, one call (whichever job
comes first, in any process) tries again; its success ends the hold, a refusal doubles it.

Every connected channel of `run` and `worker` is wrapped in a `GuardedChannel`, so each call
is checked and each refusal recorded without the jobs knowing; the jobs only ask `held()` to
skip quietly. The hold shows in `/readyz` (503), `stocksync status`, and the metrics
`stocksync_channel_auth_failures_total` and `stocksync_channel_auth_held` (docs/metrics.md).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from connectors.base import (
    BackorderHold,
    Channel,
    ChannelError,
    ChannelOrder,
    Listing,
    OfferPush,
    PolledOrder,
    ProbeResult,
    PushResult,
    WebhookEvent,
    is_auth_error,
)
from stock import channel_state
from stock.channel_state import AuthHold, describe_hold
from sync.logs import get_logger
from sync.runtime import Runtime

log = get_logger("stocksync.channel_auth")

AUTH_HELD = "AUTH_HELD"
OPEN_RECHECK_S = 1.0  # a channel seen without a hold is not read again for this long


class ChannelHeld(ChannelError):
    """A call not made because the channel is held (`called` False), or made and refused with
    an auth error that (re)placed the hold (`called` True). Push, poll and write-back end
    quietly on it (their work stays pending); to the retry policy of any other job it is
    transient: the work waits for the hold to end, it is not a failure to record for good."""

    def __init__(
        self,
        channel: str,
        operation: str,
        message: str,
        *,
        called: bool,
        status: int | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(
            channel, operation, message, status=status, code=code or AUTH_HELD, retryable=True
        )
        self.called = called


def skipped(exc: BaseException) -> bool:
    """Whether a job's channel error is a call that was not made: the channel is held."""
    return isinstance(exc, ChannelHeld) and not exc.called


def utc_now() -> datetime:
    return datetime.now(UTC)


def held(runtime: Runtime, channel: str) -> AuthHold | None:
    """The channel's hold while it lasts (a hold that ran out is not: its trial call is due)."""
    with runtime.ctx.sessions.begin() as session:
        found = channel_state.auth_holds(session, channel).get(channel)
    return found if found is not None and found.until > utc_now() else None


def holds(runtime: Runtime) -> dict[str, AuthHold]:
    """Every channel with a hold, ran out or not (a hold ends only when a call succeeds)."""
    with runtime.ctx.sessions.begin() as session:
        return channel_state.auth_holds(session)


class GuardedChannel:
    """A connected channel whose calls wait out an auth hold (see the module's docstring).

    Pure methods (verify_webhook, parse_order, needs_fetch) pass straight through; anything
    else the connector has (its transport, for tests) is reached through this object too.
    """

    def __init__(self, inner: Channel, runtime: Runtime) -> None:
        self.inner = inner
        self.name = inner.name
        self.late_write_window = inner.late_write_window
        self._runtime = runtime
        self._lock = threading.Lock()
        self._open_until = 0.0  # monotonic time until which no hold is assumed

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    # -- the gate ---------------------------------------------------------------------------
    def _enter(self, operation: str) -> bool:
        """Whether this call is the trial of a hold that ran out; raises ChannelHeld when the
        channel is held."""
        with self._lock:
            if time.monotonic() < self._open_until:
                return False
        now = utc_now()
        with self._runtime.ctx.sessions.begin() as session:
            gate = channel_state.claim_trial(session, self.name, now)
            hold = channel_state.auth_holds(session, self.name).get(self.name)
        if gate == "open":
            with self._lock:
                self._open_until = time.monotonic() + OPEN_RECHECK_S
            return False
        if gate == "trial":
            log.info("channel_auth_retry", channel=self.name, operation=operation)
            return True
        reason = describe_hold(hold, now) if hold is not None else "auth error"
        raise ChannelHeld(self.name, operation, reason, called=False)

    def _refused(self, exc: ChannelError, trial: bool) -> ChannelError:
        """A failed call: an auth error (re)places the hold and comes back as ChannelHeld."""
        if not is_auth_error(exc):
            return exc
        runtime = self._runtime
        with self._lock:
            self._open_until = 0.0
        with runtime.ctx.sessions.begin() as session:
            hold = channel_state.hold_for_auth(session, self.name, str(exc), utc_now(), trial=trial)
        runtime.metrics.auth_failures.labels(self.name).inc()
        runtime.metrics.auth_held.labels(self.name).set(1)
        log.warning(
            "channel_auth_refused",
            channel=self.name,
            operation=exc.operation,
            status=exc.status,
            code=exc.code,
            refusals=hold.failures,
            held_until=hold.until.isoformat(),
            error=exc.message,
        )
        return ChannelHeld(
            self.name,
            exc.operation,
            describe_hold(hold, utc_now()),
            called=True,
            status=exc.status,
            code=exc.code,
        )

    def _succeeded(self, trial: bool) -> None:
        if not trial:
            return
        runtime = self._runtime
        with runtime.ctx.sessions.begin() as session:
            ended = channel_state.clear_auth_hold(session, self.name)
        runtime.metrics.auth_held.labels(self.name).set(0)
        if ended is not None:
            log.info("channel_auth_restored", channel=self.name, refusals=ended.failures)

    # -- pure: no gate ----------------------------------------------------------------------
    def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookEvent | None:
        return self.inner.verify_webhook(headers, body)

    def parse_order(self, topic: str, body: bytes) -> ChannelOrder:
        return self.inner.parse_order(topic, body)

    def needs_fetch(self, topic: str, body: bytes) -> bool:
        return self.inner.needs_fetch(topic, body)

    # -- calls ------------------------------------------------------------------------------
    def complete_order(self, topic: str, body: bytes) -> bytes:
        trial = self._enter("complete_order")
        try:
            result = self.inner.complete_order(topic, body)
        except ChannelError as exc:
            raise self._refused(exc, trial) from exc
        self._succeeded(trial)
        return result

    def pull_orders(self, updated_after: datetime) -> Iterator[PolledOrder]:
        trial = self._enter("pull_orders")
        try:
            yield from self.inner.pull_orders(updated_after)
        except ChannelError as exc:
            raise self._refused(exc, trial) from exc
        self._succeeded(trial)

    def fetch_listings(self, skus: Sequence[str]) -> dict[str, Listing]:
        trial = self._enter("fetch_listings")
        try:
            result = self.inner.fetch_listings(skus)
        except ChannelError as exc:
            raise self._refused(exc, trial) from exc
        self._succeeded(trial)
        return result

    def push_offers(self, pushes: Sequence[OfferPush]) -> list[PushResult]:
        trial = self._enter("push_offers")
        try:
            result = self.inner.push_offers(pushes)
        except ChannelError as exc:
            raise self._refused(exc, trial) from exc
        self._succeeded(trial)
        return result

    def place_hold(self, hold: BackorderHold) -> None:
        trial = self._enter("place_hold")
        try:
            self.inner.place_hold(hold)
        except ChannelError as exc:
            raise self._refused(exc, trial) from exc
        self._succeeded(trial)

    def lift_hold(self, hold: BackorderHold) -> None:
        trial = self._enter("lift_hold")
        try:
            self.inner.lift_hold(hold)
        except ChannelError as exc:
            raise self._refused(exc, trial) from exc
        self._succeeded(trial)

    def probe(self) -> ProbeResult:
        trial = self._enter("probe")
        try:
            result = self.inner.probe()
        except ChannelError as exc:
            raise self._refused(exc, trial) from exc
        self._succeeded(trial)
        return result

    def close(self) -> None:
        self.inner.close()


def guard_channels(runtime: Runtime) -> None:
    """Wrap every connected channel of the runtime (once) in a GuardedChannel."""
    for name, channel in list(runtime.channels.items()):
        if not isinstance(channel, GuardedChannel):
            runtime.channels[name] = GuardedChannel(channel, runtime)
