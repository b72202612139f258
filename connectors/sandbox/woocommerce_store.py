"""The sandbox shop's state and WooCommerce's stock rules, with no HTTP in sight.

Rules kept as WooCommerce core has them:
- stock_quantity is set absolutely, and only on records that manage stock; a variation takes a
  new stock_quantity only when the same update says manage_stock: true;
- a record that manages stock is in stock above zero, else on backorder when its backorders
  are allowed ("notify" or "yes"), else out of stock (validate_props); the storefront sells
  beyond stock, into negative quantities, only where backorders are allowed; a record that
  does not manage stock has no quantity, no backorders, and the stock status it is given;
- an order reduces stock once (its _order_stock_reduced flag and each line's _reduced_stock) when
  it enters processing, on-hold or completed, and gives those units back when it enters
  cancelled or pending;
- REST order creation does not check stock (a merchant may oversell); the storefront does;
- a refund (wc_create_refund) is checked against the amount left to refund only, never against
  units; it restocks the units it names on lines that reduced stock, and an order refunded in
  full (by amount) becomes "refunded". Status "refunded" set by hand refunds what is left;
- a customer pays at the order's payment_url only while it needs payment (pending or failed,
  with a total); the pay page checks stock for failed orders alone (a pending one's is held),
  then payment_complete moves the order to processing, which reduces stock as above;
- a customer note is emailed to the billing address (kept in `mail`, never sent).

Callers hold the sandbox lock around every method.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from connectors.sandbox.woocommerce_shapes import (
    BACKORDER_SETTINGS,
    GATEWAY_TITLES,
    ORDER_STATUSES,
    REDUCING_STATUSES,
    REFUNDING_GATEWAYS,
    RESTORING_STATUSES,
    STOCK_STATUSES,
    Customer,
    LineItem,
    Mail,
    MetaEntry,
    Note,
    Order,
    Product,
    Refund,
    RefundLine,
    needs_payment,
    needs_processing,
    order_total,
    status_name,
)


class StoreError(Exception):
    """A refusal WooCommerce answers with a WP_Error: code, message, HTTP status."""

    def __init__(self, code: str, message: str, status: int, **data: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.data = data


class BareDataError(StoreError):
    """A WP_Error whose data is a bare number, not {"status": n}, as the refunds controller
    builds them: WordPress then answers HTTP 500 and echoes the number as `data`."""

    def __init__(self, code: str, message: str, data: int = 500) -> None:
        super().__init__(code, message, 500)
        self.bare = data


CANNOT_REFUND = "woocommerce_rest_cannot_create_order_refund"


class PaymentRefused(StoreError):
    """The order-pay page refuses. WooCommerce shows these as notices on the page; the sandbox
    answers them as errors: 404 unknown order, 403 wrong key, 409 cannot be paid now."""


INVALID_FOR_PAYMENT = "Sorry, this order is invalid and cannot be paid for."
PENDING_STATUSES = frozenset({"pending"})  # wc_get_is_pending_statuses: their stock is held
# woocommerce_valid_order_statuses_for_payment_complete
PAYMENT_COMPLETE_STATUSES = frozenset({"on-hold", "pending", "failed", "cancelled"})


@dataclass(frozen=True)
class RefundLineRequest:
    """One line_items entry of a refund request, keyed elsewhere by the order line id."""

    quantity: int | None  # None when the request names no quantity (isset fails)
    refund_total: Decimal  # as sent, positive
    has_tax: bool  # refund_tax given (the sandbox has no tax lines, so only its presence counts)

    @property
    def empty(self) -> bool:
        return not self.quantity and not self.refund_total and not self.has_tax


@dataclass(frozen=True)
class Shortage:
    sku: str
    requested: int
    available: int


class OutOfStock(Exception):
    """The storefront refuses a cart: not enough stock and backorders not allowed."""

    def __init__(self, shortages: Sequence[Shortage]) -> None:
        super().__init__(", ".join(f"{s.sku}: {s.requested} > {s.available}" for s in shortages))
        self.shortages = tuple(shortages)


def default_variable(catalog: Mapping[str, int]) -> dict[str, list[str]]:
    """DEMO-4 and DEMO-5 become variations of one variable product, so both paths run."""
    members = [sku for sku in ("DEMO-4", "DEMO-5") if sku in catalog]
    return {"DEMO-VAR": members} if members else {}


def _int_value(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise StoreError("rest_invalid_param", f"{name} is not of type integer.", 400)
    try:
        return int(value)
    except ValueError:
        raise StoreError("rest_invalid_param", f"{name} is not of type integer.", 400) from None


def _bool_value(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("true", "1", 1, "yes"):
        return True
    if value in ("false", "0", 0, "no", ""):
        return False
    raise StoreError("rest_invalid_param", f"{name} is not of type boolean.", 400)


class Store:
    """Products, variations, orders and notes of one shop; ids shared like WordPress posts."""

    def __init__(
        self, catalog: Mapping[str, int], variable: Mapping[str, Sequence[str]], now: datetime
    ) -> None:
        self._next_post = 10
        self._next_item = 100
        self._next_meta = 1000
        self._next_note = 500
        self._next_user = 1  # user 1 is the shop's administrator, the API key's user
        self.products: dict[int, Product] = {}  # every product post, variations included
        self.customers: dict[int, Customer] = {}
        self.orders: dict[int, Order] = {}
        self.notes: dict[int, list[Note]] = {}
        self.mail: list[Mail] = []  # customer emails, oldest first
        in_variable = {sku for members in variable.values() for sku in members}
        for sku, quantity in catalog.items():
            if sku not in in_variable:
                self._add(
                    Product(
                        self._post_id(),
                        sku,
                        f"Sandbox {sku}",
                        "simple",
                        now,
                        now,
                        stock_quantity=quantity,
                    )
                )
        for parent_sku, members in variable.items():
            parent = self._add(
                Product(
                    self._post_id(),
                    parent_sku,
                    f"Sandbox {parent_sku}",
                    "variable",
                    now,
                    now,
                    manage_stock=False,
                )
            )
            for sku in members:
                variation = Product(
                    self._post_id(),
                    sku,
                    f"Sandbox {parent_sku} - {sku}",
                    "variation",
                    now,
                    now,
                    parent_id=parent.id,
                    stock_quantity=catalog[sku],
                    option=sku,
                )
                self._add(variation)
                parent.variation_ids.append(variation.id)

    # -- ids ------------------------------------------------------------------------------
    def _post_id(self) -> int:
        self._next_post += 1
        return self._next_post

    def _item_id(self) -> int:
        self._next_item += 1
        return self._next_item

    def _meta_id(self) -> int:
        self._next_meta += 1
        return self._next_meta

    def _add(self, product: Product) -> Product:
        self.products[product.id] = product
        return product

    # -- products -------------------------------------------------------------------------
    def by_sku(self, sku: str) -> Product | None:
        return next((p for p in self.products.values() if p.sku and p.sku == sku), None)

    def product(self, product_id: int) -> Product:
        found = self.products.get(product_id)
        if found is None or found.type == "variation":
            raise StoreError("woocommerce_rest_product_invalid_id", "Invalid ID.", 404)
        return found

    def variation(self, parent_id: int, variation_id: int) -> Product:
        found = self.products.get(variation_id)
        if found is None or found.type != "variation" or found.parent_id != parent_id:
            raise StoreError("woocommerce_rest_product_variation_invalid_id", "Invalid ID.", 404)
        return found

    def update_product(self, product: Product, changes: Mapping[str, Any], now: datetime) -> None:
        """Apply a PUT body; raises StoreError before changing anything when a field is bad."""
        price = product.price
        if changes.get("regular_price") is not None:  # as wc/v3: a decimal string
            try:
                price = f"{float(str(changes['regular_price'])):.2f}"
            except ValueError:
                raise StoreError(
                    "rest_invalid_param", "Invalid parameter(s): regular_price", 400
                ) from None
        manage = product.manage_stock
        said_manage = "manage_stock" in changes
        if said_manage:
            manage = _bool_value(changes["manage_stock"], "manage_stock")
        quantity = product.stock_quantity
        if changes.get("stock_quantity") is not None:
            # variations take a quantity only next to manage_stock: true (their stock may be
            # the parent's); products whenever they manage stock after this update
            takes = manage and (said_manage or product.type != "variation")
            if takes:
                quantity = _int_value(changes["stock_quantity"], "stock_quantity")
        backorders = product.backorders
        if "backorders" in changes:
            backorders = str(changes["backorders"])
            if backorders not in BACKORDER_SETTINGS:
                raise StoreError(
                    "rest_invalid_param", "backorders is not one of no, notify, and yes.", 400
                )
        own_status = product.own_stock_status
        if "stock_status" in changes:
            own_status = str(changes["stock_status"])
            if own_status not in STOCK_STATUSES:
                raise StoreError(
                    "rest_invalid_param",
                    "stock_status is not one of instock, outofstock, and onbackorder.",
                    400,
                )
        meta = changes.get("meta_data", [])
        if not isinstance(meta, list) or not all(
            isinstance(m, Mapping) and "key" in m for m in meta
        ):
            raise StoreError("rest_invalid_param", "Invalid parameter(s): meta_data", 400)
        if "sku" in changes:
            sku = str(changes["sku"])
            clash = self.by_sku(sku)
            if sku and clash is not None and clash.id != product.id:
                raise StoreError(
                    "product_invalid_sku", "Invalid or duplicated SKU.", 400, resource_id=clash.id
                )
            product.sku = sku
        if "regular_price" in changes:
            product.price = str(changes["regular_price"])
        if "name" in changes and product.type != "variation":
            product.name = str(changes["name"])
        product.manage_stock = manage
        # WC_Product::validate_props: without managed stock there is no quantity and no
        # backorders; with it, the stock status follows from both (Product.stock_status)
        product.stock_quantity = quantity if manage else None
        product.backorders = backorders if manage else "no"
        product.own_stock_status = own_status
        product.price = price
        self.update_meta(product, meta)
        product.modified = now

    def stock_owner(self, product_id: int, variation_id: int) -> Product | None:
        """Whose stock a line moves: the variation's own, else its parent's, if managed."""
        if variation_id:
            variation = self.products.get(variation_id)
            if variation is not None and variation.manage_stock:
                return variation
        product = self.products.get(product_id)
        return product if product is not None and product.manage_stock else None

    # -- orders ---------------------------------------------------------------------------
    def order(self, order_id: int) -> Order:
        found = self.orders.get(order_id)
        if found is None:
            raise StoreError("woocommerce_rest_shop_order_invalid_id", "Invalid ID.", 404)
        return found

    def _line(self, spec: Mapping[str, Any]) -> LineItem:
        quantity = _int_value(spec.get("quantity", 1), "line_items[quantity]")
        if quantity <= 0:
            raise StoreError("woocommerce_rest_invalid_quantity", "Quantity must be positive.", 400)
        product: Product | None = None
        if spec.get("variation_id"):
            product = self.products.get(_int_value(spec["variation_id"], "variation_id"))
        elif spec.get("product_id"):
            product = self.products.get(_int_value(spec["product_id"], "product_id"))
        elif spec.get("sku"):
            product = self.by_sku(str(spec["sku"]))
        if product is None or product.type == "variable":
            raise StoreError("woocommerce_rest_invalid_product_id", "Invalid product ID.", 400)
        is_variation = product.type == "variation"
        price = float(product.price)
        # like wc/v3, a line's `total` (or `subtotal`) replaces the catalog price of the line
        given = spec.get("total", spec.get("subtotal"))
        if given is not None:
            try:
                price = float(str(given)) / quantity
            except ValueError:
                raise StoreError(
                    "rest_invalid_param", "Invalid parameter(s): line_items[total]", 400
                ) from None
        return LineItem(
            id=self._item_id(),
            product_id=product.parent_id if is_variation else product.id,
            variation_id=product.id if is_variation else 0,
            sku=product.sku,
            name=product.name,
            quantity=quantity,
            price=price,
        )

    def create_order(
        self,
        *,
        lines: Sequence[Mapping[str, Any]],
        status: str,
        email: str,
        created_via: str,
        now: datetime,
        customer_id: int = 0,
        customer_note: str = "",
        meta: Sequence[Mapping[str, Any]] = (),
    ) -> Order:
        if status not in ORDER_STATUSES:
            raise StoreError("rest_invalid_param", "Invalid parameter(s): status", 400)
        items = [self._line(spec) for spec in lines]
        order_id = self._post_id()
        key = hashlib.sha256(f"{order_id}:{now.isoformat()}".encode()).hexdigest()[:13]
        order = Order(
            id=order_id,
            status="pending",
            created=now,
            modified=now,
            order_key=f"wc_order_{key}",
            created_via=created_via,
            email=email,
            customer_id=customer_id,
            customer_note=customer_note,
            line_items=items,
        )
        self.update_meta(order, meta)
        self.orders[order.id] = order
        self.notes[order.id] = []
        self.set_status(order, status, now)
        return order

    # -- customers ------------------------------------------------------------------------
    def customer(self, customer_id: int) -> Customer:
        found = self.customers.get(customer_id)
        if found is None:
            raise StoreError("woocommerce_rest_invalid_id", "Invalid resource ID.", 404)
        return found

    def customer_by_email(self, email: str) -> Customer | None:
        return next((c for c in self.customers.values() if c.email == email), None)

    def register(self, email: str, role: str, now: datetime) -> Customer:
        """The customer with this email, registered now if new; `role` replaces its role (a
        sandbox shortcut for an administrator changing the user's role)."""
        customer = self.customer_by_email(email)
        if customer is None:
            self._next_user += 1
            customer = Customer(self._next_user, email, role, now, now)
            self.customers[customer.id] = customer
        elif customer.role != role:
            customer.role = role
            customer.modified = now
        return customer

    def checkout(
        self,
        lines: Sequence[tuple[str, int]],
        email: str,
        now: datetime,
        *,
        meta: Sequence[Mapping[str, Any]] = (),
        payment_method: str = "bacs",
    ) -> Order:
        """A storefront purchase: refuses beyond stock unless backorders are allowed. A
        registered customer's email checks out as that customer (customer_id), any other as a
        guest (customer_id 0). `payment_method`: the gateway paid with (GATEWAY_TITLES)."""
        if payment_method not in GATEWAY_TITLES:
            raise ValueError(f"payment_method must be one of {', '.join(GATEWAY_TITLES)}")
        wanted: dict[int, int] = {}
        owners: dict[int, Product] = {}
        specs: list[dict[str, Any]] = []
        for sku, quantity in lines:
            product = self.by_sku(sku)
            if product is None or product.type == "variable":
                raise ValueError(f"unknown sku {sku!r}")
            if quantity <= 0:
                raise ValueError(f"quantity for {sku!r} must be positive, got {quantity}")
            if product.type == "variation":
                owner = self.stock_owner(product.parent_id, product.id)
            else:
                owner = self.stock_owner(product.id, 0)
            if owner is not None:
                wanted[owner.id] = wanted.get(owner.id, 0) + quantity
                owners[owner.id] = owner
            specs.append({"sku": sku, "quantity": quantity})
        shortages = [
            Shortage(owners[pid].sku, qty, owners[pid].stock_quantity or 0)
            for pid, qty in wanted.items()
            if not owners[pid].backorders_allowed and qty > (owners[pid].stock_quantity or 0)
        ]
        if shortages:
            raise OutOfStock(shortages)
        # WC_Checkout::create_order_line_items: a line bought beyond stock where customers are
        # told of backorders says how many of its units are backordered
        backordered: list[int] = []
        for sku, quantity in lines:
            product = self.by_sku(sku)
            assert product is not None  # checked above
            if product.type == "variation":
                owner = self.stock_owner(product.parent_id, product.id)
            else:
                owner = self.stock_owner(product.id, 0)
            told = owner is not None and owner.backorders == "notify"
            stock = (owner.stock_quantity or 0) if owner is not None else 0
            backordered.append(quantity - max(0, stock) if told and stock < quantity else 0)
        registered = self.customer_by_email(email)
        order = self.create_order(
            lines=specs,
            status="processing",
            email=email,
            created_via="checkout",
            now=now,
            customer_id=registered.id if registered is not None else 0,
            meta=meta,
        )
        for line, units in zip(order.line_items, backordered, strict=True):
            if units > 0:
                line.meta.append(MetaEntry(self._meta_id(), "Backordered", units))
        order.payment_method = payment_method
        return order

    def set_status(self, order: Order, status: str, now: datetime) -> None:
        if status not in ORDER_STATUSES:
            raise StoreError("rest_invalid_param", "Invalid parameter(s): status", 400)
        previous = order.status
        order.status = status
        order.modified = now
        if status in ("processing", "completed") and order.paid is None:
            order.paid = now
        if status == "completed" and order.completed is None:
            order.completed = now
        if status in REDUCING_STATUSES and not order.stock_reduced:
            for line in order.line_items:
                owner = self.stock_owner(line.product_id, line.variation_id)
                if owner is not None and owner.stock_quantity is not None:
                    owner.stock_quantity -= line.quantity
                    owner.total_sales += line.quantity
                    owner.modified = now
                    line.reduced = line.quantity
            order.stock_reduced = True
        elif status in RESTORING_STATUSES and order.stock_reduced:
            for line in order.line_items:
                owner = self.stock_owner(line.product_id, line.variation_id)
                if owner is not None and owner.stock_quantity is not None and line.reduced:
                    owner.stock_quantity += line.reduced
                    owner.modified = now
                line.reduced = 0
            order.stock_reduced = False
        if status == "refunded" and previous != "refunded":
            self._refund_the_rest(order, now)

    def _refund_the_rest(self, order: Order, now: datetime) -> None:
        """wc_order_fully_refunded: a refund of what is left, without lines or restock."""
        rest = self.remaining_refund_amount(order)
        if not rest:
            return
        if rest > 0:
            order.refunds.append(
                Refund(self._post_id(), order.id, now, rest, "Order fully refunded.")
            )
        self.add_note(
            order,
            "Order status set to refunded. To return funds to the customer you will need to"
            " issue a refund through your payment gateway.",
            False,
            now,
        )

    # -- refunds --------------------------------------------------------------------------
    def remaining_refund_amount(self, order: Order) -> Decimal:
        return order_total(order) - sum((r.amount for r in order.refunds), Decimal(0))

    def refund(self, refund_id: int) -> Refund | None:
        for order in self.orders.values():
            for refund in order.refunds:
                if refund.id == refund_id:
                    return refund
        return None

    def create_refund(
        self,
        order: Order,
        *,
        amount: Decimal,
        reason: str,
        lines: Mapping[int, RefundLineRequest],
        any_lines: bool,
        refund_payment: bool,
        restock: bool,
        meta: Sequence[Mapping[str, Any]],
        now: datetime,
    ) -> Refund:
        """wc_create_refund; raises before changing anything (ids aside) when refused."""
        if any(not isinstance(entry, Mapping) or "key" not in entry for entry in meta):
            raise StoreError("rest_invalid_param", "meta_data items need a key.", 400)
        remaining = self.remaining_refund_amount(order)
        units_left = sum(li.quantity for li in order.line_items) - sum(
            -rl.quantity for r in order.refunds for rl in r.lines
        )
        # WooCommerce checks the amount only: not units, line ids or quantities
        if amount < 0 or amount > remaining:
            raise BareDataError(CANNOT_REFUND, "Invalid refund amount.")
        refund = Refund(self._post_id(), order.id, now, amount, reason)
        units = 0
        for line in order.line_items:
            spec = lines.get(line.id)
            if spec is None or spec.empty:
                continue
            refund.lines.append(
                RefundLine(
                    id=self._item_id(),
                    refunded_item_id=line.id,
                    meta_id=self._meta_id(),
                    product_id=line.product_id,
                    variation_id=line.variation_id,
                    sku=line.sku,
                    name=line.name,
                    quantity=-(spec.quantity or 0),
                    total=-spec.refund_total,
                )
            )
            units += spec.quantity or 0
        if refund_payment and order.payment_method not in REFUNDING_GATEWAYS:
            # a gateway without process_refund (bacs, cheque, cod): the refund is deleted
            raise BareDataError(
                CANNOT_REFUND,
                "The payment gateway for this order does not support automatic refunds.",
            )
        order.refunds.append(refund)
        if restock:
            self._restock_refunded(order, lines, now)
        free_item = any(li.price * li.quantity == 0 for li in order.line_items)
        partial = remaining - amount > 0 or (any_lines and free_item and units_left - units > 0)
        if not partial:
            self.set_status(order, "refunded", now)
        self.update_meta(refund, meta)
        order.modified = now
        return refund

    def _restock_refunded(
        self, order: Order, lines: Mapping[int, RefundLineRequest], now: datetime
    ) -> None:
        """wc_restock_refunded_items: only lines that reduced stock, by the units named."""
        for line in order.line_items:
            spec = lines.get(line.id)
            qty = spec.quantity if spec is not None else None
            owner = self.stock_owner(line.product_id, line.variation_id)
            if not qty or not line.reduced or owner is None or owner.stock_quantity is None:
                continue
            old = owner.stock_quantity
            owner.stock_quantity = old + qty
            owner.modified = now
            line.reduced -= qty
            line.restocked += qty
            product_id = line.variation_id or line.product_id
            self.add_note(
                order,
                f"Item #{product_id} stock increased from {old} to {owner.stock_quantity}.",
                False,
                now,
            )

    def update_meta(
        self, owner: Order | Refund | Product, entries: Sequence[Mapping[str, Any]]
    ) -> None:
        """update_meta_data(key, value, id): by id when given, else replace the key's value."""
        for entry in entries:
            if not isinstance(entry, Mapping) or "key" not in entry:
                raise StoreError("rest_invalid_param", "meta_data items need a key.", 400)
            key, value = str(entry["key"]), entry.get("value")
            meta_id = entry.get("id")
            existing = [m for m in owner.meta if (m.id == meta_id if meta_id else m.key == key)]
            if existing:
                existing[0].key, existing[0].value = key, value
                owner.meta = [m for m in owner.meta if m is existing[0] or m.key != key]
            else:
                owner.meta.append(MetaEntry(self._meta_id(), key, value))

    def update_order(self, order: Order, changes: Mapping[str, Any], now: datetime) -> None:
        if "status" in changes and str(changes["status"]) not in ORDER_STATUSES:
            raise StoreError("rest_invalid_param", "Invalid parameter(s): status", 400)
        meta = changes.get("meta_data", [])
        if not isinstance(meta, list):
            raise StoreError("rest_invalid_param", "Invalid parameter(s): meta_data", 400)
        self.update_meta(order, meta)
        if "customer_note" in changes:
            order.customer_note = str(changes["customer_note"])
        if "status" in changes:
            self.set_status(order, str(changes["status"]), now)
        elif changes.get("set_paid") is True and order.status == "pending":
            self.set_status(order, "processing", now)
        order.modified = now

    def add_note(self, order: Order, text: str, customer_note: bool, now: datetime) -> Note:
        self._next_note += 1
        note = Note(self._next_note, order.id, text, customer_note, now)
        self.notes[order.id].append(note)
        # WC_Email_Customer_Note goes to the billing email; without one WooCommerce sends none
        if customer_note and order.email:
            self.mail.append(Mail(order.email, order.id, text, now))
        return note

    # -- paying -----------------------------------------------------------------------------
    def pay_for_order(
        self, order_id: int, key: str | None, now: datetime, transaction_id: str = ""
    ) -> Order:
        """The customer pays at the order's payment_url: the pay page's checks
        (WC_Shortcode_Checkout::order_pay), then the gateway's payment_complete. A key, when
        given, must be the order's; raises PaymentRefused before changing anything."""
        order = self.orders.get(order_id)
        if order is None:
            raise PaymentRefused("woocommerce_order_invalid", INVALID_FOR_PAYMENT, 404)
        if key is not None and not hmac.compare_digest(key.encode(), order.order_key.encode()):
            raise PaymentRefused("woocommerce_order_invalid", INVALID_FOR_PAYMENT, 403)
        if not needs_payment(order):
            message = (
                f"This order\u2019s status is \u201c{status_name(order.status)}\u201d\u2014it"
                " cannot be paid for. Please contact us if you need assistance."
            )
            raise PaymentRefused("woocommerce_order_cannot_be_paid", message, 409)
        # a stock-reducing status already took the units (e.g. processing, then failed)
        if order.status not in PENDING_STATUSES and not order.stock_reduced:
            self._check_pay_stock(order)
        self.payment_complete(order, transaction_id, now)
        return order

    def _check_pay_stock(self, order: Order) -> None:
        """The pay page's check for a failed order: each line's product in stock, and every
        stock owner covering all the order's lines on it (no other order holds stock here)."""
        required: dict[int, int] = {}
        for line in order.line_items:
            owner = self.stock_owner(line.product_id, line.variation_id)
            if owner is not None:
                required[owner.id] = required.get(owner.id, 0) + line.quantity
        for line in order.line_items:
            product = self.products.get(line.variation_id or line.product_id)
            if product is None:
                continue  # deleted since: the pay page skips it
            owner = self.stock_owner(line.product_id, line.variation_id)
            if (owner or product).stock_status == "outofstock":
                raise PaymentRefused(
                    "woocommerce_out_of_stock",
                    f'Sorry, "{product.name}" is no longer in stock so this order cannot be'
                    " paid for. We apologize for any inconvenience caused.",
                    409,
                )
            if owner is None or owner.backorders_allowed or owner.stock_quantity is None:
                continue
            if owner.stock_quantity < required[owner.id]:
                raise PaymentRefused(
                    "woocommerce_out_of_stock",
                    f'Sorry, we do not have enough "{product.name}" in stock to fulfill your'
                    f" order ({owner.stock_quantity} available). We apologize for any"
                    " inconvenience caused.",
                    409,
                )

    def payment_complete(self, order: Order, transaction_id: str, now: datetime) -> None:
        """WC_Order::payment_complete: records the payment and moves the order on (processing,
        or completed when nothing needs shipping); other statuses are left as they are."""
        if order.status not in PAYMENT_COMPLETE_STATUSES:
            return
        if not transaction_id:
            # a gateway's charge reference; the sandbox makes one up
            digest = hashlib.sha256(f"{order.order_key}:{now.isoformat()}".encode()).hexdigest()
            transaction_id = f"sbx_{digest[:24]}"
        order.transaction_id = transaction_id
        if order.paid is None:
            order.paid = now
        self.set_status(order, "processing" if needs_processing(order) else "completed", now)

    def stock(self) -> dict[str, int | None]:
        return {
            p.sku: p.stock_quantity
            for p in sorted(self.products.values(), key=lambda p: p.id)
            if p.sku and p.type != "variable"
        }
