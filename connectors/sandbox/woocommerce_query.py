"""Collection parameters of the WordPress REST API as WooCommerce's controllers validate them:
pagination (page, per_page <= 100, X-WP-Total/X-WP-TotalPages), id lists, dates. Pure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from connectors.sandbox.woocommerce_shapes import STORE_UTC_OFFSET, error_json

T = TypeVar("T")
MAX_PER_PAGE = 100


class InvalidParam(Exception):
    """A request WordPress refuses with 400 rest_invalid_param (or another code)."""

    def __init__(self, param: str, reason: str, code: str = "rest_invalid_param") -> None:
        super().__init__(f"{param}: {reason}")
        self.param = param
        self.reason = reason
        self.code = code

    def body(self) -> dict[str, Any]:
        if self.code != "rest_invalid_param":
            return error_json(self.code, self.reason, 400)
        return error_json(
            self.code,
            f"Invalid parameter(s): {self.param}",
            400,
            params={self.param: self.reason},
        )


def int_param(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidParam(name, f"{name} is not of type integer.") from None
    if not low <= value <= high:
        raise InvalidParam(name, f"{name} must be between {low} (inclusive) and {high} (inclusive)")
    return value


def id_list(query: Mapping[str, str], name: str) -> list[int] | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return [int(part) for part in raw.split(",") if part.strip()]
    except ValueError:
        raise InvalidParam(name, f"{name}[0] is not of type integer.") from None


def text_list(query: Mapping[str, str], name: str) -> list[str] | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    return [part.strip() for part in raw.split(",") if part.strip()]


def bool_param(query: Mapping[str, str], name: str) -> bool:
    raw = query.get(name, "").lower()
    if raw in ("", "0", "false"):
        return False
    if raw in ("1", "true"):
        return True
    raise InvalidParam(name, f"{name} is not of type boolean.")


def date_param(query: Mapping[str, str], name: str, gmt: bool) -> datetime | None:
    """The moment a date filter means, as an aware UTC datetime.

    Naive values are read on the store's clock unless dates_are_gmt, as WooCommerce does.
    """
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidParam(name, f"Invalid date.  {name} must be an ISO8601 date.") from None
    if parsed.tzinfo is not None:
        return parsed.astimezone(UTC)
    as_utc = parsed.replace(tzinfo=UTC)
    return as_utc if gmt else as_utc - STORE_UTC_OFFSET


def paginate(items: Sequence[T], query: Mapping[str, str]) -> tuple[list[T], dict[str, str]]:
    """One page of items and the X-WP-* headers; a page past the end is refused like WP does."""
    per_page = int_param(query, "per_page", 10, 1, MAX_PER_PAGE)
    page = int_param(query, "page", 1, 1, 2**31)
    total = len(items)
    pages = math.ceil(total / per_page) if total else 0
    if total and page > pages:
        raise InvalidParam(
            "page",
            "The page number requested is larger than the number of pages available.",
            code="rest_post_invalid_page_number",
        )
    start = (page - 1) * per_page
    headers = {"X-WP-Total": str(total), "X-WP-TotalPages": str(pages)}
    return list(items[start : start + per_page]), headers
