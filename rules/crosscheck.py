"""Checks across sections: channel names, rules that name channels which do not exist, and
channels' ``tier_from`` naming tiers that ``tiers:`` does not list.

They run on the raw values, so they are reported even when validation of other parts failed.
"""

from __future__ import annotations

import re
from typing import Any

from rules.errors import ConfigIssue
from rules.model import SECRET_KEYS
from rules.paths import KeyPath, LineMap, format_path, line_for
from rules.suggest import did_you_mean

_CHANNEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_CAMPAIGN_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")


def _unknown_channel(name: object, known: list[str]) -> str:
    hint = did_you_mean(str(name), known)
    return (
        f"unknown channel {name!r}{hint}; configured channels: {', '.join(sorted(known)) or 'none'}"
    )


def check_channel_references(
    data: dict[str, Any], lines: LineMap, filename: str
) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []

    def issue(path: KeyPath, message: str) -> None:
        issues.append(ConfigIssue(filename, line_for(lines, path), format_path(path), message))

    channels = data.get("channels")
    known = list(channels) if isinstance(channels, dict) else []
    for name in known:
        if not _CHANNEL_NAME.fullmatch(name):
            issue(
                ("channels", name),
                "a channel name may hold only letters, digits, '-' and '_' "
                "(it is part of the webhook URL)",
            )
    channel_rules = data.get("channel_rules")
    if isinstance(channel_rules, dict):
        for name in channel_rules:
            if name not in known:
                issue(("channel_rules", name), _unknown_channel(name, known))
    sku_rules = data.get("sku_rules")
    for index, rule in enumerate(sku_rules if isinstance(sku_rules, list) else []):
        names = rule.get("channels") if isinstance(rule, dict) else None
        for position, name in enumerate(names if isinstance(names, list) else []):
            if isinstance(name, str) and name not in known:
                issue(("sku_rules", index, "channels", position), _unknown_channel(name, known))
    campaigns = data.get("campaigns")
    for name, campaign in campaigns.items() if isinstance(campaigns, dict) else ():
        if not _CAMPAIGN_NAME.fullmatch(str(name)):
            issue(
                ("campaigns", name),
                "a campaign name may hold only lower-case letters, digits, '-' and '_' "
                "(it is part of the sign-up URL)",
            )
        names = campaign.get("channels") if isinstance(campaign, dict) else None
        for position, channel in enumerate(names if isinstance(names, list) else []):
            if isinstance(channel, str) and channel not in known:
                issue(("campaigns", name, "channels", position), _unknown_channel(channel, known))
    pools: list[tuple[KeyPath, Any]] = [(("defaults", "pool"), _get(data, "defaults", "pool"))]
    pools += [
        (("sku_rules", index, "pool"), rule.get("pool") if isinstance(rule, dict) else None)
        for index, rule in enumerate(sku_rules if isinstance(sku_rules, list) else [])
    ]
    for path, pool in pools:
        weights = pool.get("weights") if isinstance(pool, dict) else None
        for name in weights if isinstance(weights, dict) else []:
            if name not in known:
                issue((*path, "weights", name), _unknown_channel(name, known))
            elif _kind(channels, name) == "manual":
                issue(
                    (*path, "weights", name),
                    f"{name!r} is a manual channel: a pool splits units over shops "
                    "(shopify, woocommerce), which sell them by themselves",
                )
    return issues


def _get(data: dict[str, Any], *keys: str) -> Any:
    value: Any = data
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _kind(channels: Any, name: str) -> Any:
    channel = channels.get(name) if isinstance(channels, dict) else None
    return channel.get("kind") if isinstance(channel, dict) else None


def literal_secrets(data: dict[str, Any], lines: LineMap, filename: str) -> list[ConfigIssue]:
    """Warnings for secrets written into the file itself instead of ``${VAR}`` or ``*_file``."""
    places: list[tuple[KeyPath, dict[str, Any]]] = []
    channels = data.get("channels")
    if isinstance(channels, dict):
        places += [(("channels", n), c) for n, c in channels.items() if isinstance(c, dict)]
    server = data.get("server")
    if isinstance(server, dict):
        places.append((("server",), server))
    warnings: list[ConfigIssue] = []
    for section_path, section in places:
        for key, value in section.items():
            if key in SECRET_KEYS and isinstance(value, str) and value and "${" not in value:
                path = (*section_path, key)
                warnings.append(
                    ConfigIssue(
                        filename,
                        line_for(lines, path),
                        format_path(path),
                        f"secret written in the file; use ${{VAR}} or {key}_file instead",
                    )
                )
    return warnings


def _unknown_tier(tier: str, tiers: list[str]) -> str:
    if not tiers:
        return (
            f"unknown tier {tier!r}: no tiers are configured (list them, best first: tiers: [...])"
        )
    hint = did_you_mean(tier, tiers)
    return f"unknown tier {tier!r}{hint}; tiers: {', '.join(tiers)}"


def check_tier_references(data: dict[str, Any], lines: LineMap, filename: str) -> list[ConfigIssue]:
    """Every tier a channel's ``tier_from`` maps to (or a campaign reserves units for) must be
    one of ``tiers:``."""
    raw_tiers = data.get("tiers")
    tiers = [t for t in raw_tiers if isinstance(t, str)] if isinstance(raw_tiers, list) else []
    channels = data.get("channels")
    issues: list[ConfigIssue] = []
    campaigns = data.get("campaigns")
    for name, campaign in campaigns.items() if isinstance(campaigns, dict) else ():
        reserved = campaign.get("tiers") if isinstance(campaign, dict) else None
        for tier in reserved if isinstance(reserved, dict) else ():
            if tier not in tiers:
                where: KeyPath = ("campaigns", name, "tiers", tier)
                issues.append(
                    ConfigIssue(
                        filename, line_for(lines, where), format_path(where),
                        _unknown_tier(tier, tiers),
                    )
                )  # fmt: skip
    for name, channel in channels.items() if isinstance(channels, dict) else ():
        tier_from = channel.get("tier_from") if isinstance(channel, dict) else None
        if not isinstance(tier_from, dict):
            continue
        for source in ("tags", "role", "values"):
            mapping = tier_from.get(source)
            for key, tier in mapping.items() if isinstance(mapping, dict) else ():
                if isinstance(tier, str) and tier not in tiers:
                    path: KeyPath = ("channels", name, "tier_from", source, key)
                    issues.append(
                        ConfigIssue(
                            filename,
                            line_for(lines, path),
                            format_path(path),
                            _unknown_tier(tier, tiers),
                        )
                    )
    return issues
