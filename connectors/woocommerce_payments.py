"""Campaign payments on WooCommerce: a `pending` order per allocation, its `payment_url` sent.

A pending order holds no stock on WooCommerce (the ledger sets the units aside instead) and
its pay page skips the stock check; paying moves it to processing, which reduces stock once,
and the order then comes in through webhooks and polling like any other. The customer gets the
link in a customer note, which WooCommerce emails. Withdrawing cancels the order while it is
still unpaid.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from connectors.base import ChannelError, PaymentLink, PaymentRequest, RefundRequest

if TYPE_CHECKING:
    from connectors.woocommerce import WooCommerceChannel

GATEWAY_CANNOT_REFUND: Final = "gateway_cannot_refund"  # a refund to make by hand
KEY_META: Final = "stocksync_request"  # our request key: the order is found again by it
UNPAID: Final = frozenset({"pending", "failed"})  # WC_Order::needs_payment statuses
GONE: Final = frozenset({"cancelled", "trash"})


def request(channel: WooCommerceChannel, wanted: PaymentRequest) -> PaymentLink:
    order = _find(channel, wanted) or _create(channel, wanted)
    url = str(order.get("payment_url") or "")
    if not url:
        raise ChannelError(
            channel.name, "create_order", f"order {order.get('id')} has no payment_url"
        )
    note = f"{wanted.message} Pay here: {url}"
    customer_note_once(channel, "request_payment", str(order["id"]), note)
    return PaymentLink(ref=str(order["id"]), url=url)


def customer_note_once(
    channel: WooCommerceChannel, operation: str, order_id: str, note: str
) -> None:
    """A customer note (WooCommerce emails it to the order's billing address) unless the order
    has a note with this very text already: a retry after a call that landed adds none."""
    notes = channel.call(operation, "GET", f"orders/{order_id}/notes").body or []
    if any(isinstance(n, dict) and n.get("note") == note for n in notes):
        return
    channel.call(
        operation, "POST", f"orders/{order_id}/notes",
        data={"note": note, "customer_note": True},
    )  # fmt: skip


def remind(channel: WooCommerceChannel, ref: str, wanted: PaymentRequest) -> None:
    order = channel.order("remind_payment", ref)
    note = f"{wanted.message} Pay here: {order.get('payment_url') or ''}"
    channel.call(
        "remind_payment", "POST", f"orders/{ref}/notes",
        data={"note": note, "customer_note": True},
    )  # fmt: skip


def withdraw(channel: WooCommerceChannel, ref: str) -> bool:
    try:
        order = channel.order("withdraw_payment", ref)
    except ChannelError as exc:
        if exc.status == 404:
            return True  # deleted on the shop: nothing left to pay
        raise
    status = str(order.get("status"))
    if status in GONE:
        return True
    if status not in UNPAID:
        return False  # paid (processing, on-hold, completed...): its order comes as any order
    channel.call(
        "withdraw_payment", "PUT", f"orders/{ref}", data={"status": "cancelled"},
        write=True,
    )  # fmt: skip
    return True


def refund(channel: WooCommerceChannel, wanted: RefundRequest) -> str:
    """A refund through the order's payment gateway (`api_refund`), nothing restocked (a
    deposit is not a unit); the shop's refunds of the order are searched for our key first,
    so a retry after a call that landed (a killed worker) never refunds twice."""
    marker = f"[{wanted.key}]"
    order_id = wanted.order_ref
    if not order_id.isdigit():
        raise ValueError(f"refund: WooCommerce order ids are numbers, got {order_id!r}")
    existing = channel.call("find_refund", "GET", f"orders/{order_id}/refunds",
                            params={"per_page": 100})  # fmt: skip
    for found in existing.body if isinstance(existing.body, list) else []:
        if isinstance(found, dict) and marker in str(found.get("reason") or ""):
            return str(found.get("id"))
    body = {
        "amount": str(wanted.amount),
        "reason": f"{wanted.reason} {marker}",
        "api_refund": True,
        "api_restock": False,
    }
    try:
        reply = channel.call("create_refund", "POST", f"orders/{order_id}/refunds", data=body,
                             write=True)  # fmt: skip
    except ChannelError as exc:
        if "does not support automatic refunds" in exc.message:
            # the order's gateway (bank transfer, cheque, cash) cannot send money back
            raise ChannelError(
                channel.name, "create_refund", f"order {order_id}: {exc.message}",
                code=GATEWAY_CANNOT_REFUND, status=exc.status,
            ) from exc  # fmt: skip
        raise
    if not isinstance(reply.body, dict) or not reply.body.get("id"):
        raise ChannelError(channel.name, "create_refund", f"not a refund: {reply.body!r:.200}")
    return str(reply.body["id"])


def _find(channel: WooCommerceChannel, wanted: PaymentRequest) -> dict[str, Any] | None:
    """Our earlier order for this request (a crash between creating and recording it)."""
    reply = channel.call(
        "find_payment", "GET", "orders",
        params={"search": wanted.email, "per_page": 100, "orderby": "date", "order": "desc"},
    )  # fmt: skip
    for order in reply.body if isinstance(reply.body, list) else []:
        if isinstance(order, dict) and _meta(order, KEY_META) == wanted.key:
            return order
    return None


def _create(channel: WooCommerceChannel, wanted: PaymentRequest) -> dict[str, Any]:
    listing = channel.fetch_listings([wanted.sku]).get(wanted.sku)
    if listing is None:
        raise ChannelError(
            channel.name, "create_order", f"no product with SKU {wanted.sku}", code="unknown_sku"
        )
    line: dict[str, Any] = {"product_id": int(listing.external_ids["product_id"]),
                            "quantity": wanted.quantity}  # fmt: skip
    if "variation_id" in listing.external_ids:
        line["variation_id"] = int(listing.external_ids["variation_id"])
    if wanted.amount is not None:  # the balance after a deposit, not the catalog price
        line["subtotal"] = line["total"] = str(wanted.amount)
    meta = [{"key": KEY_META, "value": wanted.key}]
    meta += [{"key": k, "value": v} for k, v in wanted.attributes.items()]
    body = {
        "status": "pending",
        "set_paid": False,
        "billing": {"email": wanted.email},
        "line_items": [line],
        "meta_data": meta,
    }
    # not repeated when it may have landed: the job's retry finds it by its key instead
    reply = channel.call("create_order", "POST", "orders", data=body, write=True)
    if not isinstance(reply.body, dict) or not reply.body.get("id"):
        raise ChannelError(channel.name, "create_order", f"not an order: {reply.body!r:.200}")
    return reply.body


def _meta(order: Mapping[str, Any], key: str) -> Any:
    for item in order.get("meta_data") or []:
        if isinstance(item, dict) and item.get("key") == key:
            return item.get("value")
    return None
