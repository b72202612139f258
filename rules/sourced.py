"""A value together with where it was set."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

DEFAULT_SOURCE = "default"


@dataclass(frozen=True)
class Sourced(Generic[T]):
    """``source`` is ``"FILE:LINE"`` of the YAML key that set ``value``, or ``"default"``."""

    value: T
    source: str

    def __str__(self) -> str:
        return f"{self.value!r} ({self.source})"
