"""The effective rule for (channel, sku): built-in default < defaults < channel rule < sku rule.

Resolution is per field, nested fields included: a layer only overrides what it set. The sku
rule is the first one in file order whose glob matches the SKU (case-sensitive) and whose
``channels`` list, if any, names the channel.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from fnmatch import fnmatchcase
from functools import cached_property
from typing import Any, TypeVar

from rules.model import AUTO_SHARE, ChannelRuleBlock, ReleaseKey, ShareValue
from rules.sourced import DEFAULT_SOURCE, Sourced

T = TypeVar("T")

# the built-in defaults are the models' field defaults: one place states them
_BUILTIN = ChannelRuleBlock()

# the bounds of `incoming_share: auto` where no block sets them (Sourced is frozen: shareable)
_DEFAULT_FLOOR = Sourced(_BUILTIN.backorders.incoming_share_floor, DEFAULT_SOURCE)
_DEFAULT_CAP = Sourced(_BUILTIN.backorders.incoming_share_cap, DEFAULT_SOURCE)

# field of RuleLayer -> its key path inside a YAML rule block
RULE_KEYS: dict[str, tuple[str, ...]] = {
    "safety_buffer": ("safety_buffer",),
    "cap": ("cap",),
    "priority": ("priority",),
    "backorders_enabled": ("backorders", "enabled"),
    "incoming_share": ("backorders", "incoming_share"),
    "incoming_share_floor": ("backorders", "incoming_share_floor"),
    "incoming_share_cap": ("backorders", "incoming_share_cap"),
    "horizon_days": ("backorders", "horizon_days"),
    "release_order": ("release", "order"),
    "release_partial": ("release", "partial"),
}


@dataclass(frozen=True)
class RuleLayer:
    """What one rule block (defaults, a channel rule, a sku rule) set; None: not set here."""

    safety_buffer: Sourced[int] | None = None
    cap: Sourced[int | None] | None = None
    priority: Sourced[int] | None = None
    backorders_enabled: Sourced[bool] | None = None
    incoming_share: Sourced[ShareValue] | None = None
    incoming_share_floor: Sourced[float] | None = None
    incoming_share_cap: Sourced[float] | None = None
    horizon_days: Sourced[int] | None = None
    release_order: Sourced[tuple[ReleaseKey, ...]] | None = None
    release_partial: Sourced[bool] | None = None

    def to_data(self) -> dict[str, Any]:
        """The set values in the YAML's shape (``{"backorders": {"enabled": true}}``)."""
        data: dict[str, Any] = {}
        for item in fields(self):
            sourced = getattr(self, item.name)
            if sourced is None:
                continue
            *parents, leaf = RULE_KEYS[item.name]
            target = data
            for parent in parents:
                target = target.setdefault(parent, {})
            value = sourced.value
            target[leaf] = list(value) if isinstance(value, tuple) else value
        return data


@dataclass(frozen=True)
class PoolRule:
    """A SKU's pool (DESIGN: limited drops): `weights` split the first allotments (None: equal
    over the SKU's shop channels); `reserve` units no channel gets until the end; backorders
    off unless `backorders`. `source` is the FILE:LINE of the `pool:` block."""

    weights: Mapping[str, int] | None
    reserve: int
    rebalance_interval_s: float
    backorders: bool
    source: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "weights": dict(self.weights) if self.weights is not None else None,
            "reserve": self.reserve,
            "rebalance_interval_s": self.rebalance_interval_s,
            "backorders": self.backorders,
            "source": self.source,
        }


@dataclass(frozen=True)
class SkuRule:
    match: str
    channels: tuple[str, ...] | None
    layer: RuleLayer
    line: int
    # the rule's `pool:`: a PoolRule, or None when the rule set `pool: null` (no pool for
    # these SKUs whatever defaults say); `pool_set` False: the rule does not mention pool
    pool: PoolRule | None = None
    pool_set: bool = False

    def applies(self, channel: str, sku: str) -> bool:
        if self.channels is not None and channel not in self.channels:
            return False
        return fnmatchcase(sku, self.match)


@dataclass(frozen=True)
class RuleSet:
    defaults: RuleLayer = RuleLayer()
    channel_rules: Mapping[str, RuleLayer] = field(default_factory=dict)
    sku_rules: tuple[SkuRule, ...] = ()
    default_pool: PoolRule | None = None

    @cached_property
    def uses_auto_share(self) -> bool:
        """Whether any rule block sets `incoming_share: auto` (then offers read suppliers'
        measured fill rates; otherwise they never do)."""
        layers = [self.defaults, *self.channel_rules.values(), *(r.layer for r in self.sku_rules)]
        return any(
            layer.incoming_share is not None and layer.incoming_share.value == AUTO_SHARE
            for layer in layers
        )


def pool_for(rules: RuleSet, sku: str) -> PoolRule | None:
    """The SKU's pool: from the first sku rule for all channels whose glob matches it, if that
    rule mentions `pool`, else from defaults. A pool is per SKU, so rules naming channels
    (which cannot carry one) are passed over."""
    for rule in rules.sku_rules:
        if rule.channels is None and fnmatchcase(sku, rule.match):
            if rule.pool_set:
                return rule.pool
            break
    return rules.default_pool


@dataclass(frozen=True)
class EffectiveRule:
    """Everything the engine and release need for (channel, sku), each value with its source."""

    channel: str
    sku: str
    safety_buffer: Sourced[int]
    cap: Sourced[int | None]
    priority: Sourced[int]
    backorders_enabled: Sourced[bool]
    incoming_share: Sourced[ShareValue]  # a number 0..1, or "auto" (see auto_share)
    horizon_days: Sourced[int]
    release_order: Sourced[tuple[ReleaseKey, ...]]
    release_partial: Sourced[bool]
    matched_sku_rule: int | None
    pool: PoolRule | None = None
    # the bounds of `incoming_share: auto` (unused for a number)
    incoming_share_floor: Sourced[float] = _DEFAULT_FLOOR
    incoming_share_cap: Sourced[float] = _DEFAULT_CAP
    # (campaign, units set aside) of the campaigns holding this SKU (rules.Config.rule_for)
    campaign_units: tuple[tuple[str, int], ...] = ()

    @property
    def auto_share(self) -> bool:
        """`incoming_share: auto`: each PO line's share is its supplier's measured fill rate,
        bounded to [incoming_share_floor, incoming_share_cap] (stock.engine.auto_share)."""
        return self.incoming_share.value == AUTO_SHARE

    def as_dict(self) -> dict[str, Any]:
        """Plain data for ``explain --json``: each value next to the file:line it came from."""
        data: dict[str, Any] = {"channel": self.channel, "sku": self.sku}
        for name in RULE_KEYS:
            sourced: Sourced[Any] = getattr(self, name)
            value = list(sourced.value) if isinstance(sourced.value, tuple) else sourced.value
            data[name] = {"value": value, "source": sourced.source}
        data["matched_sku_rule"] = self.matched_sku_rule
        data["pool"] = (
            {"value": self.pool.as_dict(), "source": self.pool.source}
            if self.pool is not None
            else {"value": None, "source": DEFAULT_SOURCE}
        )
        return data


def matching_sku_rule(rules: RuleSet, channel: str, sku: str) -> int | None:
    return next(
        (index for index, rule in enumerate(rules.sku_rules) if rule.applies(channel, sku)), None
    )


def resolve_rule(rules: RuleSet, channel: str, sku: str) -> EffectiveRule:
    """The rule for (channel, sku); the caller checks that the channel exists."""
    return _resolve(rules, channel, sku, matching_sku_rule(rules, channel, sku))


def _resolve(rules: RuleSet, channel: str, sku: str, matched: int | None) -> EffectiveRule:
    stack = [rules.defaults]
    if channel in rules.channel_rules:
        stack.append(rules.channel_rules[channel])
    if matched is not None:
        stack.append(rules.sku_rules[matched].layer)

    def pick(get: Callable[[RuleLayer], Sourced[T] | None], default: T) -> Sourced[T]:
        chosen = Sourced(default, DEFAULT_SOURCE)
        for layer in stack:
            value = get(layer)
            if value is not None:
                chosen = value
        return chosen

    pool = pool_for(rules, sku)
    backorders_enabled = pick(lambda layer: layer.backorders_enabled, _BUILTIN.backorders.enabled)
    if pool is not None and not pool.backorders:
        # a pooled SKU takes no backorders unless its pool says so
        backorders_enabled = Sourced(False, pool.source)
    return EffectiveRule(
        channel=channel,
        sku=sku,
        safety_buffer=pick(lambda layer: layer.safety_buffer, _BUILTIN.safety_buffer),
        cap=pick(lambda layer: layer.cap, _BUILTIN.cap),
        priority=pick(lambda layer: layer.priority, _BUILTIN.priority),
        backorders_enabled=backorders_enabled,
        incoming_share=pick(lambda layer: layer.incoming_share, _BUILTIN.backorders.incoming_share),
        incoming_share_floor=pick(
            lambda layer: layer.incoming_share_floor, _BUILTIN.backorders.incoming_share_floor
        ),
        incoming_share_cap=pick(
            lambda layer: layer.incoming_share_cap, _BUILTIN.backorders.incoming_share_cap
        ),
        horizon_days=pick(lambda layer: layer.horizon_days, _BUILTIN.backorders.horizon_days),
        release_order=pick(lambda layer: layer.release_order, _BUILTIN.release.order),
        release_partial=pick(lambda layer: layer.release_partial, _BUILTIN.release.partial),
        matched_sku_rule=matched,
        pool=pool,
    )


def resolve_stacks(rules: RuleSet, channel: str) -> list[EffectiveRule]:
    """The channel's rule for every distinct stack of blocks a SKU can meet: no sku rule, or
    each sku rule that may apply to the channel (for checks over the whole file)."""
    found = [_resolve(rules, channel, "", None)]
    for index, rule in enumerate(rules.sku_rules):
        if rule.channels is None or channel in rule.channels:
            found.append(_resolve(rules, channel, "", index))
    return found


def release_order_for(
    rules: RuleSet, channels: Iterable[str], sku: str
) -> Sourced[tuple[ReleaseKey, ...]]:
    """The one order a SKU's waiting backorders are released in, across all channels.

    Backorders of every channel compete for the same units, so they need one ranking. When the
    channels' rules for this SKU agree, that is their order; when they disagree (channel rules
    set different `release.order`s and no sku rule settles it for every channel), the order of
    `defaults` is used, and `stocksync check` warns about it.
    """
    orders = [resolve_rule(rules, channel, sku).release_order for channel in channels]
    if orders and all(order.value == orders[0].value for order in orders):
        return orders[0]
    return defaults_release_order(rules)


def defaults_release_order(rules: RuleSet) -> Sourced[tuple[ReleaseKey, ...]]:
    if rules.defaults.release_order is not None:
        return rules.defaults.release_order
    return Sourced(_BUILTIN.release.order, DEFAULT_SOURCE)


def release_order_conflicts(rules: RuleSet, channels: Iterable[str]) -> list[tuple[str, str]]:
    """Rule blocks that set a `release.order` some channels would not share, as (path, source).

    Such a block cannot take effect as written: one SKU's backorders are ranked in one order
    across channels, so where channels disagree the `defaults` order is used.
    """
    names = list(channels)
    found: list[tuple[str, str]] = []
    base = defaults_release_order(rules).value
    for name in names:
        layer = rules.channel_rules.get(name)
        order = layer.release_order if layer is not None else None
        if order is not None and order.value != base:
            found.append((f"channel_rules.{name}.release.order", order.source))
    for index, rule in enumerate(rules.sku_rules):
        if rule.layer.release_order is None or rule.channels is None:
            continue
        if set(rule.channels) != set(names):
            found.append((f"sku_rules[{index}].release.order", rule.layer.release_order.source))
    return found


def channel_priority(rules: RuleSet, channel: str) -> Sourced[int]:
    """Priority is a channel setting: only ``channel_rules`` (or the built-in default) sets it."""
    layer = rules.channel_rules.get(channel)
    if layer is not None and layer.priority is not None:
        return layer.priority
    return Sourced(_BUILTIN.priority, DEFAULT_SOURCE)
