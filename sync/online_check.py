"""`stocksync check --online`: call each configured channel once, cheaply, and say plainly what
is wrong: credentials refused, a missing scope, a location that is not there, a shop that does
not answer. Nothing is written, to the channels or the ledger."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from connectors.base import ChannelError, PayloadError
from rules import ChannelConfig, Config
from sync.runtime import build_channel

PROBE_TIMEOUT_S = 10.0


def describe_failure(exc: ChannelError) -> str:
    """One line an operator can act on, from a failed channel call."""
    if exc.status == 401:
        return (
            "credentials refused (HTTP 401): the token or keys are wrong, revoked or expired"
            f" - {exc.message}"
        )
    if exc.status == 403:
        return f"access forbidden (HTTP 403): the token or keys lack a permission - {exc.message}"
    if exc.code == "ACCESS_DENIED":
        return f"access denied: the app lacks a scope - {exc.message}"
    if exc.status is None and exc.code is None:
        return f"unreachable: {exc.message}"
    if exc.status == 404:
        return f"not found (HTTP 404): check the shop's address or api_url - {exc.message}"
    return f"failed: {exc.message}"


def check_channel(
    cfg: ChannelConfig, payments: bool = False, deposits: bool = False, notes: bool = False
) -> dict[str, Any]:
    """The outcome of one channel's probe, as `check --json` prints it under `online`."""
    if cfg.kind == "manual":
        return {"kind": cfg.kind, "ok": True, "summary": "manual channel: nothing to call"}
    try:
        channel = build_channel(
            cfg, timeout=PROBE_TIMEOUT_S, payments=payments, deposits=deposits, notes=notes
        )
    except ValueError as exc:  # a secret the channel needs is not set
        return {"kind": cfg.kind, "ok": False, "error": f"not configured: {exc}"}
    if channel is None:
        return {"kind": cfg.kind, "ok": True, "summary": "nothing to call"}
    try:
        probe = channel.probe()
    except ChannelError as exc:
        return {
            "kind": cfg.kind,
            "ok": False,
            "error": describe_failure(exc),
            "status": exc.status,
            "code": exc.code,
        }
    except PayloadError as exc:
        return {"kind": cfg.kind, "ok": False, "error": f"unexpected answer: {exc}"}
    finally:
        channel.close()
    return {
        "kind": cfg.kind,
        "ok": probe.ok,
        "summary": probe.summary,
        "problems": list(probe.problems),
        "facts": dict(probe.facts),
    }


def check_channels(config: Config) -> dict[str, dict[str, Any]]:
    """Every configured channel's probe, side by side (a shop that does not answer costs its
    timeout once, not once per channel)."""
    names = list(config.channels)
    if not names:
        return {}
    paying, pre_orders = config.payment_channels(), config.pre_order_channels()
    with ThreadPoolExecutor(max_workers=min(len(names), 8)) as pool:
        results = list(
            pool.map(
                lambda name: check_channel(
                    config.channels[name],
                    name in paying,
                    name in pre_orders,
                    config.notify.shop_notes,
                ),
                names,
            )
        )
    return dict(zip(names, results, strict=True))
