"""Every GraphQL document the connector sends is valid for the pinned schemas and affordable."""

from __future__ import annotations

from typing import Any

import graphql
import pytest

from connectors import shopify_queries as q
from connectors.sandbox.shopify_schema import (
    SCHEMA_VERSIONS,
    SINGLE_QUERY_MAX_COST,
    load_schema,
    requested_cost,
)

# the variables the connector sends with each document (page sizes drive the cost)
VARIABLES: dict[str, dict[str, Any]] = {
    "ORDERS": {"first": q.ORDERS_PAGE_SIZE},
    "VARIANTS_BY_SKU": {"first": q.SKU_BATCH_SIZE},
}


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
@pytest.mark.parametrize("name", sorted(q.ALL_DOCUMENTS))
def test_document_validates_against_schema(version: str, name: str) -> None:
    schema = load_schema(version)
    errors = graphql.validate(schema, graphql.parse(q.ALL_DOCUMENTS[name]))
    assert errors == [], [e.message for e in errors]


@pytest.mark.parametrize("name", sorted(q.ALL_DOCUMENTS))
def test_document_cost_fits_single_query_limit(name: str) -> None:
    schema = load_schema("2026-07")
    cost = requested_cost(schema, graphql.parse(q.ALL_DOCUMENTS[name]), None, VARIABLES.get(name))
    assert 0 < cost <= SINGLE_QUERY_MAX_COST


def test_orders_page_is_the_largest_that_fits() -> None:
    schema = load_schema("2026-07")
    document = graphql.parse(q.ORDERS)
    bigger = requested_cost(schema, document, None, {"first": q.ORDERS_PAGE_SIZE + 1})
    assert bigger > SINGLE_QUERY_MAX_COST


def test_idempotent_directive_is_on_the_mutation_field() -> None:
    document = graphql.parse(q.SET_QUANTITIES)
    operation = document.definitions[0]
    assert isinstance(operation, graphql.OperationDefinitionNode)
    assert not operation.directives
    field = operation.selection_set.selections[0]
    assert isinstance(field, graphql.FieldNode)
    assert [d.name.value for d in field.directives] == ["idempotent"]


def test_a_wrong_field_is_caught_by_the_same_check() -> None:
    schema = load_schema("2026-07")
    broken = q.SET_QUANTITIES.replace("userErrors { code", "userErrors { kode")
    assert graphql.validate(schema, graphql.parse(broken))
