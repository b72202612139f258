"""Text that ``${VAR}`` or a ``*_file`` put into a value: named in errors, never shown.

A password put in the wrong variable, or a variable put in the wrong field (``port:
${DB_PASSWORD}``), must not reach a terminal or a log through the error about it. An error about
such a value names the field, its line and where the text came from (``from ${DB_PASSWORD}``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from rules.errors import ConfigIssue
from rules.redact import MASK


@dataclass(frozen=True)
class Substitution:
    """``text`` went into a value from ``source``: ``${DB_PASSWORD}``, ``token_file``."""

    source: str
    text: str


# a substituted text this long is masked wherever it appears, not only where quoted
_BARE_MIN_LENGTH = 8

# by key path as issues show it (``channels.shop.token``): crosschecks report no KeyPath
Substitutions = Mapping[str, Sequence[Substitution]]


def within(substitutions: Substitutions, path: str) -> list[Substitution]:
    """What was put in at ``path`` or anywhere inside it: an error about a list or a mapping
    may quote its items."""
    found: list[Substitution] = []
    for where, made in substitutions.items():
        if where == path or not path or where.startswith((f"{path}.", f"{path}[")):
            found.extend(made)
    return found


def conceal(message: str, found: Sequence[Substitution], *, name_sources: bool = False) -> str:
    """``message`` with every substituted text masked; the sources are named when something
    had to be masked, or when asked for (the caller already left a value out)."""
    concealed = message
    # longest first, so a text that contains another is masked whole
    for text in sorted({made.text for made in found if made.text}, key=len, reverse=True):
        for quoted in (repr(text), f"'{text}'", f'"{text}"'):  # messages quote values with !r
            concealed = concealed.replace(quoted, f"'{MASK}'")
        # unquoted too, unless so short that it would mask parts of other words ("a", "on")
        if len(text) >= _BARE_MIN_LENGTH:
            concealed = concealed.replace(text, MASK)
    if not found or not (name_sources or concealed != message):
        return concealed
    sources = dict.fromkeys(made.source for made in found)  # in order, once each
    return f"{concealed} (from {' and '.join(sources)})"


def conceal_issues(
    issues: Iterable[ConfigIssue], substitutions: Substitutions
) -> list[ConfigIssue]:
    """Issues found on substituted values, with the values masked and their sources named."""
    concealed: list[ConfigIssue] = []
    for issue in issues:
        found = within(substitutions, issue.path) if issue.path else []
        message = conceal(issue.message, found)
        concealed.append(replace(issue, message=message))
    return concealed
