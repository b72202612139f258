"""`notify:` in the YAML: values, defaults, secrets from files, and FILE:LINE errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from rules import ConfigError, load_config, parse_config

BASE = """\
channels:
  popup: {kind: manual}
  shop: {kind: manual}
"""


def test_without_a_notify_block_nothing_is_enabled() -> None:
    config = parse_config(BASE, "stocksync.yaml", env={})
    assert not config.notify.enabled
    assert config.notify.smtp is None and config.notify.webhooks == ()
    assert config.daemon.notify_interval_s == 30.0
    assert "notify" not in config.redacted()  # `check` shows it only when configured


def test_an_empty_block_enables_the_defaults() -> None:
    config = parse_config(BASE + "notify:\n", "stocksync.yaml", env={})
    assert config.notify.enabled
    assert (config.notify.default_language, config.notify.max_attempts) == ("en", 8)
    assert config.notify.timezone == "UTC"


def test_the_whole_block(write_config: Callable[[str], Path], tmp_path: Path) -> None:
    (tmp_path / "smtp.pw").write_text("mail-pass\n", encoding="utf-8")
    (tmp_path / "hook.secret").write_text("hook-secret", encoding="utf-8")
    (tmp_path / "mail").mkdir()
    path = write_config(
        BASE
        + """\
daemon: {notify_interval_s: 5}
notify:
  default_language: NL
  templates_dir: mail
  channel_languages: {shop: sv-SE}
  timezone: Europe/Amsterdam
  shop_name: Mugs & Co
  max_attempts: 3
  backoff_s: 10
  backoff_max_s: 60
  shop_notes: true
  smtp:
    host: smtp.example.com
    port: 465
    starttls: false
    username: shop
    password_file: smtp.pw
    from: "Mugs & Co <shop@example.com>"
  webhooks:
    - url: https://hooks.example.com/in
      events: [order.*, campaign.allocated]
      secret_file: hook.secret
"""
    )
    config = load_config(path)
    notify = config.notify
    assert config.daemon.notify_interval_s == 5
    assert notify.default_language == "nl"
    assert notify.templates_dir == (tmp_path / "mail").resolve()
    assert dict(notify.channel_languages) == {"shop": "sv-se"}
    assert (notify.max_attempts, notify.backoff_s, notify.backoff_max_s) == (3, 10, 60)
    assert notify.shop_notes and notify.shop_name == "Mugs & Co"
    assert notify.smtp is not None
    assert (notify.smtp.host, notify.smtp.port, notify.smtp.starttls) == (
        "smtp.example.com", 465, False,
    )  # fmt: skip
    assert notify.smtp.sender == "Mugs & Co <shop@example.com>"
    assert notify.smtp.password is not None
    assert notify.smtp.password.get_secret_value() == "mail-pass"
    (hook,) = notify.webhooks
    assert hook.events == ("order.*", "campaign.allocated")
    assert hook.secret.get_secret_value() == "hook-secret"
    assert notify.webhook("https://hooks.example.com/in") is hook
    shown = config.redacted()["notify"]
    assert shown["smtp"]["password"] == "***" and shown["webhooks"][0]["secret"] == "***"
    assert "mail-pass" not in repr(config) and "hook-secret" not in repr(config)


@pytest.mark.parametrize(
    ("block", "line", "message"),
    [
        ("notify:\n  smtp: {host: h, port: 0, from: a@b.c}\n", 5,
         "notify.smtp.port: must be between 1 and 65535, got 0"),
        ("notify:\n  smtp: {host: h, from: nobody}\n", 5,
         "notify.smtp.from: must be an email address"),
        ("notify:\n  smtp: {host: h, from: a@b.c, username: u}\n", 5,
         "notify.smtp: username and password_file go together"),
        ("notify:\n  smtp: {port: 25, from: a@b.c}\n", 5, "notify.smtp.host: required"),
        ("notify:\n  default_language: English!\n", 5,
         "notify.default_language: must be a language code"),
        ("notify:\n  timezone: Mars/Olympus\n", 5, "notify.timezone: must be a time zone name"),
        ("notify:\n  max_attempts: 0\n", 5, "notify.max_attempts: must be at least 1"),
        ("notify:\n  backoff_s: 60\n  backoff_max_s: 10\n", 4,
         "notify: backoff_max_s must not be less than backoff_s"),
        ("notify:\n  webhooks:\n    - {url: ftp://x, events: [a], secret_file: s}\n", 6,
         "notify.webhooks[0].url: must be an http:// or https:// URL"),
        ("notify:\n  webhooks:\n    - {url: http://x, events: [], secret_file: s}\n", 6,
         "notify.webhooks[0].events: must not be empty"),
        ("notify:\n  smtp_host: x\n", 5, "notify.smtp_host: unknown key 'smtp_host'"),
        ("notify:\n  channel_languages: {pop: nl}\n", 5,
         "notify.channel_languages.pop: unknown channel 'pop'; configured: popup, shop"),
        ("notify:\n  templates_dir: nowhere\n", 5,
         "notify.templates_dir: 'nowhere' is not a folder"),
        ("notify:\n  webhooks:\n    - url: http://x\n      events: [a]\n      secret_file: gone\n",
         8, "notify.webhooks[0].secret_file: cannot read 'gone'"),
        ("notify:\n  smtp: {host: h, from: a@b.c, username: u, password_file: none}\n", 5,
         "notify.smtp.password_file: cannot read 'none'"),
    ],
)  # fmt: skip
def test_mistakes_are_reported_where_they_are(
    block: str, line: int, message: str, write_config: Callable[[str], Path]
) -> None:
    path = write_config(BASE + block)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert f"{path}:{line}: {message}" in str(caught.value)
