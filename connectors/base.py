"""Channel-neutral values and the protocol every channel connector implements.

Connectors import nothing from the rest of stocksync: the daemon maps these plain values onto
the ledger. Quantities are whole units; times are timezone-aware UTC datetimes.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Protocol, runtime_checkable


class OrderStatus(enum.StrEnum):
    """What an order means for stock, whatever the channel calls it."""

    OPEN = "open"  # units are owed to the customer (reserve or backorder them)
    FULFILLED = "fulfilled"  # shipped: units left the building
    CANCELLED = "cancelled"  # nothing is owed any more


@dataclass(frozen=True, slots=True)
class OrderLine:
    external_line_id: str
    sku: str
    quantity: int  # the current quantity, after edits and refunds
    # the selling plan the line was bought with (Shopify's numeric id): a pre-order, paid in
    # part at checkout; None for a line bought outright
    selling_plan: str | None = None


@dataclass(frozen=True, slots=True)
class OtherLine:
    """A line that is not stock: no SKU (a custom item, a tip, a gift card, a bundle's parent
    line). Kept with the order so it can be explained; never reserved, backordered or held."""

    external_line_id: str
    title: str
    quantity: int


@dataclass(frozen=True, slots=True)
class ChannelOrder:
    channel: str
    external_id: str
    placed_at: datetime
    updated_at: datetime
    status: OrderStatus
    lines: tuple[OrderLine, ...]
    customer_key: str | None = None
    source_status: str = ""  # the channel's own word, kept for explanations
    other_lines: tuple[OtherLine, ...] = ()
    # what a customer tier may be read from (mapped to a tier by the daemon, per channel config):
    # the customer's tags (Shopify), the customer's role (WooCommerce, when fetched: see
    # WooCommerceChannel.needs_fetch), the order's meta values as (key, value) text pairs in
    # payload order (WooCommerce meta_data; values that are not text or numbers are left out)
    customer_tags: tuple[str, ...] = ()
    customer_role: str | None = None
    meta: tuple[tuple[str, str], ...] = ()
    email: str | None = None  # the customer's (billing) email, when the order has one
    # what the customer still owes on the order (a pre-order's balance); None: not told
    outstanding: Decimal | None = None
    language: str | None = None  # the customer's language at checkout ("nl", "en-GB"), if told


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """A verified webhook, ready to be stored in the inbox as it arrived."""

    event_key: str  # unique per channel; duplicates of one delivery share it
    topic: str
    body: bytes
    # why a verified delivery is answered 200 but not stored: a topic we do not subscribe to,
    # whose change also comes as an order update (Shopify's orders/edited, refunds/create)
    ignored: str = ""


POLL_TOPIC = "poll/order"


@dataclass(frozen=True, slots=True)
class PolledOrder:
    """An order read by polling, with the bytes to store in the inbox under POLL_TOPIC."""

    order: ChannelOrder
    event_key: str  # stable for one version of the order, e.g. "<id>@<updated_at>"
    body: bytes


@dataclass(frozen=True, slots=True)
class Listing:
    """Where one SKU lives on a channel and how many the channel shows now."""

    sku: str
    external_ids: Mapping[str, str]
    quantity: int | None
    # the units the channel counts as on hand, sold-but-unshipped included (Shopify's on_hand
    # at the location, from list_listings); None where the channel keeps no such number
    on_hand: int | None = None


@dataclass(frozen=True, slots=True)
class OfferPush:
    sku: str
    quantity: int
    last_seen: int | None  # the channel quantity we last read; None skips compare-and-set
    # What the shop page should say (issue #17): of `quantity`, the units not on hand yet (open
    # purchase orders the offer counts), and the date the first of them is expected (None when
    # `incoming` is 0). A connector applies them only when they differ from what the page shows.
    incoming: int = 0
    expected_on: date | None = None
    # the expected date the last push that landed gave this listing's page (None: no date),
    # for a connector that cannot read its page without an extra call (Shopify's metafield);
    # `page_unknown`: not known (a page write that may or may not have landed): write it anew
    expected_on_shown: date | None = None
    page_unknown: bool = False


# a PushResult's error code: the quantity landed (`channel_quantity`), the shop page's write
# failed (it may or may not have landed); the listing is pushed again
PAGE_NOT_UPDATED = "PAGE_NOT_UPDATED"


@dataclass(frozen=True, slots=True)
class PushResult:
    sku: str
    ok: bool
    channel_quantity: int | None = None  # what the channel holds now, when it told us
    error_code: str | None = None
    message: str = ""


@dataclass(frozen=True, slots=True)
class BackorderHold:
    """Units of an order's lines that wait for incoming stock."""

    order_external_id: str
    line_quantities: Mapping[str, int] = field(default_factory=dict)  # external_line_id -> units
    # when the units should all be in (the promise date, issue #17); None: not known
    expected_on: date | None = None


@dataclass(frozen=True, slots=True)
class PaymentRequest:
    """Ask a customer to pay for units set aside for them (a campaign allocation), by a deadline.

    `key` is ours and stable ("<campaign>-<entry id>"): a request made before a crash is found
    by it instead of made twice. `attributes` ride on the shop's order when it is paid, so the
    paid order can be matched to what was set aside."""

    key: str
    email: str
    sku: str
    quantity: int
    pay_by: datetime  # the customer's deadline
    reserve_until: datetime  # how long the shop itself may keep the units reserved
    attributes: Mapping[str, str]
    message: str  # to the customer, with the deadline
    amount: Decimal | None = None  # what is left to pay (a balance); None: the shop's price
    # the shop order the customer paid a deposit on, where the shop can charge the balance
    # itself (a Shopify pre-order's payment mandate); None: a new request is made
    deposit_order: str | None = None
    currency: str | None = None  # of `amount`


@dataclass(frozen=True, slots=True)
class PaymentLink:
    ref: str  # the shop's id of the request (a draft order's gid, an order id)
    url: str  # where the customer pays
    paid: bool = False  # the shop charged it at once (a vaulted card): nothing left to ask


PAYMENT_ATTRIBUTE = "stocksync_entry"  # on the request and so on the paid order: "<id>:<proof>"


class ChannelError(Exception):
    """A channel call failed; carries what an operator and the retry policy need."""

    def __init__(
        self,
        channel: str,
        operation: str,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retryable: bool = False,
    ) -> None:
        super().__init__(f"{channel}: {operation}: {message}")
        self.channel = channel
        self.operation = operation
        self.message = message
        self.status = status
        self.code = code
        self.retryable = retryable


AUTH_STATUSES = frozenset({401, 403})
AUTH_CODES = frozenset({"ACCESS_DENIED"})  # Shopify GraphQL: a scope the token lacks (HTTP 200)


def is_auth_error(exc: BaseException) -> bool:
    """The channel refused our credentials: a wrong, revoked or expired token or key (401), or
    one without the access a call needs (403, a missing scope). Retrying cannot fix it; a
    person must."""
    return isinstance(exc, ChannelError) and (
        exc.status in AUTH_STATUSES or (exc.code or "") in AUTH_CODES
    )


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What one cheap call told about a channel (`stocksync check --online`)."""

    summary: str  # one line for people: the shop, and what was found
    facts: Mapping[str, object] = field(default_factory=dict)  # e.g. shop name, location id
    problems: tuple[str, ...] = ()  # found but wrong: a missing scope, an unknown location

    @property
    def ok(self) -> bool:
        return not self.problems


class WebhookRejected(Exception):
    """A webhook that must not be stored: forged, unsigned or malformed."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status}: {reason}")
        self.status = status
        self.reason = reason


class PayloadError(ValueError):
    """A channel payload that cannot be understood; carries where it failed."""

    def __init__(self, channel: str, what: str, message: str) -> None:
        super().__init__(f"{channel}: {what}: {message}")
        self.channel = channel
        self.what = what
        self.message = message


@runtime_checkable
class Channel(Protocol):
    """What the daemon needs of a channel. Implementations do their own retries and pacing."""

    name: str
    # How long an unanswered quantity write may still land, in seconds, on a channel whose
    # writes are absolute (a late one overwrites a newer number); None with compare-and-set,
    # where a late write finds the quantity moved and is refused.
    late_write_window: float | None

    def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookEvent | None:
        """Verify and identify a webhook; None means acknowledged with nothing to store (a ping).

        Raises WebhookRejected for forged, unsigned or malformed deliveries.
        """
        ...

    def parse_order(self, topic: str, body: bytes) -> ChannelOrder:
        """Parse an order payload as stored in the inbox.

        `topic` is the webhook topic (e.g. "orders/updated", "order.updated") or POLL_TOPIC for a
        body that pull_orders produced. Raises PayloadError when the body cannot be understood.
        """
        ...

    def needs_fetch(self, topic: str, body: bytes) -> bool:
        """Whether the payload lacks what applying it needs and `complete_order` must fetch it
        first (WooCommerce lists an order's refunds without their lines). Pure: no I/O."""
        ...

    def complete_order(self, topic: str, body: bytes) -> bytes:
        """The payload with what it lacked fetched from the channel (ChannelError on failure);
        parse_order reads it like any body of the topic."""
        ...

    def pull_orders(self, updated_after: datetime) -> Iterator[PolledOrder]:
        """Orders updated after the watermark, oldest first, each with its raw JSON body."""
        ...

    def fetch_listings(self, skus: Sequence[str]) -> dict[str, Listing]:
        """Map SKUs to the channel's records and current quantities; unknown SKUs are absent."""
        ...

    def list_listings(self) -> Iterator[Listing]:
        """Every variant or product the channel sells with a SKU, and its current quantity,
        page by page (`stocksync adopt`). A SKU may come twice if the channel has it twice."""
        ...

    def push_offers(self, pushes: Sequence[OfferPush]) -> list[PushResult]:
        """Set offered quantities, in the channel's largest batches; one result per push."""
        ...

    def place_hold(self, hold: BackorderHold) -> None:
        """Tell the channel these units wait for stock (Shopify hold; WooCommerce on-hold, note)."""
        ...

    def lift_hold(self, hold: BackorderHold) -> None:
        """Tell the channel the units are now in stock and may ship.

        An empty `line_quantities` releases every hold of ours on the order.
        """
        ...

    def probe(self) -> ProbeResult:
        """Call the channel once or twice, cheaply, to check the connection: credentials,
        access, and what the config names on it (ChannelError when a call fails)."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class TakesPayments(Protocol):
    """A shop that can ask a customer to pay (Shopify draft orders, WooCommerce pending orders).
    Manual channels cannot: a person confirms their payments."""

    name: str

    def request_payment(self, request: PaymentRequest) -> PaymentLink:
        """Create the request (or find the one made before under `request.key`) and send the
        customer its link. Repeating it after a failure creates no second request."""
        ...

    def remind_payment(self, ref: str, request: PaymentRequest) -> None:
        """Send the customer the link again, with `request.message`."""
        ...

    def withdraw_payment(self, ref: str) -> bool:
        """Take the request back so it can no longer be paid, freeing what the shop reserved
        for it. False when it was paid already (its order comes as any order does)."""
        ...


@runtime_checkable
class AnnotatesOrders(Protocol):
    """A shop stocksync can leave a message on an order for (the outbox's "shop_note"
    messages): WooCommerce a customer note, which WooCommerce emails to the customer; Shopify a
    line appended to the order's staff note (the Admin API has no customer-visible order note).
    Manual channels have no order page."""

    name: str

    def add_customer_note(self, order_ref: str, text: str) -> None:
        """Leave `text` on the order `order_ref` (the shop's order id), once: a note with the
        same text already there is not added again, so a retry after a call that landed sends
        the customer nothing twice. ChannelError when the shop refuses or the order is gone."""
        ...


@dataclass(frozen=True, slots=True)
class RefundRequest:
    """Give a customer money back on the order they paid (a campaign deposit or balance)."""

    order_ref: str  # the shop's order the money was paid on
    amount: Decimal
    currency: str
    key: str  # ours, unique per refund: the shop's refunds are searched for it before any call
    reason: str


@runtime_checkable
class TakesRefunds(Protocol):
    """A shop stocksync can refund on (WooCommerce, Shopify). Elsewhere refunds are made by
    hand."""

    name: str

    def refund(self, request: RefundRequest) -> str:
        """Refund `request.amount` on the order, once: a refund already carrying `request.key`
        is found and returned instead of made again. Returns the shop's refund id."""
        ...
