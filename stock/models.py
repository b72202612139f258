"""The ledger tables (DESIGN §2). Checks live in constraints so no writer can break them.

Each table has one module that writes it:

    sku, stock_level                 stock.counts
    purchase_order, po_line,
    po_receipt                       stock.purchasing
    reservation, backorder           stock.commitments
    channel_order, order_line        backorders.orders (backorder_hold: stock.outbox)
    listing                          stock.listings
    push_in_flight                   stock.inflight
    pool_share, pool_move            stock.pools
    campaign_entry, campaign_state,
    campaign_identity                stock.campaigns
    writeback                        stock.outbox
    inbox_event                      stock.inbox
    channel_state                    stock.channel_state
    audit_entry                      stock.audit
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

# Named constraints so Alembic migrations are stable on SQLite and PostgreSQL alike.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets BIGINT identities.
Id = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite keeps no zone; naive values are refused)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the ledger stores aware UTC times only")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Sku(Base):
    __tablename__ = "sku"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    code: Mapped[str] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # when on hand was first counted (`stock set`, `stock import`, `adopt`); None: the SKU
    # came with an order and its on hand is no count (the push holds lower numbers for it
    # until it is counted or its channel adopted: docs/onboarding.md)
    counted_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class StockLevel(Base):
    __tablename__ = "stock_level"
    __table_args__ = (
        CheckConstraint("on_hand >= 0", name="on_hand_not_negative"),
        CheckConstraint("oversold >= 0", name="oversold_not_negative"),
        CheckConstraint("reserved >= 0 AND backordered >= 0", name="counters_not_negative"),
    )
    sku_id: Mapped[int] = mapped_column(ForeignKey("sku.id"), primary_key=True)
    on_hand: Mapped[int] = mapped_column(Integer, default=0)
    # Units shipped that on_hand could not cover: an oversell is recorded, never hidden.
    oversold: Mapped[int] = mapped_column(Integer, default=0)
    # Counters of the rows below, kept by stock.commitments in the same transaction as the rows
    # (Σ reservation.qty and Σ backorder.qty_open of this SKU), so an offer reads one row.
    reserved: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    backordered: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # the promise dates of a SKU with many backorders are planned after commit, not in every
    # transaction that touches them (backorders.promising): True until they are
    promises_due: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class PurchaseOrder(Base):
    __tablename__ = "purchase_order"
    __table_args__ = (
        CheckConstraint("status IN ('open', 'received', 'cancelled')", name="status_known"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    ref: Mapped[str] = mapped_column(String(255), unique=True)
    supplier: Mapped[str | None] = mapped_column(String(255))
    eta: Mapped[date] = mapped_column(Date)
    original_eta: Mapped[date | None] = mapped_column(Date)  # the supplier's first promise
    status: Mapped[str] = mapped_column(String(16), default="open")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    lines: Mapped[list[PoLine]] = relationship(back_populates="po", order_by="PoLine.id")


class PoReceipt(Base):
    """One receipt of a SKU on a PO (issue #17): when, how many, and the ETA it was due by,
    for suppliers' lead time, on-time and fill rates."""

    __tablename__ = "po_receipt"
    __table_args__ = (CheckConstraint("qty > 0", name="qty_positive"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    po_id: Mapped[int] = mapped_column(ForeignKey("purchase_order.id"), index=True)
    sku_id: Mapped[int] = mapped_column(ForeignKey("sku.id"))
    qty: Mapped[int] = mapped_column(Integer)
    eta: Mapped[date] = mapped_column(Date)  # the PO's ETA when it arrived
    received_at: Mapped[datetime] = mapped_column(UtcDateTime())


class PoLine(Base):
    __tablename__ = "po_line"
    __table_args__ = (
        UniqueConstraint("po_id", "sku_id", name="po_sku"),
        CheckConstraint("ordered >= 0", name="ordered_not_negative"),
        CheckConstraint("received >= 0", name="received_not_negative"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    po_id: Mapped[int] = mapped_column(ForeignKey("purchase_order.id"), index=True)
    sku_id: Mapped[int] = mapped_column(ForeignKey("sku.id"), index=True)
    ordered: Mapped[int] = mapped_column(Integer)
    received: Mapped[int] = mapped_column(Integer, default=0)
    po: Mapped[PurchaseOrder] = relationship(back_populates="lines")


class ChannelOrder(Base):
    __tablename__ = "channel_order"
    __table_args__ = (
        UniqueConstraint("channel", "external_id", name="channel_external_id"),
        Index("ix_channel_order_placed_at", "placed_at"),  # sales per hour (alerts)
        CheckConstraint("status IN ('open', 'fulfilled', 'cancelled')", name="status_known"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    channel: Mapped[str] = mapped_column(String(64))
    external_id: Mapped[str] = mapped_column(String(255))
    placed_at: Mapped[datetime] = mapped_column(UtcDateTime())
    customer_key: Mapped[str | None] = mapped_column(String(255))
    tier: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    source_status: Mapped[str] = mapped_column(String(64), default="")
    source_updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # What the channel holds for this order (external line id -> units held), written only by
    # stock.outbox. The key "?" (outbox.UNSURE) marks a write-back that talked to the channel
    # without recording the result (its value: when, epoch seconds): the hold is then unknown.
    backorder_hold: Mapped[dict[str, int] | None] = mapped_column(JSON)
    # lines that are not stock (no SKU): [{"line", "title", "quantity"}], for explanations
    other_lines: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    # how the customer is told about the order (issue #17): their email and language, when known
    email: Mapped[str | None] = mapped_column(String(320))
    language: Mapped[str | None] = mapped_column(String(16))
    lines: Mapped[list[OrderLine]] = relationship(back_populates="order", order_by="OrderLine.id")


class OrderLine(Base):
    """quantity = reserved + backordered + shipped + cancelled, always (checked by the ledger)."""

    __tablename__ = "order_line"
    __table_args__ = (
        UniqueConstraint("order_id", "external_line_id", name="order_external_line"),
        CheckConstraint("quantity >= 0", name="quantity_not_negative"),
        CheckConstraint("shipped >= 0 AND cancelled >= 0", name="counts_not_negative"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("channel_order.id"), index=True)
    external_line_id: Mapped[str] = mapped_column(String(255))
    sku_id: Mapped[int] = mapped_column(ForeignKey("sku.id"), index=True)
    quantity: Mapped[int] = mapped_column(Integer)
    shipped: Mapped[int] = mapped_column(Integer, default=0)
    cancelled: Mapped[int] = mapped_column(Integer, default=0)
    order: Mapped[ChannelOrder] = relationship(back_populates="lines")
    reservation: Mapped[Reservation | None] = relationship(
        back_populates="line", cascade="all, delete-orphan"
    )
    backorders: Mapped[list[Backorder]] = relationship(
        back_populates="line", order_by="Backorder.id", cascade="all"
    )


class Reservation(Base):
    """Units of on_hand held for an unshipped line; one row per line."""

    __tablename__ = "reservation"
    __table_args__ = (CheckConstraint("qty > 0", name="qty_positive"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    order_line_id: Mapped[int] = mapped_column(ForeignKey("order_line.id"), unique=True)
    sku_id: Mapped[int] = mapped_column(ForeignKey("sku.id"), index=True)
    qty: Mapped[int] = mapped_column(Integer)
    line: Mapped[OrderLine] = relationship(back_populates="reservation")


class Backorder(Base):
    """Units promised against incoming stock. Rows with qty_open = 0 stay as history."""

    __tablename__ = "backorder"
    __table_args__ = (
        CheckConstraint("qty_open >= 0", name="qty_open_not_negative"),
        Index("ix_backorder_open", "sku_id", "qty_open"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    order_line_id: Mapped[int] = mapped_column(ForeignKey("order_line.id"), index=True)
    sku_id: Mapped[int] = mapped_column(ForeignKey("sku.id"))
    qty_open: Mapped[int] = mapped_column(Integer)
    qty_released: Mapped[int] = mapped_column(Integer, default=0)
    # False: the channel sold it before our lower offer landed; kept and flagged, never dropped.
    accepted_within_capacity: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # the date the customer was promised (issue #17: the ETA of the PO line that fills it in
    # release order); None: unknown. When a re-plan moves it later, the date it moved from.
    promised_on: Mapped[date | None] = mapped_column(Date)
    promise_planned_at: Mapped[datetime | None] = mapped_column(UtcDateTime())  # None: not yet
    promise_moved_from: Mapped[date | None] = mapped_column(Date)
    promise_moved_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    line: Mapped[OrderLine] = relationship(back_populates="backorders")


class Listing(Base):
    __tablename__ = "listing"
    __table_args__ = (UniqueConstraint("channel", "sku_id", name="channel_sku"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    channel: Mapped[str] = mapped_column(String(64))
    sku_id: Mapped[int] = mapped_column(ForeignKey("sku.id"), index=True)
    external_ids: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    last_pushed: Mapped[int | None] = mapped_column(Integer)
    last_seen: Mapped[int | None] = mapped_column(Integer)
    pushed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    dirty: Mapped[bool] = mapped_column(Boolean, default=True)
    dirty_since: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # bumped by every change that may move the offer; a push clears `dirty` only for the
    # version it computed, so a change made while it talked to the channel is never hidden
    dirty_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # set when a push held this listing back: it would lower the channel's quantity of a SKU
    # never counted on a channel never adopted; cleared when it is pushed or marked dirty anew
    held_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class PushInFlight(Base):
    """A quantity write sent to a channel whose writes are absolute (WooCommerce), recorded
    before the call and deleted once the channel answered it. A row left behind (a timeout, a
    killed worker) is a write that may still land, after a newer one, until `settle_by`; then
    the push re-reads the listing (sync/jobs/push.py)."""

    __tablename__ = "push_in_flight"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    channel: Mapped[str] = mapped_column(String(64))
    listing_id: Mapped[int] = mapped_column(
        ForeignKey("listing.id", ondelete="CASCADE"), index=True
    )
    attempt: Mapped[str] = mapped_column(String(64), index=True)
    quantity: Mapped[int] = mapped_column(Integer)
    sent_at: Mapped[datetime] = mapped_column(UtcDateTime())
    settle_by: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)


class PoolShare(Base):
    """A pooled SKU's allotment on one channel: `allotted` units granted to it in all, counting
    those it sold (order lines' live and shipped units); it is offered `allotted - sold`."""

    __tablename__ = "pool_share"
    __table_args__ = (UniqueConstraint("sku_id", "channel", name="sku_channel"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    sku_id: Mapped[int] = mapped_column(ForeignKey("sku.id"))
    channel: Mapped[str] = mapped_column(String(64))
    allotted: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class PoolMove(Base):
    """Units moving between two channels of a pool: taken from `from_channel` at once, given to
    `to_channel` only once the donor's shop shows its smaller number (status `shrinking` until
    then, `done` after; `units_given` may be fewer: what the donor sold meanwhile)."""

    __tablename__ = "pool_move"
    __table_args__ = (
        CheckConstraint("status IN ('shrinking', 'done')", name="status_known"),
        CheckConstraint("units > 0", name="units_positive"),
        Index("ix_pool_move_open", "sku_id", "status"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    sku_id: Mapped[int] = mapped_column(ForeignKey("sku.id"))
    from_channel: Mapped[str] = mapped_column(String(64))
    to_channel: Mapped[str] = mapped_column(String(64))
    units: Mapped[int] = mapped_column(Integer)
    units_given: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="shrinking")
    why: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    done_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


ENTRY_STATES = (
    "waiting", "review", "allocated", "confirmed", "expired", "declined", "not_allocated"
)  # fmt: skip


class CampaignEntry(Base):
    """One sign-up on a campaign's waitlist (issue #15). `waiting` -> (`review`) -> `allocated`
    (a unit held until `expires_at`) -> `confirmed` | `expired` | `declined`; at close the rest
    -> `not_allocated`. `token` is the customer's private key to their status page."""

    __tablename__ = "campaign_entry"
    __table_args__ = (
        CheckConstraint(
            "status IN ('waiting', 'review', 'allocated', 'confirmed', 'expired', 'declined', "
            "'not_allocated', 'cancelled')",
            name="status_known",
        ),
        CheckConstraint("qty > 0", name="qty_positive"),
        Index("ix_campaign_entry_queue", "campaign", "status", "sku_id"),
        Index("ix_campaign_entry_pay_state", "pay_state"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    campaign: Mapped[str] = mapped_column(String(64))
    sku_id: Mapped[int] = mapped_column(ForeignKey("sku.id"))
    qty: Mapped[int] = mapped_column(Integer)
    email: Mapped[str] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(64))
    country: Mapped[str | None] = mapped_column(String(2))
    address: Mapped[str | None] = mapped_column(Text)
    tier: Mapped[str | None] = mapped_column(String(64))
    keys: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)  # normalised identities
    status: Mapped[str] = mapped_column(String(16), default="waiting")
    token: Mapped[str] = mapped_column(String(64), unique=True)
    signed_up_at: Mapped[datetime] = mapped_column(UtcDateTime())
    review_reason: Mapped[str | None] = mapped_column(Text)
    wave: Mapped[int | None] = mapped_column(Integer)
    # the tier whose reserved units this allocation took (method tiers), else None
    tier_reserve: Mapped[str | None] = mapped_column(String(64))
    allocated_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    channel: Mapped[str | None] = mapped_column(String(64))  # where it pays (or was confirmed)
    order_ref: Mapped[str | None] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # the payment request on a shop (stock.campaign_payments): `requested` -> `open` (the shop
    # has it, the customer was sent the link) -> `paid` | `withdrawing` -> `withdrawn`;
    # `failed` when the shop refused it for good (pay_error says why). None: nothing on a shop.
    pay_state: Mapped[str | None] = mapped_column(String(16))
    pay_channel: Mapped[str | None] = mapped_column(String(64))  # the shop the request is on
    pay_ref: Mapped[str | None] = mapped_column(String(255))  # the draft's gid, the order's id
    pay_url: Mapped[str | None] = mapped_column(Text)  # where the customer pays
    pay_claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())  # a call under way
    pay_error: Mapped[str | None] = mapped_column(Text)
    reminded_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # the payment terms the customer accepted (stock.payment_terms.accepted), None without terms
    terms: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # new terms the campaign changed to, offered until the customer accepts them or cancels
    terms_offer: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class CampaignMoney(Base):
    """A deposit or balance paid, or a refund owed, for a campaign entry (issue #16), in whole
    minor units. `key` is unique: the same charge or refund is never recorded (nor made) twice.
    A refund is `planned`, then `refunded` on the shop (`shop_ref`), `by_hand` on a manual
    channel, `failed` (the shop refused; `error`), or `waived` (the terms keep it)."""

    __tablename__ = "campaign_money"
    __table_args__ = (
        CheckConstraint("kind IN ('deposit', 'balance', 'refund')", name="kind_known"),
        CheckConstraint(
            "state IN ('planned', 'paid', 'refunded', 'by_hand', 'failed', 'waived')",
            name="state_known",
        ),
        CheckConstraint("amount_minor >= 0", name="amount_not_negative"),
        Index("ix_campaign_money_state", "state"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("campaign_entry.id"), index=True)
    campaign: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    channel: Mapped[str | None] = mapped_column(String(64))  # where it was paid / is refunded
    order_ref: Mapped[str | None] = mapped_column(String(255))  # the shop order paid on
    key: Mapped[str] = mapped_column(String(200), unique=True)
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    shop_ref: Mapped[str | None] = mapped_column(String(255))  # the shop's refund id
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    due_at: Mapped[datetime | None] = mapped_column(UtcDateTime())  # not before (a condition)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class CampaignShopPlan(Base):
    """A campaign's selling plan on a Shopify channel (issue #16): a pre-order with the
    campaign's deposit. A checkout through `plan_ref` is a sign-up. `digest` is of the plan as
    last made on the shop: a different one (the terms or SKUs changed) makes it again; `error`
    holds the shop's refusal until it is made."""

    __tablename__ = "campaign_shop_plan"
    __table_args__ = (UniqueConstraint("campaign", "channel", name="campaign_channel"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    campaign: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(64))
    group_ref: Mapped[str | None] = mapped_column(String(255))
    plan_ref: Mapped[str | None] = mapped_column(String(255), index=True)  # numeric id
    # every plan id the campaign ever sold through here: orders keep the one they were bought
    # with, whatever became of it
    known_plans: Mapped[list[str] | None] = mapped_column(JSON)
    digest: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())  # a sync in progress
    synced_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class CampaignIdentity(Base):
    """An entry's normalised identity keys (email, phone, address), indexed: a sign-up finds
    the entries it shares a customer with without reading the whole waitlist."""

    __tablename__ = "campaign_identity"
    __table_args__ = (Index("ix_campaign_identity_key", "campaign", "kind", "value"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    campaign: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(400))
    entry_id: Mapped[int] = mapped_column(ForeignKey("campaign_entry.id"), index=True)


class CampaignState(Base):
    """A campaign's waves so far, its lottery seed, and when it closed."""

    __tablename__ = "campaign_state"
    campaign: Mapped[str] = mapped_column(String(64), primary_key=True)
    waves: Mapped[int] = mapped_column(Integer, default=0)
    last_wave_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    seed: Mapped[int | None] = mapped_column(BigInteger)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # {sku code: on hand} as the last tick saw it: a rise invites the next in line at once
    stock_seen: Mapped[dict[str, int] | None] = mapped_column(JSON)
    # a digest of the payment terms the entries were last compared with: unchanged terms are
    # not compared again (a waitlist of 50,000 is not read every minute for nothing)
    terms_seen: Mapped[str | None] = mapped_column(String(64))


class InboxEvent(Base):
    __tablename__ = "inbox_event"
    __table_args__ = (UniqueConstraint("channel", "event_key", name="channel_event_key"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    channel: Mapped[str] = mapped_column(String(64))
    event_key: Mapped[str] = mapped_column(String(255))
    topic: Mapped[str] = mapped_column(String(128))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime())
    processed_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    # the body lacks what applying needs (WooCommerce lists refunds without their lines): a
    # job fetches it (`fetched_body`, the body completed) before the event is applied
    awaits_fetch: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    fetched_body: Mapped[bytes | None] = mapped_column(LargeBinary)


class NotifyMessage(Base):
    """A message to send (issue #17): an email to a customer or the merchant, a note on a shop
    order, a signed webhook. `key` is unique per event and target: never sent twice. `pending`
    until sent; retried with backoff (`next_attempt_at`); `failed` for good after the last
    attempt (visible, retried by hand)."""

    __tablename__ = "notify_message"
    __table_args__ = (
        CheckConstraint("state IN ('pending', 'sent', 'failed')", name="state_known"),
        Index("ix_notify_message_due", "state", "next_attempt_at"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    key: Mapped[str] = mapped_column(String(255), unique=True)
    event: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # email | shop_note | webhook
    target: Mapped[str] = mapped_column(String(500))  # an address, a URL, "channel/order"
    language: Mapped[str | None] = mapped_column(String(16))
    subject: Mapped[str | None] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime())
    claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class NotifyCursor(Base):
    """How far a reader of the audit log has turned entries into messages (issue #17): the
    audit log is the event log, written in the same transaction as each change."""

    __tablename__ = "notify_cursor"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_audit_id: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class AlertIncident(Base):
    """A merchant alert's incident (issue #17): opened once when a condition starts, kept while
    it lasts (`last_seen_at`), closed when it ends; one alert per incident, not per sample."""

    __tablename__ = "alert_incident"
    __table_args__ = (Index("ix_alert_incident_open", "kind", "subject", "closed_at"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(255))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class AuditEntry(Base):
    __tablename__ = "audit_entry"
    # the last entry of an action per subject (alerts read the last reconcile per channel)
    __table_args__ = (Index("ix_audit_entry_action", "action", "subject"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(255))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ChannelState(Base):
    """Per-channel daemon state: the poll watermark, the push lease, an auth hold."""

    __tablename__ = "channel_state"
    channel: Mapped[str] = mapped_column(String(64), primary_key=True)
    poll_watermark: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_poll_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # a lease rather than a held lock: no transaction stays open across channel I/O, and a
    # crashed pusher's lease simply expires
    push_lease_owner: Mapped[str | None] = mapped_column(String(64))
    push_lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    # when the channel's quantities last moved by themselves (a sale we may not know yet);
    # raising a number over such a quantity waits for a poll that finished after it
    moved_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # the channel refused our credentials (401/403, a missing scope): no job calls it until
    # then (last_error says why); each refusal in a row doubles the hold (sync/channel_auth.py)
    held_until: Mapped[datetime | None] = mapped_column(UtcDateTime())
    auth_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # when `stocksync adopt` took the channel's quantities as on hand: from then on its
    # listings are pushed whatever the SKU's history (docs/onboarding.md)
    adopted_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class Writeback(Base):
    """An order whose backorder state must be written to its channel (transactional outbox).

    `version` grows with every ledger change; the worker marks the row done only for the version
    it read, so a change made while it talked to the channel is never lost.
    """

    __tablename__ = "writeback"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'done', 'failed')", name="status_known"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("channel_order.id"), unique=True)
    channel: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    done_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    order: Mapped[ChannelOrder] = relationship()
