"""What a daemon or worker process holds: config, database, connected channels, metrics.

Made at process start (never at import) and closed at shutdown.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from connectors.base import Channel
from rules import ChannelConfig, Config
from sync.context import AppContext
from sync.metrics import Metrics


def build_channel(cfg: ChannelConfig, timeout: float = 10.0) -> Channel | None:
    """The connector for a configured channel; None for manual channels (nothing to call)."""
    if cfg.kind == "shopify":
        from connectors.shopify import ShopifyChannel

        return ShopifyChannel(
            cfg.name,
            shop=cfg.shop or "",
            token=cfg.secret("token"),
            api_version=cfg.api_version or "2026-07",
            location=cfg.location or "Main",
            webhook_secrets=cfg.webhook_secrets(),
            api_url=cfg.api_url,
            timeout=timeout,
        )
    if cfg.kind == "woocommerce":
        from connectors.woocommerce import WooCommerceChannel

        return WooCommerceChannel(
            cfg.name,
            url=cfg.url or "",
            consumer_key=cfg.secret("consumer_key"),
            consumer_secret=cfg.secret("consumer_secret"),
            webhook_secrets=cfg.webhook_secrets(),
            api_url=cfg.api_url,
            timeout=timeout,
        )
    return None


@dataclass
class Runtime:
    config: Config
    ctx: AppContext
    channels: dict[str, Channel]
    metrics: Metrics = field(default_factory=Metrics)

    @classmethod
    def build(cls, config: Config, *, metrics: Metrics | None = None) -> Runtime:
        ctx = AppContext.open(config)
        channels: dict[str, Channel] = {}
        for name, cfg in config.channels.items():
            channel = build_channel(cfg)
            if channel is not None:
                channels[name] = channel
        return cls(config, ctx, channels, metrics or Metrics())

    def secrets(self) -> list[str]:
        return self.secrets_of(self.config)

    @staticmethod
    def secrets_of(config: Config) -> list[str]:
        """Every configured secret value, for the log redactor."""
        values: list[str] = []
        for cfg in config.channels.values():
            for name in ("token", "consumer_key", "consumer_secret", "webhook_secret"):
                try:
                    values.append(cfg.secret(name))
                except ValueError:
                    continue
            values.extend(cfg.webhook_secrets())
        token = config.server.api_token
        if token is not None:
            values.append(token.get_secret_value())
        return values

    def close(self) -> None:
        for channel in self.channels.values():
            channel.close()
        self.ctx.close()
