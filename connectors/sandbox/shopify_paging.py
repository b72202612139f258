"""Connections (cursor pages) and Shopify's search syntax, for the sandbox's resolvers."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from graphql import GraphQLError

from connectors.sandbox.shopify_schema import MAX_PAGE_SIZE


@dataclass(frozen=True)
class Term:
    field: str
    op: str  # ":" (equals / prefix*), ">", ">=", "<", "<="
    value: str


_TOKEN = re.compile(
    r"""\s*(?:(?P<or>OR)\b|(?P<and>AND)\b|(?P<field>[A-Za-z_]+):(?P<op><=|>=|<|>)?"""
    r"""(?P<value>'[^']*'|"[^"]*"|\S+)|(?P<bare>\S+))"""
)


def parse_search(query: str | None) -> list[list[Term]]:
    """`a:1 b:>2 OR c:3` -> [[a, b], [c]]: OR of ANDs. Bare words are ignored (no full text)."""
    groups: list[list[Term]] = [[]]
    for match in _TOKEN.finditer(query or ""):
        if match.group("or"):
            groups.append([])
        elif match.group("field"):
            value = match.group("value")
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            groups[-1].append(Term(match.group("field").lower(), match.group("op") or ":", value))
    return [g for g in groups if g] or [[]]


def parse_time(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise GraphQLError(f"Invalid date in search query: {value!r}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def compare(actual: Any, term: Term) -> bool:
    """One term against one value; times and numbers compare by order, text by equality."""
    if actual is None:
        return False
    expected: Any
    if isinstance(actual, datetime):
        expected = parse_time(term.value)
    elif isinstance(actual, int):
        expected = int(term.value) if term.value.lstrip("-").isdigit() else None
        if expected is None:
            return False
    else:
        text, wanted = str(actual).lower(), term.value.lower()
        if term.op != ":":
            return False
        return text.startswith(wanted[:-1]) if wanted.endswith("*") else text == wanted
    ops: dict[str, Callable[[Any, Any], bool]] = {
        ":": lambda a, b: a == b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
    }
    return ops[term.op](actual, expected)


def matches(groups: list[list[Term]], fields: Callable[[str], Any], known: set[str]) -> bool:
    """Shopify ignores unknown search fields (with a warning), so they match everything."""
    return any(
        all(t.field not in known or compare(fields(t.field), t) for t in group) for group in groups
    )


def encode_cursor(last_id: int, last_value: Any) -> str:
    raw = json.dumps({"last_id": last_id, "last_value": str(last_value)})
    return base64.urlsafe_b64encode(raw.encode()).decode()


def decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor.encode()).decode())
        return int(data["last_id"]), str(data["last_value"])
    except (ValueError, KeyError, TypeError) as exc:
        raise GraphQLError(f"Invalid cursor for current pagination sort: {cursor!r}") from exc


def connection(
    items: Sequence[Any],
    *,
    key: Callable[[Any], tuple[Any, int]],
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
    reverse: bool = False,
) -> dict[str, Any]:
    """A Relay connection over `items`, ordered by `key` (sort value, id); cursors carry both,
    so a page boundary survives items changing or moving between requests."""
    if first is None and last is None:
        raise GraphQLError("you must provide one of first or last")
    for name, size in (("first", first), ("last", last)):
        if size is not None and not 0 <= size <= MAX_PAGE_SIZE:
            raise GraphQLError(
                f"The argument `{name}` must be between 0 and {MAX_PAGE_SIZE}.",
                extensions={"code": "BAD_REQUEST"},
            )
    ordered = sorted(items, key=lambda item: _sortable(key(item)), reverse=reverse)
    position = [_sortable(key(item)) for item in ordered]

    def anchor(cursor: str) -> tuple[str, int]:
        last_id, last_value = decode_cursor(cursor)
        return (last_value, last_id)

    def not_past(p: tuple[str, int], mark: tuple[str, int]) -> bool:
        return p >= mark if reverse else p <= mark

    # keyset paging: a cursor is a position in the sort order, so an item that changed or
    # moved since the cursor was issued neither shifts nor repeats the following page
    start = sum(1 for p in position if not_past(p, anchor(after))) if after else 0
    if before:
        mark = anchor(before)
        end = sum(1 for p in position if not_past(p, mark) and p != mark)
    else:
        end = len(ordered)
    window = ordered[start:end]
    has_next = has_prev = False
    if first is not None and len(window) > first:
        window, has_next = window[:first], True
    if last is not None and len(window) > last:
        window, has_prev = window[-last:], True
    has_prev = has_prev or start > 0
    has_next = has_next or end < len(ordered)
    cursors = [encode_cursor(key(item)[1], _sortable(key(item))[0]) for item in window]
    return {
        "edges": [{"cursor": c, "node": n} for c, n in zip(cursors, window, strict=True)],
        "nodes": list(window),
        "pageInfo": {
            "hasNextPage": has_next,
            "hasPreviousPage": has_prev,
            "startCursor": cursors[0] if cursors else None,
            "endCursor": cursors[-1] if cursors else None,
        },
    }


def _sortable(value: tuple[Any, int]) -> tuple[str, int]:
    sort_value, ident = value
    if isinstance(sort_value, datetime):
        return (sort_value.isoformat(), ident)
    if isinstance(sort_value, int):
        return (f"{sort_value:020d}", ident)
    return (str(sort_value), ident)
