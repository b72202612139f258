"""Order webhooks as Shopify sends them: a REST-shaped order body and Shopify's headers."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from connectors.sandbox.shopify_state import (
    LineItem,
    Order,
    Refund,
    ShopState,
    Transaction,
    gid,
    now_utc,
)
from connectors.signatures import sign

# REST payloads carry the shop's local time with its offset; a non-UTC offset keeps parsers honest
SHOP_TZ = timezone(timedelta(hours=-4))


def rest_time(value: datetime | None) -> str | None:
    return value.astimezone(SHOP_TZ).isoformat() if value else None


def rest_money(amount: Decimal) -> str:
    """REST amounts are strings with two decimals."""
    return f"{amount.quantize(Decimal('0.01')):f}"


def transaction_rest_json(order: Order, transaction: Transaction) -> dict[str, Any]:
    return {
        "id": transaction.id,
        "admin_graphql_api_id": gid("OrderTransaction", transaction.id),
        "order_id": order.id,
        "kind": transaction.kind.lower(),
        "status": transaction.status.lower(),
        "amount": rest_money(transaction.amount),
        "currency": "USD",
        "gateway": transaction.gateway,
        "parent_id": transaction.parent_id,
        "error_code": transaction.error_code.lower() if transaction.error_code else None,
        "created_at": rest_time(transaction.created_at),
        "processed_at": rest_time(transaction.created_at),
        "test": True,
    }


def refund_rest_json(order: Order, refund: Refund) -> dict[str, Any]:
    """A refund as REST carries it: inside an order's `refunds`, and as refunds/create's body."""
    return {
        "id": refund.id,
        "admin_graphql_api_id": gid("Refund", refund.id),
        "order_id": order.id,
        "created_at": rest_time(refund.created_at),
        "processed_at": rest_time(refund.created_at),
        "note": refund.note,
        "restock": any(restocked for _line, _qty, restocked in refund.lines),
        "refund_line_items": [
            {
                "id": refund.id * 100 + index,  # stable across renderings of one refund
                "line_item_id": line_id,
                "quantity": qty,
                "restock_type": (
                    refund.restock_types[index].lower()
                    if index < len(refund.restock_types)
                    else ("cancel" if restocked else "no_restock")
                ),
            }
            for index, (line_id, qty, restocked) in enumerate(refund.lines)
        ],
        "transactions": [transaction_rest_json(order, t) for t in refund.transactions],
        "order_adjustments": [],
    }


def order_rest_json(state: ShopState, order: Order) -> dict[str, Any]:
    """The order as REST webhooks carry it (subset of fields, same names and types)."""
    status = order.fulfillment_status()
    customer = None
    if order.customer is not None:
        customer = {
            "id": order.customer.id,
            "email": order.customer.email,
            "admin_graphql_api_id": gid("Customer", order.customer.id),
            "tags": ", ".join(order.customer.tags),  # REST gives one comma-separated string
            "first_name": None,
            "last_name": None,
            "state": "disabled",
        }
    lines = []
    for li in order.line_items:
        variant = state.variants.get(li.variant_id) if li.variant_id else None
        lines.append(
            {
                "id": li.id,
                "admin_graphql_api_id": gid("LineItem", li.id),
                "variant_id": li.variant_id,
                "product_id": variant.product_id if variant else None,
                "sku": li.sku,
                "title": li.title,
                "name": li.title,
                "quantity": li.quantity,
                "current_quantity": li.current_quantity,
                "fulfillable_quantity": li.unfulfilled if order.cancelled_at is None else 0,
                "fulfillment_status": "fulfilled" if li.fulfilled and not li.unfulfilled else None,
                "price": li.price,
                "requires_shipping": True,
                "gift_card": False,
                "taxable": True,
                "selling_plan_allocation": _plan_allocation(li),
            }
        )
    refunds = [refund_rest_json(order, refund) for refund in order.refunds]
    return {
        "id": order.id,
        "admin_graphql_api_id": gid("Order", order.id),
        "name": order.name,
        "number": order.number - 1000,
        "order_number": order.number,
        "email": order.email,
        "contact_email": order.email,
        "created_at": rest_time(order.created_at),
        "updated_at": rest_time(order.updated_at),
        "processed_at": rest_time(order.created_at),
        "cancelled_at": rest_time(order.cancelled_at),
        "cancel_reason": order.cancel_reason.lower() if order.cancel_reason else None,
        "closed_at": None,
        "confirmed": True,
        "currency": "USD",
        "financial_status": order.display_financial_status().lower(),
        "total_price": rest_money(order.total_price()),
        "subtotal_price": rest_money(order.total_price()),
        "current_total_price": rest_money(order.current_total()),
        "total_outstanding": rest_money(order.outstanding()),
        "payment_gateway_names": sorted({t.gateway for t in order.transactions}),
        "fulfillment_status": {"FULFILLED": "fulfilled", "PARTIALLY_FULFILLED": "partial"}.get(
            status
        ),
        "source_name": order.source_name,
        # the order's custom attributes (a draft's customAttributes carried onto its order)
        "note_attributes": [{"name": k, "value": v} for k, v in order.custom_attributes],
        "note": order.note,
        "tags": ", ".join(order.tags),  # REST gives one comma-separated string
        "test": False,
        "customer": customer,
        "line_items": lines,
        "refunds": refunds,
    }


def _plan_allocation(line: LineItem) -> dict[str, Any] | None:
    """The selling plan a line was bought with and how its price splits between checkout and
    later (None for a line bought outright)."""
    if line.selling_plan_name is None or line.checkout_charge is None:
        return None
    total = Decimal(line.price) * line.quantity
    return {
        "selling_plan_id": line.selling_plan_id,
        "selling_plan_name": line.selling_plan_name,
        "price": line.price,
        "checkout_charge_amount": rest_money(line.checkout_charge),
        "remaining_balance_charge_amount": rest_money(total - line.checkout_charge),
    }


def webhook_delivery(
    *,
    topic: str,
    body: dict[str, Any],
    secret: str,
    shop: str,
    api_version: str,
) -> tuple[dict[str, str], bytes]:
    """Headers and raw bytes of one delivery; the signature covers exactly these bytes."""
    raw = json.dumps(body, separators=(",", ":")).encode("utf-8")
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": sign(secret, raw),
        "X-Shopify-Shop-Domain": shop,
        "X-Shopify-API-Version": api_version,
        "X-Shopify-Webhook-Id": str(uuid.uuid4()),
        "X-Shopify-Event-Id": str(uuid.uuid4()),
        "X-Shopify-Triggered-At": now_utc().isoformat().replace("+00:00", "Z"),
    }
    return headers, raw
