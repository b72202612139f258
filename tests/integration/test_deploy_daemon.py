"""`db upgrade`, `run` and `worker` started exactly as deploy/ starts them (systemd ExecStart,
Kubernetes command+args, Compose entrypoint+command), on PostgreSQL and Redis: they become
healthy and ready, carry a Shopify webhook from the daemon through Redis to a worker, and exit
cleanly on SIGTERM."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
import requests
import yaml

from connectors.sandbox.shopify import ShopifySandbox
from sync.stack import free_port
from tests.support.processes import stocksync_executable

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CONFIG_IN_IMAGE = "/etc/stocksync/stocksync.yaml"
REDIS_DB = 7  # a database of its own, so the queues of other tests are left alone
API_TOKEN = "deploy-test-token"
STOP_WITHIN_S = 10.0
ROLES = ("migrate", "run", "worker")


# ---------------------------------------------------------------------------- how deploy/ starts us
def systemd_exec_start(unit: str) -> list[str]:
    lines = (DEPLOY / "systemd" / unit).read_text(encoding="utf-8").splitlines()
    found = [line.split("=", 1)[1] for line in lines if line.startswith("ExecStart=")]
    assert len(found) == 1, f"{unit}: expected one ExecStart"
    return shlex.split(found[0])


def wait_until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def k8s_argv(file: str) -> list[str]:
    workload = yaml.safe_load((DEPLOY / "k8s" / file).read_text(encoding="utf-8"))
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    return [*container["command"], *container["args"]]


def compose_argv(service: str) -> list[str]:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    # no entrypoint override in compose.yaml: the image's ENTRYPOINT ["stocksync"] applies
    assert "entrypoint" not in compose["services"][service]
    return ["stocksync", *compose["services"][service]["command"]]


def deployed_commands() -> dict[str, list[str]]:
    """One argv per role; every deployment style must start the same command."""
    styles = {
        "systemd": {
            "migrate": systemd_exec_start("stocksync-migrate.service"),
            "run": systemd_exec_start("stocksync-run.service"),
            "worker": systemd_exec_start("stocksync-worker.service"),
        },
        "kubernetes": {
            "migrate": k8s_argv("migrate-job.yaml"),
            "run": k8s_argv("run-deployment.yaml"),
            "worker": k8s_argv("worker-deployment.yaml"),
        },
        "compose": {role: compose_argv(role) for role in ROLES},
    }
    reference = styles["systemd"]
    for style, commands in styles.items():
        for role in ROLES:
            argv = commands[role]
            assert Path(argv[0]).name == "stocksync", f"{style} {role}: {argv}"
            assert argv[1:] == reference[role][1:], f"{style} starts {role} differently"
    return reference


def localise(argv: list[str], config: Path) -> list[str]:
    """The console script of this interpreter's environment where deploy/ says /opt/..., and
    the test's config where it says the image's."""
    assert argv.count(CONFIG_IN_IMAGE) == 1, argv
    local = stocksync_executable()
    return [local, *(str(config) if a == CONFIG_IN_IMAGE else a for a in argv[1:])]


# ---------------------------------------------------------------------------- the environment
@dataclass
class Deployment:
    config: Path
    base_url: str
    pg_url: str
    sandbox: ShopifySandbox
    logs: Path


@pytest.fixture
def deployment(pg_url: str, tmp_path: Path) -> Iterator[Deployment]:
    broker = f"redis://127.0.0.1:6379/{REDIS_DB}"
    redis.Redis.from_url(broker).flushdb()  # no queued ids left from an earlier run
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    sandbox = ShopifySandbox(webhook_url=f"{base_url}/webhooks/shop")
    sandbox_url = sandbox.start()
    config = tmp_path / "stocksync.yaml"
    settings: dict[str, Any] = {
        "database": pg_url,
        "broker": broker,
        "channels": {
            "shop": {
                "kind": "shopify",
                "shop": "sandbox.myshopify.com",
                "token": "${SHOPIFY_TOKEN}",
                "webhook_secret": "${SHOPIFY_WEBHOOK_SECRET}",
                "api_url": sandbox_url,
            },
            "popup": {"kind": "manual"},
        },
        "server": {"host": "127.0.0.1", "port": port, "api_token": "${STOCKSYNC_API_TOKEN}"},
        "daemon": {"poll_interval_s": 1, "sweep_interval_s": 1, "push_interval_s": 0.5},
        "logging": {"level": "INFO", "json": True},
    }
    config.write_text(yaml.safe_dump(settings), encoding="utf-8")
    logs = tmp_path / "logs"
    logs.mkdir()
    try:
        yield Deployment(config, base_url, pg_url, sandbox, logs)
    finally:
        sandbox.stop()
        redis.Redis.from_url(broker).flushdb()


def environment(tmp_path: Path) -> dict[str, str]:
    """Secrets through *_FILE, as the Compose file and the Kubernetes manifests hand them over."""
    secrets = tmp_path / "secrets"
    secrets.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STOCKSYNC_", "SHOPIFY_"))}
    for name, value in {
        "SHOPIFY_TOKEN": "shpat_sandbox",
        "SHOPIFY_WEBHOOK_SECRET": "sandbox-secret",
        "STOCKSYNC_API_TOKEN": API_TOKEN,
    }.items():
        (secrets / name.lower()).write_text(value + "\n", encoding="utf-8")
        env[f"{name}_FILE"] = str(secrets / name.lower())
    return env


def start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as sink:
        return subprocess.Popen(argv, env=env, stdout=sink, stderr=subprocess.STDOUT)


def tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


def wait_http(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        assert process.poll() is None, f"exited with {process.returncode}:\n{tail(log)}"
        try:
            response = requests.get(url, timeout=2)
            if response.status_code == 200:
                return response.json()
            last = f"{response.status_code} {response.text}"
        except requests.ConnectionError as exc:
            last = type(exc).__name__
        time.sleep(0.1)
    raise AssertionError(f"{url} not 200 after {timeout}s ({last}):\n{tail(log)}")


def wait_sql(pg_url: str, query: str, expected: object, timeout: float = 20.0) -> None:
    plain = pg_url.replace("postgresql+psycopg://", "postgresql://", 1)
    deadline = time.monotonic() + timeout
    value: object = None
    while time.monotonic() < deadline:
        with psycopg.connect(plain) as conn:
            row = conn.execute(query).fetchone()
        value = row[0] if row else None
        if value == expected:
            return
        time.sleep(0.2)
    raise AssertionError(f"{query!r} gave {value!r}, expected {expected!r}")


# ---------------------------------------------------------------------------- the test
@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
def test_run_and_worker_as_deployed(deployment: Deployment, tmp_path: Path) -> None:
    commands = {
        role: localise(argv, deployment.config) for role, argv in deployed_commands().items()
    }
    env = environment(tmp_path)

    for attempt in range(2):  # the one-shot migration is idempotent: a second run changes nothing
        migrate = subprocess.run(
            commands["migrate"], env=env, capture_output=True, text=True, check=False, timeout=60
        )
        assert migrate.returncode == 0, f"attempt {attempt}: {migrate.stdout}{migrate.stderr}"
    cli = [stocksync_executable(), "--config", str(deployment.config)]
    setup = subprocess.run(
        [*cli, "stock", "set", "DEMO-1", "20"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert setup.returncode == 0, setup.stdout + setup.stderr

    run_log, worker_log = deployment.logs / "run.log", deployment.logs / "worker.log"
    run = start(commands["run"], env, run_log)
    worker = start(commands["worker"], env, worker_log)
    try:
        assert wait_http(f"{deployment.base_url}/healthz", run, run_log)
        ready = wait_http(f"{deployment.base_url}/readyz", run, run_log)
        assert ready["database"] == "ok" and ready["broker"] == "ok", ready
        assert worker.poll() is None, f"worker exited:\n{tail(worker_log)}"

        # a customer buys on Shopify: the signed webhook reaches `run`, which only stores and
        # enqueues (broker: redis); the separate worker process applies it to the ledger
        checkout = requests.post(
            f"{deployment.sandbox.url}/_sandbox/checkout",
            json={"sku": "DEMO-1", "quantity": 2, "email": "a@example.com"},
            timeout=5,
        )
        assert checkout.status_code == 201, checkout.text
        wait_sql(
            deployment.pg_url,
            "SELECT coalesce(sum(qty), 0) FROM reservation"
            " WHERE sku_id = (SELECT id FROM sku WHERE code = 'DEMO-1')",
            2,
        )
        wait_sql(
            deployment.pg_url,
            "SELECT count(*) FROM inbox_event WHERE channel = 'shop'"
            " AND (processed_at IS NULL OR error IS NOT NULL)",
            0,
        )
        metrics = requests.get(f"{deployment.base_url}/metrics", timeout=5)
        assert metrics.status_code == 200
        assert 'stocksync_webhooks_received_total{channel="shop",outcome="stored"} 1.0' in (
            metrics.text
        )

        # a rule changes while running: the reload the units declare (ExecReload: SIGHUP to
        # every process) re-evaluates the offers, and the shop gets the new number
        wait_until(lambda: deployment.sandbox.available("DEMO-1") == 18, 30, "shop at 18")
        settings = yaml.safe_load(deployment.config.read_text(encoding="utf-8"))
        settings["defaults"] = {**settings.get("defaults", {}), "safety_buffer": 3}
        deployment.config.write_text(yaml.safe_dump(settings), encoding="utf-8")
        for unit in ("stocksync-run.service", "stocksync-worker.service"):
            text = (DEPLOY / "systemd" / unit).read_text(encoding="utf-8")
            assert "ExecReload=/bin/kill -HUP $MAINPID" in text.splitlines(), unit
        for process in (run, worker):
            process.send_signal(signal.SIGHUP)
        wait_until(lambda: deployment.sandbox.available("DEMO-1") == 15, 30, "shop at 18 - 3")
        assert run.poll() is None and worker.poll() is None
    finally:
        # both at once, as `docker compose stop`, a rollout or `systemctl stop` sends it
        for process in (run, worker):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
    problems = []
    for name, process, log in (("run", run, run_log), ("worker", worker, worker_log)):
        try:
            code = process.wait(timeout=STOP_WITHIN_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            problems.append(f"{name}: no exit {STOP_WITHIN_S}s after SIGTERM:\n{tail(log)}")
            continue
        if code != 0:
            problems.append(f"{name}: exit {code} after SIGTERM:\n{tail(log)}")
    assert not problems, "\n".join(problems)
    for log in (run_log, worker_log):
        for line in log.read_text(encoding="utf-8").splitlines():
            if line.startswith("{"):
                entry = json.loads(line)  # JSON logs, one object a line, as configured
                assert API_TOKEN not in line, "a secret reached the log"
                assert "event" in entry
