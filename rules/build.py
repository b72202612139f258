"""Validated ``ConfigModel`` + key lines -> the frozen ``Config`` (values with their sources)."""

from __future__ import annotations

import re
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel

from rules.campaign_model import Campaign
from rules.config import (
    ChannelConfig,
    Config,
    DaemonConfig,
    LoggingConfig,
    ServerConfig,
    TierFrom,
    fold,
)
from rules.errors import ConfigIssue
from rules.model import (
    ChannelModel,
    ConfigModel,
    ManualChannelModel,
    PoolBlock,
    RuleBlock,
    ShopifyChannelModel,
    TierFromModel,
)
from rules.notify_model import build_notify
from rules.paths import KeyPath, LineMap, line_for
from rules.resolve import (
    RULE_KEYS,
    PoolRule,
    RuleLayer,
    RuleSet,
    SkuRule,
    defaults_release_order,
    release_order_conflicts,
    resolve_stacks,
)
from rules.sourced import Sourced

_SQLITE = re.compile(r"(sqlite(?:\+\w+)?:///)(.*)", re.DOTALL)


def resolve_database_url(url: str, config_dir: Path) -> str:
    """Make a relative SQLite path relative to the config file, not to the process's cwd."""
    found = _SQLITE.fullmatch(url)
    if found is None:
        return url
    prefix, rest = found.groups()
    file_part, question, query = rest.partition("?")
    if not file_part or file_part == ":memory:" or file_part.startswith(("/", "file:")):
        return url
    return f"{prefix}{(config_dir / file_part).as_posix()}{question}{query}"


def _layer(block: RuleBlock, prefix: KeyPath, lines: LineMap, filename: str) -> RuleLayer:
    values: dict[str, Sourced[Any]] = {}
    for name, keys in RULE_KEYS.items():
        holder: BaseModel = block
        for key in keys[:-1]:
            if key not in holder.model_fields_set:
                break
            holder = getattr(holder, key)
        else:
            leaf = keys[-1]
            if leaf in holder.model_fields_set:
                source = f"{filename}:{line_for(lines, (*prefix, *keys))}"
                values[name] = Sourced(getattr(holder, leaf), source)
    return RuleLayer(**values)


def _pool(
    block: PoolBlock | None, prefix: KeyPath, lines: LineMap, filename: str
) -> PoolRule | None:
    if block is None:
        return None
    return PoolRule(
        weights=MappingProxyType(dict(block.weights)) if block.weights is not None else None,
        reserve=block.reserve,
        rebalance_interval_s=block.rebalance_interval_s,
        backorders=block.backorders,
        source=f"{filename}:{line_for(lines, (*prefix, 'pool'))}",
    )


def _tier_from(model: TierFromModel | None, line: int) -> TierFrom | None:
    if model is None:
        return None
    if model.tags is not None:
        return TierFrom("tags", _folded(model.tags), line=line)
    if model.role is not None:
        return TierFrom("role", _folded(model.role), line=line)
    return TierFrom("meta", _folded(model.values or {}), key=model.meta, line=line)


def _folded(values: dict[str, str]) -> MappingProxyType[str, str]:
    return MappingProxyType({fold(key): tier for key, tier in values.items()})


def _channel(name: str, model: ChannelModel, line: int, tier_line: int) -> ChannelConfig:
    if isinstance(model, ManualChannelModel):
        return ChannelConfig(name=name, kind="manual", line=line)
    if isinstance(model, ShopifyChannelModel):
        return ChannelConfig(
            name=name,
            kind="shopify",
            line=line,
            shop=model.shop,
            api_version=model.api_version,
            location=model.location,
            token=model.token,
            webhook_secret=model.webhook_secret,
            previous_webhook_secret=model.previous_webhook_secret,
            api_url=model.api_url,
            poll=model.poll,
            tier_from=_tier_from(model.tier_from, tier_line),
        )
    return ChannelConfig(
        name=name,
        kind="woocommerce",
        line=line,
        url=model.url,
        consumer_key=model.consumer_key,
        consumer_secret=model.consumer_secret,
        webhook_secret=model.webhook_secret,
        previous_webhook_secret=model.previous_webhook_secret,
        api_url=model.api_url,
        poll=model.poll,
        tier_from=_tier_from(model.tier_from, tier_line),
    )


def build_config(
    model: ConfigModel,
    lines: LineMap,
    filename: str,
    warnings: tuple[ConfigIssue, ...] = (),
) -> Config:
    def layer(block: RuleBlock, prefix: KeyPath) -> RuleLayer:
        return _layer(block, prefix, lines, filename)

    rules = RuleSet(
        defaults=layer(model.defaults, ("defaults",)),
        channel_rules=MappingProxyType(
            {
                name: layer(block, ("channel_rules", name))
                for name, block in model.channel_rules.items()
            }
        ),
        sku_rules=tuple(
            SkuRule(
                match=rule.match,
                channels=rule.channels,
                layer=layer(rule, ("sku_rules", index)),
                line=line_for(lines, ("sku_rules", index)),
                pool=_pool(rule.pool, ("sku_rules", index), lines, filename),
                pool_set="pool" in rule.model_fields_set,
            )
            for index, rule in enumerate(model.sku_rules)
        ),
        default_pool=_pool(model.defaults.pool, ("defaults",), lines, filename),
    )
    channels = {
        name: _channel(
            name,
            channel,
            line_for(lines, ("channels", name)),
            line_for(lines, ("channels", name, "tier_from")),
        )
        for name, channel in model.channels.items()
    }
    warnings += tuple(_release_order_warnings(rules, list(channels), filename))
    warnings += tuple(_share_bound_warnings(rules, list(channels), filename))
    return Config(
        path=filename,
        database=resolve_database_url(model.database, Path(filename).absolute().parent),
        broker=model.broker,
        channels=MappingProxyType(channels),
        server=ServerConfig(
            host=model.server.host, port=model.server.port, api_token=model.server.api_token
        ),
        daemon=DaemonConfig(**model.daemon.model_dump()),
        logging=LoggingConfig(level=model.logging.level, json=model.logging.json_),
        tiers=model.tiers,
        rules=rules,
        warnings=warnings,
        campaigns=MappingProxyType(
            {
                name: Campaign.of(name, campaign, line_for(lines, ("campaigns", name)), filename)
                for name, campaign in model.campaigns.items()
            }
        ),
        notify=build_notify(model.notify, lines, filename, channels),
    )


def _release_order_warnings(
    rules: RuleSet, channels: list[str], filename: str
) -> list[ConfigIssue]:
    base = defaults_release_order(rules)
    issues: list[ConfigIssue] = []
    for path, source in release_order_conflicts(rules, channels):
        line = int(source.rsplit(":", 1)[1]) if ":" in source else 0
        issues.append(
            ConfigIssue(
                filename,
                line,
                path,
                "backorders of one SKU are released in one order across channels; where "
                f"channels disagree, the defaults order {list(base.value)} ({base.source}) is "
                "used instead of this one (set release.order in defaults, or in a sku rule for "
                "every channel)",
            )
        )
    return issues


def _share_bound_warnings(rules: RuleSet, channels: list[str], filename: str) -> list[ConfigIssue]:
    """`incoming_share: auto` whose floor and cap, set in different blocks, cross: the share
    is then the cap (the lower, safer bound). One block setting both is an error instead."""
    issues: list[ConfigIssue] = []
    seen: set[str] = set()
    for channel in channels:
        for rule in resolve_stacks(rules, channel):
            floor, cap = rule.incoming_share_floor, rule.incoming_share_cap
            if not rule.auto_share or floor.value <= cap.value or cap.source in seen:
                continue
            seen.add(cap.source)
            blocks: list[tuple[str, RuleLayer | None]] = [("defaults", rules.defaults)]
            blocks += [(f"channel_rules.{channel}", rules.channel_rules.get(channel))]
            if rule.matched_sku_rule is not None:
                index = rule.matched_sku_rule
                blocks += [(f"sku_rules[{index}]", rules.sku_rules[index].layer)]
            path = next(
                (name for name, layer in blocks if layer and layer.incoming_share_cap is cap),
                "defaults",
            )
            line = int(cap.source.rsplit(":", 1)[1]) if ":" in cap.source else 0
            issues.append(
                ConfigIssue(
                    filename,
                    line,
                    f"{path}.backorders.incoming_share_cap",
                    f"below incoming_share_floor {floor.value:g} ({floor.source}) where "
                    f"incoming_share is auto ({rule.incoming_share.source}, channel "
                    f"{channel}): the cap is used",
                )
            )
    return issues
