"""`stocksync run` and `stocksync worker`: assemble runtime, broker, actors, scheduler, HTTP.

Resources are made when a daemon starts and disposed when it stops; nothing happens at import.
"""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any

import uvicorn
from apscheduler.schedulers.background import BackgroundScheduler
from dramatiq import Broker, Worker
from dramatiq.brokers.redis import RedisBroker
from redis.exceptions import RedisError

from rules import ChannelConfig, Config, ConfigError, load_config
from stock.db import safe_url
from sync.actor_names import QUEUE
from sync.actors import Actors, declare_actors
from sync.broker import get_broker
from sync.channel_auth import guard_channels
from sync.fd_limit import connection_cap, open_file_limit, raise_open_file_limit
from sync.http import create_app
from sync.http_guard import ConnectionGuard, guarded_h11
from sync.http_limits import ACCEPT_BATCH, LISTEN_BACKLOG, HttpLimits
from sync.jobs.rebalance import rebalance_interval
from sync.logs import get_logger
from sync.loop_errors import LoopErrorHandler
from sync.runtime import Runtime

log = get_logger("stocksync.daemon")

# exit codes of `run` and `worker` when they cannot start (README, docs/operations.md); a
# database that cannot be reached or is not migrated exits 1, a bad config 2, like any command
EXIT_ADDRESS_IN_USE = 3  # the address to listen on is taken (or may not be bound)
EXIT_BROKER_DOWN = 4  # the broker (Redis) does not answer
EXIT_BAD_SETTING = 2  # as a bad config: an environment setting of sync/http_limits.py


class StartupError(Exception):
    """`run` or `worker` cannot start: one line for the operator, and the exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def http_limits() -> HttpLimits:
    """sync/http_limits.py's settings from the environment; StartupError when one is bad."""
    try:
        return HttpLimits.from_env(os.environ)
    except ValueError as exc:
        raise StartupError(str(exc), EXIT_BAD_SETTING) from exc


def broker_ready(broker: Broker) -> bool:
    if isinstance(broker, RedisBroker):
        return bool(broker.client.ping())
    return True


def require_broker(broker: Broker, url: str) -> None:
    """Refuse to start when Redis does not answer (StartupError, EXIT_BROKER_DOWN)."""
    try:
        broker_ready(broker)
    except (RedisError, OSError) as exc:
        raise StartupError(
            f"broker {safe_url(url)} does not answer ({exc}); start Redis or fix `broker:`",
            EXIT_BROKER_DOWN,
        ) from exc


def listen_socket(host: str, port: int, what: str = "HTTP") -> socket.socket:
    """A bound socket for the server (asyncio starts listening on it), or StartupError
    (EXIT_ADDRESS_IN_USE) when the address is taken or may not be bound."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        why = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror or exc
        raise StartupError(
            f"cannot listen ({what}) on {host}:{port}: {why}; another process holds it, or "
            "choose another with --port (server.port)",
            EXIT_ADDRESS_IN_USE,
        ) from exc
    return sock


@dataclass
class Daemon:
    """The HTTP server, the scheduler and (with `broker: memory`) in-process workers."""

    config: Config
    host: str
    port: int
    worker_threads: int = 4
    runtime: Runtime = field(init=False)
    broker: Broker = field(init=False)
    actors: Actors = field(init=False)
    _scheduler: BackgroundScheduler | None = field(default=None, init=False)
    _worker: Worker | None = field(default=None, init=False)
    _server: uvicorn.Server | None = field(default=None, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)
    _started: bool = field(default=False, init=False)
    # sync/http_limits.py, read from the environment when the daemon starts
    _limits: HttpLimits = field(default_factory=HttpLimits, init=False)

    def __post_init__(self) -> None:
        self.runtime = Runtime.build(self.config)
        guard_channels(self.runtime)  # calls wait out an auth error (sync/channel_auth.py)
        self.broker = get_broker(self.config.broker)
        self.actors = declare_actors(self.broker, self.runtime)

    @property
    def in_process_workers(self) -> bool:
        return self.config.broker == "memory"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _prepare(self) -> socket.socket:
        """What must hold before anything starts: the port is ours and the broker answers.
        On failure everything is closed and StartupError raised (one line, an exit code)."""
        try:
            self._limits = http_limits()
            sock = listen_socket(self.host, self.port)
            try:
                require_broker(self.broker, self.config.broker)
            except BaseException:
                sock.close()
                raise
        except BaseException:
            self.broker.close()
            self.runtime.close()
            raise
        self._started = True
        return sock

    def _start_background(self) -> None:
        if self.in_process_workers:
            self._worker = Worker(self.broker, worker_threads=self.worker_threads)
            self._worker.start()
        self._scheduler = self._make_scheduler()
        self._scheduler.start()
        # learn what the channels hold and what happened while we were away; offers may have
        # moved with no ledger change (the rules file changed, days passed): re-evaluate them
        for channel in self.runtime.channels:
            self.actors.poll.send(channel)
            self.actors.reevaluate.send(channel, "start")
            self.actors.push.send(channel)
        self.actors.sweep.send()
        if rebalance_interval(self.config) is not None:
            self.actors.rebalance.send()
        if self.config.campaigns:
            self.actors.campaign_tick.send()
        if self.config.notify.enabled:
            self.actors.notify.send()

    def _make_scheduler(self) -> BackgroundScheduler:
        """Jobs only enqueue: with Redis, whichever worker is free does the work."""
        daemon = self.config.daemon
        scheduler = BackgroundScheduler(
            timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1}
        )
        actors = self.actors
        for channel in self.runtime.channels:
            every = {
                "poll": (actors.poll, daemon.poll_interval_s),
                "push": (actors.push, daemon.push_interval_s),
                "reconcile": (actors.reconcile, daemon.reconcile_interval_s),
                # POs enter the horizon or turn late as days pass, with no ledger change
                "reevaluate": (actors.reevaluate, REEVALUATE_EVERY_S),
            }
            for name, (actor, seconds) in every.items():
                scheduler.add_job(
                    actor.send, "interval", args=[channel], seconds=seconds, id=f"{name}:{channel}"
                )
        scheduler.add_job(
            actors.sweep.send, "interval", seconds=daemon.sweep_interval_s, id="sweep"
        )
        self._schedule_rebalance(scheduler)
        # campaigns: expiries, waves, closes as they fall due (the job does nothing without)
        scheduler.add_job(
            actors.campaign_tick.send, "interval", seconds=daemon.campaign_tick_interval_s,
            id="campaign_tick",
        )  # fmt: skip
        # customer messages and webhooks (the job does nothing without `notify:`)
        scheduler.add_job(
            actors.notify.send, "interval", seconds=daemon.notify_interval_s, id="notify"
        )
        return scheduler

    def _schedule_rebalance(self, scheduler: BackgroundScheduler) -> None:
        """Pools move units between shops while a drop sells: every shortest interval of the
        rules' pools (none without pools); again after a reload changed them."""
        if scheduler.get_job("rebalance") is not None:
            scheduler.remove_job("rebalance")
        every = rebalance_interval(self.config)
        if every is not None:
            scheduler.add_job(self.actors.rebalance.send, "interval", seconds=every, id="rebalance")

    def reload(self) -> bool:
        """Re-read the rules file (SIGHUP): rule changes take effect and every channel's
        offers are re-evaluated. A file that does not load leaves everything as it was.
        Channel connections (URLs, credentials, channels added or removed) need a restart."""
        fresh = _reloaded(self.config)
        if fresh is None:
            return False
        self.config = fresh
        self.runtime.adopt_rules(fresh)
        if self._scheduler is not None:
            self._schedule_rebalance(self._scheduler)
        for channel in self.runtime.channels:
            self.actors.reevaluate.send(channel, "reload")
        return True

    def _make_server(self) -> _Server:
        app = create_app(self.runtime, self.actors, lambda: broker_ready(self.broker))
        guard = ConnectionGuard(
            self._limits,
            connection_cap(open_file_limit(), self._limits.max_connections),
            self.runtime.metrics,
        )
        # log_config=None: uvicorn's records go to the root logger, rendered by sync.logs;
        # http: the h11 protocol with header/body deadlines and the connection cap; ws="none":
        # no WebSocket routes, and an upgraded connection would leave the guard's count
        config = uvicorn.Config(
            app, host=self.host, port=self.port, log_level="warning", lifespan="off",
            access_log=False, log_config=None, http=guarded_h11(guard), ws="none",
            backlog=ACCEPT_BATCH,
        )  # fmt: skip
        return _Server(config, guard, LoopErrorHandler(self.runtime.metrics))

    def serve_forever(self) -> None:
        """Run in the foreground until SIGINT/SIGTERM (uvicorn handles the signals).
        StartupError when the port is taken or the broker does not answer."""
        files = raise_open_file_limit()  # before the cap on connections is derived from it
        sock = self._prepare()
        self._start_background()
        server = self._server = self._make_server()
        log.info(
            "daemon_started", url=self.url, broker=_broker_kind(self.config.broker),
            open_files=files.soft, open_files_before=files.soft_before,
            max_connections=server.guard.cap,
        )  # fmt: skip
        # uvicorn re-raises the signal after its graceful stop, restoring the previous
        # handlers first: Python-level handlers let that re-raise return here for our cleanup
        signal.signal(signal.SIGTERM, lambda *_: None)
        signal.signal(signal.SIGINT, lambda *_: None)
        signal.signal(signal.SIGHUP, lambda *_: self.reload())
        try:
            server.run(sockets=[sock])
        finally:
            sock.close()
            self.shutdown()

    def start(self) -> str:
        """Run in background threads (tests, the demo); returns the base URL."""
        sock = self._prepare()
        if self.port == 0:
            self.port = int(sock.getsockname()[1])
        self._start_background()
        server = self._server = self._make_server()
        self._thread = threading.Thread(
            target=lambda: server.run(sockets=[sock]), name="stocksync-http", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"HTTP server did not start on {self.url}")
            time.sleep(0.02)
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.shutdown()

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Wait until the in-process queue is drained (tests and the demo)."""
        if not self.in_process_workers:
            raise RuntimeError("wait_idle needs broker: memory")
        stub: Any = self.broker  # StubBroker.join: only the in-process broker can be joined
        deadline = time.monotonic() + timeout
        for _ in range(2):  # twice: a finished job may have enqueued follow-ups
            remaining = max(deadline - time.monotonic(), 0.1)
            stub.join(QUEUE, timeout=int(remaining * 1000), fail_fast=False)
            if self._worker is not None:
                self._worker.join()

    def shutdown(self) -> None:
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        self._scheduler = None
        if self._worker is not None:
            self._worker.stop()
            self._worker = None
        self.broker.close()
        self.runtime.close()
        if self._started:
            self._started = False
            log.info("daemon_stopped")


REEVALUATE_EVERY_S = 24 * 3600


class _Server(uvicorn.Server):
    """uvicorn's server with our exception handler on its event loop (sync/loop_errors.py),
    installed before it accepts connections, and the kernel's accept queue made longer than
    the batch asyncio accepts per pass (both are the backlog to asyncio: sync/http_limits.py).
    `guard` is the connection guard its protocol class is bound to (config.http)."""

    def __init__(
        self, config: uvicorn.Config, guard: ConnectionGuard, on_loop_error: LoopErrorHandler
    ) -> None:
        super().__init__(config)
        self.guard = guard
        self.on_loop_error = on_loop_error

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        asyncio.get_running_loop().set_exception_handler(self.on_loop_error)
        await super().startup(sockets=sockets)
        for sock in sockets or []:
            sock.listen(LISTEN_BACKLOG)  # listening already: this only lengthens the queue


def _reloaded(current: Config) -> Config | None:
    """The config file read again, or None (logged) when it cannot be used: it does not load,
    or it changes what only a restart can change."""
    try:
        fresh = load_config(current.path)
    except ConfigError as exc:
        log.error("reload_failed", file=current.path, error=str(exc))
        return None
    restart_only = _restart_needed(current, fresh)
    if restart_only:
        log.error("reload_refused", file=current.path, needs_restart=restart_only)
        return None
    log.info("config_reloaded", file=current.path)
    return fresh


def _restart_needed(current: Config, fresh: Config) -> list[str]:
    """What changed that a running process cannot take: connections and listeners."""
    changed = [
        name
        for name in ("database", "broker", "server", "logging")
        if getattr(current, name) != getattr(fresh, name)
    ]
    if _connections(current) != _connections(fresh):
        changed.append("channels")
    return changed


def _connections(config: Config) -> dict[str, ChannelConfig]:
    # where a channel is written in the file (its line) is not a connection
    return {name: replace(ch, line=0) for name, ch in config.channels.items()}


def _broker_kind(url: str) -> str:
    return "memory" if url == "memory" else url.split("://", 1)[0]


def run_worker(
    config: Config,
    threads: int,
    stop: threading.Event,
    *,
    metrics_host: str = "127.0.0.1",
    metrics_port: int | None = None,
) -> None:
    """Consume jobs from Redis until `stop` is set (by SIGTERM/SIGINT in the CLI).

    With `metrics_port`, the worker serves its own counters (pushes, events, latency) at
    /metrics: they happen in this process, not in `stocksync run`.
    """
    runtime = Runtime.build(config)
    guard_channels(runtime)  # calls wait out an auth error (sync/channel_auth.py)
    broker = get_broker(config.broker)
    try:
        require_broker(broker, config.broker)
        declare_actors(broker, runtime)
        if metrics_port is not None:
            _serve_metrics(runtime, metrics_host, metrics_port)
    except BaseException:
        broker.close()
        runtime.close()
        raise
    worker = Worker(broker, worker_threads=threads)
    worker.start()

    def reload_rules(*_: object) -> None:
        fresh = _reloaded(runtime.config)
        if fresh is not None:
            runtime.adopt_rules(fresh)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGHUP, reload_rules)  # `run` re-evaluates; workers must agree
    log.info("worker_started", threads=threads, metrics_port=metrics_port)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        worker.stop()
        broker.close()
        runtime.close()
        log.info("worker_stopped")


def _serve_metrics(runtime: Runtime, host: str, port: int) -> None:
    from prometheus_client import start_http_server

    listen_socket(host, port, "metrics").close()  # a clear error first when it is taken
    try:
        start_http_server(port, addr=host, registry=runtime.metrics.registry)
    except OSError as exc:
        raise StartupError(
            f"cannot listen (metrics) on {host}:{port}: {exc}", EXIT_ADDRESS_IN_USE
        ) from exc
