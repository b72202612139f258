"""The sandbox app's access scopes, checked as Shopify checks them: a root field the token has
no scope for is refused with `ACCESS_DENIED` (HTTP 200), naming the scope it needs."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import graphql

from connectors.sandbox.shopify_schema import shopify_error

# what a freshly installed stocksync app is granted (docs/shopify.md)
DEFAULT_SCOPES: tuple[str, ...] = (
    "read_orders",
    "read_products",
    "write_inventory",
    "read_locations",
    "write_merchant_managed_fulfillment_orders",
    "write_draft_orders",  # campaigns: customers pay through draft orders
)

# root fields the sandbox serves -> the scope each needs (absent: none, like `shop`)
ROOT_SCOPES: dict[str, str] = {
    "orders": "read_orders",
    "order": "read_orders",
    "productVariants": "read_products",
    "productVariant": "read_products",
    "inventoryItems": "read_inventory",
    "inventoryItem": "read_inventory",
    "locations": "read_locations",
    "location": "read_locations",
    "fulfillmentOrders": "read_merchant_managed_fulfillment_orders",
    "fulfillmentOrder": "read_merchant_managed_fulfillment_orders",
    "inventorySetQuantities": "write_inventory",
    "inventoryAdjustQuantities": "write_inventory",
    "fulfillmentOrderHold": "write_merchant_managed_fulfillment_orders",
    "fulfillmentOrderReleaseHold": "write_merchant_managed_fulfillment_orders",
    "draftOrder": "read_draft_orders",
    "draftOrders": "read_draft_orders",
    "draftOrderCreate": "write_draft_orders",
    "draftOrderInvoiceSend": "write_draft_orders",
    "draftOrderDelete": "write_draft_orders",
    "draftOrderComplete": "write_draft_orders",
}
DOCUMENTATION = "https://shopify.dev/api/usage/access-scopes"


def granted(scopes: Iterable[str]) -> set[str]:
    """The scopes a token holds: a `write_` scope includes its `read_` one."""
    held = set(scopes)
    return held | {"read_" + s[len("write_") :] for s in held if s.startswith("write_")}


def access_denied(
    document: graphql.DocumentNode, operation_name: str | None, scopes: Iterable[str]
) -> list[dict[str, Any]]:
    """Shopify's errors for the operation's root fields the scopes do not reach (empty: allowed)."""
    operation = graphql.get_operation_ast(document, operation_name)
    if operation is None:
        return []
    held = granted(scopes)
    errors = []
    for selection in operation.selection_set.selections:
        if not isinstance(selection, graphql.FieldNode):
            continue
        name = selection.name.value
        needed = ROOT_SCOPES.get(name)
        if needed is None or needed in held:
            continue
        location = selection.loc.source.get_location(selection.loc.start) if selection.loc else None
        errors.append(
            shopify_error(
                f"Access denied for {name} field. Required access: `{needed}` access scope.",
                "ACCESS_DENIED",
                locations=[{"line": location.line, "column": location.column}]
                if location
                else None,
                documentation=DOCUMENTATION,
                requiredAccess=f"`{needed}` access scope.",
            )
            | {"path": [selection.alias.value if selection.alias else name]}
        )
    return errors
