"""An auth error holds a channel's calls: 30 s doubling to 15 min, one trial call when a hold
runs out, a success ends it; every process sees it (channel_state), jobs skip quietly."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connectors.base import ChannelError, Listing, is_auth_error
from rules import parse_config
from stock import channel_state
from sync import channel_auth
from sync.channel_auth import ChannelHeld, GuardedChannel
from sync.jobs.poll import poll_channel
from sync.jobs.push import push_channel
from sync.runtime import Runtime

T0 = datetime(2026, 12, 1, 9, tzinfo=UTC)


def test_holds_double_from_30_seconds_to_15_minutes() -> None:
    lengths = [channel_state.auth_hold_seconds(n) for n in range(1, 9)]
    assert lengths == [30, 60, 120, 240, 480, 900, 900, 900]


@pytest.mark.parametrize(
    ("status", "code", "auth"),
    [(401, None, True), (403, "rest_forbidden", True), (200, "ACCESS_DENIED", True),
     (429, "THROTTLED", False), (None, None, False), (404, None, False)],
)  # fmt: skip
def test_which_failures_are_auth_errors(status: int | None, code: str | None, auth: bool) -> None:
    assert is_auth_error(ChannelError("shop", "op", "x", status=status, code=code)) is auth


@pytest.fixture
def runtime(tmp_path: Path, fresh_sqlite: Callable[[Path], str]) -> Iterator[Runtime]:
    config = parse_config(
        f"database: {fresh_sqlite(tmp_path)}\nchannels:\n  shop: {{kind: manual}}\n",
        str(tmp_path / "stocksync.yaml"),
        {},
    )
    runtime = Runtime.build(config)
    yield runtime
    runtime.close()


class Refusing:
    """A connector whose calls are refused (401) until `accept` is set; counts its calls."""

    name = "shop"

    def __init__(self) -> None:
        self.calls = 0
        self.accept = False
        self.late_write_window: float | None = None

    def fetch_listings(self, skus: Any) -> dict[str, Listing]:
        self.calls += 1
        if not self.accept:
            raise ChannelError("shop", "fetch_listings", "HTTP 401: Invalid API key", status=401)
        return {}

    def pull_orders(self, updated_after: datetime) -> Iterator[Any]:
        self.calls += 1
        if not self.accept:
            raise ChannelError("shop", "orders", "HTTP 401: Invalid API key", status=401)
        yield from ()

    def push_offers(self, pushes: Any) -> list[Any]:
        self.calls += 1
        return []

    def close(self) -> None:
        return None


def guarded(runtime: Runtime, inner: Refusing) -> GuardedChannel:
    channel = GuardedChannel(inner, runtime)  # type: ignore[arg-type]  # a partial connector
    runtime.channels["shop"] = channel  # type: ignore[assignment]
    return channel


def sample(runtime: Runtime, name: str) -> float | None:
    return runtime.metrics.registry.get_sample_value(name, {"channel": "shop"})


def expire(runtime: Runtime) -> None:
    """Move the hold's end into the past, as if its time had passed."""
    with runtime.ctx.sessions.begin() as session:
        row = channel_state.get(session, "shop")
        assert row is not None and row.held_until is not None
        row.held_until = datetime.now(UTC) - timedelta(seconds=1)


def test_a_refusal_holds_calls_until_a_trial_succeeds(runtime: Runtime) -> None:
    inner = Refusing()
    channel = guarded(runtime, inner)
    with pytest.raises(ChannelHeld) as refused:
        channel.fetch_listings(["A"])
    assert refused.value.called and refused.value.retryable and refused.value.status == 401
    assert inner.calls == 1
    hold = channel_auth.held(runtime, "shop")
    assert hold is not None and hold.failures == 1 and "Invalid API key" in hold.error
    assert 25 < (hold.until - datetime.now(UTC)).total_seconds() <= 30

    # held: no call reaches the channel, and the jobs skip it without an error
    for _ in range(5):
        with pytest.raises(ChannelHeld) as skipped:
            channel.fetch_listings(["A"])
        assert channel_auth.skipped(skipped.value)
    assert poll_channel(runtime, "shop").events == []
    assert push_channel(runtime, "shop").calls == 0
    assert inner.calls == 1
    assert sample(runtime, "stocksync_channel_auth_failures_total") == 1
    assert sample(runtime, "stocksync_channel_auth_held") == 1

    # the hold runs out: one trial call, refused again, holds twice as long
    expire(runtime)
    with pytest.raises(ChannelHeld) as again:
        list(channel.pull_orders(T0))
    assert again.value.called and inner.calls == 2
    hold = channel_auth.held(runtime, "shop")
    assert hold is not None and hold.failures == 2
    assert 55 < (hold.until - datetime.now(UTC)).total_seconds() <= 60

    # fixed (a new token): the next trial succeeds and ends the hold
    inner.accept = True
    expire(runtime)
    assert channel.fetch_listings(["A"]) == {}
    assert channel_auth.holds(runtime) == {}
    assert sample(runtime, "stocksync_channel_auth_held") == 0
    assert sample(runtime, "stocksync_channel_auth_failures_total") == 2
    assert channel.fetch_listings(["A"]) == {} and inner.calls == 4


def test_only_one_job_makes_the_trial_call(runtime: Runtime) -> None:
    now = datetime.now(UTC)
    with runtime.ctx.sessions.begin() as session:
        channel_state.hold_for_auth(session, "shop", "HTTP 401", now - timedelta(minutes=5))
    with runtime.ctx.sessions.begin() as session:
        first = channel_state.claim_trial(session, "shop", now)
    with runtime.ctx.sessions.begin() as session:
        second = channel_state.claim_trial(session, "shop", now)
    assert (first, second) == ("trial", "held")


def test_a_non_auth_error_places_no_hold(runtime: Runtime) -> None:
    class Failing(Refusing):
        def fetch_listings(self, skus: Any) -> dict[str, Listing]:
            self.calls += 1
            raise ChannelError("shop", "fetch_listings", "HTTP 503", status=503, retryable=True)

    channel = guarded(runtime, Failing())
    with pytest.raises(ChannelError) as failed:
        channel.fetch_listings(["A"])
    assert not isinstance(failed.value, ChannelHeld)
    assert channel_auth.holds(runtime) == {}


def test_another_error_does_not_overwrite_the_auth_error(runtime: Runtime) -> None:
    with runtime.ctx.sessions.begin() as session:
        channel_state.hold_for_auth(session, "shop", "HTTP 401: Invalid API key", T0)
        channel_state.note_error(session, "shop", "HTTP 503")
    assert channel_auth.holds(runtime)["shop"].error == "HTTP 401: Invalid API key"
