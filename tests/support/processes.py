"""Processes and services for the fault tests: `stocksync run` and workers as child processes,
a private Redis and a private PostgreSQL cluster to kill and restart, the HTTP calls a shop or a
warehouse makes, and the process stack that puts them together over both sandboxes.

`stocksync_executable` is also how the e2e tests find the console script.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import requests

from sync import stack
from sync.stack import LoopbackStack, SeedPo, free_port, wait_until
from tests.support.checker import Checker
from tests.support.stack import API_TOKEN, stack_config


# ------------------------------------------------------------------------------ processes
def stocksync_executable() -> str:
    """The `stocksync` console script; the test fails (never skips) when it is not installed.

    The interpreter's own script folder is searched before PATH: that is the script installed
    for the Python running the tests (a pyenv shim on PATH may pick another version and costs
    about 0.3 s per call).
    """
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    found = shutil.which("stocksync", path=search)
    if found is None:
        pytest.fail("`stocksync` is not installed: run `python3 -m pip install -e .`")
    return found


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Proc:
    """A child process whose output goes to a log file; stopped politely unless killed."""

    args: list[str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(self.args, stdout=out, stderr=subprocess.STDOUT)
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL: no cleanup of any kind, as the OOM killer or a power cut would do."""
        if self.alive():
            assert self.popen is not None
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(timeout=10)

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode


@dataclass
class PrivateRedis:
    """A redis-server of our own on a free port, without persistence: a restart loses all."""

    folder: Path
    port: int = field(default_factory=free_port)
    proc: Proc | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None, "redis-server is not installed"
        args = [
            binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--dir",
            str(self.folder),
        ]
        self.proc = Proc(args, self.folder / "redis.log").start()
        wait_until(lambda: _port_open(self.port), 10, f"redis on port {self.port}")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()

    def restart(self) -> None:
        self.kill()
        self.start()


@cache
def pg_bin() -> Path:
    """The PostgreSQL server programs (initdb, pg_ctl) of the installed cluster: its version is
    found as `.ci/run` finds the cluster (the first folder of /etc/postgresql), its programs in
    /usr/lib/postgresql/<version>/bin; elsewhere `pg_config --bindir` says where they are."""
    clusters = Path("/etc/postgresql")
    versions = sorted(p.name for p in clusters.iterdir()) if clusters.is_dir() else []
    if versions:
        found = Path("/usr/lib/postgresql") / versions[0] / "bin"
        if (found / "initdb").exists():
            return found
    pg_config = shutil.which("pg_config")
    assert pg_config is not None, "no PostgreSQL cluster in /etc/postgresql and no pg_config"
    bindir = subprocess.run(
        [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=10
    ).stdout.strip()
    return Path(bindir)


@dataclass
class PrivatePostgres:
    """A throw-away PostgreSQL cluster (initdb into a temp folder owned by `postgres`), so the
    shared server at 5432 is never restarted under other tests."""

    folder: Path
    port: int = field(default_factory=free_port)

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 60) -> None:
        command = [str(pg_bin() / args[0]), *args[1:]]
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout}{done.stderr}"

    def _options(self) -> str:
        # fsync off: a test cluster needs no durability across power cuts, only speed
        return f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"

    def init(self) -> None:
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.folder, user.pw_uid, user.pw_gid)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def _pg_ctl(self, *args: str) -> None:
        """pg_ctl on our data folder, waiting until the action is done."""
        self._run("pg_ctl", "-D", str(self.data), "-w", *args)

    def start(self) -> None:
        self._pg_ctl("-o", self._options(), "-l", str(self.folder / "pg.log"), "start")

    def restart(self) -> None:
        self._pg_ctl(
            "-o", self._options(), "-m", "fast", "-l", str(self.folder / "pg.log"), "restart"
        )

    def stop_fast(self) -> None:
        """What `restart -m fast` does first: disconnect every client, shut down cleanly."""
        self._pg_ctl("-m", "fast", "stop")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._pg_ctl("-m", "immediate", "stop")


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    # not under pytest's tmp_path: its parents are private to root and `postgres` must enter
    folder = Path(tempfile.mkdtemp(prefix="stocksync-pg-"))
    cluster = PrivatePostgres(folder)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        try:
            cluster.stop()
        finally:
            shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def private_redis(folder: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(folder)
    server.start()
    try:
        yield server
    finally:
        server.kill()


def stocksync(config: Path, *args: str, timeout: float = 60) -> str:
    """One CLI call that must succeed; returns its stdout."""
    done = subprocess.run(
        [stocksync_executable(), "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"stocksync {' '.join(args)}:\n{done.stdout}{done.stderr}"
    return done.stdout


def daemon_process(config: Path, command: str, log: Path, *args: str) -> Proc:
    return Proc([stocksync_executable(), "--config", str(config), command, *args], log).start()


def ready(url: str) -> bool:
    try:
        return requests.get(f"{url}/readyz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def checkout(base_url: str, lines: list[tuple[str, int]], email: str) -> requests.Response:
    return requests.post(
        f"{base_url}/_sandbox/checkout",
        json={"lines": [{"sku": s, "quantity": q} for s, q in lines], "email": email},
        timeout=10,
    )


def set_faults(base_url: str, **values: Any) -> None:
    requests.put(f"{base_url}/_sandbox/faults", json=values, timeout=10).raise_for_status()


def receive(daemon_url: str, ref: str, lines: Mapping[str, int], token: str = API_TOKEN) -> None:
    reply = requests.post(
        f"{daemon_url}/api/purchase-orders/{ref}/receipts",
        json={"lines": dict(lines)},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text


# ------------------------------------------------------------------------------ process stack
@dataclass
class ProcessStack(LoopbackStack):
    """Both sandboxes in this process; `stocksync run` and workers as child processes over
    Redis and PostgreSQL, as users run them; a ledger context of our own for the checker."""

    run: Proc | None = None
    workers: list[Proc] = field(default_factory=list)

    @property
    def checker(self) -> Checker:
        return Checker(self.ctx, self.shopify.url, self.woo.url)

    def start_run(self) -> Proc:
        log = self.folder / "run.log"
        self.run = daemon_process(self.config_path, "run", log, "--port", str(self.port))
        wait_until(lambda: ready(self.daemon_url), 60, "`stocksync run` ready")
        return self.run

    def start_worker(self, threads: int = 2) -> Proc:
        log = self.folder / f"worker-{len(self.workers) + 1}.log"
        proc = daemon_process(self.config_path, "worker", log, "--threads", str(threads))
        self.workers.append(proc)
        return proc

    def stop_all(self) -> dict[str, int | None]:
        """SIGTERM everything still running; exit codes by log name."""
        procs = [*self.workers, *([self.run] if self.run else [])]
        return {proc.log.name: proc.stop() for proc in procs if proc.alive()}

    def stop(self) -> None:
        try:
            self.stop_all()
        finally:
            super().stop()

    def failed_deliveries(self) -> int:
        """Webhooks the daemon did not answer with 200 (after waiting for those queued)."""
        for sandbox in (self.shopify, self.woo):
            sandbox.outbox.flush()
        sent = [*self.shopify.outbox.sent, *self.woo.outbox.sent]
        return sum(d.status != 200 for d in sent if not d.body.startswith(b"webhook_id="))

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}"
            for path in sorted(self.folder.glob("*.log"))
        )


@contextlib.contextmanager
def process_stack(
    folder: Path,
    *,
    database: str,
    broker: str,
    catalog: Mapping[str, int],
    purchase_orders: Mapping[str, Mapping[str, int]] | None = None,
    poll_interval: float = 2.0,
    rules: Mapping[str, Any] | None = None,
) -> Iterator[ProcessStack]:
    """Sandboxes up, database migrated and stocked (opening counts, POs due in 5 days); the
    caller starts `stocksync run` and the workers. `rules`: in place of the tests' RULES."""
    config = stack_config(
        database=database, broker=broker, poll_interval=poll_interval, sweep_age=1
    )
    if rules is not None:
        config = dataclasses.replace(config, rules=rules)
    eta = datetime.now(UTC).date() + timedelta(days=5)
    orders = [SeedPo(ref, eta, lines) for ref, lines in (purchase_orders or {}).items()]
    with stack.start_stack(
        ProcessStack,
        folder,
        config,
        catalog,
        actor="test",
        purchase_orders=orders,
        in_process_daemon=False,
    ) as running:
        yield running
