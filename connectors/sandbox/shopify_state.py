"""The in-memory shop behind the Shopify sandbox: locations, variants, inventory, orders,
fulfillment orders and holds, draft orders with their inventory reservations and invoices,
selling plans (pre-orders), payments and refunds, with the stock rules a real shop applies.

Callers hold the sandbox lock around every use; nothing here does I/O.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the payments module builds on this one
    from connectors.sandbox.shopify_payments_state import MandatePayment, SellingPlanGroup

HOLD_LIMIT = 10  # holds one app may place on one fulfillment order
SHOP_ID = 1  # the shop's numeric id: `shop { id }` and invoice URLs carry it
DRAFT_SOURCE_NAME = "shopify_draft_order"  # Order.sourceName of an order made from a draft
GATEWAY = "shopify_payments"  # the one payment gateway the sandbox shop has
CENT = Decimal("0.01")


def gid(kind: str, number: int) -> str:
    return f"gid://shopify/{kind}/{number}"


def parse_gid(value: str, kind: str) -> int | None:
    prefix = f"gid://shopify/{kind}/"
    if not value.startswith(prefix):
        return None
    tail = value[len(prefix) :].split("?", 1)[0]
    return int(tail) if tail.isdigit() else None


def normalize_tags(tags: Iterable[str]) -> list[str]:
    """Tags as Shopify stores them: trimmed, each once (compared case-insensitively), in
    alphabetical order."""
    kept: dict[str, str] = {}
    for tag in tags:
        if tag.strip():
            kept.setdefault(tag.strip().casefold(), tag.strip())
    return sorted(kept.values(), key=str.casefold)


def now_utc() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)  # Shopify timestamps have whole seconds


class StockRefused(ValueError):
    """A sale the shop will not make: not enough available and the variant denies overselling."""

    def __init__(self, sku: str, wanted: int, available: int) -> None:
        super().__init__(f"{sku}: wanted {wanted}, only {available} available")
        self.sku = sku
        self.wanted = wanted
        self.available = available


@dataclass
class Location:
    id: int
    name: str


@dataclass
class Variant:
    id: int
    product_id: int
    sku: str
    title: str
    inventory_item_id: int
    policy: str = "DENY"  # ProductVariantInventoryPolicy: DENY or CONTINUE
    price: str = "10.00"


@dataclass
class Metafield:
    """A metafield of one owner (a variant, an order...): `value` is always text (typed by
    `type`), identified by (owner gid, namespace, key)."""

    id: int
    owner_id: str  # the owner's gid
    namespace: str
    key: str
    type: str
    value: str
    created_at: datetime
    updated_at: datetime


@dataclass
class Level:
    """Inventory of one item at one location; on_hand = available + committed + reserved here
    (reserved: units a draft order holds until its reserveInventoryUntil)."""

    item_id: int
    location_id: int
    available: int
    committed: int = 0
    reserved: int = 0
    updated_at: datetime = field(default_factory=now_utc)

    @property
    def on_hand(self) -> int:
        return self.available + self.committed + self.reserved


@dataclass
class LineItem:
    id: int
    variant_id: int | None
    sku: str | None
    title: str
    quantity: int
    current_quantity: int
    fulfilled: int = 0
    price: str = "10.00"
    # bought through a selling plan: its id and name as they were at the sale
    selling_plan_id: int | None = None
    selling_plan_name: str | None = None
    checkout_charge: Decimal | None = None  # of the line's total, what the plan took at checkout
    # the plan reserves inventory ON_FULFILLMENT: the sale claimed no units, shipping takes them
    reserve_on_fulfillment: bool = False

    @property
    def unfulfilled(self) -> int:
        return max(self.current_quantity - self.fulfilled, 0)


@dataclass
class Transaction:
    """An OrderTransaction: money the gateway moved (or failed to move) for an order."""

    id: int
    kind: str  # OrderTransactionKind: SALE, AUTHORIZATION, CAPTURE, REFUND, VOID
    status: str  # OrderTransactionStatus: SUCCESS, FAILURE, ...
    amount: Decimal
    created_at: datetime
    gateway: str = GATEWAY
    parent_id: int | None = None
    error_code: str | None = None  # OrderTransactionErrorCode of a FAILURE
    payment_reference: str | None = None  # orderCreateMandatePayment's paymentReferenceId

    @property
    def succeeded(self) -> bool:
        return self.status == "SUCCESS"


@dataclass
class Mandate:
    """A vaulted payment method the customer agreed to have charged later (PaymentMandate)."""

    id: int
    created_at: datetime
    brand: str = "visa"
    last_digits: str = "4242"
    holder: str = "Sandbox Customer"


@dataclass
class Refund:
    id: int
    created_at: datetime
    lines: list[tuple[int, int, bool]]  # (line item id, quantity, restocked)
    note: str | None = None
    transactions: list[Transaction] = field(default_factory=list)
    restock_types: list[str] = field(default_factory=list)  # RefundLineItemRestockType per line
    line_value: Decimal = Decimal(0)  # what the refunded line items were sold for

    def amount(self) -> Decimal:
        return sum((t.amount for t in self.transactions if t.succeeded), Decimal(0))


@dataclass
class Hold:
    id: int
    handle: str | None
    reason: str
    reason_notes: str | None


@dataclass
class FulfillmentOrderLine:
    id: int
    line_item_id: int
    total: int
    remaining: int


@dataclass
class FulfillmentOrder:
    id: int
    order_id: int
    location_id: int
    lines: list[FulfillmentOrderLine]
    status: str = "OPEN"
    holds: list[Hold] = field(default_factory=list)
    created_at: datetime = field(default_factory=now_utc)
    updated_at: datetime = field(default_factory=now_utc)


@dataclass
class Customer:
    id: int
    email: str
    tags: list[str] = field(default_factory=list)  # as the merchant tagged the customer


@dataclass
class Order:
    id: int
    number: int
    email: str | None
    customer: Customer | None
    line_items: list[LineItem]
    created_at: datetime
    updated_at: datetime
    cancelled_at: datetime | None = None
    cancel_reason: str | None = None
    refunds: list[Refund] = field(default_factory=list)
    source_name: str = "web"
    custom_attributes: list[tuple[str, str]] = field(default_factory=list)  # (key, value)
    tags: list[str] = field(default_factory=list)
    note: str | None = None
    # REST financial_status of an order no payment was recorded for (orderCreate, a draft
    # completed as pending); once it has transactions the status follows from them
    financial_status: str = "paid"
    transactions: list[Transaction] = field(default_factory=list)
    mandates: list[Mandate] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"#{self.number}"

    # -- money, as Shopify derives it from the line items and the transactions ----------------
    def total_price(self) -> Decimal:
        return sum((Decimal(li.price) * li.quantity for li in self.line_items), Decimal(0))

    def received(self) -> Decimal:
        """Captured from the customer, before refunds (totalReceivedSet)."""
        return sum(
            (t.amount for t in self.transactions if t.succeeded and t.kind in ("SALE", "CAPTURE")),
            Decimal(0),
        )

    def refunded(self) -> Decimal:
        return sum(
            (t.amount for t in self.transactions if t.succeeded and t.kind == "REFUND"),
            Decimal(0),
        )

    def capturable(self) -> Decimal:
        """Authorized and not yet captured or voided (totalCapturableSet)."""
        total = Decimal(0)
        for auth in self.transactions:
            if auth.kind != "AUTHORIZATION" or not auth.succeeded:
                continue
            children = [t for t in self.transactions if t.parent_id == auth.id and t.succeeded]
            if any(t.kind == "VOID" for t in children):
                continue
            captured = sum((t.amount for t in children if t.kind == "CAPTURE"), Decimal(0))
            total += max(auth.amount - captured, Decimal(0))
        return total

    def current_total(self) -> Decimal:
        """The total after refunds (currentTotalPriceSet): refunded line items leave it, and
        money refunded beyond the lines' value (a goodwill refund) is an adjustment off it."""
        lines = sum((Decimal(li.price) * li.current_quantity for li in self.line_items), Decimal(0))
        adjustments = sum(
            (max(r.amount() - r.line_value, Decimal(0)) for r in self.refunds), Decimal(0)
        )
        return lines - adjustments

    def outstanding(self) -> Decimal:
        """Not yet transacted (totalOutstandingSet); negative is owed to the customer."""
        return self.current_total() - (self.received() - self.refunded())

    def display_financial_status(self) -> str:
        """OrderDisplayFinancialStatus."""
        if not self.transactions:
            return self.financial_status.upper()
        received, refunded = self.received(), self.refunded()
        if refunded > 0:
            return "REFUNDED" if refunded >= received else "PARTIALLY_REFUNDED"
        if received > 0:
            return "PAID" if self.outstanding() <= 0 else "PARTIALLY_PAID"
        if self.capturable() > 0:
            return "AUTHORIZED"
        return "PAID" if self.total_price() == 0 else "PENDING"

    def fulfillment_status(self) -> str:
        """OrderDisplayFulfillmentStatus."""
        fulfilled = sum(li.fulfilled for li in self.line_items)
        if fulfilled and all(li.unfulfilled == 0 for li in self.line_items):
            return "FULFILLED"
        return "PARTIALLY_FULFILLED" if fulfilled else "UNFULFILLED"


@dataclass
class DraftLine:
    id: int
    variant_id: int | None  # None: a custom item, which no inventory stands behind
    sku: str | None
    title: str
    quantity: int
    price: str = "10.00"


@dataclass
class DraftOrder:
    id: int
    number: int
    email: str | None
    customer: Customer | None
    line_items: list[DraftLine]
    custom_attributes: list[tuple[str, str]]  # (key, value), in the order given
    tags: list[str]
    note: str | None
    reserve_until: datetime | None
    invoice_url: str
    created_at: datetime
    updated_at: datetime
    status: str = "OPEN"  # DraftOrderStatus: OPEN, INVOICE_SENT, COMPLETED
    invoice_sent_at: datetime | None = None
    completed_at: datetime | None = None
    order_id: int | None = None
    holds_stock: bool = False  # its variant units sit in "reserved" right now

    @property
    def name(self) -> str:
        return f"#D{self.number}"

    def demand(self) -> dict[int, int]:
        """Units per variant id (custom items hold nothing)."""
        wanted: dict[int, int] = {}
        for line in self.line_items:
            if line.variant_id is not None:
                wanted[line.variant_id] = wanted.get(line.variant_id, 0) + line.quantity
        return wanted


class DraftError(ValueError):
    """A draft order action Shopify refuses (message as Shopify words it)."""


class HoldError(ValueError):
    def __init__(self, code: str, message: str, field_path: list[str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field_path = field_path


class ShopState:
    """Everything the shop knows; ids come from one counter so every gid is unique."""

    def __init__(
        self,
        catalog: Mapping[str, int],
        location_name: str = "Main",
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        self._ids = itertools.count(1001)
        self._numbers = itertools.count(1001)
        self.locations: dict[int, Location] = {}
        self.variants: dict[int, Variant] = {}
        self.levels: dict[tuple[int, int], Level] = {}
        self.orders: dict[int, Order] = {}
        self.fulfillment_orders: dict[int, FulfillmentOrder] = {}
        self.customers: dict[str, Customer] = {}
        self.draft_orders: dict[int, DraftOrder] = {}
        self._draft_numbers = itertools.count(1)
        # invoice emails the shop sent (draftOrderInvoiceSend, orderInvoiceSend), oldest first
        self.mail: list[dict[str, object]] = []
        # the shop's clock: tests replace it to let reservations lapse without waiting
        self.clock = clock
        self.selling_plan_groups: dict[int, SellingPlanGroup] = {}
        self.mandate_payments: dict[str, MandatePayment] = {}  # by idempotency key
        self.jobs: set[str] = set()  # Job ids the shop handed out (all done at once here)
        # metafields by (owner gid, namespace, key) (connectors/sandbox/shopify_metafields.py)
        self.metafields: dict[tuple[str, str, str], Metafield] = {}
        # the card gateway's test switches: decline the next N mandate charges, or every
        # charge on these orders, with this error code
        self.decline_next = 0
        self.decline_orders: set[int] = set()
        self.decline_code = "CARD_DECLINED"
        location = Location(self.next_id(), location_name)
        self.locations[location.id] = location
        self.primary_location = location
        for sku, quantity in catalog.items():
            self.add_variant(sku, quantity)

    def next_id(self) -> int:
        return next(self._ids)

    def now(self) -> datetime:
        return self.clock().astimezone(UTC).replace(microsecond=0)

    # -- catalog and inventory -------------------------------------------------------------
    def add_variant(self, sku: str, available: int, policy: str = "DENY") -> Variant:
        variant = Variant(
            id=self.next_id(),
            product_id=self.next_id(),
            sku=sku,
            title=f"Product {sku}",
            inventory_item_id=self.next_id(),
            policy=policy,
        )
        self.variants[variant.id] = variant
        level = Level(
            variant.inventory_item_id, self.primary_location.id, available, updated_at=self.now()
        )
        self.levels[(level.item_id, level.location_id)] = level
        return variant

    def variant_by_sku(self, sku: str) -> Variant | None:
        return next((v for v in self.variants.values() if v.sku == sku), None)

    def variant_by_item(self, item_id: int) -> Variant | None:
        return next((v for v in self.variants.values() if v.inventory_item_id == item_id), None)

    def level(self, item_id: int, location_id: int) -> Level | None:
        return self.levels.get((item_id, location_id))

    def primary_level(self, variant: Variant) -> Level:
        level = self.level(variant.inventory_item_id, self.primary_location.id)
        if level is None:  # every variant is stocked at the primary location from creation
            raise KeyError(f"{variant.sku} is not stocked at {self.primary_location.name}")
        return level

    def set_available(self, sku: str, available: int, policy: str | None = None) -> Level:
        variant = self.variant_by_sku(sku) or self.add_variant(sku, available)
        if policy is not None:
            variant.policy = policy
        level = self.primary_level(variant)
        level.available = available
        level.updated_at = self.now()
        return level

    # -- orders ----------------------------------------------------------------------------
    def customer_for(self, email: str | None) -> Customer | None:
        if not email:
            return None
        if email not in self.customers:
            self.customers[email] = Customer(self.next_id(), email)
        return self.customers[email]

    def tag_customer(self, customer: Customer, tags: Iterable[str]) -> None:
        """Replace the customer's tags, as a merchant editing them in the admin: trimmed, each
        once (Shopify compares tags case-insensitively), in alphabetical order."""
        customer.tags = normalize_tags(tags)

    def create_order(
        self,
        lines: Iterable[tuple[Variant | None, str | None, int]],
        email: str | None,
        *,
        decrement: bool,
        obey_policy: bool,
        source_name: str = "web",
        deferred: Collection[int] = (),
    ) -> Order:
        """Create an order; with `decrement` the sale moves units from available to committed.

        With `obey_policy` a line that would oversell a DENY variant refuses the whole order.
        Lines whose index is in `deferred` claim no units now (a selling plan that reserves
        inventory on fulfillment).
        """
        self.release_lapsed_reservations()  # units a lapsed draft held count as available
        wanted = list(lines)
        if decrement and obey_policy:
            demand: dict[int, int] = {}
            for index, (variant, _sku, qty) in enumerate(wanted):
                if variant is not None and index not in deferred:
                    demand[variant.id] = demand.get(variant.id, 0) + qty
            for variant_id, qty in demand.items():
                variant = self.variants[variant_id]
                level = self.primary_level(variant)
                if variant.policy == "DENY" and level.available < qty:
                    raise StockRefused(variant.sku, qty, level.available)
        stamp = self.now()
        items = []
        for index, (variant, sku, qty) in enumerate(wanted):
            items.append(
                LineItem(
                    id=self.next_id(),
                    variant_id=variant.id if variant else None,
                    sku=variant.sku if variant else sku,
                    title=variant.title if variant else (sku or "Custom item"),
                    quantity=qty,
                    current_quantity=qty,
                    price=variant.price if variant else "10.00",
                    reserve_on_fulfillment=index in deferred,
                )
            )
            if decrement and variant is not None and index not in deferred:
                level = self.primary_level(variant)
                level.available -= qty
                level.committed += qty
                level.updated_at = stamp
        order = Order(
            id=self.next_id(),
            number=next(self._numbers),
            email=email,
            customer=self.customer_for(email),
            line_items=items,
            created_at=stamp,
            updated_at=stamp,
            source_name=source_name,
        )
        self.orders[order.id] = order
        fo_lines = [
            FulfillmentOrderLine(self.next_id(), li.id, li.quantity, li.quantity) for li in items
        ]
        fo = FulfillmentOrder(self.next_id(), order.id, self.primary_location.id, fo_lines)
        self.fulfillment_orders[fo.id] = fo
        return order

    def _restock(self, line: LineItem, quantity: int) -> None:
        if line.variant_id is None or quantity <= 0 or line.reserve_on_fulfillment:
            return  # a line that claimed no units has none to give back
        level = self.primary_level(self.variants[line.variant_id])
        level.committed -= quantity
        level.available += quantity
        level.updated_at = self.now()

    def cancel_order(self, order: Order, *, reason: str, restock: bool) -> None:
        if order.cancelled_at is not None:
            raise ValueError(f"order {order.id} is already cancelled")
        stamp = self.now()
        for line in order.line_items:
            if restock:
                self._restock(line, line.unfulfilled)
        order.cancelled_at = stamp
        order.cancel_reason = reason
        order.updated_at = stamp
        for fo in self.order_fulfillment_orders(order.id):
            if fo.status not in ("CLOSED",):
                fo.status = "CANCELLED"
                fo.updated_at = stamp

    def refund_lines(
        self,
        order: Order,
        quantities: Mapping[int, int],
        *,
        restock: bool,
        restock_types: Mapping[int, str] | None = None,
    ) -> Refund:
        """Refund (remove) units of lines: current_quantity goes down, as an order edit would.

        `restock_types` (RefundLineItemRestockType per line id) decide line by line instead
        of `restock`: NO_RESTOCK keeps the units out of stock, the others put them back."""
        by_id = {li.id: li for li in order.line_items}
        for line_id, qty in quantities.items():
            line = by_id.get(line_id)
            if line is None:
                raise ValueError(f"order {order.id} has no line item {line_id}")
            if qty <= 0 or qty > line.unfulfilled:
                raise ValueError(f"line {line_id}: cannot refund {qty} of {line.unfulfilled}")
        stamp = self.now()
        refund = Refund(self.next_id(), stamp, [])
        for line_id, qty in quantities.items():
            line = by_id[line_id]
            line.current_quantity -= qty
            kind = (restock_types or {}).get(line_id, "CANCEL" if restock else "NO_RESTOCK")
            restocked = kind != "NO_RESTOCK"
            if restocked:
                self._restock(line, qty)
            refund.lines.append((line_id, qty, restocked))
            refund.restock_types.append(kind)
            refund.line_value += Decimal(line.price) * qty
            self._shrink_fulfillment_lines(order.id, line_id, qty)
        order.refunds.append(refund)
        order.updated_at = stamp
        return refund

    def _shrink_fulfillment_lines(self, order_id: int, line_id: int, qty: int) -> None:
        for fo in self.order_fulfillment_orders(order_id):
            for fol in fo.lines:
                if fol.line_item_id == line_id and qty > 0:
                    taken = min(fol.remaining, qty)
                    fol.remaining -= taken
                    fol.total -= taken
                    qty -= taken

    def fulfill_order(self, order: Order) -> None:
        """Ship everything that is not on hold: committed units leave on_hand."""
        stamp = self.now()
        for fo in self.order_fulfillment_orders(order.id):
            if fo.status != "OPEN":
                continue
            by_id = {li.id: li for li in order.line_items}
            for fol in fo.lines:
                line = by_id[fol.line_item_id]
                if line.variant_id is not None and fol.remaining:
                    level = self.primary_level(self.variants[line.variant_id])
                    if line.reserve_on_fulfillment:  # the units leave stock only now
                        level.available -= fol.remaining
                    else:
                        level.committed -= fol.remaining
                    level.updated_at = stamp
                line.fulfilled += fol.remaining
                fol.remaining = 0
            fo.status = "CLOSED"
            fo.updated_at = stamp
        order.updated_at = stamp

    # -- payments -------------------------------------------------------------------------------
    def record_transaction(
        self,
        order: Order,
        kind: str,
        status: str,
        amount: Decimal,
        *,
        parent_id: int | None = None,
        error_code: str | None = None,
        payment_reference: str | None = None,
        gateway: str = GATEWAY,
    ) -> Transaction:
        stamp = self.now()
        transaction = Transaction(
            id=self.next_id(),
            kind=kind,
            status=status,
            amount=amount.quantize(CENT),
            created_at=stamp,
            gateway=gateway,
            parent_id=parent_id,
            error_code=error_code,
            payment_reference=payment_reference,
        )
        order.transactions.append(transaction)
        if transaction.succeeded:  # a declined charge leaves the order as it was
            order.updated_at = stamp
        return transaction

    def add_mandate(self, order: Order) -> Mandate:
        mandate = Mandate(self.next_id(), self.now())
        order.mandates.append(mandate)
        return mandate

    # -- draft orders -----------------------------------------------------------------------
    def create_draft(
        self,
        lines: Iterable[DraftLine],
        *,
        email: str | None,
        custom_attributes: Iterable[tuple[str, str]] = (),
        tags: Iterable[str] = (),
        note: str | None = None,
        reserve_until: datetime | None = None,
        shop_domain: str = "sandbox.myshopify.com",
    ) -> DraftOrder:
        """A draft order; with `reserve_until` in the future its variant units move from
        available to reserved until then. The full quantity is reserved even past what is
        available: no Shopify refusal for that is known to us."""
        self.release_lapsed_reservations()
        stamp = self.now()
        draft = DraftOrder(
            id=self.next_id(),
            number=next(self._draft_numbers),
            email=email,
            customer=self.customer_for(email),
            line_items=list(lines),
            custom_attributes=list(custom_attributes),
            tags=normalize_tags(tags),
            note=note,
            reserve_until=reserve_until,
            # an unguessable checkout link, shaped like Shopify's
            invoice_url=f"https://{shop_domain}/{SHOP_ID}/invoices/{secrets.token_hex(16)}",
            created_at=stamp,
            updated_at=stamp,
        )
        self.draft_orders[draft.id] = draft
        if reserve_until is not None and reserve_until > stamp:
            self._move_draft_units(draft, "available", "reserved", stamp)
            draft.holds_stock = True
        return draft

    def release_lapsed_reservations(self) -> list[DraftOrder]:
        """Give back to available the units of every draft whose reserveInventoryUntil has
        passed. Shopify does this on time; the sandbox does it before any read or write, which
        nobody can tell apart. Levels are stamped with the moment the reservation ended."""
        now = self.now()
        lapsed = [
            d
            for d in self.draft_orders.values()
            if d.holds_stock and d.reserve_until is not None and d.reserve_until <= now
        ]
        for draft in lapsed:
            assert draft.reserve_until is not None  # narrowed above for mypy
            self._move_draft_units(draft, "reserved", "available", draft.reserve_until)
            draft.holds_stock = False
        return lapsed

    def send_invoice(
        self,
        draft: DraftOrder,
        *,
        to: str,
        subject: str | None = None,
        custom_message: str | None = None,
    ) -> dict[str, object]:
        if draft.status == "COMPLETED":
            raise DraftError("Draft order Invoice can't be sent. This draft order is already paid.")
        stamp = self.now()
        mail = self.send_mail(
            to=to,
            subject=subject or "Complete your purchase",  # Shopify's default invoice subject
            custom_message=custom_message,
            invoice_url=draft.invoice_url,
            about={"draftOrderId": gid("DraftOrder", draft.id)},
            sent_at=stamp,
        )
        draft.status = "INVOICE_SENT"
        draft.invoice_sent_at = stamp
        draft.updated_at = stamp
        return mail

    def send_mail(
        self,
        *,
        to: str,
        subject: str,
        custom_message: str | None,
        invoice_url: str | None,
        about: Mapping[str, object],
        sent_at: datetime | None = None,
    ) -> dict[str, object]:
        """Put one email in the shop's outbox (`GET /_sandbox/mail`); `about` names what it is
        for (`draftOrderId`, `orderId`), so one list holds every kind of invoice. `sent_at`
        lets a caller stamp its own record with the very same moment."""
        stamp = sent_at or self.now()
        mail: dict[str, object] = {
            "to": to,
            "subject": subject,
            "customMessage": custom_message,
            "invoiceUrl": invoice_url,
            **about,
            "sentAt": stamp.isoformat().replace("+00:00", "Z"),
        }
        self.mail.append(mail)
        return mail

    def delete_draft(self, draft: DraftOrder) -> None:
        """Delete an open draft; units it still reserves go back to available."""
        if draft.status == "COMPLETED":
            # the draft is the record of how its order came about: Shopify keeps it
            raise DraftError("Completed draft orders can't be deleted.")
        self.release_lapsed_reservations()
        if draft.holds_stock:
            self._move_draft_units(draft, "reserved", "available", self.now())
            draft.holds_stock = False
        del self.draft_orders[draft.id]

    def complete_draft(self, draft: DraftOrder, *, payment_pending: bool = False) -> Order:
        """The draft becomes an order (the customer paid the invoice, or the merchant completed
        it). Units it still reserves become committed; once its reservation lapsed, the units
        come from available like a storefront checkout's, and a DENY variant short of them
        refuses (StockRefused) with the draft left as it was."""
        if draft.status == "COMPLETED":
            raise DraftError("This order has been paid")
        self.release_lapsed_reservations()
        lines = [
            (self.variants.get(li.variant_id) if li.variant_id else None, li.sku, li.quantity)
            for li in draft.line_items
        ]
        reserved = draft.holds_stock
        order = self.create_order(
            lines,
            draft.email,
            decrement=not reserved,
            obey_policy=True,
            source_name=DRAFT_SOURCE_NAME,
        )
        stamp = order.created_at
        if reserved:
            self._move_draft_units(draft, "reserved", "committed", stamp)
            draft.holds_stock = False
        for item, line in zip(order.line_items, draft.line_items, strict=True):
            item.price = line.price
            if line.variant_id is None:  # create_order titles a custom line by its SKU
                item.title = line.title
        order.custom_attributes = list(draft.custom_attributes)
        order.tags = list(draft.tags)
        order.note = draft.note
        order.financial_status = "pending" if payment_pending else "paid"
        if not payment_pending:  # the customer paid the invoice by card
            self.record_transaction(order, "SALE", "SUCCESS", order.total_price())
        draft.status = "COMPLETED"
        draft.completed_at = stamp
        draft.updated_at = stamp
        draft.order_id = order.id
        return order

    def _move_draft_units(
        self, draft: DraftOrder, source: str, target: str, stamp: datetime
    ) -> None:
        for variant_id, qty in draft.demand().items():
            level = self.primary_level(self.variants[variant_id])
            setattr(level, source, getattr(level, source) - qty)
            setattr(level, target, getattr(level, target) + qty)
            level.updated_at = max(level.updated_at, stamp)

    # -- fulfillment orders and holds ------------------------------------------------------
    def order_fulfillment_orders(self, order_id: int) -> list[FulfillmentOrder]:
        return [fo for fo in self.fulfillment_orders.values() if fo.order_id == order_id]

    def hold(
        self,
        fo: FulfillmentOrder,
        *,
        reason: str,
        handle: str | None,
        reason_notes: str | None,
        line_quantities: Mapping[int, int] | None,
    ) -> tuple[Hold, FulfillmentOrder | None]:
        """Place a hold; with line quantities the fulfillment order is split and the rest
        moves to a new, still open, fulfillment order (Shopify's remainingFulfillmentOrder)."""
        if fo.status not in ("OPEN", "ON_HOLD", "SCHEDULED"):
            raise HoldError("FULFILLMENT_ORDER_NOT_FOUND", f"Fulfillment order is {fo.status}.")
        if len(fo.holds) >= HOLD_LIMIT:
            raise HoldError(
                "FULFILLMENT_ORDER_HOLD_LIMIT_REACHED",
                f"The maximum number of fulfillment holds for this fulfillment order has been "
                f"reached for this app. An app can only have up to {HOLD_LIMIT} holds on a "
                "single fulfillment order at any one time.",
            )
        if handle is not None and any(h.handle == handle for h in fo.holds):
            raise HoldError(
                "DUPLICATE_FULFILLMENT_HOLD_HANDLE",
                "The handle provided for the fulfillment hold is already in use by this app for "
                "another hold on this fulfillment order.",
                ["fulfillmentHold", "handle"],
            )
        remaining_fo = None
        if line_quantities:
            remaining_fo = self._split(fo, line_quantities)
        stamp = self.now()
        held = Hold(self.next_id(), handle, reason, reason_notes)
        fo.holds.append(held)
        fo.status = "ON_HOLD"
        fo.updated_at = stamp
        return held, remaining_fo

    def _split(
        self, fo: FulfillmentOrder, line_quantities: Mapping[int, int]
    ) -> FulfillmentOrder | None:
        by_id = {fol.id: fol for fol in fo.lines}
        for fol_id, qty in line_quantities.items():
            fol = by_id.get(fol_id)
            path = ["fulfillmentHold", "fulfillmentOrderLineItems"]
            if fol is None:
                raise HoldError(
                    "INVALID_LINE_ITEM_QUANTITY",
                    f"Fulfillment order line item {fol_id} is not on this fulfillment order.",
                    path,
                )
            if qty <= 0:
                raise HoldError("GREATER_THAN_ZERO", "Quantity must be greater than 0.", path)
            if qty > fol.remaining:
                raise HoldError(
                    "INVALID_LINE_ITEM_QUANTITY",
                    f"The line item quantity {qty} is more than the remaining {fol.remaining}.",
                    path,
                )
        rest: list[FulfillmentOrderLine] = []
        kept: list[FulfillmentOrderLine] = []
        for fol in fo.lines:
            held = line_quantities.get(fol.id, 0)
            if held:
                kept.append(FulfillmentOrderLine(fol.id, fol.line_item_id, held, held))
            left = fol.remaining - held
            if left > 0:
                rest.append(FulfillmentOrderLine(self.next_id(), fol.line_item_id, left, left))
        if not rest:
            return None
        fo.lines = kept
        new_fo = FulfillmentOrder(
            self.next_id(), fo.order_id, fo.location_id, rest, status=fo.status
        )
        if fo.status == "ON_HOLD":
            new_fo.holds = list(fo.holds)  # the existing holds still cover the units moved out
        self.fulfillment_orders[new_fo.id] = new_fo
        return new_fo

    def release(self, fo: FulfillmentOrder, hold_ids: Iterable[int] | None) -> None:
        wanted = None if hold_ids is None else set(hold_ids)
        fo.holds = [h for h in fo.holds if wanted is not None and h.id not in wanted]
        if not fo.holds and fo.status == "ON_HOLD":
            fo.status = "OPEN"
        fo.updated_at = self.now()
