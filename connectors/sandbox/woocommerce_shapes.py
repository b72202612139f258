"""The sandbox shop's records and their REST JSON, shaped field for field like WooCommerce's
documented wc/v3 examples (fixtures/woocommerce). Pure: records in, dicts out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

# the store's own timezone: fields without _gmt are local time, as on a real shop, so a client
# that forgets dates_are_gmt=true filters on the wrong clock
STORE_UTC_OFFSET = timedelta(hours=-3)
REDUCING_STATUSES = frozenset({"processing", "on-hold", "completed"})
RESTORING_STATUSES = frozenset({"cancelled", "pending"})
ORDER_STATUSES = frozenset(
    {"pending", "processing", "on-hold", "completed", "cancelled", "refunded", "failed", "trash"}
)
# wc_get_order_statuses(): what the shop calls each status to a customer (pay page notices)
STATUS_NAMES = {
    "pending": "Pending payment",
    "processing": "Processing",
    "on-hold": "On hold",
    "completed": "Completed",
    "cancelled": "Cancelled",
    "refunded": "Refunded",
    "failed": "Failed",
}
# woocommerce_valid_order_statuses_for_payment: the statuses WC_Order::needs_payment accepts
PAYABLE_STATUSES = frozenset({"pending", "failed"})
STOCK_STATUSES = ("instock", "outofstock", "onbackorder")  # the REST enum of stock_status
BACKORDER_SETTINGS = ("no", "notify", "yes")
NOTIFY_NO_STOCK_AMOUNT = 0  # woocommerce_notify_no_stock_amount ("Out of stock threshold")
EDITABLE_STATUSES = frozenset({"pending", "on-hold", "auto-draft"})  # wc_order_is_editable


# gateways a sandbox checkout may pay with; those whose plugins implement process_refund (so
# api_refund moves the money back) are REFUNDING_GATEWAYS
GATEWAY_TITLES = {
    "bacs": "Direct Bank Transfer",
    "cheque": "Check payments",
    "cod": "Cash on delivery",
    "stripe": "Credit Card (Stripe)",
    "woocommerce_payments": "WooPayments",
}
REFUNDING_GATEWAYS = frozenset({"stripe", "woocommerce_payments"})


def local_text(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return (moment + STORE_UTC_OFFSET).replace(tzinfo=None).isoformat(timespec="seconds")


def gmt_text(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds")


def money(amount: float) -> str:
    return f"{amount:.2f}"


def decimal_money(amount: Decimal) -> str:
    """wc_format_decimal(amount, 2), without the "-0.00" a negated zero would print."""
    rounded = amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return f"{rounded:f}" if rounded else "0.00"


@dataclass
class Product:
    """A product post: simple, variable (a parent without own stock) or variation."""

    id: int
    sku: str
    name: str
    type: str  # "simple" | "variable" | "variation"
    created: datetime
    modified: datetime
    parent_id: int = 0
    manage_stock: bool = True
    stock_quantity: int | None = None
    backorders: str = "no"  # "no" | "notify" | "yes"
    price: str = "10.00"
    variation_ids: list[int] = field(default_factory=list)
    option: str = ""  # a variation's attribute value
    total_sales: int = 0
    # the stock status a product that does not manage stock was given (WooCommerce computes
    # it for one that does: see `stock_status`)
    own_stock_status: str = "instock"
    meta: list[MetaEntry] = field(default_factory=list)

    @property
    def backorders_allowed(self) -> bool:
        """WC_Product::backorders_allowed: "notify" or "yes"."""
        return self.backorders != "no"

    @property
    def stock_status(self) -> str:
        """WC_Product::validate_props on save: a product managing stock is in stock above the
        "out of stock threshold" (woocommerce_notify_no_stock_amount, 0 by default), else on
        backorder when backorders are allowed, else out of stock; one that does not manage
        stock keeps the status it was given."""
        if not self.manage_stock:
            return self.own_stock_status
        if (self.stock_quantity or 0) > NOTIFY_NO_STOCK_AMOUNT:
            return "instock"
        return "onbackorder" if self.backorders_allowed else "outofstock"

    @property
    def backordered(self) -> bool:
        """WC_Product::is_on_backorder(): on backorder by status, or managing stock with
        backorders allowed and the quantity below zero."""
        if self.stock_status == "onbackorder":
            return True
        quantity = self.stock_quantity or 0
        return self.manage_stock and self.backorders_allowed and quantity < 0


@dataclass
class LineItem:
    id: int
    product_id: int
    variation_id: int
    sku: str
    name: str
    quantity: int
    price: float
    reduced: int = 0  # WooCommerce's _reduced_stock item meta: units this line took from stock
    restocked: int = 0  # _restock_refunded_items: units refunds gave back to stock
    meta: list[MetaEntry] = field(default_factory=list)  # e.g. "Backordered" from checkout


@dataclass
class RefundLine:
    """A refund's copy of an order line; WooCommerce stores its quantity and total negated."""

    id: int
    refunded_item_id: int  # the _refunded_item_id meta
    meta_id: int
    product_id: int
    variation_id: int
    sku: str
    name: str
    quantity: int
    total: Decimal


@dataclass
class MetaEntry:
    id: int
    key: str
    value: Any


@dataclass
class Refund:
    """A shop_order_refund post, child of its order; amount is positive, as in the REST JSON."""

    id: int
    order_id: int
    created: datetime
    amount: Decimal
    reason: str
    lines: list[RefundLine] = field(default_factory=list)
    meta: list[MetaEntry] = field(default_factory=list)
    refunded_payment: bool = False
    refunded_by: int = 1  # the API key's user


@dataclass
class Order:
    id: int
    status: str
    created: datetime
    modified: datetime
    order_key: str
    created_via: str
    email: str
    customer_id: int = 0
    customer_note: str = ""
    line_items: list[LineItem] = field(default_factory=list)
    meta: list[MetaEntry] = field(default_factory=list)
    paid: datetime | None = None
    completed: datetime | None = None
    stock_reduced: bool = False  # WooCommerce's _order_stock_reduced
    refunds: list[Refund] = field(default_factory=list)  # in creation order
    transaction_id: str = ""  # the gateway's reference, set by payment_complete
    payment_method: str = "bacs"  # the gateway: bacs cannot refund by API, card gateways can


@dataclass
class Customer:
    """A registered customer: a WordPress user. Its role (a WordPress role slug such as
    "customer", or a plugin's such as "wholesale_customer") is on the customer resource only;
    orders carry just customer_id."""

    id: int
    email: str
    role: str
    created: datetime
    modified: datetime


def order_total(order: Order) -> Decimal:
    return Decimal(money(sum(line.price * line.quantity for line in order.line_items)))


def needs_payment(order: Order) -> bool:
    """WC_Abstract_Order::needs_payment: a payable status and something to pay."""
    return order.status in PAYABLE_STATUSES and order_total(order) > 0


def needs_processing(order: Order) -> bool:
    """WC_Order::needs_processing: any line whose product is not virtual and downloadable;
    sandbox products are all physical, so any line at all."""
    return bool(order.line_items)


def status_name(status: str) -> str:
    """wc_get_order_status_name: the label, or the slug itself for one it does not know."""
    return STATUS_NAMES.get(status, status)


def payment_url(order: Order, base: str) -> str:
    """WC_Order::get_checkout_payment_url: the checkout page's order-pay endpoint."""
    return f"{base}/checkout/order-pay/{order.id}/?pay_for_order=true&key={order.order_key}"


def _address() -> dict[str, str]:
    # every sandbox order ships to the same place; only the billing email differs
    return {
        "first_name": "Sandbox",
        "last_name": "Customer",
        "company": "",
        "address_1": "1 Loopback Way",
        "address_2": "",
        "city": "Localhost",
        "state": "CA",
        "postcode": "94103",
        "country": "US",
    }


def billing_address(order: Order) -> dict[str, str]:
    return {**_address(), "email": order.email, "phone": ""}


def shipping_address(order: Order) -> dict[str, str]:
    return _address()


def newest_first(refunds: Iterable[Refund]) -> list[Refund]:
    # get_refunds() orders by date, newest first; ids break ties within one second
    return sorted(refunds, key=lambda r: (r.created, r.id), reverse=True)


def refunded_units(order: Order) -> dict[int, int]:
    """Units refunded per order line id, summed over the order's refunds."""
    units: dict[int, int] = {}
    for refund in order.refunds:
        for line in refund.lines:
            units[line.refunded_item_id] = units.get(line.refunded_item_id, 0) - line.quantity
    return units


@dataclass
class Note:
    id: int
    order_id: int
    note: str
    customer_note: bool
    created: datetime
    author: str = "WooCommerce"


@dataclass(frozen=True)
class Mail:
    """An email the shop sent a customer (WC_Email_Customer_Note), kept instead of sent."""

    to: str  # the order's billing email
    order_id: int
    note: str
    sent_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "to": self.to,
            "order_id": self.order_id,
            "note": self.note,
            "sent_at": gmt_text(self.sent_at),
        }


def _links(base: str, path: str, collection: str, up: str | None = None) -> dict[str, Any]:
    links: dict[str, Any] = {
        "self": [{"href": f"{base}/wp-json/wc/v3/{path}"}],
        "collection": [{"href": f"{base}/wp-json/wc/v3/{collection}"}],
    }
    if up is not None:
        links["up"] = [{"href": f"{base}/wp-json/wc/v3/{up}"}]
    return links


def _dates(prefix: str, moment: datetime | None) -> dict[str, str | None]:
    return {prefix: local_text(moment), f"{prefix}_gmt": gmt_text(moment)}


def _stock_fields(product: Product) -> dict[str, Any]:
    return {
        "manage_stock": product.manage_stock,
        "stock_quantity": product.stock_quantity if product.manage_stock else None,
        "stock_status": product.stock_status,
        "backorders": product.backorders,
        "backorders_allowed": product.backorders_allowed,
        "backordered": product.backordered,
    }


def meta_json(entries: Iterable[MetaEntry]) -> list[dict[str, Any]]:
    return [{"id": m.id, "key": m.key, "value": m.value} for m in entries]


def _sale_fields(product: Product) -> dict[str, Any]:
    return {
        "price": product.price,
        "regular_price": product.price,
        "sale_price": "",
        **_dates("date_on_sale_from", None),
        **_dates("date_on_sale_to", None),
        "on_sale": False,
        "purchasable": True,
        "virtual": False,
        "downloadable": False,
        "downloads": [],
        "download_limit": -1,
        "download_expiry": -1,
        "tax_status": "taxable",
        "tax_class": "",
    }


def product_json(product: Product, base: str) -> dict[str, Any]:
    """A product as GET /products/{id} returns it (variations too, when found by ?sku=)."""
    slug = product.name.lower().replace(" ", "-")
    return {
        "id": product.id,
        "name": product.name,
        "slug": slug,
        "permalink": f"{base}/product/{slug}/",
        **_dates("date_created", product.created),
        **_dates("date_modified", product.modified),
        "type": product.type,
        "status": "publish",
        "featured": False,
        "catalog_visibility": "visible",
        "description": "",
        "short_description": "",
        "sku": product.sku,
        **_sale_fields(product),
        "price_html": f'<span class="woocommerce-Price-amount amount">{product.price}</span>',
        "total_sales": product.total_sales,
        "external_url": "",
        "button_text": "",
        **_stock_fields(product),
        "sold_individually": False,
        "weight": "",
        "dimensions": {"length": "", "width": "", "height": ""},
        "shipping_required": True,
        "shipping_taxable": True,
        "shipping_class": "",
        "shipping_class_id": 0,
        "reviews_allowed": True,
        "average_rating": "0.00",
        "rating_count": 0,
        "related_ids": [],
        "upsell_ids": [],
        "cross_sell_ids": [],
        "parent_id": product.parent_id,
        "purchase_note": "",
        "categories": [{"id": 9, "name": "Clothing", "slug": "clothing"}],
        "tags": [],
        "images": [],
        "attributes": (
            [
                {
                    "id": 1,
                    "name": "Option",
                    "position": 0,
                    "visible": True,
                    "variation": True,
                    "options": [],
                }
            ]
            if product.type == "variable"
            else []
        ),
        "default_attributes": [],
        "variations": list(product.variation_ids),
        "grouped_products": [],
        "menu_order": 0,
        "meta_data": meta_json(product.meta),
        "_links": _links(base, f"products/{product.id}", "products"),
    }


def variation_json(variation: Product, base: str) -> dict[str, Any]:
    """A variation as GET /products/{parent}/variations/{id} returns it."""
    parent = variation.parent_id
    return {
        "id": variation.id,
        **_dates("date_created", variation.created),
        **_dates("date_modified", variation.modified),
        "description": "",
        "permalink": f"{base}/product/{parent}/?attribute_option={variation.option}",
        "sku": variation.sku,
        **_sale_fields(variation),
        "status": "publish",
        **_stock_fields(variation),
        "weight": "",
        "dimensions": {"length": "", "width": "", "height": ""},
        "shipping_class": "",
        "shipping_class_id": 0,
        "image": None,
        "attributes": [{"id": 1, "name": "Option", "option": variation.option}],
        "menu_order": 0,
        "meta_data": meta_json(variation.meta),
        "_links": _links(
            base,
            f"products/{parent}/variations/{variation.id}",
            f"products/{parent}/variations",
            up=f"products/{parent}",
        ),
    }


def _line_json(line: LineItem) -> dict[str, Any]:
    total = money(line.price * line.quantity)
    return {
        "id": line.id,
        "name": line.name,
        "product_id": line.product_id,
        "variation_id": line.variation_id,
        "quantity": line.quantity,
        "tax_class": "",
        "subtotal": total,
        "subtotal_tax": "0.00",
        "total": total,
        "total_tax": "0.00",
        "taxes": [],
        "meta_data": meta_json(line.meta),
        "sku": line.sku,
        "price": line.price,
    }


def order_json(order: Order, base: str, *, links: bool = True) -> dict[str, Any]:
    """An order as GET /orders/{id} returns it; webhooks carry the same JSON without _links."""
    total = money(sum(line.price * line.quantity for line in order.line_items))
    # the order body names its refunds only; their lines come from GET orders/{id}/refunds
    refunds = [
        {"id": r.id, "reason": r.reason, "total": "-" + decimal_money(r.amount)}
        for r in newest_first(order.refunds)
    ]
    body: dict[str, Any] = {
        "id": order.id,
        "parent_id": 0,
        "number": str(order.id),
        "order_key": order.order_key,
        "created_via": order.created_via,
        "version": "3.0.0",
        "status": order.status,
        "currency": "USD",
        **_dates("date_created", order.created),
        **_dates("date_modified", order.modified),
        "discount_total": "0.00",
        "discount_tax": "0.00",
        "shipping_total": "0.00",
        "shipping_tax": "0.00",
        "cart_tax": "0.00",
        "total": total,
        "total_tax": "0.00",
        "prices_include_tax": False,
        "customer_id": order.customer_id,
        "customer_ip_address": "127.0.0.1",
        "customer_user_agent": "",
        "customer_note": order.customer_note,
        "billing": billing_address(order),
        "shipping": shipping_address(order),
        "payment_method": order.payment_method,
        "payment_method_title": GATEWAY_TITLES.get(order.payment_method, order.payment_method),
        "transaction_id": order.transaction_id,
        **_dates("date_paid", order.paid),
        **_dates("date_completed", order.completed),
        "cart_hash": "",
        "meta_data": [{"id": m.id, "key": m.key, "value": m.value} for m in order.meta],
        "line_items": [_line_json(line) for line in order.line_items],
        "tax_lines": [],
        "shipping_lines": [],
        "fee_lines": [],
        "coupon_lines": [],
        "refunds": refunds,
        # wc/v3 adds these four after the stored fields (WC_REST_Orders_V2_Controller)
        "payment_url": payment_url(order, base),
        "is_editable": order.status in EDITABLE_STATUSES,
        "needs_payment": needs_payment(order),
        "needs_processing": needs_processing(order),
    }
    if links:
        body["_links"] = _links(base, f"orders/{order.id}", "orders")
    return body


def _refund_line_json(line: RefundLine) -> dict[str, Any]:
    total = decimal_money(line.total)
    return {
        "id": line.id,
        "name": line.name,
        "product_id": line.product_id,
        "variation_id": line.variation_id,
        "quantity": line.quantity,
        "tax_class": "",
        "subtotal": total,
        "subtotal_tax": "0.00",
        "total": total,
        "total_tax": "0.00",
        "taxes": [],
        # WooCommerce keeps the refunded line's id as a string meta value
        "meta_data": [
            {"id": line.meta_id, "key": "_refunded_item_id", "value": str(line.refunded_item_id)}
        ],
        "sku": line.sku,
        "price": float(line.total / line.quantity) if line.quantity else 0,
    }


def refund_json(refund: Refund, base: str) -> dict[str, Any]:
    """A refund as GET /orders/{id}/refunds/{refund_id} returns it."""
    order = refund.order_id
    return {
        "id": refund.id,
        **_dates("date_created", refund.created),
        "amount": decimal_money(refund.amount),
        "reason": refund.reason,
        "refunded_by": refund.refunded_by,
        "refunded_payment": refund.refunded_payment,
        "meta_data": [{"id": m.id, "key": m.key, "value": m.value} for m in refund.meta],
        "line_items": [_refund_line_json(line) for line in refund.lines],
        "shipping_lines": [],
        "tax_lines": [],
        "fee_lines": [],
        "_links": _links(
            base,
            f"orders/{order}/refunds/{refund.id}",
            f"orders/{order}/refunds",
            up=f"orders/{order}",
        ),
    }


def customer_json(customer: Customer, base: str) -> dict[str, Any]:
    """A customer as GET customers/{id} returns it (wc/v3)."""
    name = customer.email.split("@", 1)[0]
    address = _address()
    return {
        "id": customer.id,
        **_dates("date_created", customer.created),
        **_dates("date_modified", customer.modified),
        "email": customer.email,
        "first_name": "Sandbox",
        "last_name": "Customer",
        "role": customer.role,
        "username": name,
        "billing": {**address, "email": customer.email, "phone": ""},
        "shipping": dict(address),
        "is_paying_customer": True,
        "avatar_url": "",
        "meta_data": [],
        "_links": _links(base, f"customers/{customer.id}", "customers"),
    }


def note_json(note: Note, base: str) -> dict[str, Any]:
    return {
        "id": note.id,
        "author": note.author,
        **_dates("date_created", note.created),
        "note": note.note,
        "customer_note": note.customer_note,
        "_links": _links(
            base,
            f"orders/{note.order_id}/notes/{note.id}",
            f"orders/{note.order_id}/notes",
            up=f"orders/{note.order_id}",
        ),
    }


def error_json(code: str, message: str, status: int, **data: Any) -> dict[str, Any]:
    """WooCommerce's (WP_Error's) REST error body."""
    return {"code": code, "message": message, "data": {"status": status, **data}}
