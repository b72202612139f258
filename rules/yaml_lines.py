"""YAML text -> plain values plus the line of every key, from PyYAML's node tree.

``yaml.safe_load`` forgets where values came from and silently keeps the last of duplicate keys;
composing the node tree keeps both the marks (``start_mark.line + 1``) and the duplicates.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from rules.errors import ConfigError, ConfigIssue
from rules.paths import KeyPath, format_path
from rules.yaml_bounds import BoundedLoader, YamlTooCostly, check_size

_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class YamlDocument:
    """The document's values, the line of each key path (``()`` is the document), soft issues."""

    data: dict[str, Any]
    lines: Mapping[KeyPath, int]
    issues: tuple[ConfigIssue, ...] = ()


@dataclass
class _Converter:
    filename: str
    loader: BoundedLoader
    restore: Callable[[str], str]
    issues: list[ConfigIssue] = field(default_factory=list)

    def issue(self, node: yaml.Node, path: KeyPath, message: str) -> None:
        self.issues.append(
            ConfigIssue(self.filename, node.start_mark.line + 1, format_path(path), message)
        )

    def convert(
        self, node: yaml.Node, path: KeyPath, ancestors: frozenset[int]
    ) -> tuple[Any, dict[KeyPath, int]]:
        """Value of ``node`` and the lines of its sub-paths, relative to ``node``."""
        if id(node) in ancestors:
            self.issue(node, path, "recursive YAML alias")
            return None, {(): node.start_mark.line + 1}
        inner = ancestors | {id(node)}
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, inner)
        if isinstance(node, yaml.SequenceNode):
            return self._sequence(node, path, inner)
        return self._scalar(node, path), {(): node.start_mark.line + 1}

    def _scalar(self, node: yaml.Node, path: KeyPath) -> Any:
        try:
            value = self.loader.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError:
            self.issue(node, path, f"unsupported YAML tag {node.tag!r}")
            return None
        return self.restore(value) if isinstance(value, str) else value

    def _sequence(
        self, node: yaml.SequenceNode, path: KeyPath, ancestors: frozenset[int]
    ) -> tuple[list[Any], dict[KeyPath, int]]:
        values: list[Any] = []
        lines: dict[KeyPath, int] = {(): node.start_mark.line + 1}
        for index, item in enumerate(node.value):
            value, item_lines = self.convert(item, (*path, index), ancestors)
            values.append(value)
            lines.update({(index, *sub): line for sub, line in item_lines.items()})
        return values, lines

    def _mapping(
        self, node: yaml.MappingNode, path: KeyPath, ancestors: frozenset[int]
    ) -> tuple[dict[str, Any], dict[KeyPath, int]]:
        values: dict[str, Any] = {}
        lines: dict[KeyPath, int] = {(): node.start_mark.line + 1}
        first_seen: dict[str, int] = {}
        merges: list[yaml.Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merges.append(value_node)
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.issue(key_node, path, "mapping keys must be plain words, not lists or maps")
                continue
            # the key's text as written: `on:` or `no:` stay names, not YAML 1.1 booleans
            key = self.restore(str(key_node.value))
            key_line = key_node.start_mark.line + 1
            if key in first_seen:
                self.issue(
                    key_node,
                    (*path, key),
                    f"duplicate key {key!r} (first set at line {first_seen[key]}); "
                    "YAML would silently keep only the last one",
                )
            first_seen.setdefault(key, key_line)
            value, value_lines = self.convert(value_node, (*path, key), ancestors)
            values[key] = value
            # drop lines of an earlier duplicate so nothing points at the value that lost
            for sub in [sub for sub in lines if sub[:1] == (key,)]:
                del lines[sub]
            lines.update({(key, *sub): line for sub, line in value_lines.items()})
            lines[(key,)] = key_line
        for merge_node in merges:
            self._merge(merge_node, path, ancestors, values, lines)
        return values, lines

    def _merge(
        self,
        node: yaml.Node,
        path: KeyPath,
        ancestors: frozenset[int],
        values: dict[str, Any],
        lines: dict[KeyPath, int],
    ) -> None:
        """``<<: *base``: keys of the merged map(s) fill in what the map itself does not set."""
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        for source in sources:
            if not isinstance(source, yaml.MappingNode):
                self.issue(source, path, "'<<' merges only mappings")
                continue
            merged, merged_lines = self.convert(source, path, ancestors)
            for key, value in merged.items():
                if key in values:
                    continue
                values[key] = value
                lines.update({sub: line for sub, line in merged_lines.items() if sub[:1] == (key,)})


def _describe_node(node: yaml.Node) -> str:
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return f"the value {node.value!r}"


def _unchanged(text: str) -> str:
    return text


def parse_yaml(
    text: str, filename: str, restore: Callable[[str], str] = _unchanged
) -> YamlDocument:
    """Parse one YAML document whose top level must be a mapping.

    ``restore`` maps every string (keys and values) as read, e.g. to put back placeholders.

    Raises ConfigError for what makes the file unusable (invalid YAML, empty, not a mapping,
    past a limit of ``rules.yaml_bounds``); softer problems (duplicate keys, odd tags) come back
    in ``issues`` next to the values.
    """
    check_size(text, filename)
    loader = BoundedLoader(text)
    try:
        try:
            root = loader.get_single_node()
        except YamlTooCostly as exc:
            raise ConfigError([ConfigIssue(filename, exc.line, "", exc.message)]) from exc
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark is not None else 0
            reason = exc.problem or exc.context or "unreadable"
            if exc.context and reason.startswith("but "):  # "expected X" + "but found Y"
                reason = f"{exc.context}, {reason}"
            raise ConfigError([ConfigIssue(filename, line, "", f"invalid YAML: {reason}")]) from exc
        except yaml.YAMLError as exc:  # reader errors (bad characters) carry no mark
            raise ConfigError([ConfigIssue(filename, 0, "", f"invalid YAML: {exc}")]) from exc
        if root is None:
            raise ConfigError([ConfigIssue(filename, 1, "", "the file is empty (no settings)")])
        if not isinstance(root, yaml.MappingNode):
            raise ConfigError(
                [
                    ConfigIssue(
                        filename,
                        root.start_mark.line + 1,
                        "",
                        "the top level must be a mapping of settings (key: value), "
                        f"got {_describe_node(root)}",
                    )
                ]
            )
        converter = _Converter(filename, loader, restore)
        data, lines = converter.convert(root, (), frozenset())
    finally:
        loader.dispose()
    return YamlDocument(data=data, lines=lines, issues=tuple(converter.issues))
