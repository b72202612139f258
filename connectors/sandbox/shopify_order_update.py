"""`orderUpdate` in the sandbox shop: an order's note (what stocksync's shop notes append
to), email, tags and custom attributes, each overwriting what the order had, as Shopify's
OrderInput documents them; the order's `orders/updated` webhook follows.

The other OrderInput fields (shippingAddress, phone, poNumber, metafields, localizedFields,
localizationExtensions) are refused with a top-level NOT_IMPLEMENTED error rather than taken
and dropped: a test relying on them finds out at once. Needs `write_orders` (or
`write_marketplace_orders`), checked with the other root fields (shopify_scopes.py).
"""

from __future__ import annotations

import re
from typing import Any

from graphql import GraphQLError, GraphQLResolveInfo

from connectors.sandbox.shopify_nodes import OrderNode, ctx
from connectors.sandbox.shopify_state import normalize_tags, parse_gid

SUPPORTED = frozenset({"id", "note", "email", "tags", "customAttributes"})
MAX_TAG_LENGTH = 40
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _error(message: str, field_path: list[str] | None) -> dict[str, Any]:
    return {"field": field_path, "message": message}


class OrderUpdateMutation:
    """Root mutation field orderUpdate."""

    def orderUpdate(
        self,
        info: GraphQLResolveInfo,
        input: dict[str, Any],  # noqa: A002 GraphQL argument name
    ) -> dict[str, Any]:
        unsupported = sorted(set(input) - SUPPORTED)
        if unsupported:
            raise GraphQLError(
                f"The sandbox does not implement orderUpdate's {', '.join(unsupported)}.",
                extensions={"code": "NOT_IMPLEMENTED"},
            )
        context = ctx(info)
        state = context.state
        order = state.orders.get(parse_gid(str(input["id"]), "Order") or -1)
        if order is None:
            return {"order": None, "userErrors": [_error("Order does not exist", ["id"])]}
        errors = []
        email = input.get("email")
        if email is not None and not _EMAIL.match(str(email)):
            errors.append(_error("Email is invalid", ["email"]))
        tags = input.get("tags")
        for tag in tags or []:
            if len(tag.strip()) > MAX_TAG_LENGTH:
                message = f"Tags exceeds the maximum length of {MAX_TAG_LENGTH} characters"
                errors.append(_error(message, ["tags"]))
                break
        if errors:
            return {"order": None, "userErrors": errors}
        if "note" in input:
            order.note = input["note"] or None
        if "email" in input:
            order.email = email
        if tags is not None:
            order.tags = normalize_tags(tags)
        attributes = input.get("customAttributes")
        if attributes is not None:
            order.custom_attributes = [(str(a["key"]), str(a["value"])) for a in attributes]
        order.updated_at = state.now()
        context.emit("orders/updated", order)
        return {"order": OrderNode(state, order), "userErrors": []}
