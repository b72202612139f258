"""The mutations the connector uses, with the runtime rules Shopify enforces beyond the schema:
a required `@idempotent(key:)` on inventory mutations (a repeated key replays the first result),
`changeFromQuantity` present on every row and compared, at most 250 rows per input array."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from graphql import GraphQLError, GraphQLResolveInfo, get_directive_values

from connectors.sandbox.shopify_nodes import (
    FulfillmentOrderNode,
    HoldNode,
    Idempotent,
    InventoryItemNode,
    LocationNode,
    OrderNode,
    ctx,
    iso,
)
from connectors.sandbox.shopify_state import (
    HoldError,
    ShopState,
    StockRefused,
    now_utc,
    parse_gid,
)

MAX_INPUT_ROWS = 250
MAX_QUANTITY = 1_000_000_000
INVENTORY_REASONS = {
    "correction",
    "cycle_count_available",
    "damaged",
    "movement_created",
    "movement_updated",
    "movement_received",
    "movement_canceled",
    "other",
    "promotion",
    "quality_control",
    "received",
    "reservation_created",
    "reservation_deleted",
    "reservation_updated",
    "restock",
    "safety_stock",
    "shrinkage",
}


def user_error(code: str, message: str, field_path: list[str] | None = None) -> dict[str, Any]:
    return {"code": code, "message": message, "field": field_path}


def idempotency_key(info: GraphQLResolveInfo) -> str:
    directive = info.schema.get_directive("idempotent")
    values = (
        get_directive_values(directive, info.field_nodes[0], info.variable_values)
        if directive
        else None
    )
    if not values or not values.get("key"):
        raise GraphQLError(
            f"The @idempotent directive is required for the {info.field_name} mutation "
            "(as of API version 2026-04).",
            extensions={"code": "BAD_REQUEST"},
        )
    return str(values["key"])


def check_rows(rows: list[Any], path: str) -> None:
    if len(rows) > MAX_INPUT_ROWS:
        raise GraphQLError(
            f"The input array size of {len(rows)} is greater than the maximum allowed of "
            f"{MAX_INPUT_ROWS}.",
            extensions={"code": "MAX_INPUT_SIZE_EXCEEDED", "path": path.split(".")},
        )


def replay_or_run(
    info: GraphQLResolveInfo, arguments: dict[str, Any], run: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    """Run a mutation once per idempotency key; a repeat with the same key and arguments
    returns the first result, with other arguments it is a user error."""
    key = idempotency_key(info)
    store = ctx(info).idempotency
    fingerprint = json.dumps(arguments, sort_keys=True, default=str)
    previous = store.get((info.field_name, key))
    if previous is not None:
        if previous.fingerprint != fingerprint:
            return {
                "userErrors": [
                    user_error(
                        "IDEMPOTENCY_KEY_PARAMETER_MISMATCH",
                        "The same idempotency key cannot be used with different operation "
                        "parameters.",
                    )
                ]
            }
        if previous.failed:
            return {
                "userErrors": [
                    user_error(
                        "IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED",
                        "A previous request with this idempotency key failed. Retry with a new "
                        "idempotency key.",
                    )
                ]
            }
        return previous.result
    result = run()
    store[(info.field_name, key)] = Idempotent(fingerprint, result, bool(result["userErrors"]))
    return result


def _quantity(level: Any, name: str) -> int:
    return int(level.on_hand if name == "on_hand" else level.available)


class MutationRoot:
    def inventorySetQuantities(
        self,
        info: GraphQLResolveInfo,
        input: dict[str, Any],  # noqa: A002 GraphQL argument name
    ) -> dict[str, Any]:
        rows = list(input["quantities"])
        check_rows(rows, "input.quantities")
        for index, row in enumerate(rows):
            if "changeFromQuantity" not in row:
                raise GraphQLError(
                    "changeFromQuantity is required on every quantity (pass null to skip the "
                    f"compare-and-swap check): input.quantities.{index}",
                    extensions={"code": "BAD_REQUEST"},
                )
        state = ctx(info).state
        return replay_or_run(info, input, lambda: _set_quantities(state, input))

    def inventoryAdjustQuantities(
        self,
        info: GraphQLResolveInfo,
        input: dict[str, Any],  # noqa: A002 GraphQL argument name
    ) -> dict[str, Any]:
        check_rows(list(input["changes"]), "input.changes")
        state = ctx(info).state
        return replay_or_run(info, input, lambda: _adjust_quantities(state, input))

    def orderCreate(
        self,
        info: GraphQLResolveInfo,
        order: dict[str, Any],
        options: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        context = ctx(info)
        state = context.state
        behaviour = (options or {}).get("inventoryBehaviour") or "BYPASS"
        lines = []
        for index, item in enumerate(order.get("lineItems") or []):
            variant = None
            if item.get("variantId"):
                variant = state.variants.get(parse_gid(item["variantId"], "ProductVariant") or -1)
                if variant is None:
                    return {
                        "order": None,
                        "userErrors": [
                            user_error(
                                "INVALID",
                                "Variant does not exist.",
                                ["order", "lineItems", str(index), "variantId"],
                            )
                        ],
                    }
            lines.append((variant, item.get("sku") or item.get("title"), int(item["quantity"])))
        if not lines:
            return {"order": None, "userErrors": [user_error("INVALID", "Line items are empty.")]}
        try:
            created = state.create_order(
                lines,
                order.get("email"),
                decrement=behaviour != "BYPASS",
                obey_policy=behaviour == "DECREMENT_OBEYING_POLICY",
                source_name=order.get("sourceName") or "graphql",
            )
        except StockRefused as exc:
            return {
                "order": None,
                "userErrors": [user_error("INVENTORY_CLAIM_FAILED", str(exc), ["order"])],
            }
        context.emit("orders/create", created)
        return {"order": OrderNode(state, created), "userErrors": []}

    def orderCancel(
        self,
        info: GraphQLResolveInfo,
        orderId: str,
        reason: str,
        restock: bool,
        **_: Any,
    ) -> dict[str, Any]:
        context = ctx(info)
        state = context.state
        order = state.orders.get(parse_gid(orderId, "Order") or -1)
        errors: list[dict[str, Any]] = []
        if order is None:
            errors.append(user_error("NOT_FOUND", "Order not found.", ["orderId"]))
        elif order.cancelled_at is not None:
            errors.append(user_error("INVALID", "Order has already been cancelled.", ["orderId"]))
        if errors:
            return {"job": None, "orderCancelUserErrors": errors, "userErrors": errors}
        assert order is not None  # narrowed above for mypy
        state.cancel_order(order, reason=reason, restock=restock)
        context.emit("orders/cancelled", order)
        context.emit("orders/updated", order)
        job = {"id": f"gid://shopify/Job/{state.next_id()}", "done": True}
        return {"job": job, "orderCancelUserErrors": [], "userErrors": []}

    def fulfillmentOrderHold(
        self,
        info: GraphQLResolveInfo,
        id: str,  # noqa: A002 GraphQL argument name
        fulfillmentHold: dict[str, Any],
    ) -> dict[str, Any]:
        state = ctx(info).state
        fo = state.fulfillment_orders.get(parse_gid(id, "FulfillmentOrder") or -1)
        empty = {
            "fulfillmentHold": None,
            "fulfillmentOrder": None,
            "remainingFulfillmentOrder": None,
        }
        if fo is None:
            error = user_error(
                "FULFILLMENT_ORDER_NOT_FOUND", "Fulfillment order not found.", ["id"]
            )
            return empty | {"userErrors": [error]}
        line_quantities: dict[int, int] = {}
        for entry in fulfillmentHold.get("fulfillmentOrderLineItems") or []:
            fol_id = parse_gid(entry["id"], "FulfillmentOrderLineItem") or -1
            if fol_id in line_quantities:
                error = user_error(
                    "DUPLICATED_FULFILLMENT_ORDER_LINE_ITEMS",
                    "must contain unique line item ids",
                    ["fulfillmentHold", "fulfillmentOrderLineItems"],
                )
                return empty | {"userErrors": [error]}
            line_quantities[fol_id] = int(entry["quantity"])
        try:
            hold, remaining = state.hold(
                fo,
                reason=fulfillmentHold["reason"],
                handle=fulfillmentHold.get("handle"),
                reason_notes=fulfillmentHold.get("reasonNotes"),
                line_quantities=line_quantities or None,
            )
        except HoldError as exc:
            return empty | {"userErrors": [user_error(exc.code, exc.message, exc.field_path)]}
        return {
            "fulfillmentHold": HoldNode(hold),
            "fulfillmentOrder": FulfillmentOrderNode(state, fo),
            "remainingFulfillmentOrder": FulfillmentOrderNode(state, remaining)
            if remaining
            else None,
            "userErrors": [],
        }

    def fulfillmentOrderReleaseHold(
        self,
        info: GraphQLResolveInfo,
        id: str,  # noqa: A002 GraphQL argument name
        holdIds: list[str] | None = None,
        **_: Any,
    ) -> dict[str, Any]:
        state = ctx(info).state
        fo = state.fulfillment_orders.get(parse_gid(id, "FulfillmentOrder") or -1)
        if fo is None or fo.status in ("CLOSED", "CANCELLED"):
            error = user_error(
                "FULFILLMENT_ORDER_NOT_FOUND", "Fulfillment order not found.", ["id"]
            )
            return {"fulfillmentOrder": None, "userErrors": [error]}
        ids = None
        if holdIds is not None:
            ids = [parse_gid(h, "FulfillmentHold") or -1 for h in holdIds]
        state.release(fo, ids)
        return {"fulfillmentOrder": FulfillmentOrderNode(state, fo), "userErrors": []}


def _set_quantities(state: ShopState, data: dict[str, Any]) -> dict[str, Any]:
    name, reason = data["name"], data["reason"]
    errors = []
    if name not in ("available", "on_hand"):
        errors.append(
            user_error(
                "INVALID_NAME",
                "The quantity name must be either 'available' or 'on_hand'.",
                ["input", "name"],
            )
        )
    if reason not in INVENTORY_REASONS:
        errors.append(
            user_error("INVALID_REASON", "The specified reason is invalid.", ["input", "reason"])
        )
    seen: set[tuple[str, str]] = set()
    targets = []
    for index, row in enumerate(data["quantities"]):
        path = ["input", "quantities", str(index)]
        item_id = parse_gid(row["inventoryItemId"], "InventoryItem")
        location_id = parse_gid(row["locationId"], "Location")
        level = state.level(item_id or -1, location_id or -1)
        quantity = row["quantity"]
        pair = (row["inventoryItemId"], row["locationId"])
        if item_id is None or state.variant_by_item(item_id) is None:
            code, msg, at = (
                "INVALID_INVENTORY_ITEM",
                "The specified inventory item could not be found.",
                "inventoryItemId",
            )
        elif location_id is None or location_id not in state.locations:
            code, msg, at = (
                "INVALID_LOCATION",
                "The specified location could not be found.",
                "locationId",
            )
        elif level is None:
            code, msg, at = (
                "ITEM_NOT_STOCKED_AT_LOCATION",
                "The item is not stocked at the location.",
                "locationId",
            )
        elif pair in seen:
            code, msg, at = (
                "NO_DUPLICATE_INVENTORY_ITEM_ID_GROUP_ID_PAIR",
                "The combination of inventoryItemId and locationId must be unique.",
                "inventoryItemId",
            )
        elif quantity < 0:
            code, msg, at = (
                "INVALID_QUANTITY_NEGATIVE",
                "The quantity can't be negative.",
                "quantity",
            )
        elif quantity > MAX_QUANTITY:
            code, msg, at = (
                "INVALID_QUANTITY_TOO_HIGH",
                "The quantity can't be higher than 1,000,000,000.",
                "quantity",
            )
        elif (
            row["changeFromQuantity"] is not None
            and name in ("available", "on_hand")
            and row["changeFromQuantity"] != _quantity(level, name)
        ):
            code, msg, at = (
                "CHANGE_FROM_QUANTITY_STALE",
                "The changeFromQuantity value does not match persisted value.",
                "changeFromQuantity",
            )
        else:
            seen.add(pair)
            targets.append((level, quantity, item_id, location_id))
            continue
        seen.add(pair)
        errors.append(user_error(code, msg, [*path, at]))
    if errors:  # all or nothing: one bad row fails the whole call
        return {"inventoryAdjustmentGroup": None, "userErrors": errors}
    stamp = now_utc()
    changes = []
    for level, quantity, item_id, location_id in targets:
        delta = quantity - _quantity(level, name)
        level.available += delta  # on_hand moves with available: committed is untouched
        level.updated_at = stamp
        for changed in ("available", "on_hand"):
            changes.append(
                _change(state, changed, delta, _quantity(level, changed), item_id, location_id)
            )
    return {"inventoryAdjustmentGroup": _group(state, data, changes), "userErrors": []}


def _adjust_quantities(state: ShopState, data: dict[str, Any]) -> dict[str, Any]:
    name = data["name"]
    errors = []
    if name not in ("available", "on_hand"):
        errors.append(
            user_error(
                "INVALID_QUANTITY_NAME",
                f"{name!r} is not a valid quantity name.",
                ["input", "name"],
            )
        )
    if data["reason"] not in INVENTORY_REASONS:
        errors.append(
            user_error("INVALID_REASON", "The specified reason is invalid.", ["input", "reason"])
        )
    targets = []
    for index, row in enumerate(data["changes"]):
        path = ["input", "changes", str(index)]
        item_id = parse_gid(row["inventoryItemId"], "InventoryItem") or -1
        location_id = parse_gid(row["locationId"], "Location") or -1
        level = state.level(item_id, location_id)
        if level is None:
            errors.append(
                user_error(
                    "ITEM_NOT_STOCKED_AT_LOCATION",
                    "The item is not stocked at the location.",
                    [*path, "inventoryItemId"],
                )
            )
            continue
        expected = row.get("changeFromQuantity")
        if expected is not None and expected != _quantity(level, name):
            errors.append(
                user_error(
                    "CHANGE_FROM_QUANTITY_STALE",
                    "The changeFromQuantity value does not match persisted value.",
                    [*path, "changeFromQuantity"],
                )
            )
            continue
        targets.append((level, int(row["delta"]), item_id, location_id))
    if errors:
        return {"inventoryAdjustmentGroup": None, "userErrors": errors}
    stamp = now_utc()
    changes = []
    for level, delta, item_id, location_id in targets:
        level.available += delta
        level.updated_at = stamp
        for changed in ("available", "on_hand"):
            changes.append(
                _change(state, changed, delta, _quantity(level, changed), item_id, location_id)
            )
    return {"inventoryAdjustmentGroup": _group(state, data, changes), "userErrors": []}


def _change(
    state: ShopState, name: str, delta: int, after: int, item_id: int, location_id: int
) -> dict[str, Any]:
    variant = state.variant_by_item(item_id)
    return {
        "name": name,
        "delta": delta,
        "quantityAfterChange": after,
        "item": InventoryItemNode(state, variant) if variant else None,
        "location": LocationNode(state, state.locations[location_id]),
    }


def _group(state: ShopState, data: dict[str, Any], changes: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": f"gid://shopify/InventoryAdjustmentGroup/{state.next_id()}",
        "createdAt": iso(now_utc()),
        "reason": data["reason"],
        "referenceDocumentUri": data.get("referenceDocumentUri"),
        "changes": changes,
    }
