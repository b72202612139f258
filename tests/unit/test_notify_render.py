"""Every message in every language renders, with its dates, times and amounts written the way
that language writes them; templates can be overridden file by file; a broken one says where."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from notify.formats import format_date, format_datetime, format_money, match_language, parse_money
from notify.render import MESSAGES, PACKAGED, Renderer, RenderError

LANGUAGES = ("en", "nl", "sv", "ru")
X = "\N{MULTIPLICATION SIGN}"  # as in "2 X MUG"
YEAR = "\N{CYRILLIC SMALL LETTER GHE}."  # Russian marks the year: "2026 g."
PROMISED = date(2026, 3, 14)
WAS = date(2026, 3, 1)
DEADLINE = datetime(2026, 3, 14, 17, 0, tzinfo=UTC)  # 18:00 in Amsterdam (CET)
AMOUNT = Decimal("1234.50")

DATES = {
    "en": "14 March 2026",
    "nl": "14 maart 2026",
    "sv": "14 mars 2026",
    "ru": f"14 марта 2026 {YEAR}",
}
WAS_DATES = {
    "en": "1 March 2026",
    "nl": "1 maart 2026",
    "sv": "1 mars 2026",
    "ru": f"1 марта 2026 {YEAR}",
}
DEADLINES = {
    "en": "14 March 2026, 18:00 CET",
    "nl": "14 maart 2026 om 18:00 CET",
    "sv": "14 mars 2026 kl. 18:00 CET",
    "ru": f"14 марта 2026 {YEAR}, 18:00 CET",
}
AMOUNTS = {
    "en": "1,234.50 EUR",
    "nl": "1.234,50 EUR",
    "sv": "1\u00a0234,50 EUR",
    "ru": "1\u00a0234,50 EUR",
}
UNKNOWN = {
    "en": "a date we do not know yet",
    "nl": "een datum die we nog niet weten",
    "sv": "datum ännu okänt",
    "ru": "дата пока неизвестна",
}
GREETING = {"en": "Hello,", "nl": "Hallo,", "sv": "Hej,", "ru": "Здравствуйте!"}


def context(promised: date | None = PROMISED) -> dict[str, Any]:
    waiting = [
        {"line": "2", "sku": "MUG-BLUE", "backordered": 2, "promised_on": promised},
    ]
    return {
        "shop_name": "Mugs & Co",
        "timezone": "Europe/Amsterdam",
        "order": {"channel": "shop", "ref": "#1001", "waiting": waiting, "promised_on": promised},
        "backordered": [{"line": "2", "sku": "MUG-BLUE", "units": 2, "promised_on": promised}],
        "promised_on": promised,
        "shipped": [{"sku": "TEE-RED", "units": 1}],
        "released": [{"line": "3", "sku": "CAP-GREEN", "units": 3}],
        "complete": False,
        "moved": [{"line": "2", "sku": "MUG-BLUE", "units": 2, "from": WAS, "to": promised}],
        "campaign": "spring-drop",
        "entry": {"id": 7, "qty": 1, "sku": "DROP-1", "balance": AMOUNT, "currency": "EUR"},
        "deadline": DEADLINE,
        "pay_url": "https://pay.example.com/p/abc",
        "refund": {"amount": AMOUNT, "currency": "EUR", "by_hand": False},
    }


# what each message must show, as the language writes it
EXPECTED = {
    "backorder_created": lambda lang: [DATES[lang], f"2 {X} MUG-BLUE", "#1001"],
    "partly_shipped": lambda lang: [DATES[lang], f"1 {X} TEE-RED", f"2 {X} MUG-BLUE", "#1001"],
    "released_shipping": lambda lang: [f"3 {X} CAP-GREEN", DATES[lang], "#1001"],
    "date_moved": lambda lang: [DATES[lang], WAS_DATES[lang], f"2 {X} MUG-BLUE"],
    "waitlist_confirmed": lambda lang: ["spring-drop", f"1 {X} DROP-1"],
    "allocated": lambda lang: [DEADLINES[lang], AMOUNTS[lang], "https://pay.example.com/p/abc"],
    "reminder": lambda lang: [DEADLINES[lang], AMOUNTS[lang], "https://pay.example.com/p/abc"],
    "expired": lambda lang: ["spring-drop", f"1 {X} DROP-1"],
    "not_allocated": lambda lang: ["spring-drop", f"1 {X} DROP-1"],
    "deposit_refunded": lambda lang: [AMOUNTS[lang], "spring-drop"],
}


def test_every_message_has_a_template_in_every_language() -> None:
    renderer = Renderer()
    for message in MESSAGES:
        assert set(renderer.languages(message)) >= set(LANGUAGES), message
    assert set(EXPECTED) == set(MESSAGES)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("message", MESSAGES)
def test_message_renders_dates_and_amounts_in_its_language(message: str, language: str) -> None:
    renderer = Renderer()
    rendered = renderer.render(message, language, context())
    assert rendered.language == language
    assert rendered.subject and "\n" not in rendered.subject
    text = rendered.subject + "\n" + rendered.body
    for wanted in EXPECTED[message](language):
        assert wanted in text, f"{language}/{message}.j2 lacks {wanted!r}:\n{text}"
    assert rendered.body.startswith(GREETING[language])
    assert rendered.body.rstrip().endswith("Mugs & Co")
    assert rendered.body.endswith("\n") and not rendered.body.endswith("\n\n")
    if language != "en":  # translated, not a copy of the English text
        english = renderer.render(message, "en", context())
        assert rendered.subject != english.subject
        assert "Hello" not in rendered.body and "Kind regards" not in rendered.body


@pytest.mark.parametrize("language", LANGUAGES)
def test_an_unknown_date_is_said_so(language: str) -> None:
    rendered = Renderer().render("backorder_created", language, context(promised=None))
    assert UNKNOWN[language] in rendered.body
    assert "None" not in rendered.body


def test_refund_by_hand_is_told_as_coming() -> None:
    values = context()
    values["refund"] = {"amount": Decimal("30"), "currency": "SEK", "by_hand": True}
    assert "We are refunding 30 SEK" in Renderer().render("deposit_refunded", "en", values).body
    values["refund"]["by_hand"] = False
    assert "We have refunded 30 SEK" in Renderer().render("deposit_refunded", "en", values).body


def test_a_payment_link_not_known_yet_is_said_so() -> None:
    values = context()
    values["pay_url"] = None
    values["entry"]["balance"] = None
    body = Renderer().render("allocated", "nl", values).body
    assert "De betaalgegevens sturen we je apart." in body
    assert "Te betalen" not in body


def test_without_a_shop_name_the_sign_off_stands_alone() -> None:
    values = context()
    values["shop_name"] = None
    body = Renderer().render("expired", "sv", values).body
    assert body.endswith("Med vänliga hälsningar,\n")


# ---- formats ----------------------------------------------------------------------------------


def test_dates_times_and_amounts_per_language() -> None:
    assert format_date(date(2026, 1, 5), "nl-NL") == "5 januari 2026"
    assert format_date(datetime(2026, 5, 9, 23, 0, tzinfo=UTC), "sv") == "9 maj 2026"
    assert format_date(date(2026, 12, 31), "de") == "2026-12-31"  # no rules: ISO
    assert format_date(None, "en") == ""
    summer = datetime(2026, 7, 1, 12, 30, tzinfo=UTC)
    assert format_datetime(summer, "en", "Europe/Stockholm") == "1 July 2026, 14:30 CEST"
    assert format_datetime(summer, "en") == "1 July 2026, 12:30 UTC"
    assert format_money(Decimal("1234567.5"), "SEK", "sv") == "1\u00a0234\u00a0567,5 SEK"
    assert format_money(Decimal("-30.00"), "EUR", "en") == "-30.00 EUR"
    assert format_money(Decimal("999"), None, "nl") == "999"
    assert format_money("12.00", "EUR", "xx") == "12.00 EUR"
    assert parse_money("30.00 EUR") == (Decimal("30.00"), "EUR")
    assert parse_money("lots") is None and parse_money(None) is None


def test_language_tags_match_the_template_languages() -> None:
    available = ("en", "nl", "pt-br", "sv")
    assert match_language("nl-NL", available) == "nl"
    assert match_language("NL_be", available) == "nl"
    assert match_language("pt-BR", available) == "pt-br"
    assert match_language("pt", available) is None
    assert match_language("de-DE", available) is None
    assert match_language(None, available) is None
    renderer = Renderer()
    # the customer's, the channel's, the default: the first one there is wins
    assert renderer.choose_language("reminder", ["de-AT", "ru", "en"]) == "ru"
    assert renderer.choose_language("reminder", [None, None, "sv"]) == "sv"
    assert renderer.choose_language("reminder", ["fi", None, "de"]) == "en"


# ---- overrides ----------------------------------------------------------------------------------


def test_templates_are_overridden_file_by_file(tmp_path: Path) -> None:
    (tmp_path / "nl").mkdir()
    (tmp_path / "nl" / "backorder_created.j2").write_text(
        "{% block subject %}Eigen onderwerp {{ order.ref }}{% endblock %}\n"
        "{% block body %}Verwacht: {{ promised_on|date }}{% endblock %}\n",
        encoding="utf-8",
    )
    (tmp_path / "de").mkdir()  # a language of the merchant's own, for one message
    (tmp_path / "de" / "expired.j2").write_text(
        "{% block subject %}Abgelaufen{% endblock %}{% block body %}Schade.{% endblock %}",
        encoding="utf-8",
    )
    renderer = Renderer(tmp_path)
    own = renderer.render("backorder_created", "nl", context())
    assert (own.subject, own.body) == ("Eigen onderwerp #1001", "Verwacht: 14 maart 2026\n")
    packaged = renderer.render("date_moved", "nl", context())  # not overridden: the shipped one
    assert packaged.body == Renderer().render("date_moved", "nl", context()).body
    assert "de" in renderer.languages("expired")
    assert "de" not in renderer.languages("reminder")
    assert renderer.choose_language("expired", ["de-CH"]) == "de"
    assert renderer.choose_language("reminder", ["de-CH", None, "en"]) == "en"
    assert renderer.render("expired", "de", context()).body == "Schade.\n"


def test_a_broken_template_says_which_and_why(tmp_path: Path) -> None:
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "expired.j2").write_text(
        "{% block subject %}{{ no_such_value }}{% endblock %}{% block body %}x{% endblock %}",
        encoding="utf-8",
    )
    (tmp_path / "en" / "reminder.j2").write_text("{% block subject %}{% if %}", encoding="utf-8")
    (tmp_path / "en" / "allocated.j2").write_text("no blocks at all", encoding="utf-8")
    renderer = Renderer(tmp_path)
    with pytest.raises(RenderError, match=r"en/expired.j2: 'no_such_value' is undefined"):
        renderer.render("expired", "en", context())
    with pytest.raises(RenderError, match=r"en/reminder.j2:1: "):
        renderer.render("reminder", "en", context())
    with pytest.raises(RenderError, match="needs a subject block and a body block"):
        renderer.render("allocated", "en", context())
    with pytest.raises(RenderError, match=r"no template fi/expired\.j2"):
        renderer.render("expired", "fi", context())


def test_templates_run_sandboxed(tmp_path: Path) -> None:
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "expired.j2").write_text(
        "{% block subject %}x{% endblock %}"
        "{% block body %}{{ entry.__class__.__mro__ }}{% endblock %}",
        encoding="utf-8",
    )
    with pytest.raises(RenderError, match="unsafe"):
        Renderer(tmp_path).render("expired", "en", context())


def test_packaged_templates_are_in_the_package() -> None:
    assert PACKAGED.is_dir()
    assert sorted(p.name for p in PACKAGED.iterdir()) == sorted(LANGUAGES)
