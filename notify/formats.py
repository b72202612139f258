"""Dates, times and amounts as each language writes them, and language tags matched to the
template languages there are. Pure: values in, text out (no clock, no locale of the process).

A language without rules here (a merchant's own template folder, say `de`) gets ISO dates
(2026-03-14) and amounts with a point (1234.50 EUR): unambiguous, if plain.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

MONTHS: dict[str, tuple[str, ...]] = {
    "en": ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"),
    "nl": ("januari", "februari", "maart", "april", "mei", "juni", "juli", "augustus",
           "september", "oktober", "november", "december"),
    "sv": ("januari", "februari", "mars", "april", "maj", "juni", "juli", "augusti",
           "september", "oktober", "november", "december"),
    # the genitive, as a day of the month is written: "14 марта"
    "ru": ("января", "февраля", "марта", "апреля", "мая", "июня", "июля", "августа",
           "сентября", "октября", "ноября", "декабря"),
}  # fmt: skip

# (thousands separator, decimal separator)
SEPARATORS: dict[str, tuple[str, str]] = {
    "en": (",", "."),
    "nl": (".", ","),
    "sv": ("\u00a0", ","),  # a no-break space
    "ru": ("\u00a0", ","),
}
# how a date and a time of day are joined: "14 March 2026, 18:00 UTC"
_AT = {"en": "{d}, {t}", "nl": "{d} om {t}", "sv": "{d} kl. {t}", "ru": "{d}, {t}"}


def primary(language: str) -> str:
    """The primary language of a tag: nl-NL -> nl."""
    return language.lower().replace("_", "-").split("-", 1)[0]


def format_date(value: date | datetime | None, language: str) -> str:
    """14 March 2026, 14 maart 2026, 14 mars 2026 (Russian: the month in the genitive and the
    year marked "g."); ISO for other languages. None is ""; templates say "unknown" in their
    own words."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = value.date()
    lang = primary(language)
    months = MONTHS.get(lang)
    if months is None:
        return value.isoformat()
    text = f"{value.day} {months[value.month - 1]} {value.year}"
    return text + " \u0433." if lang == "ru" else text  # Russian marks the year: "2026 g."


def format_datetime(value: datetime | None, language: str, timezone: str = "UTC") -> str:
    """The moment in the shop's time zone: "14 March 2026, 18:00 CET"."""
    if value is None:
        return ""
    local = value.astimezone(ZoneInfo(timezone))
    zone = local.tzname() or timezone
    time = f"{local:%H:%M} {zone}"
    lang = primary(language)
    if lang not in MONTHS:
        return f"{local.date().isoformat()} {time}"
    return _AT[lang].format(d=format_date(local, lang), t=time)


def format_money(amount: Decimal | str | None, currency: str | None, language: str) -> str:
    """1,234.50 EUR (en), 1.234,50 EUR (nl), 1 234,50 EUR (sv, ru: no-break spaces)."""
    if amount is None:
        return ""
    value = Decimal(str(amount))
    thousands, point = SEPARATORS.get(primary(language), ("", "."))
    sign = "-" if value < 0 else ""
    whole, _, cents = f"{abs(value):f}".partition(".")
    groups: list[str] = []
    while len(whole) > 3:
        groups.insert(0, whole[-3:])
        whole = whole[:-3]
    groups.insert(0, whole)
    text = sign + thousands.join(groups) + (point + cents if cents else "")
    return f"{text} {currency}" if currency else text


def parse_money(text: object) -> tuple[Decimal, str] | None:
    """An amount as the ledger writes it in its audit log, "30.00 EUR" -> (30.00, "EUR")."""
    if not isinstance(text, str):
        return None
    number, _, currency = text.strip().partition(" ")
    try:
        return Decimal(number), currency.strip()
    except InvalidOperation:
        return None


def match_language(wanted: str | None, available: Iterable[str]) -> str | None:
    """The available template language for a customer's language tag: the tag itself
    ("pt-br"), else its primary language ("nl-NL" -> "nl"); None when neither is there."""
    if not wanted:
        return None
    folded = wanted.strip().lower().replace("_", "-")
    have = set(available)
    if folded in have:
        return folded
    base = primary(folded)
    return base if base in have else None
