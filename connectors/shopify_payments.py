"""Campaign payments on Shopify: a draft order per allocation, its invoice sent to the customer.

The draft reserves the units until `reserveInventoryUntil` (Shopify's "reserved" inventory
state) and carries our attribute, which Shopify copies onto the order the customer's payment
creates; that order then comes in through webhooks and polling like any other.

Withdrawing deletes the draft, unless it was paid already. Deleting gives its reserved units
back to `available` at once, but those units are still set aside in the ledger (for the next
in line): first `available` is lowered by as many (an adjustment, idempotent per draft), so
the storefront never shows them, not even between the two calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from connectors.base import ChannelError, PaymentLink, PaymentRequest

if TYPE_CHECKING:
    from connectors.shopify import ShopifyChannel

TAG_PREFIX: Final = "stocksync-"  # + the request's key: found again after a crash by this tag

FIND_DRAFT: Final = """
query StocksyncFindDraft($query: String!) {
  draftOrders(first: 5, query: $query) {
    nodes { id status invoiceUrl invoiceSentAt tags }
  }
}
"""

DRAFT_STATE: Final = """
query StocksyncDraftState($id: ID!) {
  draftOrder(id: $id) {
    id
    status
    reserveInventoryUntil
    lineItems(first: 50) { nodes { quantity variant { inventoryItem { id } } } }
  }
}
"""

# @idempotent sits on the mutation field (Shopify 2026-04+): a retried withdrawal lowers once
OFFSET_RESERVATION: Final = """
mutation StocksyncOffsetReservation($input: InventoryAdjustQuantitiesInput!, $key: String!) {
  inventoryAdjustQuantities(input: $input) @idempotent(key: $key) {
    inventoryAdjustmentGroup { id }
    userErrors { code field message }
  }
}
"""

CREATE_DRAFT: Final = """
mutation StocksyncCreateDraft($input: DraftOrderInput!) {
  draftOrderCreate(input: $input) {
    draftOrder { id status invoiceUrl invoiceSentAt tags }
    userErrors { field message }
  }
}
"""

SEND_INVOICE: Final = """
mutation StocksyncSendInvoice($id: ID!, $email: EmailInput) {
  draftOrderInvoiceSend(id: $id, email: $email) {
    draftOrder { id status invoiceSentAt }
    userErrors { field message }
  }
}
"""

DELETE_DRAFT: Final = """
mutation StocksyncDeleteDraft($input: DraftOrderDeleteInput!) {
  draftOrderDelete(input: $input) {
    deletedId
    userErrors { field message }
  }
}
"""


def tag_of(key: str) -> str:
    return TAG_PREFIX + key


def request(channel: ShopifyChannel, wanted: PaymentRequest) -> PaymentLink:
    """The draft for `wanted` (made now, or found by its tag), with its invoice sent."""
    draft = _find(channel, wanted.key) or _create(channel, wanted)
    if draft.get("status") == "OPEN":  # made, invoice not sent yet (or its send failed)
        _send_invoice(channel, str(draft["id"]), wanted)
    return PaymentLink(ref=str(draft["id"]), url=str(draft.get("invoiceUrl") or ""))


def remind(channel: ShopifyChannel, ref: str, wanted: PaymentRequest) -> None:
    _send_invoice(channel, ref, wanted)


def withdraw(channel: ShopifyChannel, ref: str) -> bool:
    data = channel.transport.execute("draft_order_state", DRAFT_STATE, {"id": ref})
    draft = data.get("draftOrder")
    if not isinstance(draft, Mapping):
        return True  # gone already (deleted by us before, or by the merchant)
    if draft.get("status") == "COMPLETED":
        return False  # paid: its order arrives like any order
    if _still_reserved(draft):
        _offset_reservation(channel, ref, draft)
    data = channel.transport.execute("draft_order_delete", DELETE_DRAFT, {"input": {"id": ref}})
    raise_user_errors(channel, "draft_order_delete", data, "draftOrderDelete", ref)
    return True


def _still_reserved(draft: Mapping[str, Any]) -> bool:
    until = draft.get("reserveInventoryUntil")
    if not isinstance(until, str):
        return False
    try:
        moment = datetime.fromisoformat(until.replace("Z", "+00:00"))
    except ValueError:
        return True  # unreadable: assume the units are still held (lowering is the safe side)
    return moment > datetime.now(UTC)


def _offset_reservation(channel: ShopifyChannel, ref: str, draft: Mapping[str, Any]) -> None:
    """Lower `available` by the draft's reserved units, just before deleting it returns them."""
    location = channel.location_id()
    units: dict[str, int] = {}
    for line in (draft.get("lineItems") or {}).get("nodes") or []:
        item = ((line.get("variant") or {}).get("inventoryItem") or {}).get("id")
        if item:  # custom lines reserve nothing
            units[str(item)] = units.get(str(item), 0) + int(line.get("quantity") or 0)
    changes = [
        {"inventoryItemId": item, "locationId": location, "delta": -qty,
         "changeFromQuantity": None}
        for item, qty in sorted(units.items()) if qty > 0
    ]  # fmt: skip
    if not changes:
        return
    variables = {
        "input": {"name": "available", "reason": "reservation_deleted", "changes": changes},
        "key": f"stocksync-withdraw-{ref.rsplit('/', 1)[-1]}",
    }
    data = channel.transport.execute("offset_reservation", OFFSET_RESERVATION, variables)
    body = data.get("inventoryAdjustQuantities")
    errors = (body or {}).get("userErrors") or [] if isinstance(body, Mapping) else []
    if not isinstance(body, Mapping) or errors:
        text = "; ".join(str(e.get("message")) for e in errors) or "no answer"
        # not deleted without it: the units would show on the storefront
        raise ChannelError(channel.name, "offset_reservation", f"{ref}: {text}",
                           code=str(errors[0].get("code")) if errors else None)  # fmt: skip


def _find(channel: ShopifyChannel, key: str) -> dict[str, Any] | None:
    tag = tag_of(key)
    data = channel.transport.execute("draft_orders_by_tag", FIND_DRAFT, {"query": f"tag:'{tag}'"})
    nodes = (data.get("draftOrders") or {}).get("nodes") or []
    # search is looser than equality: keep the draft that carries exactly our tag
    found = [n for n in nodes if isinstance(n, dict) and tag in (n.get("tags") or [])]
    return found[0] if found else None


def _create(channel: ShopifyChannel, wanted: PaymentRequest) -> dict[str, Any]:
    listing = channel.fetch_listings([wanted.sku]).get(wanted.sku)
    if listing is None:
        raise ChannelError(
            channel.name, "draft_order_create", f"no variant with SKU {wanted.sku}",
            code="UNKNOWN_SKU",
        )  # fmt: skip
    payload = {
        "email": wanted.email,
        "lineItems": [{"variantId": listing.external_ids["variant_id"],
                       "quantity": wanted.quantity}],
        "reserveInventoryUntil": wanted.reserve_until.isoformat(),
        "customAttributes": [{"key": k, "value": v} for k, v in wanted.attributes.items()],
        "tags": ["stocksync", tag_of(wanted.key)],
        "note": f"stocksync {wanted.key}: pay by {wanted.pay_by.isoformat()}",
    }  # fmt: skip
    data = channel.transport.execute("draft_order_create", CREATE_DRAFT, {"input": payload})
    body = raise_user_errors(channel, "draft_order_create", data, "draftOrderCreate", wanted.key)
    draft = body.get("draftOrder")
    if not isinstance(draft, dict) or not draft.get("id"):
        raise ChannelError(
            channel.name, "draft_order_create", f"{wanted.key}: no draft order in the answer"
        )
    return draft


def _send_invoice(channel: ShopifyChannel, ref: str, wanted: PaymentRequest) -> None:
    email = {"to": wanted.email, "customMessage": wanted.message}
    data = channel.transport.execute(
        "draft_order_invoice_send", SEND_INVOICE, {"id": ref, "email": email}
    )
    raise_user_errors(channel, "draft_order_invoice_send", data, "draftOrderInvoiceSend", ref)


def raise_user_errors(
    channel: ShopifyChannel,
    operation: str,
    data: Mapping[str, Any],
    field: str,
    what: str,
    errors_key: str = "userErrors",
) -> Mapping[str, Any]:
    """`data[field]`, the payload of one mutation; a ChannelError when it is missing or lists
    user errors (under `errors_key`: a few mutations name theirs, e.g. orderCancelUserErrors)."""
    body = data.get(field)
    if not isinstance(body, Mapping):
        raise ChannelError(channel.name, operation, f"{what}: no {field} in the answer")
    errors = body.get(errors_key) or []
    if errors:
        text = "; ".join(
            f"{'.'.join(str(p) for p in (e.get('field') or []))}: {e.get('message')}"
            for e in errors
        )
        # Shopify refused the input itself: sending it again cannot help
        raise ChannelError(channel.name, operation, f"{what}: {text}", code="USER_ERROR")
    return body
