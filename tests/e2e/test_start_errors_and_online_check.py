"""What an operator sees from the console script: `run` on a port already in use and `run` or
`worker` with Redis down end with one clear line and their documented exit codes (3, 4);
`check --online` against both sandboxes with right and wrong credentials (exit 0 / 1, per
channel lines, `--json`), while plain `check` calls no channel."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from connectors.sandbox.shopify import ShopifySandbox
from connectors.sandbox.woocommerce import WooCommerceSandbox
from sync.stack import StackConfig, free_port
from tests.e2e import Cli, init

pytestmark = pytest.mark.slow  # each call starts the console script

GRAPHQL = "POST /admin/api/2026-07/graphql.json"


def test_run_on_a_port_in_use_exits_3_with_one_line(tmp_path: Path) -> None:
    config = init(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = Cli(tmp_path, config)("run", "--port", str(port), expect=3)
    assert result.stdout == ""
    assert result.stderr == (
        f"error: cannot listen (HTTP) on 127.0.0.1:{port}: address already in use; another "
        "process holds it, or choose another with --port (server.port)\n"
    ), result


def test_run_and_worker_with_redis_down_exit_4_with_one_line(tmp_path: Path) -> None:
    config = init(tmp_path)
    down = f"redis://127.0.0.1:{free_port()}/0"
    config.write_text(
        config.read_text(encoding="utf-8").replace("broker: memory", f"broker: {down}"),
        encoding="utf-8",
    )
    assert f"broker: {down}" in config.read_text(encoding="utf-8")
    run, worker = Cli(tmp_path, config).many(
        [("run", "--port", str(free_port())), ("worker",)], expect=4
    )
    for result in (run, worker):
        assert result.stdout == ""
        lines = result.stderr.splitlines()
        assert len(lines) == 1, result
        assert lines[0].startswith(f"error: broker {down} does not answer ("), result
        assert lines[0].endswith("); start Redis or fix `broker:`"), result


def test_check_online_with_right_and_wrong_credentials(tmp_path: Path) -> None:
    with ShopifySandbox() as shopify, WooCommerceSandbox() as woo:
        path = StackConfig(rules={}, manual_channels=("popup",)).write(
            tmp_path / "stocksync.yaml", shopify.url, woo.url
        )
        cli = Cli(tmp_path, path)
        offline = cli("check")
        assert "channel shop: shopify" in offline.stdout
        assert shopify.request_count == {} and woo.request_count == {}  # no call without --online

        good, good_json = cli.many([("check", "--online"), ("check", "--online", "--json")])
        assert "  channel shop (shopify): ok: shop 'sandbox' (sandbox.myshopify.com), " in (
            good.stdout
        )
        assert "  channel woo (woocommerce): ok: " in good.stdout
        assert "  channel popup (manual): ok: manual channel: nothing to call" in good.stdout
        data = good_json.json()
        assert data["ok"] is True
        assert {name: r["ok"] for name, r in data["online"].items()} == {
            "shop": True, "woo": True, "popup": True,
        }  # fmt: skip

        shopify.token = "shpat_revoked"
        woo.oauth.consumer_key = "ck_revoked"
        bad, bad_json = cli.many([("check", "--online"), ("check", "--online", "--json")], expect=1)
        assert (
            "  channel shop (shopify): FAILED: credentials refused (HTTP 401): the token or keys "
            "are wrong, revoked or expired - HTTP 401: "
        ) in bad.stdout, bad
        assert "  channel woo (woocommerce): FAILED: credentials refused (HTTP 401)" in bad.stdout
        assert "Consumer key is invalid." in bad.stdout
        assert bad.stderr.count("error") == 0  # the lines say it; stderr has only warnings
        data = bad_json.json()
        assert data["ok"] is False
        assert data["online"]["shop"]["status"] == 401 and not data["online"]["shop"]["ok"]
        assert data["online"]["popup"]["ok"] is True
