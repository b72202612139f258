"""Identity keys (stock/identity.py): cosmetic variants of one customer's email, phone or
address give one key; what cannot be an identity is refused with the field, never skipped."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stock.identity import (
    IdentityError,
    identity_keys,
    normalize_address,
    normalize_email,
    normalize_phone,
)


@pytest.mark.parametrize(
    ("given_email", "key"),
    [
        ("  Ann@Example.COM ", "ann@example.com"),
        ("Ann.Smith+drop@GoogleMail.com", "annsmith@gmail.com"),
        ("a.n.n.smith@gmail.com", "annsmith@gmail.com"),
        ("annsmith+@gmail.com", "annsmith@gmail.com"),
        ("bob+shop@outlook.com", "bob@outlook.com"),
        ("bob+shop@hotmail.com", "bob@hotmail.com"),
        ("bob+a+b@icloud.com", "bob@icloud.com"),
        ("bob+x@proton.me", "bob@proton.me"),
        ("bob.smith+x@fastmail.com", "bob.smith@fastmail.com"),  # dots count there
        ("bob.smith+x@yahoo.com", "bob.smith+x@yahoo.com"),  # yahoo uses `-`: left alone
        ("bob.smith+x@example.nl", "bob.smith+x@example.nl"),  # unknown rules: only lowercase
        ("x@example.com.", "x@example.com"),
        ("åsa@exempel.se", "åsa@exempel.se"),
    ],
)
def test_email_variants_share_a_key(given_email: str, key: str) -> None:
    assert normalize_email(given_email) == key


@pytest.mark.parametrize(
    "text",
    ["", "ann", "ann@", "@example.com", "ann@example", "a b@example.com", "ann@@example.com",
     "ann@-example.com", "ann@example..com", "ann@10.0.0.1", '"ann"@example.com',
     "+shop@gmail.com", ".@gmail.com"],
)  # fmt: skip
def test_what_is_not_an_email_is_refused_with_the_field(text: str) -> None:
    with pytest.raises(IdentityError) as refused:
        normalize_email(text)
    assert refused.value.field == "email"
    assert refused.value.value_shown == repr(text)


def test_a_long_refused_value_is_shown_cut() -> None:
    with pytest.raises(IdentityError) as refused:
        normalize_email("x" * 500)
    assert len(refused.value.value_shown) < 50
    assert refused.value.value_shown.endswith("…'")


@pytest.mark.parametrize(
    ("text", "country", "key"),
    [
        ("020 123 4567", "NL", "+31201234567"),
        ("020-1234567", "nl", "+31201234567"),
        ("+31 (0)20 123 4567", None, "+31201234567"),
        ("0031 20 123 4567", "NL", "+31201234567"),
        ("+31 20 123 4567", "SE", "+31201234567"),  # a + number ignores the default country
        ("08-123 456 78", "SE", "+46812345678"),
        ("(202) 555-0123", "US", "+12025550123"),
    ],
)
def test_phone_variants_share_an_e164_key(text: str, country: str | None, key: str) -> None:
    assert normalize_phone(text, country) == key


@pytest.mark.parametrize(
    ("text", "country", "field"),
    [
        ("020 123 4567", None, "phone"),  # no + and no country to read it in
        ("12", "NL", "phone"),
        ("call me", "NL", "phone"),
        ("+99 123", None, "phone"),
        ("020 123 4567", "XX", "country"),
    ],
)
def test_what_is_not_a_phone_number_is_refused(text: str, country: str | None, field: str) -> None:
    with pytest.raises(IdentityError) as refused:
        normalize_phone(text, country)
    assert refused.value.field == field


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("12  Main Street, Apt 4", "12 main st apt 4"),
        ("12 Main St., Apartment #4", "12 main st apt 4"),
        ("12 North Main Road", "12 N. Main Rd"),
        ("No. 5, Saint John's Avenue", "5 St Johns Ave"),
        ("O\u2019Brien Lane 3", "obrien ln 3"),  # a typographic apostrophe
        ("Kalverstraat 12-A", "Kalverstr. 12a"),
        ("Kalverstraat 12 A, 1012 AB Amsterdam", "kalverstr 12a 1012ab amsterdam"),
        ("Stadhouderslaan 1", "Stadhoudersln. 1"),
        ("Drottninggatan 5, lgh 1101", "Drottningg. 5 lägenhet 1101"),
        ("Sveavägen 44", "Sveav. 44"),
        ("Storgatan 1, Malmö", "storg 1 malmo"),
        ("Hauptstraße 3", "Hauptstr. 3"),
    ],
)
def test_address_variants_share_a_key(one: str, other: str) -> None:
    assert normalize_address(one) == normalize_address(other)


def test_address_key_is_words_in_canonical_spelling() -> None:
    assert normalize_address("12  Main Street, Apt 4") == "12 main st apt 4"
    assert normalize_address("Kalverstraat 12-A") == "kalverstr 12 a"
    assert normalize_address("Drottninggatan 5") == "drottningg 5"


def test_different_addresses_keep_different_keys() -> None:
    assert normalize_address("12 Main St") != normalize_address("21 Main St")
    assert normalize_address("Kalverstraat 12") != normalize_address("Kalverstraat 12 A")
    assert normalize_address("12 Main St") != normalize_address("12 Main Rd")


@pytest.mark.parametrize("text", ["", "   ", "--- , ."])
def test_an_address_without_letters_or_digits_is_refused(text: str) -> None:
    with pytest.raises(IdentityError) as refused:
        normalize_address(text)
    assert refused.value.field == "address"


def test_identity_keys_are_the_configured_kinds_that_are_given() -> None:
    assert identity_keys(
        "Ann.Smith+x@gmail.com", "020 123 4567", "12 Main Street", "NL", ["email", "phone"]
    ) == {"email": "annsmith@gmail.com", "phone": "+31201234567"}
    assert identity_keys("ann@example.com", None, "  ", "NL", ["email", "phone", "address"]) == {
        "email": "ann@example.com"
    }
    assert identity_keys(None, None, "12 Main Street", None, ["address"]) == {
        "address": "12 main st"
    }


def test_identity_keys_refuse_a_bad_given_value_and_an_unknown_kind() -> None:
    with pytest.raises(IdentityError) as refused:
        identity_keys("ann@example.com", "12", None, "NL", ["email", "phone"])
    assert refused.value.field == "phone"
    with pytest.raises(ValueError, match="unknown identity kind 'fax'"):
        identity_keys("ann@example.com", None, None, None, ["email", "fax"])


def test_a_value_of_a_kind_not_configured_is_not_read() -> None:
    assert identity_keys("ann@example.com", "not a phone", None, None, ["email"]) == {
        "email": "ann@example.com"
    }


addresses = st.text(
    alphabet=st.sampled_from("abcdefghijklmnopqrstuvwxyzäöåé0123456789 .,-#'/ABCDSTRÖ"),
    max_size=40,
)


@given(addresses)
def test_an_address_key_is_its_own_key(text: str) -> None:
    try:
        key = normalize_address(text)
    except IdentityError:
        return
    assert normalize_address(key) == key
    assert normalize_address(f"  {text.upper()} ,") == key


@given(
    st.from_regex(
        r"[a-z0-9._+]{1,20}@(gmail|googlemail|outlook|yahoo|example)\.com", fullmatch=True
    )
)
def test_an_email_key_is_its_own_key(text: str) -> None:
    try:
        key = normalize_email(text)
    except IdentityError:
        return
    assert normalize_email(key) == key
    assert normalize_email(f" {text.upper()} ") == key
