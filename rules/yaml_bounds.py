"""Limits that keep a hostile or mistaken YAML file from costing more than a real config would.

PyYAML composes an alias as the very node its anchor names, so composing stays linear in the
file; but everything that walks the tree afterwards (our line-keeping converter, PyYAML's
constructor) walks that node again at every alias. Nine lines of nine aliases each, under 1 KB,
expand to 9**9 values ("billion laughs": gigabytes and minutes). ``BoundedLoader`` adds up, as it
composes, how many values each alias stands for and stops at a budget far above what shared
defaults (``<<: *rule`` in a few hundred rules) need. It also bounds nesting, which PyYAML's
composer and our converter follow by recursion, and the size of the file itself.
"""

from __future__ import annotations

import yaml

from rules.errors import ConfigError, ConfigIssue

# a real config is a few KB; even 10,000 sku rules stay well under this
MAX_CONFIG_BYTES = 1024 * 1024
# values that aliases may add to the document (a `<<: *rule` of 6 keys adds ~13)
MAX_ALIAS_NODES = 10_000
# mappings and lists inside one another; a config needs about 5
MAX_NESTING = 64


class YamlTooCostly(Exception):
    """The document passes a limit at ``line`` (1-based); the message says which."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


class BoundedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that raises YamlTooCostly past MAX_ALIAS_NODES or MAX_NESTING."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        # values under each finished collection node (a scalar is 1), by id: every node stays
        # alive in the tree being composed, so no id is reused while this loader is in use
        self._sizes: dict[int, int] = {}
        self._alias_nodes = 0
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event: yaml.Event = self.peek_event()  # type: ignore[no-untyped-call]  # stubs: untyped
        line = event.start_mark.line + 1 if event.start_mark is not None else 0
        if isinstance(event, yaml.AliasEvent):
            node = super().compose_node(parent, index)
            # an alias inside its own anchor finds the node unfinished (no size yet): the
            # converter reports that recursion; here it counts as one value
            self._alias_nodes += self._sizes.get(id(node), 1)
            if self._alias_nodes > MAX_ALIAS_NODES:
                raise YamlTooCostly(
                    line,
                    f"YAML aliases expand to more than {MAX_ALIAS_NODES:,} values (each alias "
                    "repeats what its anchor holds); write the values out or use fewer aliases",
                )
            return node
        self._depth += 1
        if self._depth > MAX_NESTING:
            raise YamlTooCostly(
                line,
                f"YAML nested more than {MAX_NESTING} levels deep; a config needs a handful",
            )
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if isinstance(node, yaml.CollectionNode):
            children = _children(node)
            self._sizes[id(node)] = 1 + sum(self._sizes.get(id(child), 1) for child in children)
        return node


def check_size(content: str | bytes, filename: str) -> None:
    """ConfigError when ``content`` is over MAX_CONFIG_BYTES, at the line where it passes it."""
    if isinstance(content, str):
        if len(content) * 4 <= MAX_CONFIG_BYTES:  # no character takes more than 4 bytes
            return
        content = content.encode("utf-8", errors="surrogatepass")
    if len(content) <= MAX_CONFIG_BYTES:
        return
    line = content[:MAX_CONFIG_BYTES].count(b"\n") + 1
    message = f"the file is larger than {MAX_CONFIG_BYTES:,} bytes, the most a config may be"
    raise ConfigError([ConfigIssue(filename, line, "", message)])
