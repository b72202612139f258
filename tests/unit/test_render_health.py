"""The human lines of `status` (a channel held after an auth error) and `check --online`."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from sync import render


def printed(show: Any, data: dict[str, Any]) -> str:
    console = Console(width=100, highlight=False, soft_wrap=True, record=True, color_system=None)
    show(console, data)
    return console.export_text()


def test_status_names_a_held_channel() -> None:
    held = "auth error (2 refusals in a row), calls held until 2026-12-01T09:01:00Z: HTTP 401"
    data = {
        "channels": {"shop": "shopify", "woo": "woocommerce"},
        "skus": [],
        "database": {"url": "sqlite:///x.db", "current": "0007"},
        "orders_open": 0, "backorders_open": 0, "backorders_beyond_capacity": 0,
        "inbox_pending": 0, "inbox_failed": 0, "listings_dirty": 3,
        "channel_health": {
            "shop": {"state": "auth_error", "error": held, "held_until": "x", "auth_failures": 2},
            "woo": {"state": "ok", "error": None, "held_until": None, "auth_failures": 0},
        },
    }  # fmt: skip
    lines = printed(render.status, data).splitlines()
    assert f"channel shop: {held}" in lines
    assert not any(line.startswith("channel woo") for line in lines)


def test_check_online_prints_a_line_per_channel() -> None:
    data = {
        "config": "stocksync.yaml",
        "database": "sqlite:///x.db",
        "revision": {"current": "0007", "head": "0007"},
        "channels": {"shop": "shopify", "woo": "woocommerce"},
        "settings": {"warnings": []},
        "online": {
            "shop": {"ok": False, "summary": "shop 'a'", "problems": ["missing access scope x"]},
            "woo": {"ok": False, "error": "unreachable: connection refused"},
        },
    }
    lines = printed(render.check, data).splitlines()
    assert "  channel shop (shopify): FAILED: shop 'a'" in lines
    assert "    problem: missing access scope x" in lines
    assert "  channel woo (woocommerce): FAILED: unreachable: connection refused" in lines
