"""`notify:` in the YAML (issue #17): customer messages by email (SMTP), notes on shop orders,
signed outbound webhooks; how they are retried, in which language, from which templates.

Validated like the rest (FILE:LINE errors come from rules.validation); `build_notify` turns the
block into a frozen `NotifyConfig`, reading the secret files it names (relative to the config
file) and checking what needs the file system (the templates folder, the channels named).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parseaddr
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Self
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    model_validator,
)

from rules.errors import ConfigError, ConfigIssue, Rejected
from rules.paths import KeyPath, LineMap, format_path, line_for
from rules.redact import MASK, redact_url

DEFAULT_LANGUAGE = "en"
DEFAULT_MAX_ATTEMPTS = 8
_LANGUAGE = re.compile(r"[a-z]{2,3}([-_][a-z0-9]{2,8})*")


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise Rejected.got("must be a number", "true" if value else "false")
    return value


def _language(value: str) -> str:
    """A language tag as templates are filed: "nl", "en", "pt-br" (folded to lower case)."""
    folded = value.strip().lower()
    if not _LANGUAGE.fullmatch(folded):
        raise Rejected.got("must be a language code such as en, nl, sv or ru", repr(value))
    return folded.replace("_", "-")


def _port(value: int) -> int:
    if not 1 <= value <= 65535:
        raise Rejected.got("must be between 1 and 65535", str(value))
    return value


def _positive(value: float) -> float:
    if value <= 0:
        raise Rejected.got("must be a positive number of seconds", str(value))
    return value


def _attempts(value: int) -> int:
    if value < 1:
        raise Rejected.got("must be at least 1", str(value))
    return value


def _address(value: str) -> str:
    """`shop@example.com` or `Shop <shop@example.com>`."""
    _name, address = parseaddr(value)
    if "@" not in address or any(c in value for c in "\r\n"):
        raise Rejected.got(
            "must be an email address, e.g. shop@example.com or 'Shop <shop@example.com>'",
            repr(value),
        )
    return value.strip()


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Rejected.got("must be an http:// or https:// URL", repr(redact_url(value)))
    return value


def _time_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise Rejected.got(
            "must be a time zone name such as UTC or Europe/Amsterdam", repr(value)
        ) from None
    return value


Text = Annotated[str, Field(min_length=1)]
Language = Annotated[str, Field(min_length=1), AfterValidator(_language)]
Port = Annotated[int, BeforeValidator(_not_bool), AfterValidator(_port)]
PositiveSeconds = Annotated[float, BeforeValidator(_not_bool), AfterValidator(_positive)]
Attempts = Annotated[int, BeforeValidator(_not_bool), AfterValidator(_attempts)]


class _Block(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class SmtpBlock(_Block):
    """`notify.smtp`: where emails go out. The password is read from `password_file`."""

    host: Text
    port: Port = 587
    starttls: bool = True
    username: Text | None = None
    password_file: Text | None = None
    from_: Annotated[str, AfterValidator(_address)] = Field(alias="from")
    timeout_s: PositiveSeconds = 30.0

    @model_validator(mode="after")
    def _login_pairs(self) -> Self:
        if (self.username is None) != (self.password_file is None):
            raise ValueError("username and password_file go together (both, or neither)")
        return self


class WebhookBlock(_Block):
    """One entry of `notify.webhooks`: audit actions matching `events` (names or globs such as
    `campaign.*`, `*` for all) are posted to `url`, signed with the secret in `secret_file`."""

    url: Annotated[str, AfterValidator(_http_url)]
    events: Annotated[tuple[Text, ...], Field(min_length=1)]
    secret_file: Text
    timeout_s: PositiveSeconds = 10.0


class AlertsBlock(_Block):
    """`notify.alerts`: the merchant's alerts (notify.alert_rules), by email to `email` (with
    `notify.smtp`) and to webhooks listening to `alert.*`."""

    email: Annotated[str, AfterValidator(_address)] | None = None
    spike_factor: PositiveSeconds = 3.0  # a positive number
    spike_min_units: Annotated[int, Field(ge=1)] = 5
    trailing_days: Annotated[int, Field(ge=1, le=90)] = 7
    exception_queue_threshold: Annotated[int, Field(ge=0)] = 0


class NotifyModel(_Block):
    default_language: Language = DEFAULT_LANGUAGE
    templates_dir: Text | None = None
    # a channel's customers' language when an order does not say (and for campaign entries)
    channel_languages: dict[Text, Language] = Field(default_factory=dict)
    timezone: Annotated[str, AfterValidator(_time_zone)] = "UTC"
    shop_name: Text | None = None
    max_attempts: Attempts = DEFAULT_MAX_ATTEMPTS
    backoff_s: PositiveSeconds = 30.0
    backoff_max_s: PositiveSeconds = 3600.0
    shop_notes: bool = False
    smtp: SmtpBlock | None = None
    webhooks: tuple[WebhookBlock, ...] = ()
    alerts: AlertsBlock = Field(default_factory=AlertsBlock)

    @model_validator(mode="after")
    def _backoff_in_order(self) -> Self:
        if self.backoff_max_s < self.backoff_s:
            raise ValueError("backoff_max_s must not be less than backoff_s")
        return self


# ---- the built values -------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertRules:
    """`notify.alerts` as the alert rules read it (notify.alert_rules)."""

    spike_factor: float = 3.0  # an hour's sales above this many times the trailing daily rate
    spike_min_units: int = 5  # and at least this many units in the hour (no alert for 2 sales)
    trailing_days: int = 7
    exception_queue_threshold: int = 0  # failed events above this many


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    starttls: bool
    sender: str  # `from`
    username: str | None = None
    password: SecretStr | None = field(default=None, repr=False)
    timeout_s: float = 30.0


@dataclass(frozen=True)
class WebhookConfig:
    url: str
    events: tuple[str, ...]
    secret: SecretStr = field(repr=False)
    timeout_s: float = 10.0
    line: int = 0


@dataclass(frozen=True)
class NotifyConfig:
    """`notify:`; `enabled` is False when the file has no `notify:` block (then nothing is
    turned into messages and nothing is sent)."""

    enabled: bool = False
    default_language: str = DEFAULT_LANGUAGE
    templates_dir: Path | None = None
    channel_languages: Mapping[str, str] = field(default_factory=dict)
    timezone: str = "UTC"
    shop_name: str | None = None
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    backoff_s: float = 30.0
    backoff_max_s: float = 3600.0
    shop_notes: bool = False
    smtp: SmtpConfig | None = None
    webhooks: tuple[WebhookConfig, ...] = ()
    line: int = 0
    alerts: AlertRules = field(default_factory=AlertRules)
    alert_email: str | None = None  # where merchant alerts are emailed

    def webhook(self, url: str) -> WebhookConfig | None:
        return next((hook for hook in self.webhooks if hook.url == url), None)

    def redacted(self) -> dict[str, Any]:
        """Plain data for `check --json`: secrets as "***"."""
        smtp = self.smtp
        return {
            "enabled": self.enabled,
            "default_language": self.default_language,
            "templates_dir": str(self.templates_dir) if self.templates_dir else None,
            "channel_languages": dict(self.channel_languages),
            "timezone": self.timezone,
            "shop_name": self.shop_name,
            "max_attempts": self.max_attempts,
            "backoff_s": self.backoff_s,
            "backoff_max_s": self.backoff_max_s,
            "shop_notes": self.shop_notes,
            "smtp": None
            if smtp is None
            else {
                "host": smtp.host,
                "port": smtp.port,
                "starttls": smtp.starttls,
                "from": smtp.sender,
                "username": smtp.username,
                "password": MASK if smtp.password is not None else None,
                "timeout_s": smtp.timeout_s,
            },
            "webhooks": [
                {"url": redact_url(h.url), "events": list(h.events), "secret": MASK}
                for h in self.webhooks
            ],
            "alerts": {**self.alerts.__dict__, "email": self.alert_email},
        }


def build_notify(
    model: NotifyModel | None,
    lines: LineMap,
    filename: str,
    channels: Mapping[str, Any],
) -> NotifyConfig:
    """The `notify:` block as values; ConfigError (FILE:LINE) for a secret file that cannot be
    read, a templates folder that is not there, or a channel that is not configured."""
    # not at the top: rules.secret_files imports rules.model, which imports this module
    from rules.secret_files import SecretFileProblem, read_secret_file

    if model is None:
        return NotifyConfig()
    base = Path(filename).absolute().parent
    issues: list[ConfigIssue] = []

    def issue(path: KeyPath, message: str) -> None:
        where = ("notify", *path)
        issues.append(ConfigIssue(filename, line_for(lines, where), format_path(where), message))

    def secret(path: KeyPath, file_name: str) -> SecretStr:
        try:
            return SecretStr(read_secret_file(file_name, base))
        except SecretFileProblem as problem:
            issue(path, str(problem))
            return SecretStr("")

    templates = None
    if model.templates_dir is not None:
        templates = (base / model.templates_dir).resolve()
        if not templates.is_dir():
            issue(("templates_dir",), f"{model.templates_dir!r} is not a folder")
    for name in model.channel_languages:
        if name not in channels:
            known = ", ".join(sorted(channels)) or "none"
            issue(("channel_languages", name), f"unknown channel {name!r}; configured: {known}")
    smtp = None
    if model.smtp is not None:
        block = model.smtp
        password = None
        if block.password_file is not None:
            password = secret(("smtp", "password_file"), block.password_file)
        smtp = SmtpConfig(
            host=block.host, port=block.port, starttls=block.starttls, sender=block.from_,
            username=block.username, password=password, timeout_s=block.timeout_s,
        )  # fmt: skip
    hooks = []
    for index, hook in enumerate(model.webhooks):
        hooks.append(
            WebhookConfig(
                url=hook.url,
                events=hook.events,
                secret=secret(("webhooks", index, "secret_file"), hook.secret_file),
                timeout_s=hook.timeout_s,
                line=line_for(lines, ("notify", "webhooks", index)),
            )
        )
    if issues:
        raise ConfigError(sorted(issues, key=lambda found: found.line))
    return NotifyConfig(
        enabled=True,
        default_language=model.default_language,
        templates_dir=templates,
        channel_languages=MappingProxyType(dict(model.channel_languages)),
        timezone=model.timezone,
        shop_name=model.shop_name,
        max_attempts=model.max_attempts,
        backoff_s=model.backoff_s,
        backoff_max_s=model.backoff_max_s,
        shop_notes=model.shop_notes,
        smtp=smtp,
        webhooks=tuple(hooks),
        line=line_for(lines, ("notify",)),
        alerts=AlertRules(
            spike_factor=model.alerts.spike_factor,
            spike_min_units=model.alerts.spike_min_units,
            trailing_days=model.alerts.trailing_days,
            exception_queue_threshold=model.alerts.exception_queue_threshold,
        ),
        alert_email=model.alerts.email,
    )
