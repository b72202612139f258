"""The real Shopify Admin GraphQL schema (from fixtures) and Shopify's static query cost.

The schema is Shopify's own introspection result; graphql-core parses and validates every document
the sandbox receives against it, so a field or argument real Shopify lacks is rejected here too.
"""

from __future__ import annotations

import functools
import gzip
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import graphql
from graphql.language import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
)

# Shipped with the package (copies of Shopify's own introspection results; see SOURCES.md there);
# STOCKSYNC_SHOPIFY_SCHEMA_DIR points at another folder of admin_<version>.json.gz files.
PACKAGED_SCHEMAS = Path(__file__).resolve().parent / "schemas"
SCHEMA_DIR_ENV = "STOCKSYNC_SHOPIFY_SCHEMA_DIR"
SCHEMA_VERSIONS = ("2026-07", "2026-10")
DEFAULT_VERSION = "2026-07"
SINGLE_QUERY_MAX_COST = 1000  # Shopify refuses any one query whose requested cost exceeds this
MUTATION_COST = 10
MAX_PAGE_SIZE = 250


def schema_path(version: str) -> Path:
    directory = os.environ.get(SCHEMA_DIR_ENV)
    return (Path(directory) if directory else PACKAGED_SCHEMAS) / f"admin_{version}.json.gz"


@functools.lru_cache(maxsize=len(SCHEMA_VERSIONS))
def load_schema(version: str = DEFAULT_VERSION) -> graphql.GraphQLSchema:
    """Build the client schema once per version; it is large (about half a second)."""
    path = schema_path(version)
    if not path.exists():
        raise FileNotFoundError(f"no Shopify schema fixture for API version {version}: {path}")
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        data = json.load(fh)["data"]
    schema = graphql.build_client_schema(data)
    # Shopify's schema breaks one deprecation rule graphql-core checks on first validation;
    # marking the schema as already checked skips that self-check, not document validation.
    schema._validation_errors = []
    return schema


# graphql-core messages -> the camelCase codes Shopify puts in extensions.code
_VALIDATION_CODES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^Cannot query field"), "undefinedField"),
    (re.compile(r"^Unknown argument"), "argumentNotAccepted"),
    (re.compile(r"argument .* is required, but it was not provided"), "missingRequiredArguments"),
    (re.compile(r"^Unknown type"), "undefinedType"),
    (re.compile(r"^Unknown directive"), "undefinedDirective"),
    (re.compile(r"^Variable .* is never used"), "variableNotUsed"),
    (re.compile(r"^Variable .* is not defined"), "undefinedVariable"),
    (re.compile(r"cannot represent|Expected value of type"), "argumentLiteralsIncompatible"),
    (re.compile(r"must have a selection of subfields"), "selectionMismatch"),
)


def validation_code(message: str) -> str:
    for pattern, code in _VALIDATION_CODES:
        if pattern.search(message):
            return code
    return "GRAPHQL_VALIDATION_FAILED"


def shopify_error(
    message: str, code: str, *, locations: Any = None, **extra: Any
) -> dict[str, Any]:
    """One entry of a top-level `errors` array, as Shopify shapes it."""
    error: dict[str, Any] = {"message": message}
    if locations:
        error["locations"] = locations
    error["extensions"] = {"code": code, **extra}
    return error


def graphql_error_json(error: graphql.GraphQLError, code: str) -> dict[str, Any]:
    locations = [{"line": loc.line, "column": loc.column} for loc in error.locations or []]
    extra = dict(error.extensions or {})
    code = str(extra.pop("code", code))
    path = {"path": list(error.path)} if error.path else {}
    out = shopify_error(error.message, code, locations=locations, **extra)
    out.update(path)
    return out


class CostError(ValueError):
    """A document whose cost cannot be computed the way Shopify requires (e.g. unbounded page)."""


def requested_cost(
    schema: graphql.GraphQLSchema,
    document: graphql.DocumentNode,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
) -> int:
    """Shopify's documented static cost: scalars and enums 0, objects 1, connections
    2 + page size x node cost, each mutation field 10."""
    operation = graphql.get_operation_ast(document, operation_name)
    if operation is None:
        raise CostError("no operation to run")
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    walker = _CostWalker(schema, fragments, dict(variables or {}))
    return walker.operation(operation)


class _CostWalker:
    def __init__(
        self,
        schema: graphql.GraphQLSchema,
        fragments: Mapping[str, FragmentDefinitionNode],
        variables: Mapping[str, Any],
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables

    def operation(self, operation: OperationDefinitionNode) -> int:
        root = self.schema.get_root_type(operation.operation)
        if root is None:
            raise CostError(f"schema has no {operation.operation.value} root")
        if operation.operation == graphql.OperationType.MUTATION:
            return MUTATION_COST * len(list(self._fields(root, operation.selection_set)))
        return self.selections(root, operation.selection_set)

    def _fields(
        self, parent: graphql.GraphQLNamedType, selection_set: SelectionSetNode
    ) -> list[tuple[graphql.GraphQLNamedType, FieldNode]]:
        found: list[tuple[graphql.GraphQLNamedType, FieldNode]] = []
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                found.append((parent, selection))
            elif isinstance(selection, InlineFragmentNode):
                cond = selection.type_condition
                target = self.schema.get_type(cond.name.value) if cond else parent
                found.extend(self._fields(target or parent, selection.selection_set))
            elif isinstance(selection, FragmentSpreadNode):
                fragment = self.fragments.get(selection.name.value)
                if fragment is not None:
                    target = self.schema.get_type(fragment.type_condition.name.value)
                    found.extend(self._fields(target or parent, fragment.selection_set))
        return found

    def selections(self, parent: graphql.GraphQLNamedType, selection_set: SelectionSetNode) -> int:
        total = 0
        for owner, node in self._fields(parent, selection_set):
            total += self.field(owner, node)
        return total

    def field(self, owner: graphql.GraphQLNamedType, node: FieldNode) -> int:
        if node.name.value.startswith("__") or not isinstance(
            owner, graphql.GraphQLObjectType | graphql.GraphQLInterfaceType
        ):
            return 0
        definition = owner.fields.get(node.name.value)
        if definition is None:
            return 0
        named = graphql.get_named_type(definition.type)
        if graphql.is_leaf_type(named) or node.selection_set is None:
            return 0
        if named.name.endswith("Connection"):
            size = self._page_size(node)
            return 2 + size * self._node_cost(named, node.selection_set)
        return 1 + self.selections(named, node.selection_set)

    def _node_cost(
        self, connection: graphql.GraphQLNamedType, selection_set: SelectionSetNode
    ) -> int:
        cost = 0
        for owner, node in self._fields(connection, selection_set):
            name = node.name.value
            if name == "nodes" and node.selection_set is not None:
                cost += self.field(owner, node)
            elif name == "edges" and node.selection_set is not None:
                edge_type = graphql.get_named_type(_field_type(owner, name))
                if edge_type is None:
                    continue
                for edge_owner, edge_field in self._fields(edge_type, node.selection_set):
                    cost += self.field(edge_owner, edge_field)
        return cost

    def _page_size(self, node: FieldNode) -> int:
        for argument in node.arguments:
            if argument.name.value not in ("first", "last"):
                continue
            value = argument.value
            if isinstance(value, IntValueNode):
                return int(value.value)
            if isinstance(value, VariableNode):
                given = self.variables.get(value.name.value)
                if isinstance(given, int):
                    return given
        raise CostError(f"you must provide one of first or last for the {node.name.value} field")


def _field_type(owner: graphql.GraphQLNamedType, name: str) -> graphql.GraphQLOutputType | None:
    fields = getattr(owner, "fields", None)
    definition = fields.get(name) if fields else None
    return definition.type if definition is not None else None
