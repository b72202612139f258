"""Configuration problems: each one carries where it is (file, line, key path) and what is wrong."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a config file; ``line`` is 1-based, 0 when no line applies (file missing)."""

    file: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}"
        if self.path:
            return f"{where}: {self.path}: {self.message}"
        return f"{where}: {self.message}"


class ConfigError(Exception):
    """Every problem found in a config file, raised once (the CLI exits with ``exit_code``)."""

    exit_code = 2  # DESIGN §7: bad input

    def __init__(self, errors: Iterable[ConfigIssue]) -> None:
        self.errors: list[ConfigIssue] = list(errors)
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(str(issue) for issue in self.errors)


class Rejected(ValueError):
    """A validator's refusal of a value, said two ways: ``str()`` may quote the value (``must not
    be negative, got -1``); ``without_value`` does not (``must not be negative``), for a value that
    came from ``${VAR}`` or a secret file and may be a secret put in the wrong place.

    A validator whose message quotes the value raises this; a plain ValueError is taken to
    quote nothing.
    """

    def __init__(self, message: str, *, without_value: str) -> None:
        super().__init__(message)
        self.without_value = without_value

    @classmethod
    def got(cls, reason: str, shown: str) -> Rejected:
        """``{reason}, got {shown}``, and ``reason`` alone without the value."""
        return cls(f"{reason}, got {shown}", without_value=reason)
