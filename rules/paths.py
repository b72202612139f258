"""Key paths into the YAML tree: ``("sku_rules", 0, "match")`` <-> ``"sku_rules[0].match"``."""

from __future__ import annotations

from collections.abc import Mapping

KeyPath = tuple[str | int, ...]
LineMap = Mapping[KeyPath, int]


def format_path(path: KeyPath) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def line_for(lines: LineMap, path: KeyPath) -> int:
    """The line of the deepest part of ``path`` that exists in the file (a missing key's parent)."""
    for end in range(len(path), -1, -1):
        line = lines.get(path[:end])
        if line is not None:
            return line
    return 0
