"""`stocksync run` + `stocksync worker` processes over real Redis and PostgreSQL, as users run them,
with both sandboxes; one worker is SIGKILLed while the release after a receipt is under way."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from sqlalchemy import func, select

from connectors.sandbox.shopify import ShopifySandbox
from connectors.sandbox.woocommerce import WooCommerceSandbox
from stock import models as m
from stock.db import make_engine, session_factory
from sync.stack import free_port, wait_until
from tests.conftest import REDIS_URL
from tests.support.stack import stack_config

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]

REDIS_DB = 11
STOCKSYNC = shutil.which("stocksync") or "stocksync"


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [STOCKSYNC, "--config", str(config), *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"{args}: {result.stdout}{result.stderr}"
    return result


@contextmanager
def process(config: Path, *args: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [STOCKSYNC, "--config", str(config), *args], stdout=out, stderr=subprocess.STDOUT
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def test_processes_over_redis_lose_and_double_nothing_when_a_worker_dies(
    tmp_path: Path, pg_url: str
) -> None:
    redis_url = REDIS_URL.rsplit("/", 1)[0] + f"/{REDIS_DB}"
    redis.Redis.from_url(redis_url).flushdb()
    catalog = {"DEMO-1": 20, "DROP-1": 2}
    port = free_port()
    metrics_port = free_port()
    daemon = f"http://127.0.0.1:{port}"
    with (
        ShopifySandbox(catalog=catalog, webhook_url=f"{daemon}/webhooks/shop") as shop,
        WooCommerceSandbox(catalog=catalog, webhook_url=f"{daemon}/webhooks/woo") as woo,
    ):
        config = stack_config(
            database=pg_url, broker=redis_url, poll_interval=2, sweep_age=1
        ).write(tmp_path / "stocksync.yaml", shop.url, woo.url)
        cli(config, "db", "upgrade")
        for sku, qty in catalog.items():
            cli(config, "stock", "set", sku, str(qty))
        eta = (datetime.now(UTC) + timedelta(days=5)).date().isoformat()
        cli(config, "po", "add", "PO-9", "--eta", eta, "DROP-1=10")

        with (
            process(config, "run", "--port", str(port), log=tmp_path / "run.log") as run,
            process(config, "worker", "--threads", "2", log=tmp_path / "w1.log") as victim,
            process(
                config,
                "worker",
                "--threads",
                "2",
                "--metrics-port",
                str(metrics_port),
                log=tmp_path / "w2.log",
            ) as survivor,
        ):
            wait_until(lambda: _ok(f"{daemon}/readyz"), 30, "daemon ready")
            wait_until(lambda: woo_stock(woo, "DEMO-1") == 20, 30, "first push to woo")

            # a sale on Shopify lowers WooCommerce
            assert _checkout(shop, "DEMO-1", 3).status_code == 201
            wait_until(lambda: woo_stock(woo, "DEMO-1") == 17, 30, "woo lowered by a shopify sale")

            # 2 on hand + 10 incoming are offered; six buyers take 2 each: 5 orders wait
            wait_until(lambda: shop.available("DROP-1") == 12, 30, "offer includes incoming")
            order_ids = [
                int(_checkout(shop, "DROP-1", 2, f"b{i}@example.com").json()["id"])
                for i in range(6)
            ]
            wait_until(lambda: len(_held(shop, order_ids)) == 5, 60, "five orders held")

            # every Shopify call now takes a while, so the kill lands mid-work
            requests.put(f"{shop.url}/_sandbox/faults", json={"latency_ms": 400}, timeout=5)
            cli(config, "po", "receive", "PO-9", "DROP-1=10")
            time.sleep(1.0)
            victim.send_signal(signal.SIGKILL)
            victim.wait(timeout=10)
            requests.put(f"{shop.url}/_sandbox/faults", json={"latency_ms": 0}, timeout=5)

            wait_until(lambda: not _held(shop, order_ids), 90, "every hold released")
            engine = make_engine(pg_url)
            sessions = session_factory(engine)

            def settled() -> bool:
                with sessions() as session:
                    pending = session.scalar(
                        select(func.count())
                        .select_from(m.Writeback)
                        .where(m.Writeback.status != "done")
                    )
                    return pending == 0

            wait_until(settled, 60, "write-backs done")
            with sessions() as session:
                released = session.scalar(select(func.sum(m.Backorder.qty_released)))
                still_open = session.scalar(select(func.sum(m.Backorder.qty_open)))
                reserved = session.scalar(
                    select(func.sum(m.Reservation.qty))
                    .join(m.Sku, m.Sku.id == m.Reservation.sku_id)
                    .where(m.Sku.code == "DROP-1")
                )
                lines = session.execute(
                    select(m.OrderLine.quantity, m.OrderLine.cancelled, m.OrderLine.shipped)
                    .join(m.Sku, m.Sku.id == m.OrderLine.sku_id)
                    .where(m.Sku.code == "DROP-1")
                ).all()
            engine.dispose()
            # exactly the received units were released, once; every unit is reserved once
            assert (released, still_open, reserved) == (10, 0, 12)
            assert sorted(lines) == [(2, 0, 0)] * 6
            # 12 existed, 12 are sold: nothing more to offer anywhere
            wait_until(lambda: shop.available("DROP-1") == 0, 30, "shopify DROP-1 at 0")
            wait_until(lambda: woo_stock(woo, "DROP-1") == 0, 30, "woo DROP-1 at 0")

            # the surviving worker serves what it did (pushes, events, polls) on its own port
            worker_metrics = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5)
            samples = [
                line
                for line in worker_metrics.text.splitlines()
                if line.startswith("stocksync_") and "_created" not in line
            ]
            assert any(float(line.rsplit(" ", 1)[1]) > 0 for line in samples), samples

            for proc in (run, survivor):
                proc.send_signal(signal.SIGTERM)
            assert run.wait(timeout=20) == 0, (tmp_path / "run.log").read_text()
            assert survivor.wait(timeout=20) == 0, (tmp_path / "w2.log").read_text()
    redis.Redis.from_url(redis_url).flushdb()
    assert "Traceback" not in (tmp_path / "run.log").read_text()


def _ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _checkout(shop: ShopifySandbox, sku: str, qty: int, email: str = "a@example.com") -> Any:
    return requests.post(
        f"{shop.url}/_sandbox/checkout",
        json={"sku": sku, "quantity": qty, "email": email},
        timeout=10,
    )


def woo_stock(woo: WooCommerceSandbox, sku: str) -> int:
    return int(requests.get(f"{woo.url}/_sandbox/state", timeout=5).json()["stock"][sku])


def _held(shop: ShopifySandbox, order_ids: list[int]) -> list[int]:
    state = requests.get(f"{shop.url}/_sandbox/state", timeout=5).json()
    return sorted(
        int(fo["order_id"])
        for fo in state["fulfillment_orders"]
        if int(fo["order_id"]) in order_ids and fo["holds"]
    )
