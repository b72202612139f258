"""`stocksync run` and `stocksync worker`: assemble runtime, broker, actors, scheduler, HTTP.

Resources are made when a daemon starts and disposed when it stops; nothing happens at import.
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any

import uvicorn
from apscheduler.schedulers.background import BackgroundScheduler
from dramatiq import Broker, Worker
from dramatiq.brokers.redis import RedisBroker

from rules import ChannelConfig, Config, ConfigError, load_config
from sync.actor_names import QUEUE
from sync.actors import Actors, declare_actors
from sync.broker import get_broker
from sync.http import create_app
from sync.logs import get_logger
from sync.runtime import Runtime

log = get_logger("stocksync.daemon")


def broker_ready(broker: Broker) -> bool:
    if isinstance(broker, RedisBroker):
        return bool(broker.client.ping())
    return True


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

    def __post_init__(self) -> None:
        self.runtime = Runtime.build(self.config)
        self.broker = get_broker(self.config.broker)
        self.actors = declare_actors(self.broker, self.runtime)

    @property
    def in_process_workers(self) -> bool:
        return self.config.broker == "memory"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

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
        return scheduler

    def reload(self) -> bool:
        """Re-read the rules file (SIGHUP): rule changes take effect and every channel's
        offers are re-evaluated. A file that does not load leaves everything as it was.
        Channel connections (URLs, credentials, channels added or removed) need a restart."""
        fresh = _reloaded(self.config)
        if fresh is None:
            return False
        self.config = fresh
        self.runtime.adopt_rules(fresh)
        for channel in self.runtime.channels:
            self.actors.reevaluate.send(channel, "reload")
        return True

    def _make_server(self) -> uvicorn.Server:
        app = create_app(self.runtime, self.actors, lambda: broker_ready(self.broker))
        config = uvicorn.Config(
            app, host=self.host, port=self.port, log_level="warning", lifespan="off",
            access_log=False,
        )  # fmt: skip
        return uvicorn.Server(config)

    def serve_forever(self) -> None:
        """Run in the foreground until SIGINT/SIGTERM (uvicorn handles the signals)."""
        self._start_background()
        self._server = self._make_server()
        log.info("daemon_started", url=self.url, broker=_broker_kind(self.config.broker))
        # uvicorn re-raises the signal after its graceful stop, restoring the previous
        # handlers first: Python-level handlers let that re-raise return here for our cleanup
        signal.signal(signal.SIGTERM, lambda *_: None)
        signal.signal(signal.SIGINT, lambda *_: None)
        signal.signal(signal.SIGHUP, lambda *_: self.reload())
        try:
            self._server.run()
        finally:
            self.shutdown()

    def start(self) -> str:
        """Run in background threads (tests, the demo); returns the base URL."""
        self._start_background()
        self._server = self._make_server()
        self._thread = threading.Thread(target=self._server.run, name="stocksync-http",
                                        daemon=True)  # fmt: skip
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"HTTP server did not start on {self.url}")
            time.sleep(0.02)
        if self.port == 0:
            sockets = self._server.servers[0].sockets
            self.port = int(sockets[0].getsockname()[1])
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
        log.info("daemon_stopped")


REEVALUATE_EVERY_S = 24 * 3600


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
    broker = get_broker(config.broker)
    declare_actors(broker, runtime)
    if metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, addr=metrics_host, registry=runtime.metrics.registry)
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
