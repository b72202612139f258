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
    "write_products",  # shop pages: the expected date metafield of variants (issue #17)
)
# what deposits on Shopify will need (pre-order selling plans, charging the balance, emailing
# the payment link, refunds):
# stocksync does not use them yet, so a fresh app is not granted them; tests ask for them
DEPOSIT_SCOPES: tuple[str, ...] = (
    "write_products",
    "write_purchase_options",
    "write_payment_mandate",
    "write_orders",
)

# a requirement beyond one scope: every group is needed, a group is met by any one of its scopes
Requirement = tuple[tuple[str, ...], ...]
# Shopify documents the selling plan mutations as needing `write_products` as well as either
# `write_own_subscription_contracts` or `write_purchase_options`
_SELLING_PLAN_WRITE: Requirement = (
    ("write_products",),
    ("write_own_subscription_contracts", "write_purchase_options"),
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
    "sellingPlanGroup": "read_products",
    "sellingPlanGroups": "read_products",
    "orderPaymentStatus": "read_orders",
    "orderCreateMandatePayment": "write_payment_mandate",
    "orderInvoiceSend": "write_orders",
    "orderCreate": "write_orders",
    "orderCancel": "write_orders",
    "orderCapture": "write_orders",
    "refundCreate": "write_orders",
}
ROOT_REQUIREMENTS: dict[str, Requirement] = {
    # "Requires write_orders access scope or write_marketplace_orders access scope."
    "orderUpdate": (("write_orders", "write_marketplace_orders"),),
    # metafieldsSet and metafieldsDelete need the access of the metafields' owners: checked
    # where they run (shopify_metafields.py), not by root field
    "sellingPlanGroupCreate": _SELLING_PLAN_WRITE,
    "sellingPlanGroupUpdate": _SELLING_PLAN_WRITE,
    "sellingPlanGroupAddProductVariants": _SELLING_PLAN_WRITE,
    "sellingPlanGroupRemoveProductVariants": _SELLING_PLAN_WRITE,
    "sellingPlanGroupDelete": _SELLING_PLAN_WRITE,
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
        requirement = ROOT_REQUIREMENTS.get(name)
        if requirement is None and name in ROOT_SCOPES:
            requirement = ((ROOT_SCOPES[name],),)
        if requirement is None or all(held.intersection(group) for group in requirement):
            continue
        needed = _describe(requirement)
        location = selection.loc.source.get_location(selection.loc.start) if selection.loc else None
        errors.append(
            shopify_error(
                f"Access denied for {name} field. Required access: {needed}.",
                "ACCESS_DENIED",
                locations=[{"line": location.line, "column": location.column}]
                if location
                else None,
                documentation=DOCUMENTATION,
                requiredAccess=f"{needed}.",
            )
            | {"path": [selection.alias.value if selection.alias else name]}
        )
    return errors


def _describe(requirement: Requirement) -> str:
    """`read_orders` access scope; `a` access scope, and any of `b`, `c` access scopes."""
    parts = []
    for group in requirement:
        names = ", ".join(f"`{scope}`" for scope in group)
        parts.append(
            f"{names} access scope" if len(group) == 1 else f"any of {names} access scopes"
        )
    return ", and ".join(parts)
