"""The validated configuration as frozen values; secrets stay ``SecretStr`` until asked for."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import SecretStr

from rules.campaign_model import Campaign
from rules.errors import ConfigIssue
from rules.model import ChannelKind, ReleaseKey
from rules.notify_model import NotifyConfig
from rules.redact import MASK, redact_url
from rules.resolve import (
    EffectiveRule,
    RuleSet,
    channel_priority,
    release_order_for,
    resolve_rule,
)
from rules.sourced import Sourced


def _shown(value: object) -> object:
    if isinstance(value, SecretStr):
        return MASK
    if isinstance(value, tuple):
        return list(value)
    return value


TierSource = Literal["tags", "role", "meta"]


def fold(value: str) -> str:
    """How tags, roles and meta values are compared: trimmed, ignoring case."""
    return value.strip().casefold()


@dataclass(frozen=True)
class TierFrom:
    """``channels.<name>.tier_from``: where a shop order's customer tier is read.

    ``source`` is "tags" (Shopify customer tags), "role" (WooCommerce customer role) or "meta"
    (the value of WooCommerce order meta ``key``). ``values`` maps a channel value, folded
    (see ``fold``), to a tier of ``tiers:``; empty for ``meta`` without ``values:``, where the
    meta value itself names the tier.
    """

    source: TierSource
    values: Mapping[str, str]
    key: str | None = None
    line: int = 0

    def tier_for(self, found: Iterable[str], tiers: Sequence[str]) -> str | None:
        """The tier the channel's values map to: when several do, the one first in ``tiers``
        (the best); None when none does."""
        by_name = {fold(tier): tier for tier in tiers}
        matched: set[str] = set()
        for value in found:
            tier = (self.values or by_name).get(fold(value))
            if tier is not None:
                matched.add(tier)
        if not matched:
            return None
        rank = {tier: index for index, tier in enumerate(tiers)}
        return min(matched, key=lambda tier: (rank.get(tier, len(tiers)), tier))

    def to_data(self) -> dict[str, Any]:
        """The YAML form (keys folded), for ``check --json``."""
        if self.source == "meta":
            data: dict[str, Any] = {"meta": self.key}
            if self.values:
                data["values"] = dict(self.values)
            return data
        return {self.source: dict(self.values)}


@dataclass(frozen=True)
class ChannelConfig:
    """One entry of ``channels:``. Fields of the other kinds are None.

    shopify: shop, api_version, token, webhook_secret, location (previous_webhook_secret optional);
    woocommerce: url, consumer_key, consumer_secret, webhook_secret (previous_webhook_secret
    optional); both: api_url (a sandbox, or None), poll and tier_from (None: orders get no
    tier). A manual channel has only name/kind/line (poll is False: there is nothing to poll).
    """

    name: str
    kind: ChannelKind
    line: int
    shop: str | None = None
    api_version: str | None = None
    location: str | None = None
    url: str | None = None
    token: SecretStr | None = None
    consumer_key: SecretStr | None = None
    consumer_secret: SecretStr | None = None
    webhook_secret: SecretStr | None = None
    previous_webhook_secret: SecretStr | None = None
    api_url: str | None = None
    poll: bool = False
    tier_from: TierFrom | None = None

    def secret(self, name: str) -> str:
        """The plain value of secret ``name`` ("token", "consumer_key"...); ValueError if unset."""
        value = getattr(self, name, None)
        if not isinstance(value, SecretStr):
            raise ValueError(f"channel {self.name!r} ({self.kind}) has no {name}")
        return value.get_secret_value()

    def webhook_secrets(self) -> tuple[str, ...]:
        """Current and (during a rotation) previous webhook secret, for signature checks."""
        return tuple(
            secret.get_secret_value()
            for secret in (self.webhook_secret, self.previous_webhook_secret)
            if secret is not None
        )

    def redacted(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind, "line": self.line}
        for name in ChannelConfig.__dataclass_fields__:
            value = getattr(self, name)
            if name in ("name", "kind", "line") or value is None:
                continue
            if isinstance(value, TierFrom):
                data[name] = value.to_data()
                continue
            data[name] = redact_url(value) if name in ("url", "api_url") else _shown(value)
        if self.kind == "manual":
            del data["poll"]
        return data


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    api_token: SecretStr | None = None  # for POST /api/purchase-orders/{ref}/receipts


@dataclass(frozen=True)
class DaemonConfig:
    poll_interval_s: float = 60.0
    poll_overlap_s: float = 120.0
    sweep_interval_s: float = 30.0
    sweep_age_s: float = 60.0
    push_interval_s: float = 2.0
    reconcile_interval_s: float = 900.0
    campaign_tick_interval_s: float = 60.0  # campaigns' expiries, reminders, waves
    notify_interval_s: float = 30.0  # audit entries -> messages, and due messages sent


@dataclass(frozen=True)
class LoggingConfig:
    level: str = "INFO"
    json: bool | None = None  # None: JSON when stderr is not a terminal


@dataclass(frozen=True)
class Config:
    """A loaded stocksync.yaml. ``database``/``broker`` may hold passwords: kept out of repr."""

    path: str
    database: str = field(repr=False)
    broker: str = field(repr=False)
    channels: Mapping[str, ChannelConfig]
    server: ServerConfig
    daemon: DaemonConfig
    logging: LoggingConfig
    tiers: tuple[str, ...]
    rules: RuleSet
    # not errors, worth showing (`stocksync check`): e.g. a secret written into the file
    warnings: tuple[ConfigIssue, ...] = ()
    campaigns: Mapping[str, Campaign] = field(default_factory=dict)
    notify: NotifyConfig = field(default_factory=NotifyConfig)  # issue #17: messages

    def campaign(self, name: str) -> Campaign:
        """The named campaign; KeyError naming the configured ones."""
        found = self.campaigns.get(name)
        if found is None:
            known = ", ".join(sorted(self.campaigns)) or "none"
            raise KeyError(f"unknown campaign {name!r} (configured: {known})")
        return found

    def deposit_skus(self) -> dict[str, tuple[str, ...]]:
        """Deposit products' SKUs -> the campaigns they sign up for (issue #16)."""
        found: dict[str, list[str]] = {}
        for name, campaign in self.campaigns.items():
            if campaign.payment is not None and campaign.payment.deposit_sku:
                found.setdefault(campaign.payment.deposit_sku, []).append(name)
        return {sku: tuple(names) for sku, names in found.items()}

    def payment_channels(self) -> frozenset[str]:
        """Channels where some campaign's customers pay."""
        return frozenset(c for campaign in self.campaigns.values() for c in campaign.channels)

    def pre_order_channels(self) -> frozenset[str]:
        """Shopify channels where some campaign has payment terms: customers sign up there by a
        pre-order checkout through a selling plan stocksync keeps (a deposit, all of it, or
        with `mode: none` only their card saved)."""
        return frozenset(
            c
            for campaign in self.campaigns.values()
            if campaign.payment is not None
            for c in campaign.channels
            if self.channels[c].kind == "shopify"
        )

    def campaign_units(self, sku: str) -> tuple[tuple[str, int], ...]:
        """(campaign, units set aside) of every campaign that holds units of this SKU."""
        return tuple(
            (name, units)
            for name, campaign in self.campaigns.items()
            if (units := campaign.units(sku))
        )

    def _check_channel(self, channel: str) -> None:
        if channel not in self.channels:
            known = ", ".join(sorted(self.channels)) or "none"
            raise KeyError(f"unknown channel {channel!r} (configured: {known})")

    def rule_for(self, channel: str, sku: str) -> EffectiveRule:
        """The effective rule; KeyError for a channel that is not configured."""
        self._check_channel(channel)
        rule = resolve_rule(self.rules, channel, sku)
        held = self.campaign_units(sku) if self.campaigns else ()
        return dataclasses.replace(rule, campaign_units=held) if held else rule

    def release_order(self, sku: str) -> Sourced[tuple[ReleaseKey, ...]]:
        """The one order this SKU's backorders are released in (see rules.resolve)."""
        return release_order_for(self.rules, self.channels, sku)

    def tier_from(self, channel: str) -> TierFrom | None:
        """Where the channel's orders get their customer tier; None for no tier (manual
        channels: `order add --tier`) or a channel that is not configured."""
        found = self.channels.get(channel)
        return found.tier_from if found is not None else None

    def channel_priority(self, channel: str) -> Sourced[int]:
        """The channel's release priority (lower first); KeyError for an unknown channel."""
        self._check_channel(channel)
        return channel_priority(self.rules, channel)

    def redacted(self) -> dict[str, Any]:
        """Plain data (JSON-ready) with every secret shown as "***"."""
        return {
            "path": self.path,
            "database": redact_url(self.database),
            "broker": redact_url(self.broker),
            "channels": {name: ch.redacted() for name, ch in self.channels.items()},
            "server": {name: _shown(getattr(self.server, name)) for name in _names(ServerConfig)},
            "daemon": {name: getattr(self.daemon, name) for name in _names(DaemonConfig)},
            "logging": {name: getattr(self.logging, name) for name in _names(LoggingConfig)},
            "tiers": list(self.tiers),
            "warnings": [str(warning) for warning in self.warnings],
            "defaults": self.rules.defaults.to_data(),
            "channel_rules": {
                name: layer.to_data() for name, layer in self.rules.channel_rules.items()
            },
            "sku_rules": [
                {
                    "match": rule.match,
                    **({"channels": list(rule.channels)} if rule.channels is not None else {}),
                    **rule.layer.to_data(),
                }
                for rule in self.rules.sku_rules
            ],
            # only when configured: `check` of a file without `notify:` shows what it did
            **({"notify": self.notify.redacted()} if self.notify.enabled else {}),
        }


def _names(cls: type[Any]) -> list[str]:
    return list(cls.__dataclass_fields__)
