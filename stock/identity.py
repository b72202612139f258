"""One customer, one key: identities normalised so cosmetic variants compare equal (pure: no I/O).

A campaign limits units per customer (issue #15). A customer is recognised by the identity kinds
the campaign configures (`limits.identity`: email, phone, address), each reduced here to a
canonical key, so that `Ann.Smith+drop@GoogleMail.com` and `annsmith@gmail.com`, or
`020-123 4567` (NL) and `+31 20 123 4567`, are the same customer. The keys only ever compare
with each other: they are not addresses to send anything to.

Normalising errs towards merging: two keys that are wrongly equal send a sign-up to review by
hand (stock.campaign_policy), while two that are wrongly different let one person in twice.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from functools import partial

import phonenumbers

KINDS = ("email", "phone", "address")

# Gmail ignores dots in the local part and delivers `name+tag` to `name`; googlemail.com is the
# same mailbox under its old name.
GMAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})
# Providers that deliver `name+tag` to `name` (but where dots do count). Yahoo is left out on
# purpose: its disposable addresses use `-`, and `-` is an ordinary character in other names.
PLUS_TAG_DOMAINS = frozenset(
    {
        "outlook.com",
        "hotmail.com",
        "live.com",
        "msn.com",
        "icloud.com",
        "me.com",
        "mac.com",
        "fastmail.com",
        "proton.me",
        "protonmail.com",
        "protonmail.ch",
        "pm.me",
    }
)

SHOWN_CHARS = 40  # of a refused value in an error: enough to recognise it, not a whole paste

_LOCAL_PART = re.compile(r"[^\s@\"(),:;<>\[\\\]]{1,64}")  # unquoted; quoted local parts refused
_DOMAIN_LABEL = re.compile(r"(?!-)[^\W_]([\w-]{0,61}[^\W_])?", re.UNICODE)


class IdentityError(ValueError):
    """A value that cannot be an identity of its kind; carries which field, the value as shown
    in messages (cut to SHOWN_CHARS) and why."""

    def __init__(self, field: str, value_shown: str, message: str) -> None:
        super().__init__(f"{field} {value_shown}: {message}")
        self.field = field
        self.value_shown = value_shown
        self.message = message


def _shown(text: str) -> str:
    if len(text) > SHOWN_CHARS:
        return repr(text[:SHOWN_CHARS] + "…")
    return repr(text)


def normalize_email(text: str) -> str:
    """`text` stripped and lowercased; at Gmail without dots and `+tag` (domain gmail.com), at
    PLUS_TAG_DOMAINS without `+tag`; elsewhere only lowercased (a provider's own rules for
    dots and tags are unknown, and guessing could merge two people)."""
    email = text.strip().lower()
    local, at, domain = email.rpartition("@")
    domain = domain.removesuffix(".")  # `example.com.` is the same fully qualified name
    if not at or not _LOCAL_PART.fullmatch(local) or not _valid_domain(domain):
        raise IdentityError("email", _shown(text), "is not an email address (name@domain)")
    if domain in GMAIL_DOMAINS:
        local = local.partition("+")[0].replace(".", "")
        domain = "gmail.com"
    elif domain in PLUS_TAG_DOMAINS:
        local = local.partition("+")[0]
    if not local:
        raise IdentityError("email", _shown(text), "has no name left without its +tag (and dots)")
    return f"{local}@{domain}"


def _valid_domain(domain: str) -> bool:
    labels = domain.split(".")
    return (
        len(labels) >= 2
        and len(domain) <= 253
        and all(_DOMAIN_LABEL.fullmatch(label) for label in labels)
        and not labels[-1].isdigit()
    )


def normalize_phone(text: str, country: str | None) -> str:
    """The number in E.164 (`+31201234567`). `country` (ISO 3166 alpha-2, e.g. NL) is the region
    a number written without `+` or an international prefix is read in."""
    region = country.strip().upper() if country and country.strip() else None
    if region is not None and region not in phonenumbers.SUPPORTED_REGIONS:
        raise IdentityError("country", _shown(country or ""), "is not an ISO 3166 country code")
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as error:
        why = _PARSE_ERRORS.get(error.error_type, "is not a phone number")
        raise IdentityError("phone", _shown(text), why) from error
    if not phonenumbers.is_valid_number(number):
        where = f" (read in {region} unless it starts with +)" if region else ""
        raise IdentityError("phone", _shown(text), f"is not a valid phone number{where}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


_PARSE_ERRORS = {
    phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: (
        "has no known country code (+...) and no country to read it in"
    ),
    phonenumbers.NumberParseException.NOT_A_NUMBER: "is not a phone number",
    phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: "is too short after its prefix",
    phonenumbers.NumberParseException.TOO_SHORT_NSN: "is too short",
    phonenumbers.NumberParseException.TOO_LONG: "is too long",
}


# Whole words and their canonical form: the shortest usual abbreviation, in the same spelling
# whatever language the word came from (so `Street`, `St.`, `Str.`, `Straat`, `Gatan` are all
# `st`). `saint` is `st` too: a key only needs both spellings of one address to agree.
ADDRESS_WORDS: Mapping[str, str] = {
    # English
    "street": "st", "str": "st", "saint": "st",
    "avenue": "ave", "av": "ave", "avn": "ave",
    "road": "rd",
    "drive": "dr",
    "lane": "ln",
    "boulevard": "blvd", "blv": "blvd",
    "court": "ct",
    "place": "pl",
    "square": "sq",
    "terrace": "ter",
    "highway": "hwy",
    "apartment": "apt", "flat": "apt",
    "suite": "ste",
    "floor": "fl",
    "building": "bldg",
    "north": "n", "south": "s", "east": "e", "west": "w",
    "number": "", "no": "", "nr": "", "nummer": "",  # `No. 12` is `12`
    # Dutch (standalone words; compounds like `Kalverstraat` are handled by ADDRESS_SUFFIXES)
    "straat": "st", "laan": "ln", "plein": "pl", "weg": "rd",
    "appartement": "apt",
    # Swedish
    "gata": "st", "gatan": "st", "vag": "rd", "vagen": "rd",
    "lagenhet": "apt", "lgh": "apt",
    # German, as written by customers of Dutch and Swedish shops
    "strasse": "st",
}  # fmt: skip

# Word endings (Dutch and Swedish street names are compounds) and their canonical ending: the
# usual abbreviation, so `Kalverstraat` and `Kalverstr.` are both `kalverstr`, `Drottninggatan`
# and `Drottningg.` both `drottningg`, `Sveavägen` and `Sveav.` both `sveav`.
ADDRESS_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("straat", "str"),
    ("strasse", "str"),
    ("gatan", "g"),
    ("gata", "g"),
    ("vagen", "v"),
    ("laan", "ln"),
    ("plein", "pl"),
)

# `O'Brien` is `obrien`, not `o brien`: the apostrophe as typed, or as a keyboard or phone makes it
_APOSTROPHES = re.compile("['\u2019\u2018`\u00b4]")
_NOT_WORD = re.compile(r"[^0-9a-z]+")
_DIGITS_LETTERS = re.compile(r"(?<=\d)(?=[a-z])|(?<=[a-z])(?=\d)")  # `12a` is `12 a`


def _ascii_folded(text: str) -> str:
    """Casefolded, accents dropped (`Malmö` is `malmo`, `Straße` is `strasse`): customers type
    the same street with and without them."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def normalize_address(text: str) -> str:
    """Words of the address, lowercase ASCII, one space apart: punctuation dropped, numbers split
    from letters (`12-A`, `12a`, `12 a` agree), usual abbreviations unified (ADDRESS_WORDS,
    ADDRESS_SUFFIXES). `12  Main Street, Apt 4` is `12 main st apt 4`. Letters outside ASCII
    that have no ASCII base (e.g. Cyrillic) are dropped, so such an address may be refused."""
    folded = _NOT_WORD.sub(" ", _ascii_folded(_APOSTROPHES.sub("", text)))
    folded = _DIGITS_LETTERS.sub(" ", folded)
    words = [_canonical_word(word) for word in folded.split()]
    key = " ".join(word for word in words if word)
    if not key:
        raise IdentityError("address", _shown(text), "has no letters or digits")
    return key


def _canonical_word(word: str) -> str:
    if word in ADDRESS_WORDS:
        return ADDRESS_WORDS[word]
    for ending, canonical in ADDRESS_SUFFIXES:
        if word.endswith(ending) and len(word) > len(ending):
            return word[: -len(ending)] + canonical
    return word


def identity_keys(
    email: str | None,
    phone: str | None,
    address: str | None,
    country: str | None,
    kinds: Sequence[str],
) -> dict[str, str]:
    """{kind: normalised key} for each configured kind whose value is given (None or blank is
    absent). A given value that cannot be normalised raises IdentityError: it is refused, never
    skipped. An unknown kind is a programming or configuration error (ValueError)."""
    readers: dict[str, tuple[str | None, Callable[[str], str]]] = {
        "email": (email, normalize_email),
        "phone": (phone, partial(normalize_phone, country=country)),
        "address": (address, normalize_address),
    }
    keys: dict[str, str] = {}
    for kind in kinds:
        if kind not in readers:
            raise ValueError(f"unknown identity kind {kind!r}; known: {', '.join(KINDS)}")
        value, normalize = readers[kind]
        if value is not None and value.strip():
            keys[kind] = normalize(value)
    return keys
