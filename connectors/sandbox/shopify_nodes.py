"""GraphQL object resolvers over the sandbox shop state.

graphql-core's default resolver reads an attribute named like the field and, when it is callable,
calls it with `(info, **arguments)`; these classes are shaped for exactly that. Fields a class does
not define resolve to null (a non-null one then errors, as an unimplemented field should).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from graphql import GraphQLError, GraphQLResolveInfo

from connectors.sandbox.shopify_paging import Term, compare, connection, matches, parse_search
from connectors.sandbox.shopify_payments_state import balance_url, groups_of_variant
from connectors.sandbox.shopify_state import (
    SHOP_ID,
    Customer,
    DraftLine,
    DraftOrder,
    FulfillmentOrder,
    FulfillmentOrderLine,
    Hold,
    LineItem,
    Location,
    Mandate,
    Order,
    Refund,
    ShopState,
    Transaction,
    Variant,
    gid,
    parse_gid,
)

QUANTITY_NAMES = {
    "available",
    "committed",
    "damaged",
    "incoming",
    "on_hand",
    "quality_control",
    "reserved",
    "safety_stock",
}


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def attributes(pairs: list[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"key": key, "value": value} for key, value in pairs]


def decimal_text(amount: Decimal) -> str:
    """Money as Shopify's Decimal scalar prints it: "10.0", "7.25", never "10.00"."""
    text = f"{amount.quantize(Decimal('0.01')):f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def money(amount: Decimal, currency: str = "USD") -> dict[str, Any]:
    """A MoneyV2."""
    return {"amount": decimal_text(amount), "currencyCode": currency}


def money_bag(amount: Decimal, currency: str = "USD") -> dict[str, Any]:
    return {"shopMoney": money(amount, currency), "presentmentMoney": money(amount, currency)}


@dataclass
class Idempotent:
    fingerprint: str
    result: dict[str, Any]
    failed: bool


class Emit(Protocol):
    """Queue a webhook about an order; `body` replaces the order's REST shape (refunds/create
    carries the refund)."""

    def __call__(self, topic: str, order: Order, body: dict[str, Any] | None = None) -> None: ...


@dataclass
class Context:
    """Per-request view of the shop handed to every resolver."""

    state: ShopState
    emit: Emit
    idempotency: dict[tuple[str, str], Idempotent] = field(default_factory=dict)
    shop_domain: str = "sandbox.myshopify.com"
    scopes: tuple[str, ...] = ()  # the app installation's access scopes
    # where the sandbox is served: links a customer follows (an order's payment link) lead back
    # to it, so a test can follow them
    base_url: str = "https://sandbox.myshopify.com"


def ctx(info: GraphQLResolveInfo) -> Context:
    context = info.context
    if not isinstance(context, Context):
        raise TypeError("resolver context is not a sandbox Context")
    return context


def page_args(args: dict[str, Any]) -> dict[str, Any]:
    return {k: args.get(k) for k in ("first", "after", "last", "before")} | {
        "reverse": bool(args.get("reverse", False))
    }


class LocationNode:
    def __init__(self, state: ShopState, location: Location) -> None:
        self._state = state
        self._location = location
        self.id = gid("Location", location.id)
        self.legacyResourceId = str(location.id)
        self.name = location.name
        self.isActive = True
        self.isPrimary = location.id == state.primary_location.id
        self.fulfillsOnlineOrders = True
        self.shipsInventory = True
        self.hasActiveInventory = True

    def inventoryLevel(self, info: GraphQLResolveInfo, inventoryItemId: str, **_: Any) -> Any:
        item_id = parse_gid(inventoryItemId, "InventoryItem")
        level = self._state.level(item_id, self._location.id) if item_id else None
        return LevelNode(self._state, level.item_id, level.location_id) if level else None


class LevelNode:
    def __init__(self, state: ShopState, item_id: int, location_id: int) -> None:
        self._state = state
        self._key = (item_id, location_id)
        self.id = f"gid://shopify/InventoryLevel/{location_id}?inventory_item_id={item_id}"
        self.isActive = True
        self.canDeactivate = False

    def _level(self) -> Any:
        return self._state.levels[self._key]

    def location(self, info: GraphQLResolveInfo) -> LocationNode:
        return LocationNode(self._state, self._state.locations[self._key[1]])

    def item(self, info: GraphQLResolveInfo) -> InventoryItemNode:
        variant = self._state.variant_by_item(self._key[0])
        if variant is None:
            raise GraphQLError("inventory item has no variant")
        return InventoryItemNode(self._state, variant)

    def updatedAt(self, info: GraphQLResolveInfo) -> str | None:
        return iso(self._level().updated_at)

    def quantities(self, info: GraphQLResolveInfo, names: list[str]) -> list[dict[str, Any]]:
        level = self._level()
        values = {
            "available": level.available,
            "committed": level.committed,
            "reserved": level.reserved,
            "on_hand": level.on_hand,
        }
        out = []
        for name in names:
            if name not in QUANTITY_NAMES:
                raise GraphQLError(
                    f"Invalid quantity name: {name!r}.", extensions={"code": "BAD_REQUEST"}
                )
            out.append(
                {
                    "id": f"{self.id}&name={name}",
                    "name": name,
                    "quantity": values.get(name, 0),
                    "updatedAt": iso(level.updated_at),
                }
            )
        return out


class InventoryItemNode:
    def __init__(self, state: ShopState, variant: Variant) -> None:
        self._state = state
        self._variant = variant
        self.id = gid("InventoryItem", variant.inventory_item_id)
        self.legacyResourceId = str(variant.inventory_item_id)
        self.sku = variant.sku
        self.tracked = True
        self.requiresShipping = True

    def variant(self, info: GraphQLResolveInfo) -> VariantNode:
        return VariantNode(self._state, self._variant)

    def inventoryLevel(self, info: GraphQLResolveInfo, locationId: str, **_: Any) -> Any:
        location_id = parse_gid(locationId, "Location")
        level = self._state.level(self._variant.inventory_item_id, location_id or -1)
        return LevelNode(self._state, level.item_id, level.location_id) if level else None

    def inventoryLevels(self, info: GraphQLResolveInfo, **args: Any) -> dict[str, Any]:
        levels = [
            lv
            for lv in self._state.levels.values()
            if lv.item_id == self._variant.inventory_item_id
        ]
        nodes = [LevelNode(self._state, lv.item_id, lv.location_id) for lv in levels]
        return connection(nodes, key=lambda n: (n._key[1], n._key[1]), **page_args(args))


class VariantNode:
    def __init__(self, state: ShopState, variant: Variant) -> None:
        self._state = state
        self._variant = variant
        self.id = gid("ProductVariant", variant.id)
        self.legacyResourceId = str(variant.id)
        self.sku = variant.sku
        self.title = "Default Title"
        self.displayName = f"{variant.title} - Default Title"
        self.inventoryPolicy = variant.policy
        self.price = variant.price
        self.requiresSellingPlan = False

    def inventoryItem(self, info: GraphQLResolveInfo) -> InventoryItemNode:
        return InventoryItemNode(self._state, self._variant)

    def inventoryQuantity(self, info: GraphQLResolveInfo) -> int:
        return sum(
            lv.available
            for lv in self._state.levels.values()
            if lv.item_id == self._variant.inventory_item_id
        )

    def availableForSale(self, info: GraphQLResolveInfo) -> bool:
        return self._variant.policy == "CONTINUE" or self.inventoryQuantity(info) > 0

    def sellingPlanGroups(self, info: GraphQLResolveInfo, **args: Any) -> dict[str, Any]:
        # imported here: selling plan nodes list variants, so that module builds on this one
        from connectors.sandbox.shopify_payments_nodes import variant_selling_plan_groups

        return variant_selling_plan_groups(self._state, self._variant, page_args(args))

    def sellingPlanGroupsCount(self, info: GraphQLResolveInfo) -> dict[str, Any]:
        count = len(groups_of_variant(self._state, self._variant))
        return {"count": count, "precision": "EXACT"}

    def metafield(self, info: GraphQLResolveInfo, key: str, namespace: str | None = None) -> Any:
        # imported here: the metafield module builds on this one
        from connectors.sandbox.shopify_metafields import variant_metafield

        return variant_metafield(self._state, self._variant, namespace, key)

    def metafields(self, info: GraphQLResolveInfo, **args: Any) -> dict[str, Any]:
        from connectors.sandbox.shopify_metafields import variant_metafields

        return variant_metafields(self._state, self._variant, args)


class CustomerNode:
    def __init__(self, customer: Customer) -> None:
        self.id = gid("Customer", customer.id)
        self.legacyResourceId = str(customer.id)
        self.email = customer.email
        self.displayName = customer.email
        self.tags = list(customer.tags)


class LineItemNode:
    def __init__(self, state: ShopState, order: Order, line: LineItem) -> None:
        self._state = state
        self._line = line
        self.id = gid("LineItem", line.id)
        self.sku = line.sku
        self.title = line.title
        self.name = line.title
        self.quantity = line.quantity
        self.currentQuantity = line.current_quantity
        cancelled = order.cancelled_at is not None
        self.unfulfilledQuantity = 0 if cancelled else line.unfulfilled
        self.fulfillableQuantity = self.unfulfilledQuantity
        self.refundableQuantity = line.current_quantity
        self.nonFulfillableQuantity = line.quantity - self.unfulfilledQuantity
        self.requiresShipping = True
        self.variantTitle = None
        price = Decimal(line.price)
        self.originalUnitPriceSet = money_bag(price)
        self.discountedUnitPriceSet = money_bag(price)
        self.originalTotalSet = money_bag(price * line.quantity)
        self.discountedTotalSet = money_bag(price * line.quantity)
        self.totalDiscountSet = money_bag(Decimal(0))
        self.sellingPlan = (
            {
                "sellingPlanId": gid("SellingPlan", line.selling_plan_id)
                if line.selling_plan_id
                else None,
                "name": line.selling_plan_name or "",
            }
            if line.selling_plan_name is not None
            else None
        )

    def variant(self, info: GraphQLResolveInfo) -> VariantNode | None:
        variant = self._state.variants.get(self._line.variant_id or -1)
        return VariantNode(self._state, variant) if variant else None


class HoldNode:
    def __init__(self, hold: Hold) -> None:
        self.id = gid("FulfillmentHold", hold.id)
        self.handle = hold.handle
        self.reason = hold.reason
        self.reasonNotes = hold.reason_notes
        self.displayReason = hold.reason.replace("_", " ").capitalize()
        self.heldByRequestingApp = True


class FulfillmentOrderLineNode:
    def __init__(self, state: ShopState, order: Order, fol: FulfillmentOrderLine) -> None:
        self._state = state
        self._line = next(li for li in order.line_items if li.id == fol.line_item_id)
        self._order = order
        self.id = gid("FulfillmentOrderLineItem", fol.id)
        self.totalQuantity = fol.total
        self.remainingQuantity = fol.remaining
        self.sku = self._line.sku
        self.productTitle = self._line.title
        self.requiresShipping = True
        variant = state.variants.get(self._line.variant_id or -1)
        self.inventoryItemId = gid("InventoryItem", variant.inventory_item_id) if variant else None

    def lineItem(self, info: GraphQLResolveInfo) -> LineItemNode:
        return LineItemNode(self._state, self._order, self._line)


class FulfillmentOrderNode:
    def __init__(self, state: ShopState, fo: FulfillmentOrder) -> None:
        self._state = state
        self._fo = fo
        self._order = state.orders[fo.order_id]
        self.id = gid("FulfillmentOrder", fo.id)
        self.orderId = gid("Order", fo.order_id)
        self.orderName = self._order.name
        self.status = fo.status
        self.requestStatus = "UNSUBMITTED"
        self.createdAt = iso(fo.created_at)
        self.updatedAt = iso(fo.updated_at)
        self.orderProcessedAt = iso(self._order.created_at)
        self.fulfillmentHolds = [HoldNode(h) for h in fo.holds]

    def order(self, info: GraphQLResolveInfo) -> OrderNode:
        return OrderNode(self._state, self._order)

    def assignedLocation(self, info: GraphQLResolveInfo) -> dict[str, Any]:
        location = self._state.locations[self._fo.location_id]
        return {"name": location.name, "location": LocationNode(self._state, location)}

    def lineItems(self, info: GraphQLResolveInfo, **args: Any) -> dict[str, Any]:
        nodes = [FulfillmentOrderLineNode(self._state, self._order, f) for f in self._fo.lines]
        return connection(nodes, key=lambda n: (0, n._line.id), **page_args(args))


class OrderNode:
    def __init__(self, state: ShopState, order: Order) -> None:
        self._state = state
        self._order = order
        self.id = gid("Order", order.id)
        self.legacyResourceId = str(order.id)
        self.name = order.name
        self.email = order.email
        self.createdAt = iso(order.created_at)
        self.processedAt = iso(order.created_at)
        self.updatedAt = iso(order.updated_at)
        self.cancelledAt = iso(order.cancelled_at)
        self.cancelReason = order.cancel_reason
        self.closed = False
        self.confirmed = True
        self.test = False
        self.sourceName = order.source_name
        self.displayFulfillmentStatus = order.fulfillment_status()
        self.tags = list(order.tags)
        self.note = order.note
        # the draft's attributes on an order made from one; Shopify's REST name: note_attributes
        self.customAttributes = attributes(order.custom_attributes)
        self.displayFinancialStatus = order.display_financial_status()
        self.currencyCode = "USD"
        self.presentmentCurrencyCode = "USD"
        total, received, refunded = order.total_price(), order.received(), order.refunded()
        self.totalPriceSet = money_bag(total)
        self.subtotalPriceSet = money_bag(total)
        self.originalTotalPriceSet = money_bag(total)
        self.currentTotalPriceSet = money_bag(order.current_total())
        self.currentSubtotalPriceSet = money_bag(order.current_total())
        self.totalReceivedSet = money_bag(received)
        self.totalRefundedSet = money_bag(refunded)
        self.netPaymentSet = money_bag(received - refunded)
        self.totalOutstandingSet = money_bag(order.outstanding())
        self.totalCapturableSet = money_bag(order.capturable())
        self.capturable = order.capturable() > 0
        self.fullyPaid = order.outstanding() <= 0 and bool(order.transactions or total == 0)
        self.unpaid = received == 0
        self.refundable = received - refunded > 0
        self.paymentGatewayNames = sorted({t.gateway for t in order.transactions})
        self.currentSubtotalLineItemsQuantity = sum(li.current_quantity for li in order.line_items)
        self.subtotalLineItemsQuantity = sum(li.quantity for li in order.line_items)

    def customer(self, info: GraphQLResolveInfo) -> CustomerNode | None:
        return CustomerNode(self._order.customer) if self._order.customer else None

    def lineItems(self, info: GraphQLResolveInfo, **args: Any) -> dict[str, Any]:
        nodes = [LineItemNode(self._state, self._order, li) for li in self._order.line_items]
        return connection(nodes, key=lambda n: (0, n._line.id), **page_args(args))

    def fulfillmentOrders(self, info: GraphQLResolveInfo, **args: Any) -> dict[str, Any]:
        fos = self._state.order_fulfillment_orders(self._order.id)
        nodes = [FulfillmentOrderNode(self._state, fo) for fo in fos]
        return connection(nodes, key=lambda n: (0, n._fo.id), **page_args(args))

    def refunds(self, info: GraphQLResolveInfo, first: int | None = None) -> list[RefundNode]:
        return [
            RefundNode(self._state, self._order, r) for r in self._order.refunds[: first or None]
        ]

    def transactions(
        self,
        info: GraphQLResolveInfo,
        first: int | None = None,
        capturable: bool | None = None,
        **_: Any,
    ) -> list[TransactionNode]:
        chosen = self._order.transactions
        if capturable is not None:
            chosen = [t for t in chosen if _is_capturable(self._order, t) == capturable]
        return [TransactionNode(self._state, self._order, t) for t in chosen[: first or None]]

    def transactionsCount(self, info: GraphQLResolveInfo) -> dict[str, Any]:
        return {"count": len(self._order.transactions), "precision": "EXACT"}

    def paymentCollectionDetails(self, info: GraphQLResolveInfo) -> dict[str, Any]:
        return {
            "additionalPaymentCollectionUrl": balance_url(ctx(info).base_url, self._order),
            "vaultedPaymentMethods": [mandate_json(self._state, m) for m in self._order.mandates],
        }


def mandate_json(state: ShopState, mandate: Mandate) -> dict[str, Any]:
    """A PaymentMandate with its VaultCreditCard."""
    expiry = mandate.created_at + timedelta(days=3 * 365)
    return {
        "id": gid("PaymentMandate", mandate.id),
        "paymentInstrument": {
            "__typename": "VaultCreditCard",
            "brand": mandate.brand,
            "lastDigits": mandate.last_digits,
            "name": mandate.holder,
            "expiryMonth": expiry.month,
            "expiryYear": expiry.year,
            "expired": expiry < state.now(),
            "billingAddress": None,
        },
    }


def _is_capturable(order: Order, transaction: Transaction) -> bool:
    if transaction.kind != "AUTHORIZATION" or not transaction.succeeded:
        return False
    children = [t for t in order.transactions if t.parent_id == transaction.id and t.succeeded]
    captured = sum((t.amount for t in children if t.kind == "CAPTURE"), Decimal(0))
    return not any(t.kind == "VOID" for t in children) and captured < transaction.amount


class TransactionNode:
    def __init__(self, state: ShopState, order: Order, transaction: Transaction) -> None:
        self._state = state
        self._order = order
        self._transaction = transaction
        self.id = gid("OrderTransaction", transaction.id)
        self.kind = transaction.kind
        self.status = transaction.status
        self.gateway = transaction.gateway
        self.formattedGateway = "Shopify Payments"
        self.amountSet = money_bag(transaction.amount)
        self.amountV2 = money(transaction.amount)
        self.createdAt = iso(transaction.created_at)
        self.processedAt = iso(transaction.created_at)
        self.errorCode = transaction.error_code
        self.paymentId = transaction.payment_reference
        self.test = True  # the sandbox gateway is a test gateway
        self.manualPaymentGateway = False
        self.multiCapturable = False
        self.manuallyCapturable = _is_capturable(order, transaction)
        self.authorizationExpiresAt = (
            iso(transaction.created_at + timedelta(days=7))
            if transaction.kind == "AUTHORIZATION"
            else None
        )
        self.fees: list[Any] = []
        self.paymentDetails = None
        self.receiptJson = None

    def parentTransaction(self, info: GraphQLResolveInfo) -> TransactionNode | None:
        parent = next(
            (t for t in self._order.transactions if t.id == self._transaction.parent_id), None
        )
        return TransactionNode(self._state, self._order, parent) if parent else None

    def order(self, info: GraphQLResolveInfo) -> OrderNode:
        return OrderNode(self._state, self._order)

    def maximumRefundableV2(self, info: GraphQLResolveInfo) -> dict[str, Any] | None:
        tx = self._transaction
        if tx.kind not in ("SALE", "CAPTURE") or not tx.succeeded:
            return None
        refunded = sum(
            (
                t.amount
                for t in self._order.transactions
                if t.parent_id == tx.id and t.kind == "REFUND" and t.succeeded
            ),
            Decimal(0),
        )
        return money(tx.amount - refunded)


class RefundNode:
    def __init__(self, state: ShopState, order: Order, refund: Refund) -> None:
        self._state = state
        self._order = order
        self._refund = refund
        self.id = gid("Refund", refund.id)
        self.legacyResourceId = str(refund.id)
        self.note = refund.note
        self.createdAt = iso(refund.created_at)
        self.processedAt = iso(refund.created_at)
        self.updatedAt = iso(refund.created_at)
        self.totalRefundedSet = money_bag(refund.amount())
        self.duties: list[Any] = []
        self.staffMember = None

    def order(self, info: GraphQLResolveInfo) -> OrderNode:
        return OrderNode(self._state, self._order)

    def transactions(self, info: GraphQLResolveInfo, **args: Any) -> dict[str, Any]:
        nodes = [TransactionNode(self._state, self._order, t) for t in self._refund.transactions]
        return connection(nodes, key=lambda n: (0, n._transaction.id), **page_args(args))

    def refundLineItems(self, info: GraphQLResolveInfo, **args: Any) -> dict[str, Any]:
        by_id = {li.id: li for li in self._order.line_items}
        nodes = []
        for index, (line_id, qty, restocked) in enumerate(self._refund.lines):
            line = by_id[line_id]
            price = Decimal(line.price)
            kinds = self._refund.restock_types
            nodes.append(
                {
                    "id": gid("RefundLineItem", self._refund.id * 100 + index),
                    "lineItem": LineItemNode(self._state, self._order, line),
                    "quantity": qty,
                    "restocked": restocked,
                    "restockType": kinds[index] if index < len(kinds) else "CANCEL",
                    "priceSet": money_bag(price),
                    "subtotalSet": money_bag(price * qty),
                    "totalTaxSet": money_bag(Decimal(0)),
                    "location": None,
                    "_key": index,
                }
            )
        return connection(nodes, key=lambda n: (0, n["_key"]), **page_args(args))

    def orderAdjustments(self, info: GraphQLResolveInfo, **args: Any) -> dict[str, Any]:
        return connection([], key=lambda n: (0, 0), **page_args(args))

    def refundShippingLines(self, info: GraphQLResolveInfo, **args: Any) -> dict[str, Any]:
        return connection([], key=lambda n: (0, 0), **page_args(args))


class DraftOrderLineNode:
    def __init__(self, state: ShopState, line: DraftLine) -> None:
        self._state = state
        self._line = line
        self.id = gid("DraftOrderLineItem", line.id)
        self.uuid = f"sandbox-{line.id}"
        self.sku = line.sku
        self.title = line.title
        self.name = line.title
        self.quantity = line.quantity
        self.custom = line.variant_id is None
        self.requiresShipping = True
        self.taxable = True
        self.isGiftCard = False
        self.variantTitle = None  # a default variant has no title of its own
        self.customAttributes: list[dict[str, str]] = []
        self.customAttributesV2: list[dict[str, str]] = []
        self.components: list[Any] = []
        self.taxLines: list[Any] = []
        self.appliedDiscount = None
        price = Decimal(line.price)
        self.originalUnitPriceSet = money_bag(price)
        self.approximateDiscountedUnitPriceSet = money_bag(price)
        self.originalTotalSet = money_bag(price * line.quantity)
        self.discountedTotalSet = money_bag(price * line.quantity)
        self.totalDiscountSet = money_bag(Decimal(0))

    def variant(self, info: GraphQLResolveInfo) -> VariantNode | None:
        variant = self._state.variants.get(self._line.variant_id or -1)
        return VariantNode(self._state, variant) if variant else None


class DraftOrderNode:
    def __init__(self, state: ShopState, draft: DraftOrder) -> None:
        self._state = state
        self._draft = draft
        self.id = gid("DraftOrder", draft.id)
        self.legacyResourceId = str(draft.id)
        self.name = draft.name
        self.email = draft.email
        self.status = draft.status
        self.ready = True
        self.invoiceUrl = draft.invoice_url
        self.invoiceSentAt = iso(draft.invoice_sent_at)
        self.reserveInventoryUntil = iso(draft.reserve_until)
        self.customAttributes = attributes(draft.custom_attributes)
        self.tags = list(draft.tags)
        self.note2 = draft.note
        self.createdAt = iso(draft.created_at)
        self.updatedAt = iso(draft.updated_at)
        self.completedAt = iso(draft.completed_at)
        self.totalQuantityOfLineItems = sum(li.quantity for li in draft.line_items)
        self.currencyCode = "USD"
        self.presentmentCurrencyCode = "USD"
        self.taxExempt = False
        self.taxesIncluded = False
        self.discountCodes: list[str] = []
        self.warnings: list[Any] = []
        total = sum((Decimal(li.price) * li.quantity for li in draft.line_items), Decimal(0))
        self.subtotalPriceSet = money_bag(total)
        self.lineItemsSubtotalPrice = money_bag(total)
        self.totalLineItemsPriceSet = money_bag(total)
        self.totalPriceSet = money_bag(total)
        self.totalDiscountsSet = money_bag(Decimal(0))
        self.totalShippingPriceSet = money_bag(Decimal(0))
        self.totalTaxSet = money_bag(Decimal(0))

    def customer(self, info: GraphQLResolveInfo) -> CustomerNode | None:
        return CustomerNode(self._draft.customer) if self._draft.customer else None

    def order(self, info: GraphQLResolveInfo) -> OrderNode | None:
        order = self._state.orders.get(self._draft.order_id or -1)
        return OrderNode(self._state, order) if order else None

    def lineItems(self, info: GraphQLResolveInfo, **args: Any) -> dict[str, Any]:
        nodes = [DraftOrderLineNode(self._state, li) for li in self._draft.line_items]
        return connection(nodes, key=lambda n: (0, n._line.id), **page_args(args))


_DRAFT_SORT: dict[str, Callable[[DraftOrder], Any]] = {
    "ID": lambda d: d.id,
    "NUMBER": lambda d: d.number,
    "UPDATED_AT": lambda d: d.updated_at,
    "STATUS": lambda d: d.status,
}
# draftOrders(query:) filters Shopify documents; others are ignored, as Shopify ignores them
_DRAFT_SEARCH = {"created_at", "customer_id", "id", "source", "status", "tag", "updated_at"}


def _draft_matches(draft: DraftOrder, groups: list[list[Term]]) -> bool:
    values: dict[str, Any] = {
        "created_at": draft.created_at,
        "customer_id": draft.customer.id if draft.customer else None,
        "id": draft.id,
        "source": None,  # drafts made through the API carry no source a search could match
        "status": draft.status.lower(),
        "updated_at": draft.updated_at,
    }

    def term_holds(term: Term) -> bool:
        if term.field not in _DRAFT_SEARCH:
            return True
        if term.field == "tag":  # a list: one matching tag is enough
            return any(compare(tag, term) for tag in draft.tags)
        return compare(values[term.field], term)

    return any(all(term_holds(t) for t in group) for group in groups)


_ORDER_SORT: dict[str, Callable[[Order], Any]] = {
    "UPDATED_AT": lambda o: o.updated_at,
    "CREATED_AT": lambda o: o.created_at,
    "PROCESSED_AT": lambda o: o.created_at,
    "ORDER_NUMBER": lambda o: o.number,
    "ID": lambda o: o.id,
}


def _order_field(order: Order, name: str) -> Any:
    return {
        "updated_at": order.updated_at,
        "created_at": order.created_at,
        "processed_at": order.created_at,
        "id": order.id,
        "name": order.name,
        "email": order.email,
        "status": "cancelled" if order.cancelled_at else "open",
        "financial_status": order.display_financial_status().lower(),
    }.get(name)


class QueryRoot:
    """Root query fields the connector uses, plus single-node lookups."""

    def shop(self, info: GraphQLResolveInfo) -> dict[str, Any]:
        domain = ctx(info).shop_domain
        return {
            "id": gid("Shop", SHOP_ID),
            "name": domain.split(".", 1)[0],
            "myshopifyDomain": domain,
            "url": f"https://{domain}",
        }

    def currentAppInstallation(self, info: GraphQLResolveInfo) -> dict[str, Any]:
        return {
            "id": gid("AppInstallation", 1),
            "accessScopes": [{"handle": scope, "description": scope} for scope in ctx(info).scopes],
        }

    def orders(
        self, info: GraphQLResolveInfo, sortKey: str = "PROCESSED_AT", **args: Any
    ) -> dict[str, Any]:
        state = ctx(info).state
        groups = parse_search(args.get("query"))
        known = {
            "updated_at",
            "created_at",
            "processed_at",
            "id",
            "name",
            "email",
            "status",
            "financial_status",
        }
        chosen = [
            o
            for o in state.orders.values()
            if matches(groups, functools.partial(_order_field, o), known)
        ]
        sort = _ORDER_SORT.get(sortKey, _ORDER_SORT["ID"])
        nodes = [OrderNode(state, o) for o in chosen]
        return connection(nodes, key=lambda n: (sort(n._order), n._order.id), **page_args(args))

    def order(self, info: GraphQLResolveInfo, id: str) -> OrderNode | None:  # noqa: A002 GraphQL argument name
        state = ctx(info).state
        order = state.orders.get(parse_gid(id, "Order") or -1)
        return OrderNode(state, order) if order else None

    def _variants(self, info: GraphQLResolveInfo, query: str | None) -> list[Variant]:
        state = ctx(info).state
        groups = parse_search(query)
        return [
            v
            for v in state.variants.values()
            if matches(groups, {"sku": v.sku, "id": v.id}.get, {"sku", "id"})
        ]

    def productVariants(self, info: GraphQLResolveInfo, **args: Any) -> dict[str, Any]:
        state = ctx(info).state
        nodes = [VariantNode(state, v) for v in self._variants(info, args.get("query"))]
        return connection(nodes, key=lambda n: (n._variant.id, n._variant.id), **page_args(args))

    def inventoryItems(self, info: GraphQLResolveInfo, **args: Any) -> dict[str, Any]:
        state = ctx(info).state
        nodes = [InventoryItemNode(state, v) for v in self._variants(info, args.get("query"))]
        return connection(
            nodes,
            key=lambda n: (n._variant.inventory_item_id, n._variant.inventory_item_id),
            **page_args(args),
        )

    def locations(self, info: GraphQLResolveInfo, **args: Any) -> dict[str, Any]:
        state = ctx(info).state
        groups = parse_search(args.get("query"))
        chosen = [
            loc
            for loc in state.locations.values()
            if matches(groups, {"name": loc.name}.get, {"name"})
        ]
        nodes = [LocationNode(state, loc) for loc in chosen]
        return connection(nodes, key=lambda n: (n.name, n._location.id), **page_args(args))

    def location(self, info: GraphQLResolveInfo, id: str | None = None) -> LocationNode | None:  # noqa: A002 GraphQL argument name
        state = ctx(info).state
        if id is None:
            return LocationNode(state, state.primary_location)
        location = state.locations.get(parse_gid(id, "Location") or -1)
        return LocationNode(state, location) if location else None

    def fulfillmentOrders(self, info: GraphQLResolveInfo, **args: Any) -> dict[str, Any]:
        state = ctx(info).state
        include_closed = bool(args.get("includeClosed", False))
        groups = parse_search(args.get("query"))
        chosen = [
            fo
            for fo in state.fulfillment_orders.values()
            if (include_closed or fo.status not in ("CLOSED", "CANCELLED"))
            and matches(
                groups,
                {"status": fo.status.lower(), "order_id": fo.order_id}.get,
                {"status", "order_id"},
            )
        ]
        nodes = [FulfillmentOrderNode(state, fo) for fo in chosen]
        return connection(nodes, key=lambda n: (n._fo.id, n._fo.id), **page_args(args))

    def fulfillmentOrder(self, info: GraphQLResolveInfo, id: str) -> FulfillmentOrderNode | None:  # noqa: A002 GraphQL argument name
        state = ctx(info).state
        fo = state.fulfillment_orders.get(parse_gid(id, "FulfillmentOrder") or -1)
        return FulfillmentOrderNode(state, fo) if fo else None

    def draftOrder(self, info: GraphQLResolveInfo, id: str) -> DraftOrderNode | None:  # noqa: A002 GraphQL argument name
        state = ctx(info).state
        draft = state.draft_orders.get(parse_gid(id, "DraftOrder") or -1)
        return DraftOrderNode(state, draft) if draft else None

    def draftOrders(
        self, info: GraphQLResolveInfo, sortKey: str = "ID", **args: Any
    ) -> dict[str, Any]:
        state = ctx(info).state
        groups = parse_search(args.get("query"))
        chosen = [d for d in state.draft_orders.values() if _draft_matches(d, groups)]
        sort = _DRAFT_SORT.get(sortKey, _DRAFT_SORT["ID"])
        nodes = [DraftOrderNode(state, d) for d in chosen]
        return connection(nodes, key=lambda n: (sort(n._draft), n._draft.id), **page_args(args))

    def productVariant(self, info: GraphQLResolveInfo, id: str) -> VariantNode | None:  # noqa: A002 GraphQL argument name
        state = ctx(info).state
        variant = state.variants.get(parse_gid(id, "ProductVariant") or -1)
        return VariantNode(state, variant) if variant else None

    def inventoryItem(self, info: GraphQLResolveInfo, id: str) -> InventoryItemNode | None:  # noqa: A002 GraphQL argument name
        state = ctx(info).state
        variant = state.variant_by_item(parse_gid(id, "InventoryItem") or -1)
        return InventoryItemNode(state, variant) if variant else None
