"""The one loopback stack: a stocksync config, both sandboxes and the daemon on 127.0.0.1.

`stocksync demo`, the integration and fault tests and the benchmarks all build their stack here.
What they write into the config differs on purpose (rules, database, broker, intervals), so each
passes its own `StackConfig`; the builder only decides how the pieces are put together:

    free_port()                       a loopback port for the daemon (the sandboxes must know it)
    wait_until(predicate, timeout)    poll what the stack shows until it holds
    StackConfig(...).write(path, …)   the config file, with the sandboxes' URLs
    start_daemon(config, port, …)     migrate, count the opening stock in, start a Daemon
    start_stack(kind, folder, …)      sandboxes + config + daemon (or only a ledger context,
                                      when the daemon runs as child processes); stopped by
                                      `stop()` or at the end of a `with` block

Only the standard library and PyYAML are imported at module level: the benchmarks' shared module
re-exports `free_ports` and `fresh_postgres` without paying for the daemon's imports.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, TypeVar

import yaml

if TYPE_CHECKING:
    from connectors.sandbox.shopify import ShopifySandbox
    from connectors.sandbox.woocommerce import WooCommerceSandbox
    from rules import Config
    from sync.context import AppContext
    from sync.daemon import Daemon

HOST = "127.0.0.1"
SANDBOX_SECRET = "sandbox-secret"  # noqa: S105 both sandboxes' documented default
# The daemon's intervals unless a StackConfig overrides them: short, so a stack settles in seconds.
DAEMON_INTERVALS: Mapping[str, float] = {
    "poll_interval_s": 60,
    "poll_overlap_s": 5,
    "sweep_interval_s": 1,
    "sweep_age_s": 2,
    "push_interval_s": 0.5,
    "reconcile_interval_s": 3600,
    "campaign_tick_interval_s": 60,
}


# ------------------------------------------------------------------------ ports, waits, databases
def wait_until(
    predicate: Callable[[], bool], timeout: float = 20.0, what: str = "condition"
) -> None:
    """Poll with a deadline (never a sleep used as an assertion); TimeoutError when it passes."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def free_port() -> int:
    """A loopback port free now; the daemon binds it moments later (sandboxes must know it)."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """`count` distinct loopback ports: all sockets stay bound until every port is chosen, so
    two calls in a row cannot hand out the same port."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((HOST, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@contextmanager
def fresh_postgres(admin_url: str, prefix: str = "stocksync_") -> Iterator[str]:
    """A new, empty PostgreSQL database named `prefix` + a random suffix, created through
    `admin_url` (a libpq URL); yields its SQLAlchemy URL (psycopg driver), dropped afterwards."""
    import psycopg

    name = f"{prefix}{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ------------------------------------------------------------------------------ the config
@dataclass(frozen=True)
class StackConfig:
    """What a stack's config says besides the sandboxes' URLs; the callers' values differ."""

    rules: Mapping[str, Any]  # top-level rule keys: tiers, defaults, channel_rules, sku_rules
    database: str | None = None  # None: SQLite, ledger.db beside the config file
    broker: str = "memory"
    api_token: str | None = None  # the receipts API's token; None: no `server` section
    # over DAEMON_INTERVALS; None: no `daemon` section (the config's own defaults apply)
    daemon: Mapping[str, float] | None = field(default_factory=dict)
    log_level: str = "WARNING"
    manual_channels: Sequence[str] = ()  # listed after the sandboxes' channels
    overrides: Mapping[str, Any] = field(default_factory=dict)  # merged in last, key by key

    def settings(self, path: Path, shopify_url: str | None, woo_url: str | None) -> dict[str, Any]:
        """The config as data; a sandbox whose URL is None has no channel."""
        channels: dict[str, Any] = {}
        if shopify_url is not None:
            channels["shop"] = {
                "kind": "shopify",
                "shop": "sandbox.myshopify.com",
                "token": "shpat_sandbox",
                "webhook_secret": SANDBOX_SECRET,
                "api_url": shopify_url,
            }
        if woo_url is not None:
            channels["woo"] = {
                "kind": "woocommerce",
                "url": "http://shop.example.com",
                "consumer_key": "ck_sandbox",
                "consumer_secret": "cs_sandbox",
                "webhook_secret": SANDBOX_SECRET,
                "api_url": woo_url,
            }
        channels.update({name: {"kind": "manual"} for name in self.manual_channels})
        settings: dict[str, Any] = {
            "database": self.database or f"sqlite:///{path.parent / 'ledger.db'}",
            "broker": self.broker,
            "channels": channels,
        }
        if self.api_token is not None:
            settings["server"] = {"api_token": self.api_token}
        if self.daemon is not None:
            settings["daemon"] = {**DAEMON_INTERVALS, **self.daemon}
        settings["logging"] = {"level": self.log_level}
        settings.update(self.rules)
        return _merged(settings, self.overrides)

    def write(self, path: Path, shopify_url: str | None, woo_url: str | None) -> Path:
        text = yaml.safe_dump(self.settings(path, shopify_url, woo_url), sort_keys=False)
        path.write_text(text, encoding="utf-8")
        return path


def _merged(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged


# ------------------------------------------------------------------------------ ledger and daemon
@dataclass(frozen=True)
class SeedPo:
    """A purchase order the ledger starts with."""

    ref: str
    eta: date
    lines: Mapping[str, int]
    supplier: str | None = None


def seed_ledger(
    ctx: AppContext, actor: str, stock: Mapping[str, int], purchase_orders: Sequence[SeedPo] = ()
) -> None:
    """Opening counts and purchase orders, in one transaction."""
    from stock import counts, purchasing

    with ctx.ledger(actor=actor) as tx:
        for sku, qty in stock.items():
            counts.set_stock(tx, sku, qty, "opening count")
        for po in purchase_orders:
            purchasing.add_po(tx, po.ref, po.eta, po.lines, po.supplier)


def start_daemon(
    config: Config,
    port: int,
    stock: Mapping[str, int],
    *,
    actor: str,
    purchase_orders: Sequence[SeedPo] = (),
    worker_threads: int = 4,
) -> Daemon:
    """Migrate the ledger, seed it, and start a Daemon on `port` in background threads."""
    from stock.db import upgrade
    from sync.daemon import Daemon

    upgrade(config.database)
    daemon = Daemon(config, HOST, port, worker_threads=worker_threads)
    try:
        seed_ledger(daemon.runtime.ctx, actor, stock, purchase_orders)
        daemon.start()
    except BaseException:
        daemon.shutdown()
        raise
    return daemon


# ------------------------------------------------------------------------------ the stack
@dataclass
class LoopbackStack:
    """Both sandboxes, their webhooks sent to the daemon's port, and a ledger context; a
    context manager that stops everything when its block ends."""

    folder: Path
    config: StackConfig
    config_path: Path
    shopify: ShopifySandbox
    woo: WooCommerceSandbox
    port: int
    ctx: AppContext  # the daemon's own, or one of ours when the daemon runs elsewhere
    daemon: Daemon | None  # None: started by the caller (child processes)

    @property
    def daemon_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        try:
            if self.daemon is not None:
                self.daemon.stop()
            else:
                self.ctx.close()
        finally:
            self.shopify.stop()
            self.woo.stop()


S = TypeVar("S", bound=LoopbackStack)


def start_stack(
    kind: type[S],
    folder: Path,
    config: StackConfig,
    catalog: Mapping[str, int],
    *,
    actor: str,
    purchase_orders: Sequence[SeedPo] = (),
    in_process_daemon: bool = True,
    worker_threads: int = 4,
    shopify_scopes: Sequence[str] | None = None,
) -> S:
    """Start both sandboxes (selling `catalog`), write `folder`/stocksync.yaml, migrate the
    ledger and count `catalog` in (plus `purchase_orders`); then start the daemon in this
    process, or leave that to the caller. `kind` is LoopbackStack or a subclass with helpers.
    `shopify_scopes`: what the Shopify app is granted, when not the sandbox's default."""
    from connectors.sandbox.shopify import ShopifySandbox
    from connectors.sandbox.woocommerce import WooCommerceSandbox
    from rules import load_config
    from stock.db import upgrade
    from sync.context import AppContext

    port = free_port()
    daemon_url = f"http://{HOST}:{port}"
    from connectors.sandbox.shopify_scopes import DEFAULT_SCOPES

    shopify = ShopifySandbox(
        catalog=dict(catalog),
        webhook_url=f"{daemon_url}/webhooks/shop",
        access_scopes=DEFAULT_SCOPES if shopify_scopes is None else tuple(shopify_scopes),
    )
    woo = WooCommerceSandbox(catalog=dict(catalog), webhook_url=f"{daemon_url}/webhooks/woo")
    shopify.start()
    woo.start()
    try:
        path = config.write(folder / "stocksync.yaml", shopify.url, woo.url)
        settings = load_config(path)
        if in_process_daemon:
            daemon = start_daemon(
                settings,
                port,
                catalog,
                actor=actor,
                purchase_orders=purchase_orders,
                worker_threads=worker_threads,
            )
            return kind(folder, config, path, shopify, woo, port, daemon.runtime.ctx, daemon)
        upgrade(settings.database)
        ctx = AppContext.open(settings)
        try:
            seed_ledger(ctx, actor, catalog, purchase_orders)
        except BaseException:
            ctx.close()
            raise
        return kind(folder, config, path, shopify, woo, port, ctx, None)
    except BaseException:
        shopify.stop()
        woo.stop()
        raise
