"""Prometheus metrics, one registry per daemon (no global state); names documented in docs/."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from sqlalchemy.orm import Session

from rules import Config
from stock import channel_state, commitments, inbox, listings

# The `channel` label of a request naming a channel the config does not have: label values come
# from the config only, so a client inventing names cannot grow /metrics (one series per name).
UNKNOWN_CHANNEL = "_unknown"


def channel_label(name: str, configured: Iterable[str]) -> str:
    """`name` when the config has that channel, else UNKNOWN_CHANNEL."""
    return name if name in configured else UNKNOWN_CHANNEL


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.webhooks = Counter(
            "stocksync_webhooks_received",
            "Webhooks by outcome: stored, duplicate, rejected, ping, ignored",
            ["channel", "outcome"], registry=r,
        )  # fmt: skip
        self.webhooks_rejected = Counter(
            "stocksync_webhooks_rejected",
            "Webhooks not stored, by reason: bad_signature, unknown_channel, too_large, bad_body, "
            "disconnected, other",
            ["channel", "reason"], registry=r,
        )  # fmt: skip
        self.http_connections_open = Gauge(
            "stocksync_http_connections_open", "HTTP connections open now", registry=r
        )
        self.http_connections_limit = Gauge(
            "stocksync_http_connections_limit",
            "HTTP connections held open at most (from the open-file limit)", registry=r,
        )  # fmt: skip
        self.http_connections_closed = Counter(
            "stocksync_http_connections_closed",
            "HTTP connections closed by the server, by reason: header_timeout, body_timeout, "
            "evicted, refused, body_unread",
            ["reason"], registry=r,
        )  # fmt: skip
        self.http_errors = Counter(
            "stocksync_http_errors", "Requests answered 500 after an uncaught error", registry=r
        )
        self.event_loop_errors = Counter(
            "stocksync_event_loop_errors",
            "Errors the HTTP event loop reported, by kind: out_of_resources (too many open "
            "files, no buffers or memory), other",
            ["kind"], registry=r,
        )  # fmt: skip
        self.inbox_pending = Gauge(
            "stocksync_inbox_pending", "Inbox events not processed yet", registry=r
        )
        self.inbox_failed = Gauge(
            "stocksync_inbox_failed", "Inbox events that failed (exception queue)", registry=r
        )
        self.events = Counter(
            "stocksync_events_processed", "Inbox events by outcome (applied, stale, failed)",
            ["channel", "outcome"], registry=r,
        )  # fmt: skip
        self.pushes = Counter(
            "stocksync_push", "Quantity pushes by outcome (ok, stale, error)",
            ["channel", "outcome"], registry=r,
        )  # fmt: skip
        self.late_writes = Counter(
            "stocksync_push_late_writes",
            "Listings an unanswered write was found to have overwritten (pushed again)",
            ["channel"], registry=r,
        )  # fmt: skip
        self.pool_units_moved = Counter(
            "stocksync_pool_units_moved",
            "Pooled units moved between allotments (channels, or 'unallocated')",
            ["from", "to"], registry=r,
        )  # fmt: skip
        self.push_latency = Histogram(
            "stocksync_push_latency_seconds", "From a listing turning dirty to its push landing",
            ["channel"], registry=r,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
        )  # fmt: skip
        self.listings_dirty = Gauge(
            "stocksync_listings_dirty", "Listings waiting for a push", ["channel"], registry=r
        )
        self.listings_held_unknown = Gauge(
            "stocksync_listings_held_unknown",
            "Listings not pushed: a lower number for a SKU never counted, channel not adopted",
            ["channel"], registry=r,
        )  # fmt: skip
        self.backorders_open = Gauge("stocksync_backorders_open", "Open backorder rows", registry=r)
        self.backorders_beyond = Gauge(
            "stocksync_backorders_beyond_capacity",
            "Open backorders accepted beyond incoming capacity", registry=r,
        )  # fmt: skip
        self.backorders_at_risk = Gauge(
            "stocksync_backorders_at_risk_units",
            "Open backorder units that open purchase orders and sellable stock no longer cover",
            registry=r,
        )
        self.backorders_promise_moved = Gauge(
            "stocksync_backorders_promise_moved",
            "Open backorders whose promised date moved later than first promised",
            registry=r,
        )
        self.drift = Gauge(
            "stocksync_drift_units", "Reconcile: units the channel differs from our last push",
            ["channel"], registry=r,
        )  # fmt: skip
        self.channel_errors = Counter(
            "stocksync_channel_errors", "Failed channel calls by code", ["channel", "code"],
            registry=r,
        )  # fmt: skip
        self.auth_failures = Counter(
            "stocksync_channel_auth_failures",
            "Channel calls refused for our credentials (401, 403, a missing scope)",
            ["channel"], registry=r,
        )  # fmt: skip
        self.auth_held = Gauge(
            "stocksync_channel_auth_held",
            "1 while the channel's calls are held after an auth error, else 0",
            ["channel"], registry=r,
        )  # fmt: skip
        self.poll_lag = Gauge(
            "stocksync_poll_lag_seconds",
            "Seconds since the start of the channel's last finished poll",
            ["channel"],
            registry=r,
        )

        self.notify_sent = Counter(
            "stocksync_notify_sent",
            "Messages sent (issue #17), by kind: email, shop_note, webhook",
            ["kind"], registry=r,
        )  # fmt: skip
        self.notify_failed = Gauge(
            "stocksync_notify_failed",
            "Messages that failed for good and wait for a person (`stocksync notify list "
            "--failed`, `notify retry`), by kind",
            ["kind"], registry=r,
        )  # fmt: skip
        self.notify_pending = Gauge(
            "stocksync_notify_pending", "Messages not sent yet (due, or waiting to be retried)",
            ["kind"], registry=r,
        )  # fmt: skip

        self.campaign_money_rate = Gauge(
            "stocksync_campaign_money_rate",
            "A campaign's money metrics (issue #16): deposit_to_allocation, "
            "balance_paid_in_window, refund_rate, cancellation_rate (0..1)",
            ["campaign", "metric"], registry=r,
        )  # fmt: skip
        self.campaign_money = Gauge(
            "stocksync_campaign_money",
            "A campaign's money so far, in its currency: deposit_paid, balance_paid, refunded, "
            "refund_planned, refund_by_hand, kept, refund_failed",
            ["campaign", "currency", "kind"], registry=r,
        )  # fmt: skip

    def render(self) -> bytes:
        return generate_latest(self.registry)


def refresh_gauges(
    metrics: Metrics, session: Session, channels: list[str], config: Config | None = None
) -> None:
    """Set the ledger gauges from the database (the sweeper and /metrics call it)."""
    if config is not None:
        _refresh_campaign_money(metrics, session, config)
    events = inbox.counts(session)
    waiting = commitments.counts(session)
    dirty = listings.dirty_counts(session)
    held_unknown = listings.held_counts(session)
    metrics.inbox_pending.set(events["pending"])
    metrics.inbox_failed.set(events["failed"])
    metrics.backorders_open.set(waiting["open"])
    metrics.backorders_beyond.set(waiting["beyond_capacity"])
    metrics.backorders_promise_moved.set(waiting["promise_moved"])
    metrics.backorders_at_risk.set(sum(c.at_risk for c in commitments.cover(session).values()))
    _refresh_notify(metrics, session)
    polled = channel_state.last_polls(session)
    held = channel_state.auth_holds(session)
    now = datetime.now(UTC)
    for channel in channels:
        metrics.listings_dirty.labels(channel).set(dirty.get(channel, 0))
        metrics.listings_held_unknown.labels(channel).set(held_unknown.get(channel, 0))
        metrics.auth_held.labels(channel).set(1 if channel in held else 0)
        last = polled.get(channel)
        if last is not None:  # orders changed before `last` are in the inbox: we lag by the rest
            metrics.poll_lag.labels(channel).set(max((now - last).total_seconds(), 0.0))


def _refresh_notify(metrics: Metrics, session: Session) -> None:
    from notify import outbox as messages  # the notify package: not for every command

    found = messages.counts(session, ("pending", "failed"))  # never the sent ones
    for kind in messages.KINDS:
        metrics.notify_failed.labels(kind).set(found["failed"].get(kind, 0))
        metrics.notify_pending.labels(kind).set(found["pending"].get(kind, 0))


def _refresh_campaign_money(metrics: Metrics, session: Session, config: Config) -> None:
    """The drop's money metrics of every campaign with payment terms (two reads each)."""
    from sync import campaign_money_report

    for name, campaign in config.campaigns.items():
        if campaign.payment is None:
            continue
        data = campaign_money_report.report(session, config, name)
        for metric, value in data["metrics"].items():
            if metric.endswith(("_rate", "_allocation", "_window")) and value is not None:
                metrics.campaign_money_rate.labels(name, metric).set(value)
        for kind, amount in data["totals"].items():
            metrics.campaign_money.labels(name, data["currency"], kind).set(float(amount))
