"""Pydantic models of the YAML (DESIGN §8): they validate; ``rules.build`` turns them into values.

Every model forbids unknown keys. Fields of rule blocks have defaults only so that a block may
leave them out; whether a block set a field is read from ``model_fields_set``, never from the
value, so ``cap: null`` in a channel rule can lift a cap set in ``defaults``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from rules.campaign_model import CampaignModel
from rules.database_url import database_url_problem
from rules.errors import Rejected
from rules.notify_model import NotifyModel
from rules.redact import redact_url

ReleaseKey = Literal["priority", "tier", "placed_at"]
RELEASE_KEYS: tuple[ReleaseKey, ...] = ("priority", "tier", "placed_at")
DEFAULT_PRIORITY = 100
DEFAULT_DATABASE = "sqlite:///stocksync.db"
DEFAULT_API_VERSION = "2026-07"
ChannelKind = Literal["shopify", "woocommerce", "manual"]
CHANNEL_KINDS: tuple[ChannelKind, ...] = ("manual", "shopify", "woocommerce")

# keys whose values are secrets: each may instead be read from a file named by `<key>_file`
SECRET_FIELDS: dict[str, tuple[str, ...]] = {
    "shopify": ("token", "webhook_secret", "previous_webhook_secret"),
    "woocommerce": ("consumer_key", "consumer_secret", "webhook_secret", "previous_webhook_secret"),
    "server": ("api_token",),
}
SECRET_KEYS: frozenset[str] = frozenset(key for keys in SECRET_FIELDS.values() for key in keys)


def _yaml_word(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def _not_bool(kind: str) -> BeforeValidator:
    """A before-validator: YAML `yes`/`true` must not turn into 1 where a number is expected."""

    def check(value: Any) -> Any:
        if isinstance(value, bool):
            raise Rejected.got(f"must be {kind}", _yaml_word(value))
        return value

    return BeforeValidator(check)


def _number(value: float) -> str:
    """2.0 -> "2": YAML's `2` arrives as a float in float fields; show it as the user wrote it."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _at_least(low: float, message: str) -> AfterValidator:
    def check(value: float) -> float:
        if value < low:
            raise Rejected.got(message, _number(value))
        return value

    return AfterValidator(check)


def _between(low: float, high: float) -> AfterValidator:
    def check(value: float) -> float:
        if not low <= value <= high:
            raise Rejected.got(f"must be between {low:g} and {high:g}", _number(value))
        return value

    return AfterValidator(check)


def _distinct(values: tuple[Any, ...]) -> tuple[Any, ...]:
    repeated = sorted({str(v) for v in values if values.count(v) > 1})
    if repeated:
        raise Rejected(
            f"lists {', '.join(repr(v) for v in repeated)} more than once",
            without_value="lists a value more than once",
        )
    return values


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Rejected.got("must be an http:// or https:// URL", repr(redact_url(value)))
    return value.rstrip("/")


def _api_version(value: str) -> str:
    if value != "unstable" and not re.fullmatch(r"\d{4}-\d{2}", value):
        raise Rejected.got("must be a Shopify API version like '2026-07'", repr(value))
    return value


def _database_url(value: str) -> str:
    problem = database_url_problem(value, example=DEFAULT_DATABASE)
    if problem is not None:
        raise Rejected.got(problem, repr(redact_url(value)))
    return value


def _broker_url(value: str) -> str:
    # `redis:user:pw@host` has a scheme but is no URL redis can open
    if value != "memory" and (
        "://" not in value or urlsplit(value).scheme not in ("redis", "rediss", "unix")
    ):
        raise Rejected.got("must be 'memory' or a redis:// URL", repr(redact_url(value)))
    return value


def _empty_is_none(value: Any) -> Any:
    # `${OLD_SECRET:-}` is how an optional secret is left out from the environment
    return None if value == "" else value


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


def _distinct_folded(value: dict[str, str]) -> dict[str, str]:
    """Keys are matched trimmed and case-insensitively: two that differ only so clash."""
    seen: dict[str, str] = {}
    for key in value:
        folded = key.strip().casefold()
        if not folded:
            raise ValueError("a key must not be blank")
        if folded in seen:
            raise ValueError(
                f"{seen[folded]!r} and {key!r} are one key (matched ignoring case and spaces)"
            )
        seen[folded] = key
    return value


NonNegInt = Annotated[int, _not_bool("an integer"), _at_least(0, "must not be negative")]
Share = Annotated[float, _not_bool("a number"), _between(0, 1)]
Priority = Annotated[int, _not_bool("an integer")]
Port = Annotated[int, _not_bool("an integer"), _between(1, 65535)]
Seconds = Annotated[float, _not_bool("a number"), _at_least(0, "must not be negative")]
PositiveSeconds = Annotated[
    float, _not_bool("a number"), _at_least(0.001, "must be a positive number of seconds")
]
Text = Annotated[str, Field(min_length=1)]
Secret = Annotated[SecretStr, Field(min_length=1)]
OptionalSecret = Annotated[SecretStr | None, BeforeValidator(_empty_is_none)]
HttpUrl = Annotated[str, AfterValidator(_http_url)]
ReleaseOrder = Annotated[tuple[ReleaseKey, ...], Field(min_length=1), AfterValidator(_distinct)]
# channel value (a tag, a role, a meta value) -> tier name (one of `tiers:`, checked in crosscheck)
TierMap = Annotated[
    dict[Text, Text],
    Field(min_length=1),
    AfterValidator(_distinct_folded),
]
TIER_SOURCES: tuple[str, ...] = ("tags", "role", "meta")


class _Block(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---- channels ---------------------------------------------------------------------------------


class TierFromModel(_Block):
    """`tier_from:` of a shop channel: where an order's customer tier is read. One source:
    `tags` (Shopify customer tags), `role` (WooCommerce customer role) or `meta` (a WooCommerce
    order meta key, whose value names the tier, or is mapped by `values`)."""

    tags: TierMap | None = None
    role: TierMap | None = None
    meta: Text | None = None
    values: TierMap | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        chosen = [name for name in TIER_SOURCES if getattr(self, name) is not None]
        if len(chosen) != 1:
            given = f", not {' and '.join(chosen)} together" if chosen else ""
            raise ValueError(f"needs exactly one of tags, role or meta{given}")
        if self.values is not None and self.meta is None:
            raise ValueError("values maps meta values: it goes with meta, not with " + chosen[0])
        return self


class ShopifyChannelModel(_Block):
    kind: Literal["shopify"]
    shop: Text
    api_version: Annotated[str, AfterValidator(_api_version)] = DEFAULT_API_VERSION
    token: Secret
    webhook_secret: Secret
    previous_webhook_secret: OptionalSecret = None
    location: Text = "Main"
    api_url: HttpUrl | None = None
    poll: bool = True
    tier_from: TierFromModel | None = None

    @field_validator("tier_from")
    @classmethod
    def _tags_only(cls, value: TierFromModel | None) -> TierFromModel | None:
        if value is not None and value.tags is None:
            raise ValueError(
                "a Shopify channel reads tiers from customer tags: tier_from: {tags: {TAG: TIER}}"
            )
        return value


class WooCommerceChannelModel(_Block):
    kind: Literal["woocommerce"]
    url: HttpUrl
    consumer_key: Secret
    consumer_secret: Secret
    webhook_secret: Secret
    previous_webhook_secret: OptionalSecret = None
    api_url: HttpUrl | None = None
    poll: bool = True
    tier_from: TierFromModel | None = None

    @field_validator("tier_from")
    @classmethod
    def _no_tags(cls, value: TierFromModel | None) -> TierFromModel | None:
        if value is not None and value.tags is not None:
            raise ValueError(
                "WooCommerce customers have no tags: use tier_from: {role: {ROLE: TIER}} "
                "or {meta: KEY}"
            )
        return value


class ManualChannelModel(_Block):
    kind: Literal["manual"]


ChannelModel = Annotated[
    ShopifyChannelModel | WooCommerceChannelModel | ManualChannelModel,
    Field(discriminator="kind"),
]


# ---- rules --------------------------------------------------------------------------------------


AUTO_SHARE = "auto"


def _share_or_auto(value: Any) -> Any:
    """`incoming_share`: a number 0..1, or `auto` (each PO line's supplier's measured fill
    rate, bounded by `incoming_share_floor` and `incoming_share_cap`). One message for any
    other value, not one per member of the union."""
    if value == AUTO_SHARE:
        return value
    if isinstance(value, str):  # a ${VAR} arrives as text
        try:
            value = float(value)
        except ValueError:
            raise Rejected.got("must be a number or 'auto'", repr(value)) from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        shown = "null" if value is None else _yaml_word(value)
        if isinstance(value, dict | list):
            shown = "a mapping" if isinstance(value, dict) else "a list"
        raise Rejected.got("must be a number or 'auto'", shown)
    if not 0 <= value <= 1:
        raise Rejected.got("must be between 0 and 1", _number(value))
    return float(value)


ShareValue = float | Literal["auto"]
IncomingShare = Annotated[ShareValue, BeforeValidator(_share_or_auto)]


class BackordersBlock(_Block):
    enabled: bool = False
    incoming_share: IncomingShare = 1.0
    # bounds of `incoming_share: auto`; the floor is also the share of a supplier with too
    # little history (stock.supplier_stats.MIN_POS closed POs)
    incoming_share_floor: Share = 0.5
    incoming_share_cap: Share = 1.0
    horizon_days: NonNegInt = 14

    @model_validator(mode="after")
    def _floor_below_cap(self) -> Self:
        given = {"incoming_share_floor", "incoming_share_cap"}
        if given <= self.model_fields_set and self.incoming_share_floor > self.incoming_share_cap:
            raise ValueError(
                f"incoming_share_floor ({_number(self.incoming_share_floor)}) is above "
                f"incoming_share_cap ({_number(self.incoming_share_cap)})"
            )
        return self


class ReleaseBlock(_Block):
    order: ReleaseOrder = RELEASE_KEYS
    partial: bool = True


class RuleBlock(_Block):
    safety_buffer: NonNegInt = 0
    cap: NonNegInt | None = None
    backorders: BackordersBlock = Field(default_factory=BackordersBlock)
    release: ReleaseBlock = Field(default_factory=ReleaseBlock)


Weight = Annotated[int, _not_bool("an integer"), _at_least(1, "must be at least 1")]


class PoolBlock(_Block):
    """`pool:` of a SKU (in `defaults` or a `sku_rules` entry): its sellable units split into
    allotments per channel, so the shops together never sell more than the ledger can fill."""

    weights: Annotated[dict[Text, Weight], Field(min_length=1)] | None = None
    reserve: NonNegInt = 0
    rebalance_interval_s: PositiveSeconds = 2.0
    backorders: bool = False


class PooledRuleBlock(RuleBlock):
    pool: PoolBlock | None = None


class ChannelRuleBlock(RuleBlock):
    priority: Priority = DEFAULT_PRIORITY
    pool: Any = None  # refused below with a message that says where it goes

    @field_validator("pool")
    @classmethod
    def _pool_is_per_sku(cls, value: Any) -> Any:
        if value is not None:
            raise ValueError(
                "a pool is per SKU, not per channel: set it in defaults or a sku_rules entry"
            )
        return value


class SkuRuleBlock(PooledRuleBlock):
    match: Text
    channels: Annotated[tuple[Text, ...], Field(min_length=1)] | None = None

    @model_validator(mode="after")
    def _pool_for_every_channel(self) -> Self:
        if self.pool is not None and self.channels is not None:
            raise ValueError(
                "a pool is per SKU, over all its channels: a sku rule with a pool cannot "
                "name channels"
            )
        return self


# ---- the rest -----------------------------------------------------------------------------------


class ServerModel(_Block):
    host: Text = "127.0.0.1"
    port: Port = 8080
    api_token: OptionalSecret = None


class DaemonModel(_Block):
    poll_interval_s: PositiveSeconds = 60.0
    poll_overlap_s: Seconds = 120.0
    sweep_interval_s: PositiveSeconds = 30.0
    sweep_age_s: Seconds = 60.0
    push_interval_s: PositiveSeconds = 2.0
    reconcile_interval_s: PositiveSeconds = 900.0
    campaign_tick_interval_s: PositiveSeconds = 60.0
    notify_interval_s: PositiveSeconds = 30.0


class LoggingModel(_Block):
    level: Annotated[
        Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], BeforeValidator(_upper)
    ] = "INFO"
    json_: bool | None = Field(default=None, alias="json")


class ConfigModel(_Block):
    database: Annotated[Text, AfterValidator(_database_url)] = DEFAULT_DATABASE
    broker: Annotated[Text, AfterValidator(_broker_url)] = "memory"
    channels: dict[str, ChannelModel] = Field(default_factory=dict)
    server: ServerModel = Field(default_factory=ServerModel)
    daemon: DaemonModel = Field(default_factory=DaemonModel)
    logging: LoggingModel = Field(default_factory=LoggingModel)
    tiers: Annotated[tuple[Text, ...], AfterValidator(_distinct)] = ()
    defaults: PooledRuleBlock = Field(default_factory=PooledRuleBlock)
    channel_rules: dict[str, ChannelRuleBlock] = Field(default_factory=dict)
    sku_rules: tuple[SkuRuleBlock, ...] = ()
    campaigns: dict[str, CampaignModel] = Field(default_factory=dict)
    notify: NotifyModel | None = None

    @field_validator(
        "channels",
        "server",
        "daemon",
        "logging",
        "tiers",
        "defaults",
        "channel_rules",
        "sku_rules",
        "campaigns",
        "notify",
        mode="before",
    )
    @classmethod
    def _empty_section(cls, value: Any, info: ValidationInfo) -> Any:
        # a section whose entries are all commented out is YAML null: read it as empty
        if value is not None:
            return value
        return [] if info.field_name in ("tiers", "sku_rules") else {}
