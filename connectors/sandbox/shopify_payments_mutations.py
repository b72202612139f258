"""Mutations for pre-orders and deferred payments: selling plan groups (fixed billing plans
only), `orderCreateMandatePayment`, `orderInvoiceSend`, `orderCapture` and `refundCreate`, with
the rules Shopify enforces beyond the schema.

Selling plan mutations answer with `SellingPlanGroupUserError` (code, field, message) and are
all or nothing; `orderCreateMandatePayment` with `OrderCreateMandatePaymentUserError` and
`orderInvoiceSend` with `OrderInvoiceSendUserError` (each type has one code); `orderCapture` and
`refundCreate` with the plain `UserError` (no code). `refundCreate` needs `@idempotent(key:)`
(required from API version 2026-04) and replays a repeated key.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from graphql import GraphQLResolveInfo

from connectors.sandbox.shopify_mutations import plain_error, replay_or_run, user_error
from connectors.sandbox.shopify_nodes import (
    Context,
    Emit,
    OrderNode,
    RefundNode,
    TransactionNode,
    ctx,
)
from connectors.sandbox.shopify_payments_nodes import SellingPlanGroupNode
from connectors.sandbox.shopify_payments_state import (
    RESTOCK_TYPES,
    MandatePayment,
    SellingPlanGroup,
    balance_due,
    balance_url,
    captured_left,
    charge_mandate,
    refund,
)
from connectors.sandbox.shopify_selling_plans import (
    Errors,
    apply_group_fields,
    assign_ids,
    check_group,
    decimal_input,
    known_products,
    known_variants,
    parse_plan,
)
from connectors.sandbox.shopify_state import (
    LineItem,
    Order,
    ShopState,
    Transaction,
    gid,
    parse_gid,
)
from connectors.sandbox.shopify_webhooks import refund_rest_json

MANDATE_ERROR = "ORDER_MANDATE_PAYMENT_ERROR_CODE"  # the one OrderCreateMandatePaymentUserErrorCode
INVOICE_ERROR = "ORDER_INVOICE_SEND_UNSUCCESSFUL"  # the one OrderInvoiceSendUserErrorCode
SHOP_CURRENCY = "USD"


def _cents(amount: Decimal) -> str:
    return f"{amount.quantize(Decimal('0.01')):f}"


def _group_errors(errors: Errors, **extra: Any) -> dict[str, Any]:
    return {"sellingPlanGroup": None, **extra, "userErrors": errors}


def _missing_group() -> dict[str, Any]:
    return user_error("GROUP_DOES_NOT_EXIST", "Selling plan group does not exist.", ["id"])


def _no_group(**extra: Any) -> dict[str, Any]:
    return _group_errors([_missing_group()], **extra)


def _group_id(id_text: str) -> int:  # an unknown or malformed id finds no group
    return parse_gid(id_text, "SellingPlanGroup") or -1


# -- payments ----------------------------------------------------------------------------------
def _mandate_error(message: str, path: list[str] | None) -> dict[str, Any]:
    return {
        "job": None,
        "jobResult": None,
        "paymentReferenceId": None,
        "userErrors": [user_error(MANDATE_ERROR, message, path)],
    }


def _mandate_result(state: ShopState, record: MandatePayment) -> dict[str, Any]:
    order = state.orders[record.order_id]
    transaction = next(t for t in order.transactions if t.id == record.transaction_id)
    errors = []
    if not transaction.succeeded:
        errors.append(plain_error(f"Payment failed: {transaction.error_code}"))
    job = {"id": record.job_id, "done": True, "query": None}
    return {
        "job": job,
        "jobResult": {
            "id": record.job_id,
            "done": True,
            "status": "SUCCEEDED" if transaction.succeeded else "FAILED",
            "errors": errors,
            "order": OrderNode(state, order),
        },
        "paymentReferenceId": record.reference,
        "userErrors": [],
    }


def announce_payment(emit: Emit, order: Order, was: str) -> None:
    """Webhooks after money moved: orders/paid when the order just became paid. `emit` is a
    request's (a mutation) or the sandbox's own sender (the customer paying a link)."""
    if order.display_financial_status() == "PAID" and was != "PAID":
        emit("orders/paid", order)
    emit("orders/updated", order)


def _invoice_result(
    state: ShopState, order: Order | None, error: dict[str, Any] | None = None
) -> dict[str, Any]:
    # like draftOrderInvoiceSend, the payload carries the order even when nothing was sent
    return {
        "order": OrderNode(state, order) if order else None,
        "userErrors": [error] if error else [],
    }


def _job_id(state: ShopState) -> str:
    job = f"gid://shopify/Job/{uuid.uuid4()}"
    state.jobs.add(job)
    return job


class PaymentMutations:
    """Mutation root fields for selling plans and payments (mixed into the mutation root)."""

    # -- selling plan groups ----------------------------------------------------------------
    def sellingPlanGroupCreate(
        self,
        info: GraphQLResolveInfo,
        input: dict[str, Any],  # noqa: A002 GraphQL argument name
        resources: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        state = ctx(info).state
        errors: Errors = []
        stamp = state.now()
        group = SellingPlanGroup(
            id=0,
            name=input.get("name") or "",
            merchant_code=input.get("merchantCode") or "",
            options=[],
            plans=[],
            created_at=stamp,
            updated_at=stamp,
        )
        apply_group_fields(group, input)
        paths: dict[int, list[str]] = {}
        for index, data in enumerate(input.get("sellingPlansToCreate") or []):
            path = ["input", "sellingPlansToCreate", str(index)]
            plan = parse_plan(state, data, path, errors)
            if plan is not None:
                paths[len(group.plans)] = path
                group.plans.append(plan)
        for name in ("sellingPlansToUpdate", "sellingPlansToDelete"):
            if input.get(name):
                errors.append(
                    user_error(
                        "PLAN_DOES_NOT_EXIST", "Selling plan does not exist.", ["input", name]
                    )
                )
        if not errors:
            check_group(group, paths, errors)
        resources = resources or {}
        at = ["resources", "productVariantIds"]
        variant_ids = known_variants(state, resources.get("productVariantIds") or [], at, errors)
        at = ["resources", "productIds"]
        product_ids = known_products(state, resources.get("productIds") or [], at, errors)
        if errors:  # nothing is saved when any part of the input is refused
            return _group_errors(errors)
        group.id = state.next_id()
        assign_ids(state, group)
        group.variant_ids, group.product_ids = variant_ids, product_ids
        state.selling_plan_groups[group.id] = group
        return {"sellingPlanGroup": SellingPlanGroupNode(state, group), "userErrors": []}

    def sellingPlanGroupUpdate(
        self,
        info: GraphQLResolveInfo,
        id: str,  # noqa: A002 GraphQL argument name
        input: dict[str, Any],  # noqa: A002 GraphQL argument name
    ) -> dict[str, Any]:
        state = ctx(info).state
        current = state.selling_plan_groups.get(_group_id(id))
        if current is None:
            return _no_group(deletedSellingPlanIds=None)
        group = copy.deepcopy(current)  # edits land only if the whole input is accepted
        apply_group_fields(group, input)
        errors: Errors = []
        deleted: list[str] = []
        for index, raw in enumerate(input.get("sellingPlansToDelete") or []):
            number = parse_gid(raw, "SellingPlan")
            if not any(p.id == number for p in group.plans):
                path = ["input", "sellingPlansToDelete", str(index)]
                errors.append(
                    user_error("PLAN_DOES_NOT_EXIST", "Selling plan does not exist.", path)
                )
                continue
            group.plans = [p for p in group.plans if p.id != number]
            deleted.append(gid("SellingPlan", number or 0))
        paths: dict[int, list[str]] = {}
        for index, data in enumerate(input.get("sellingPlansToUpdate") or []):
            path = ["input", "sellingPlansToUpdate", str(index)]
            if not data.get("id"):
                errors.append(
                    user_error(
                        "PLAN_ID_MUST_BE_SPECIFIED_TO_UPDATE",
                        "Selling plan ID must be specified to update.",
                        [*path, "id"],
                    )
                )
                continue
            number = parse_gid(data["id"], "SellingPlan")
            position = next((i for i, p in enumerate(group.plans) if p.id == number), None)
            if position is None:
                errors.append(
                    user_error("PLAN_DOES_NOT_EXIST", "Selling plan does not exist.", [*path, "id"])
                )
                continue
            plan = parse_plan(state, data, path, errors, base=group.plans[position])
            if plan is not None:
                group.plans[position] = plan
                paths[position] = path
        for index, data in enumerate(input.get("sellingPlansToCreate") or []):
            path = ["input", "sellingPlansToCreate", str(index)]
            plan = parse_plan(state, data, path, errors)
            if plan is not None:
                paths[len(group.plans)] = path
                group.plans.append(plan)
        if not errors:
            check_group(group, paths, errors)
        if errors:
            return _group_errors(errors, deletedSellingPlanIds=None)
        assign_ids(state, group)
        group.updated_at = state.now()
        state.selling_plan_groups[group.id] = group
        return {
            "sellingPlanGroup": SellingPlanGroupNode(state, group),
            "deletedSellingPlanIds": deleted,
            "userErrors": [],
        }

    def sellingPlanGroupAddProductVariants(
        self,
        info: GraphQLResolveInfo,
        id: str,  # noqa: A002 GraphQL argument name
        productVariantIds: list[str],
    ) -> dict[str, Any]:
        state = ctx(info).state
        group = state.selling_plan_groups.get(_group_id(id))
        if group is None:
            return _no_group()
        errors: Errors = []
        found = known_variants(state, productVariantIds, ["productVariantIds"], errors)
        if errors:
            return _group_errors(errors)
        group.variant_ids.extend(v for v in found if v not in group.variant_ids)
        group.updated_at = state.now()
        return {"sellingPlanGroup": SellingPlanGroupNode(state, group), "userErrors": []}

    def sellingPlanGroupRemoveProductVariants(
        self,
        info: GraphQLResolveInfo,
        id: str,  # noqa: A002 GraphQL argument name
        productVariantIds: list[str],
    ) -> dict[str, Any]:
        state = ctx(info).state
        group = state.selling_plan_groups.get(_group_id(id))
        if group is None:
            return {"removedProductVariantIds": None, "userErrors": [_missing_group()]}
        wanted = {parse_gid(raw, "ProductVariant") for raw in productVariantIds}
        removed = [v for v in group.variant_ids if v in wanted]
        group.variant_ids = [v for v in group.variant_ids if v not in wanted]
        group.updated_at = state.now()
        return {
            "removedProductVariantIds": [gid("ProductVariant", v) for v in removed],
            "userErrors": [],
        }

    def sellingPlanGroupDelete(
        self,
        info: GraphQLResolveInfo,
        id: str,  # noqa: A002 GraphQL argument name
    ) -> dict[str, Any]:
        state = ctx(info).state
        group = state.selling_plan_groups.pop(_group_id(id), None)
        if group is None:
            return {"deletedSellingPlanGroupId": None, "userErrors": [_missing_group()]}
        # orders keep the plan's id and name as they were at the sale
        return {"deletedSellingPlanGroupId": gid("SellingPlanGroup", group.id), "userErrors": []}

    # -- deferred payments -----------------------------------------------------------------
    def orderCreateMandatePayment(
        self,
        info: GraphQLResolveInfo,
        id: str,  # noqa: A002 GraphQL argument name
        mandateId: str,
        idempotencyKey: str,
        amount: dict[str, Any] | None = None,
        autoCapture: bool | None = True,
        paymentScheduleId: str | None = None,
    ) -> dict[str, Any]:
        context = ctx(info)
        state = context.state
        auto_capture = autoCapture is not False  # the argument defaults to true
        key = idempotencyKey.strip()
        if not key:
            return _mandate_error("Idempotency key can't be blank", ["idempotencyKey"])
        order_id = parse_gid(id, "Order")
        mandate_id = parse_gid(mandateId, "PaymentMandate")
        requested = None
        if amount is not None:
            value = decimal_input(amount["amount"], "amount.amount")
            requested = f"{value.normalize():f} {amount['currencyCode']}"
        previous = state.mandate_payments.get(key)
        if previous is not None:
            asked = (order_id, mandate_id, requested, auto_capture)
            if asked != (
                previous.order_id,
                previous.mandate_id,
                previous.amount,
                previous.auto_capture,
            ):
                return _mandate_error(
                    "The idempotency key was already used for a different payment request",
                    ["idempotencyKey"],
                )
            return _mandate_result(state, previous)  # the first result, not a second charge
        order = state.orders.get(order_id or -1)
        if order is None:
            return _mandate_error("Order does not exist", ["id"])
        mandate = next((m for m in order.mandates if m.id == mandate_id), None)
        if mandate is None:
            return _mandate_error("Payment mandate does not exist for this order", ["mandateId"])
        if paymentScheduleId is not None:
            return _mandate_error("Payment schedule does not exist", ["paymentScheduleId"])
        if order.cancelled_at is not None:
            return _mandate_error("Order has been cancelled", ["id"])
        due = balance_due(order)
        if amount is not None:
            if amount["currencyCode"] != SHOP_CURRENCY:
                return _mandate_error(
                    f"Currency must be the order's currency ({SHOP_CURRENCY})",
                    ["amount", "currencyCode"],
                )
            charge = decimal_input(amount["amount"], "amount.amount")
            if charge <= 0:
                return _mandate_error("Amount must be greater than 0", ["amount", "amount"])
            if charge > due:
                return _mandate_error(
                    f"Amount {_cents(charge)} exceeds the order's outstanding balance of "
                    f"{_cents(due)}",
                    ["amount", "amount"],
                )
        else:
            charge = due
            if charge <= 0:
                return _mandate_error("Order has no outstanding balance", ["id"])
        was = order.display_financial_status()
        transaction = charge_mandate(state, order, charge, auto_capture=auto_capture)
        assert transaction.payment_reference is not None  # charge_mandate always sets one
        record = MandatePayment(
            key=key,
            order_id=order.id,
            mandate_id=mandate.id,
            amount=requested,
            auto_capture=auto_capture,
            reference=transaction.payment_reference,
            job_id=_job_id(state),
            transaction_id=transaction.id,
        )
        state.mandate_payments[key] = record
        if transaction.succeeded:  # a decline is only a FAILURE transaction and a FAILED job
            announce_payment(context.emit, order, was)
        return _mandate_result(state, record)

    def orderInvoiceSend(
        self,
        info: GraphQLResolveInfo,
        id: str,  # noqa: A002 GraphQL argument name
        email: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Email the customer the order's invoice with its payment link (null once nothing is
        owed); `GET /_sandbox/mail` lists it. `bcc`, `from` and `body` are accepted and not
        kept: the sandbox records what reaches the customer."""
        context = ctx(info)
        state = context.state
        order = state.orders.get(parse_gid(id, "Order") or -1)
        if order is None:
            error = user_error(INVOICE_ERROR, "Order not found", ["id"])
            return _invoice_result(state, None, error)
        email = email or {}
        to = (email.get("to") or order.email or "").strip()
        if not to:  # an order placed without an email leaves the invoice nowhere to go
            error = user_error(INVOICE_ERROR, "To can't be blank", ["email", "to"])
            return _invoice_result(state, order, error)
        state.send_mail(
            to=to,
            # Shopify's subject comes from the shop's editable template; the sandbox names the order
            subject=email.get("subject") or f"Invoice for order {order.name}",
            custom_message=email.get("customMessage"),
            invoice_url=balance_url(context.base_url, order),
            about={"orderId": gid("Order", order.id)},
        )
        return _invoice_result(state, order)

    def orderCapture(
        self,
        info: GraphQLResolveInfo,
        input: dict[str, Any],  # noqa: A002 GraphQL argument name
    ) -> dict[str, Any]:
        context = ctx(info)
        state = context.state
        order = state.orders.get(parse_gid(input["id"], "Order") or -1)
        if order is None:
            return {
                "transaction": None,
                "userErrors": [plain_error("Order does not exist", ["id"])],
            }
        parent_id = parse_gid(input["parentTransactionId"], "OrderTransaction")
        parent = next((t for t in order.transactions if t.id == parent_id), None)
        amount = decimal_input(input["amount"], "input.amount")
        left = order.capturable() if parent is not None else Decimal(0)
        error = None
        if parent is None or parent.kind != "AUTHORIZATION" or not parent.succeeded:
            error = plain_error(
                "Parent transaction must be a successful authorization", ["parentTransactionId"]
            )
        elif amount <= 0:
            error = plain_error("Amount must be greater than 0", ["amount"])
        elif amount > left:
            error = plain_error(
                f"Amount {_cents(amount)} exceeds the capturable amount of {_cents(left)}",
                ["amount"],
            )
        if error is not None or parent is None:
            return {"transaction": None, "userErrors": [error]}
        was = order.display_financial_status()
        capture = state.record_transaction(order, "CAPTURE", "SUCCESS", amount, parent_id=parent.id)
        announce_payment(context.emit, order, was)
        return {"transaction": TransactionNode(state, order, capture), "userErrors": []}

    def refundCreate(
        self,
        info: GraphQLResolveInfo,
        input: dict[str, Any],  # noqa: A002 GraphQL argument name
    ) -> dict[str, Any]:
        context = ctx(info)
        return replay_or_run(info, input, lambda: _refund_create(context, input))


def _refund_create(context: Context, data: dict[str, Any]) -> dict[str, Any]:
    state = context.state

    def refused(errors: Errors) -> dict[str, Any]:
        return {"refund": None, "order": None, "userErrors": errors}

    order = state.orders.get(parse_gid(data["orderId"], "Order") or -1)
    if order is None:
        return refused([plain_error("Order does not exist", ["orderId"])])
    errors: Errors = []
    lines = _refund_lines(state, order, data.get("refundLineItems") or [], errors)
    money = _refund_money(order, data, data.get("transactions") or [], errors)
    if data.get("currency") not in (None, SHOP_CURRENCY):
        errors.append(
            plain_error(f"Currency must be the order's currency ({SHOP_CURRENCY})", ["currency"])
        )
    shipping = data.get("shipping") or {}
    if shipping.get("amount") is not None and decimal_input(shipping["amount"], "shipping") > 0:
        errors.append(
            plain_error("Shipping amount exceeds the refundable shipping (0.0)", ["shipping"])
        )
    if data.get("refundMethods"):
        errors.append(plain_error("Store credit is not enabled for this shop", ["refundMethods"]))
    if not errors and not lines and not money:
        errors.append(plain_error("Refund must include line items or transactions"))
    if errors:
        return refused(errors)
    made = refund(state, order, note=data.get("note"), lines=lines, money=money)
    context.emit("refunds/create", order, refund_rest_json(order, made))
    context.emit("orders/updated", order)
    return {
        "refund": RefundNode(state, order, made),
        "order": OrderNode(state, order),
        "userErrors": [],
    }


def _refund_lines(
    state: ShopState, order: Order, items: Sequence[dict[str, Any]], errors: Errors
) -> list[tuple[LineItem, int, str]]:
    by_id = {li.id: li for li in order.line_items}
    wanted: dict[int, int] = {}
    lines: list[tuple[LineItem, int, str]] = []
    for index, item in enumerate(items):
        path = ["refundLineItems", str(index)]
        line = by_id.get(parse_gid(item["lineItemId"], "LineItem") or -1)
        quantity = int(item["quantity"])
        kind = item.get("restockType") or "NO_RESTOCK"
        location = item.get("locationId")
        if line is None:
            errors.append(plain_error("Line item does not exist", [*path, "lineItemId"]))
            continue
        wanted[line.id] = wanted.get(line.id, 0) + quantity
        if quantity <= 0:
            errors.append(plain_error("Quantity must be greater than 0", [*path, "quantity"]))
        elif wanted[line.id] > line.current_quantity:
            errors.append(
                plain_error(
                    "Quantity cannot refund more items than were purchased", [*path, "quantity"]
                )
            )
        elif wanted[line.id] > line.unfulfilled:
            errors.append(
                plain_error(
                    "The sandbox refunds unfulfilled units only; this line has "
                    f"{line.unfulfilled} unfulfilled",
                    [*path, "quantity"],
                )
            )
        elif kind not in RESTOCK_TYPES or kind == "LEGACY_RESTOCK":
            errors.append(
                plain_error(
                    "LEGACY_RESTOCK is not accepted for new refunds", [*path, "restockType"]
                )
            )
        elif location is not None and parse_gid(location, "Location") not in state.locations:
            errors.append(plain_error("Location does not exist", [*path, "locationId"]))
        else:
            lines.append((line, quantity, kind))
    if len({line.id for line, _q, _k in lines}) != len(lines):
        errors.append(
            plain_error("Each line item can be refunded once per refund", ["refundLineItems"])
        )
    return lines


def _refund_money(
    order: Order, data: dict[str, Any], items: Sequence[dict[str, Any]], errors: Errors
) -> list[tuple[Transaction, Decimal]]:
    money: list[tuple[Transaction, Decimal]] = []
    taken: dict[int, Decimal] = {}  # per parent, within this refund
    order_id = parse_gid(data["orderId"], "Order")
    for index, item in enumerate(items):
        path = ["transactions", str(index)]
        amount = decimal_input(item["amount"], f"input.transactions.{index}.amount")
        parent_id = (
            parse_gid(item["parentId"], "OrderTransaction") if item.get("parentId") else None
        )
        parent = next((t for t in order.transactions if t.id == parent_id), None)
        if parse_gid(item["orderId"], "Order") != order_id:
            errors.append(plain_error("Order ID must be the refunded order's", [*path, "orderId"]))
        elif item["kind"] != "REFUND":
            errors.append(plain_error("Kind must be REFUND in a refund", [*path, "kind"]))
        elif item.get("parentId") is None:
            errors.append(plain_error("Parent transaction is required", [*path, "parentId"]))
        elif parent is None:
            errors.append(plain_error("Parent transaction does not exist", [*path, "parentId"]))
        elif parent.kind not in ("SALE", "CAPTURE") or not parent.succeeded:
            errors.append(
                plain_error(
                    "Parent transaction must be a successful sale or capture", [*path, "parentId"]
                )
            )
        elif item["gateway"] != parent.gateway:
            errors.append(
                plain_error(
                    f"Gateway must be the parent transaction's ({parent.gateway})",
                    [*path, "gateway"],
                )
            )
        elif amount <= 0:
            errors.append(plain_error("Amount must be greater than 0", [*path, "amount"]))
        else:
            left = captured_left(order, parent) - taken.get(parent.id, Decimal(0))
            if amount > left:
                errors.append(
                    plain_error(
                        f"Amount {_cents(amount)} is greater than the {_cents(left)} left to "
                        "refund on the parent transaction",
                        [*path, "amount"],
                    )
                )
                continue
            taken[parent.id] = taken.get(parent.id, Decimal(0)) + amount
            money.append((parent, amount))
    return money
