"""The mutations the connector uses, with the runtime rules Shopify enforces beyond the schema:
a required `@idempotent(key:)` on inventory mutations (a repeated key replays the first result),
`changeFromQuantity` present on every row and compared, at most 250 rows per input array.

Draft order mutations answer with Shopify's plain `UserError` (`field`, `message`; no `code`),
in the words and field paths real Shopify uses (most of them `field: null`)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from graphql import GraphQLError, GraphQLResolveInfo, get_directive_values

from connectors.sandbox.shopify_nodes import (
    DraftOrderNode,
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
    DraftError,
    DraftLine,
    DraftOrder,
    HoldError,
    ShopState,
    StockRefused,
    parse_gid,
)

MAX_INPUT_ROWS = 250
MAX_QUANTITY = 1_000_000_000
MAX_DRAFT_LINE_ITEMS = 499  # draftOrderCreate's lineItems input array limit
MAX_TAG_LENGTH = 40
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
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


def plain_error(message: str, field_path: list[str] | None = None) -> dict[str, Any]:
    """One entry of a `[UserError!]!` list (the type has no `code`)."""
    return {"field": field_path, "message": message}


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
        # the sandbox's orderCreate makes paid orders: paid outside Shopify, as "manual"
        state.record_transaction(
            created, "SALE", "SUCCESS", created.total_price(), gateway="manual"
        )
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

    # -- draft orders -------------------------------------------------------------------------
    def draftOrderCreate(
        self,
        info: GraphQLResolveInfo,
        input: dict[str, Any],  # noqa: A002 GraphQL argument name
    ) -> dict[str, Any]:
        context = ctx(info)
        state = context.state
        items = list(input.get("lineItems") or [])
        if len(items) > MAX_DRAFT_LINE_ITEMS:
            raise GraphQLError(
                f"The input array size of {len(items)} is greater than the maximum allowed of "
                f"{MAX_DRAFT_LINE_ITEMS}.",
                extensions={"code": "MAX_INPUT_SIZE_EXCEEDED", "path": ["input", "lineItems"]},
            )
        if not items:
            return {"draftOrder": None, "userErrors": [plain_error("Add at least 1 product")]}
        errors: list[dict[str, Any]] = []
        lines: list[DraftLine] = []
        for index, item in enumerate(items):
            line = _draft_line(state, item, index, errors)
            if line is not None:
                lines.append(line)
        tags = list(input.get("tags") or [])
        for index, tag in enumerate(tags):
            if len(tag.strip()) > MAX_TAG_LENGTH:
                errors.append(
                    plain_error(
                        f"Title Tag exceeds the maximum length of {MAX_TAG_LENGTH} characters",
                        ["tags", str(index)],
                    )
                )
        email = (input.get("email") or "").strip() or None
        if email is not None and not _EMAIL.match(email):
            errors.append(plain_error("Email is invalid", ["email"]))
        reserve_until = None
        if input.get("reserveInventoryUntil") is not None:
            reserve_until = _date_time(input["reserveInventoryUntil"], "reserveInventoryUntil")
            if reserve_until < state.now():
                errors.append(plain_error("Reserve until can't be in the past"))
        if errors:  # nothing is made when any part of the input is refused
            return {"draftOrder": None, "userErrors": errors}
        draft = state.create_draft(
            lines,
            email=email,
            custom_attributes=[(a["key"], a["value"]) for a in input.get("customAttributes") or []],
            tags=tags,
            note=input.get("note"),
            reserve_until=reserve_until,
            shop_domain=context.shop_domain,
        )
        return {"draftOrder": DraftOrderNode(state, draft), "userErrors": []}

    def draftOrderInvoiceSend(
        self,
        info: GraphQLResolveInfo,
        id: str,  # noqa: A002 GraphQL argument name
        email: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        state = ctx(info).state
        draft = _draft(state, id)
        if draft is None:
            return {"draftOrder": None, "userErrors": [plain_error("Draft order not found")]}
        email = email or {}
        to = (email.get("to") or draft.email or "").strip()
        errors = []
        if not to:
            errors.append(plain_error("To can't be blank"))
        if draft.status == "COMPLETED":
            errors.append(
                plain_error("Draft order Invoice can't be sent. This draft order is already paid.")
            )
        if not errors:
            state.send_invoice(
                draft,
                to=to,
                subject=email.get("subject"),
                custom_message=email.get("customMessage"),
            )
        # Shopify answers with the draft even when it refuses to send
        return {"draftOrder": DraftOrderNode(state, draft), "userErrors": errors}

    def draftOrderDelete(
        self,
        info: GraphQLResolveInfo,
        input: dict[str, Any],  # noqa: A002 GraphQL argument name
    ) -> dict[str, Any]:
        state = ctx(info).state
        draft = _draft(state, input["id"])
        if draft is None:
            return {
                "deletedId": None,
                "userErrors": [plain_error("Draft order does not exist", ["id"])],
            }
        try:
            state.delete_draft(draft)
        except DraftError as exc:
            return {"deletedId": None, "userErrors": [plain_error(str(exc), ["id"])]}
        return {"deletedId": input["id"].split("?", 1)[0], "userErrors": []}

    def draftOrderComplete(
        self,
        info: GraphQLResolveInfo,
        id: str,  # noqa: A002 GraphQL argument name
        paymentPending: bool | None = None,
        paymentGatewayId: str | None = None,
        **_: Any,
    ) -> dict[str, Any]:
        context = ctx(info)
        state = context.state
        draft = _draft(state, id)
        if draft is None:
            return {
                "draftOrder": None,
                "userErrors": [plain_error("Draft order does not exist", ["id"])],
            }
        error = None
        if draft.status == "COMPLETED":
            error = "This order has been paid"
        elif paymentGatewayId is not None:
            error = "Invalid payment gateway"  # the sandbox shop has no payment gateways
        else:
            try:
                order = state.complete_draft(draft, payment_pending=bool(paymentPending))
            except StockRefused as exc:
                error = f"Not enough inventory: {exc}"
            else:
                context.emit("orders/create", order)
        errors = [plain_error(error)] if error else []
        return {"draftOrder": DraftOrderNode(state, draft), "userErrors": errors}


def _draft(state: ShopState, draft_id: str) -> DraftOrder | None:
    return state.draft_orders.get(parse_gid(draft_id, "DraftOrder") or -1)


def _date_time(value: Any, name: str) -> datetime:
    """A DateTime input (the client schema passes it through as text); no zone means UTC."""
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise GraphQLError(
            f"Variable input.{name} has an invalid value: {value!r} is not an ISO-8601 date "
            "and time.",
            extensions={"code": "INVALID_VARIABLE"},
        ) from exc
    # Shopify keeps whole seconds
    return parsed.replace(tzinfo=parsed.tzinfo or UTC).astimezone(UTC).replace(microsecond=0)


def _draft_line(
    state: ShopState, item: dict[str, Any], index: int, errors: list[dict[str, Any]]
) -> DraftLine | None:
    """One DraftOrderLineItemInput; a variant line takes the catalog's SKU, title and price
    (Shopify ignores custom fields sent with a variantId), a custom line its own."""
    quantity = int(item["quantity"])
    if quantity < 1:
        errors.append(
            plain_error(
                "Quantity must be greater than or equal to 1",
                ["lineItems", str(index), "quantity"],
            )
        )
        return None
    if item.get("variantId"):
        raw = str(item["variantId"])
        variant = state.variants.get(parse_gid(raw, "ProductVariant") or -1)
        if variant is None:
            number = raw.rsplit("/", 1)[-1]
            errors.append(plain_error(f"Product with ID {number} is no longer available."))
            return None
        return DraftLine(
            state.next_id(), variant.id, variant.sku, variant.title, quantity, variant.price
        )
    title = (item.get("title") or "").strip()
    if not title:
        errors.append(plain_error("Merchandise title is empty."))
        return None
    price = item.get("originalUnitPrice")
    with_currency = item.get("originalUnitPriceWithCurrency") or item.get("priceOverride")
    if price is None and with_currency:
        price = with_currency.get("amount")
    try:
        amount = Decimal(str(price)) if price is not None else Decimal(0)
    except InvalidOperation as exc:  # Money is a string scalar: Shopify refuses it whole
        raise GraphQLError(
            f"Variable input.lineItems.{index}.originalUnitPrice has an invalid value: "
            f"{price!r} is not a decimal amount.",
            extensions={"code": "INVALID_VARIABLE"},
        ) from exc
    if amount < 0:
        errors.append(plain_error("Cannot send negative price for line_item"))
        return None
    return DraftLine(state.next_id(), None, item.get("sku"), title, quantity, f"{amount:.2f}")


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
    stamp = state.now()
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
    stamp = state.now()
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
        "createdAt": iso(state.now()),
        "reason": data["reason"],
        "referenceDocumentUri": data.get("referenceDocumentUri"),
        "changes": changes,
    }
