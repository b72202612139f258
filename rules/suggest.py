"""'Did you mean ...?' for a misspelt key or channel name."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The most similar candidate, or one containing ``word`` (``share``: ``incoming_share``)."""
    options = list(candidates)
    close = difflib.get_close_matches(word, options, n=1)
    if close:
        return close[0]
    if len(word) >= 3:
        containing = sorted(option for option in options if word in option)
        if containing:
            return containing[0]
    return None


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` or an empty string."""
    found = closest(word, candidates)
    return f" (did you mean {found!r}?)" if found is not None else ""
