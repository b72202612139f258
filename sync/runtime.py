"""What a daemon or worker process holds: config, database, connected channels, metrics.

Made at process start (never at import) and closed at shutdown.
"""

from __future__ import annotations

import enum
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy import text

from connectors.base import Channel
from rules import ChannelConfig, Config
from sync.context import AppContext
from sync.metrics import Metrics

# advisory-lock keys of write-backs: a range of their own, plus the order id
WRITEBACK_LOCK_SPACE = 7_300_000_000


def build_channel(
    cfg: ChannelConfig,
    timeout: float = 10.0,
    *,
    payments: bool = False,
    deposits: bool = False,
    notes: bool = False,
) -> Channel | None:
    """The connector for a configured channel; None for manual channels (nothing to call).
    `payments`: campaigns ask customers to pay on it (Shopify: draft orders, their scope);
    `deposits`: campaigns take deposits on it through Shopify pre-orders (their scopes);
    `notes`: customer messages are left on its orders (`notify.shop_notes`)."""
    if cfg.kind == "shopify":
        from connectors.shopify import ShopifyChannel

        return ShopifyChannel(
            cfg.name,
            shop=cfg.shop or "",
            token=cfg.secret("token"),
            api_version=cfg.api_version or "2026-07",
            location=cfg.location or "Main",
            webhook_secrets=cfg.webhook_secrets(),
            api_url=cfg.api_url,
            timeout=timeout,
            payments=payments,
            deposits=deposits,
            notes=notes,
        )
    if cfg.kind == "woocommerce":
        from connectors.woocommerce import WooCommerceChannel

        return WooCommerceChannel(
            cfg.name,
            url=cfg.url or "",
            consumer_key=cfg.secret("consumer_key"),
            consumer_secret=cfg.secret("consumer_secret"),
            webhook_secrets=cfg.webhook_secrets(),
            api_url=cfg.api_url,
            timeout=timeout,
            # tier_from: {role: ...}: orders are completed with the customer's role first
            customer_roles=cfg.tier_from is not None and cfg.tier_from.source == "role",
        )
    return None


class BatchState(enum.Enum):
    IN_FLIGHT = "in_flight"  # claimed by a batch of this process that has not ended
    APPLIED = "applied"  # applied by a batch of this process that committed


class BatchMemory:
    """Which inbox events this process's batches hold or applied, so that the jobs of drained
    events end without a query. Bounded: an event it forgot is looked up in the database."""

    def __init__(self, remember: int = 100_000) -> None:
        self._lock = threading.Lock()
        self._in_flight: set[int] = set()
        self._applied: OrderedDict[int, None] = OrderedDict()
        self._remember = remember

    def state(self, event_id: int) -> BatchState | None:
        with self._lock:
            if event_id in self._in_flight:
                return BatchState.IN_FLIGHT
            return BatchState.APPLIED if event_id in self._applied else None

    def begin(self, event_ids: list[int]) -> None:
        with self._lock:
            self._in_flight.update(event_ids)

    def end(self, event_ids: list[int], *, committed: bool) -> None:
        with self._lock:
            self._in_flight.difference_update(event_ids)
            if committed:
                self._applied.update(dict.fromkeys(event_ids))
                while len(self._applied) > self._remember:
                    self._applied.popitem(last=False)


@dataclass
class Runtime:
    config: Config
    ctx: AppContext
    channels: dict[str, Channel]
    metrics: Metrics = field(default_factory=Metrics)
    batches: BatchMemory = field(default_factory=BatchMemory)
    _order_locks: dict[int, threading.Lock] = field(default_factory=dict)
    _order_locks_guard: threading.Lock = field(default_factory=threading.Lock)

    @contextmanager
    def order_mutex(self, order_id: int) -> Iterator[None]:
        """One write-back at a time per order, across threads and (on PostgreSQL) processes.

        PostgreSQL: a session advisory lock, released by the server if this process dies;
        SQLite deployments run in one process, so a per-order thread lock is enough.
        """
        if self.ctx.engine.dialect.name == "postgresql":
            key = WRITEBACK_LOCK_SPACE + order_id
            with self.ctx.engine.connect() as connection:
                connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
                connection.commit()
                try:
                    yield
                finally:
                    connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                    connection.commit()
            return
        with self._order_locks_guard:
            lock = self._order_locks.setdefault(order_id, threading.Lock())
        with lock:
            yield

    @classmethod
    def build(cls, config: Config, *, metrics: Metrics | None = None) -> Runtime:
        ctx = AppContext.open(config)
        channels: dict[str, Channel] = {}
        for name, cfg in config.channels.items():
            channel = build_channel(
                cfg,
                payments=name in config.payment_channels(),
                deposits=name in config.pre_order_channels(),
                notes=config.notify.shop_notes,
            )
            if channel is not None:
                channels[name] = channel
        return cls(config, ctx, channels, metrics or Metrics())

    def adopt_rules(self, config: Config) -> None:
        """Take a reloaded config's rules (same channels and database: see Daemon.reload)."""
        self.config = config
        self.ctx.config = config

    def secrets(self) -> list[str]:
        return self.secrets_of(self.config)

    @staticmethod
    def secrets_of(config: Config) -> list[str]:
        """Every configured secret value, for the log redactor."""
        values: list[str] = []
        for cfg in config.channels.values():
            for name in ("token", "consumer_key", "consumer_secret", "webhook_secret"):
                try:
                    values.append(cfg.secret(name))
                except ValueError:
                    continue
            values.extend(cfg.webhook_secrets())
        token = config.server.api_token
        if token is not None:
            values.append(token.get_secret_value())
        # the database's and the broker's passwords, should a driver put a URL in an error
        for url in (config.database, config.broker):
            password = _url_password(url)
            if password:
                values.append(password)
        return values

    def close(self) -> None:
        for channel in self.channels.values():
            channel.close()
        self.ctx.close()


def _url_password(url: str | None) -> str | None:
    """The password in `scheme://user:password@host/...`, or None."""
    from urllib.parse import unquote, urlsplit

    if not url or "://" not in url:
        return None
    try:
        password = urlsplit(url).password
    except ValueError:
        return None
    return unquote(password) if password else None
