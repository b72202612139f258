"""Setting up: `check` shows the effective settings without a single secret, and
`stocksync sandbox` serves a loopback shop whose URL is the first line it prints."""

from __future__ import annotations

import json
import selectors
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.e2e import Cli, base_env, init, line_of, stocksync_executable

pytestmark = pytest.mark.slow  # each test runs the CLI against a migrated database or a server

CHECK_KEYS = {"ok", "config", "database", "revision", "channels", "settings"}
SETTINGS_KEYS = {
    "path", "database", "broker", "channels", "server", "daemon", "logging", "tiers", "warnings",
    "defaults", "channel_rules", "sku_rules",
}  # fmt: skip

SECRETS = {
    "SHOPIFY_TOKEN": "shpat_e2e_token_5f1c",
    "OLD_HOOK_SECRET": "whsec_e2e_previous_77aa",
    "WC_HOOK": "whsec_e2e_woo_3e3e",
}
HOOK_SECRET = "whsec_e2e_from_file_9d2e"  # webhook_secret_file
API_TOKEN = "api_e2e_from_var_file_31bb"  # $E2E_API_TOKEN_FILE
URL_PASSWORD = "pw_e2e_in_url_c0de"
DEFAULT_SECRET = "cs_e2e_default_8080"  # ${WC_SECRET:-...}
LITERAL_SECRET = "ck_e2e_literal_4411"  # written in the file: a warning, still never shown

SHOP_CONFIG = f"""\
database: sqlite:///stocksync.db
channels:
  popup: {{kind: manual}}
  shop:
    kind: shopify
    shop: my-store.myshopify.com
    token: ${{SHOPIFY_TOKEN}}
    webhook_secret_file: hook.secret
    previous_webhook_secret: ${{OLD_HOOK_SECRET:-}}
    api_url: http://sandbox:{URL_PASSWORD}@127.0.0.1:8081
  woo:
    kind: woocommerce
    url: https://woo.example.com
    consumer_key: {LITERAL_SECRET}
    consumer_secret: ${{WC_SECRET:-{DEFAULT_SECRET}}}
    webhook_secret: ${{WC_HOOK}}
server:
  api_token: ${{E2E_API_TOKEN}}
"""


def test_check_shows_settings_but_never_a_secret(tmp_path: Path) -> None:
    config = init(tmp_path)
    config.write_text(SHOP_CONFIG, encoding="utf-8")
    (config.parent / "hook.secret").write_text(HOOK_SECRET + "\n", encoding="utf-8")
    token_file = tmp_path / "api-token"
    token_file.write_text(API_TOKEN, encoding="utf-8")
    env = {**SECRETS, "E2E_API_TOKEN_FILE": str(token_file), "STOCKSYNC_CONFIG": str(config)}

    as_json, human, upgrade = Cli(tmp_path).many(
        [("check", "--json"), ("check",), ("db", "upgrade")], env=env
    )
    secrets = [*SECRETS.values(), HOOK_SECRET, API_TOKEN, URL_PASSWORD, DEFAULT_SECRET]
    for result in (as_json, human, upgrade):
        for secret in [*secrets, LITERAL_SECRET]:
            assert secret not in result.stdout + result.stderr, (secret, result)
    data = as_json.json()
    assert set(data) == CHECK_KEYS
    assert (data["ok"], data["config"]) == (True, str(config))
    assert data["channels"] == {"popup": "manual", "shop": "shopify", "woo": "woocommerce"}
    assert data["revision"]["current"] == data["revision"]["head"]
    settings = data["settings"]
    assert set(settings) == SETTINGS_KEYS
    assert settings["channels"]["shop"] == {
        "kind": "shopify", "line": 4, "shop": "my-store.myshopify.com", "api_version": "2026-07",
        "location": "Main", "token": "***", "webhook_secret": "***",
        "previous_webhook_secret": "***", "api_url": "http://sandbox:***@127.0.0.1:8081",
        "poll": True,
    }  # fmt: skip
    assert settings["channels"]["woo"] == {
        "kind": "woocommerce", "line": 11, "url": "https://woo.example.com",
        "consumer_key": "***", "consumer_secret": "***", "webhook_secret": "***", "poll": True,
    }  # fmt: skip
    assert settings["server"] == {"host": "127.0.0.1", "port": 8080, "api_token": "***"}
    warning = (
        f"{config}:{line_of(SHOP_CONFIG, 'consumer_key')}: channels.woo.consumer_key: "
        "secret written in the file; use ${VAR} or consumer_key_file instead"
    )
    assert settings["warnings"] == [warning]
    assert f"config {config} is valid" in human.stdout
    assert "channel shop: shopify" in human.stdout
    assert f"warning: {warning}" in human.stdout
    head = data["revision"]["head"]
    assert upgrade.stdout == f"sqlite:///{config.parent / 'stocksync.db'} is at revision {head}\n"


def test_sandbox_prints_its_url_first_and_serves(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [stocksync_executable(), "sandbox", "shopify", "--port", "0"],
        cwd=tmp_path,
        env=base_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            ready = selector.select(timeout=30)
        assert ready, "no output within 30 s"
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), url
        started = time.monotonic()
        with urllib.request.urlopen(f"{url}/_sandbox/state", timeout=10) as response:  # noqa: S310 - a loopback URL the sandbox printed
            state = json.load(response)
        assert time.monotonic() - started < 10
        assert state["shop"] == "sandbox.myshopify.com"
        assert state["location"]["name"] == "Main"
        assert {sku: item["available"] for sku, item in state["inventory"].items()} == {
            f"DEMO-{n}": 20 for n in range(1, 6)
        }
        proc.send_signal(signal.SIGINT)  # ^C, as a user stops it
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
