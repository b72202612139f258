"""YAML configuration -> typed, validated rules whose values remember the file:line they came from.

Pure: files and the environment in, values out; imports no other stocksync package.
"""

from rules.config import (
    ChannelConfig,
    Config,
    DaemonConfig,
    LoggingConfig,
    ServerConfig,
    TierFrom,
)
from rules.errors import ConfigError, ConfigIssue
from rules.loader import load_config, parse_config
from rules.model import CHANNEL_KINDS, DEFAULT_PRIORITY, RELEASE_KEYS, SECRET_KEYS, ReleaseKey
from rules.redact import MASK, redact_url
from rules.resolve import EffectiveRule, PoolRule, RuleLayer, RuleSet, SkuRule, pool_for
from rules.sourced import DEFAULT_SOURCE, Sourced
from rules.template import render_config_template

__all__ = [
    "CHANNEL_KINDS",
    "DEFAULT_PRIORITY",
    "DEFAULT_SOURCE",
    "MASK",
    "RELEASE_KEYS",
    "SECRET_KEYS",
    "ChannelConfig",
    "Config",
    "ConfigError",
    "ConfigIssue",
    "DaemonConfig",
    "EffectiveRule",
    "LoggingConfig",
    "PoolRule",
    "ReleaseKey",
    "RuleLayer",
    "RuleSet",
    "ServerConfig",
    "SkuRule",
    "Sourced",
    "TierFrom",
    "load_config",
    "parse_config",
    "pool_for",
    "redact_url",
    "render_config_template",
]
