"""Shopify through the Admin GraphQL API: catalog by SKU, order pull, webhooks, offered
quantity pushes (compare-and-set, idempotent), and backorder holds on fulfillment orders."""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import structlog

from connectors import shopify_deposits, shopify_payments
from connectors import shopify_queries as q
from connectors.base import (
    PAGE_NOT_UPDATED,
    BackorderHold,
    ChannelError,
    ChannelOrder,
    Listing,
    OfferPush,
    PayloadError,
    PaymentLink,
    PaymentRequest,
    PolledOrder,
    ProbeResult,
    PushResult,
    RefundRequest,
    WebhookEvent,
    WebhookRejected,
    is_auth_error,
)
from connectors.shopify_deposits import PlanRef, PlanSpec
from connectors.shopify_orders import gid_tail, parse_body, parse_graphql_order
from connectors.shopify_transport import ShopifyTransport
from connectors.signatures import verify

HOLD_HANDLE = "stocksync-backorder"
HOLD_REASON = "INVENTORY_OUT_OF_STOCK"
PUSH_REASON = "correction"
STALE = "CHANGE_FROM_QUANTITY_STALE"
# topics whose body is the order resource (docs/shopify.md subscribes to the first three)
ORDER_TOPICS = frozenset(
    {
        "orders/create",
        "orders/updated",
        "orders/cancelled",
        "orders/fulfilled",
        "orders/partially_fulfilled",
        "orders/paid",
    }
)
IGNORED_TOPICS = {
    "orders/edited": "an order edit also comes as orders/updated, with current quantities",
    "refunds/create": "a refund also comes as orders/updated, with current quantities",
    "orders/delete": "Shopify deletes only cancelled or archived orders",
}
UNKNOWN_TOPIC = "not an order topic stocksync reads (see docs/shopify.md)"
STALE_RETRIES = 3  # resends of a call's rows held back by other, stale rows
HOLDABLE = ("OPEN", "SCHEDULED", "ON_HOLD")
# the Admin API access scopes stocksync needs (docs/shopify.md), and what each is for
# needed only where campaigns ask customers to pay (connectors/shopify_payments.py)
PAYMENT_SCOPES: Mapping[str, str] = {
    "write_draft_orders": "create, invoice and delete campaign draft orders",
}
# needed only where campaigns take deposits through pre-order selling plans
# (connectors/shopify_deposits.py)
DEPOSIT_SCOPE_NEEDS: Mapping[str, str] = {
    "write_products": "create, change and delete the campaign's pre-order selling plan group",
    "write_purchase_options": "create, change and delete the campaign's pre-order selling plan",
    "write_payment_mandate": "charge the balance to the card vaulted at the pre-order checkout",
    "write_orders": "email the balance's payment link, cancel unpaid pre-orders, refund",
}
REQUIRED_SCOPES: Mapping[str, str] = {
    "read_orders": "read orders (polling)",
    "read_products": "find each SKU's variant and inventory item",
    "write_inventory": "set available quantities",
    "read_locations": "find the configured location",
    "write_merchant_managed_fulfillment_orders": "hold backordered order lines",
    # metafieldsSet needs the access that changing the owner needs: a variant's, write_products
    "write_products": "set and clear the expected date metafield of variants offering "
    "incoming units",
}
# needed only where stocksync leaves messages on orders (AnnotatesOrders: orderUpdate)
NOTE_SCOPE_NEEDS: Mapping[str, str] = {
    "write_orders": "append stocksync's customer messages to the order's note",
}
# the shop page's expected date (docs/shopify.md): a `date` metafield of the variant
log = structlog.get_logger("stocksync.connectors.shopify")
PAGE_NAMESPACE = "stocksync"
PAGE_KEY = "expected_date"
PAGE_TYPE = "date"
NOTE_PREFIX = "stocksync: "  # each message appended to an order's note starts with it
PROBE_ATTEMPTS = 2  # `check --online` answers in seconds, even when the shop does not


def missing_scopes(
    granted: Sequence[str], needed: Mapping[str, str] = REQUIRED_SCOPES
) -> list[str]:
    """Needed scopes the token lacks; a `write_` scope grants its `read_` one."""
    have = set(granted) | {"read_" + s[len("write_") :] for s in granted if s.startswith("write_")}
    return [scope for scope in needed if scope not in have]


def body_identity(topic: str, data: Any, body: bytes) -> str | None:
    """The delivery's own identity: "<topic>:<id>@<updated_at>#<digest of the body>".

    The signature covers the body, not the headers: a captured body replayed with a fresh
    X-Shopify-Event-Id is still genuine, and must not be stored twice. Shopify's own retries
    repeat the body byte for byte; two changes within updated_at's one second differ in body.
    None when the body names no id (the event id is the key then).
    """
    if not isinstance(data, dict) or data.get("id") is None:
        return None
    stamp = data.get("updated_at") or data.get("created_at") or ""
    digest = hashlib.sha256(body).hexdigest()[:16]
    return f"{topic}:{data['id']}@{stamp}#{digest}"[:255]


class ShopifyChannel:
    def __init__(
        self,
        name: str,
        *,
        shop: str,
        token: str,
        api_version: str = "2026-07",
        location: str = "Main",
        webhook_secrets: Sequence[str],
        api_url: str | None = None,
        timeout: float = 10.0,
        max_attempts: int = 5,
        payments: bool = False,
        deposits: bool = False,
        notes: bool = False,
    ) -> None:
        """`payments`: campaigns ask customers to pay here, so the token needs PAYMENT_SCOPES;
        `deposits`: campaigns take deposits here through pre-orders (DEPOSIT_SCOPE_NEEDS);
        `notes`: stocksync leaves messages on this shop's orders (NOTE_SCOPE_NEEDS)."""
        self.name = name
        self.needed_scopes = {
            **REQUIRED_SCOPES,
            **(PAYMENT_SCOPES if payments else {}),
            **(DEPOSIT_SCOPE_NEEDS if deposits else {}),
            **(NOTE_SCOPE_NEEDS if notes else {}),
        }
        # quantity writes compare-and-set (changeFromQuantity): a late one finds the quantity
        # moved and is refused, so none can overwrite a newer number
        self.late_write_window: float | None = None
        self.location_name = location
        self.webhook_secrets = tuple(s for s in webhook_secrets if s)
        self.transport = ShopifyTransport(
            name,
            shop=shop,
            token=token,
            api_version=api_version,
            api_url=api_url,
            timeout=timeout,
            max_attempts=max_attempts,
        )
        self._lock = threading.Lock()
        self._pages_refused = ""  # why page writes stopped (a missing scope), once refused
        self._location_id: str | None = None
        self._ids: dict[str, Mapping[str, str]] = {}  # SKU -> external ids, from fetch_listings

    # -- webhooks --------------------------------------------------------------------------
    def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookEvent | None:
        lowered = {k.lower(): v for k, v in headers.items()}
        if not verify(body, lowered.get("x-shopify-hmac-sha256"), self.webhook_secrets):
            raise WebhookRejected(401, "missing or invalid X-Shopify-Hmac-Sha256")
        event_id = (lowered.get("x-shopify-event-id") or "").strip()
        topic = (lowered.get("x-shopify-topic") or "").strip()
        if not event_id or not topic:
            raise WebhookRejected(400, "missing X-Shopify-Event-Id or X-Shopify-Topic")
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise WebhookRejected(400, f"body is not JSON: {exc}") from exc
        ignored = "" if topic in ORDER_TOPICS else IGNORED_TOPICS.get(topic, UNKNOWN_TOPIC)
        key = body_identity(topic, data, body) or event_id
        return WebhookEvent(event_key=key, topic=topic, body=body, ignored=ignored)

    def parse_order(self, topic: str, body: bytes) -> ChannelOrder:
        return parse_body(self.name, topic, body)

    def needs_fetch(self, topic: str, body: bytes) -> bool:
        return False  # order payloads carry current quantities (refunds and edits applied)

    def complete_order(self, topic: str, body: bytes) -> bytes:
        return body

    # -- orders ----------------------------------------------------------------------------
    def pull_orders(self, updated_after: datetime) -> Iterator[PolledOrder]:
        """Orders with updated_at after the watermark, oldest first, page by page."""
        if updated_after.tzinfo is None:
            raise ValueError("updated_after must be timezone-aware")
        # whole seconds, rounded down: Shopify's filter is strict and its times are whole seconds
        since = updated_after.astimezone(UTC).replace(microsecond=0)
        search = f"updated_at:>'{since.isoformat().replace('+00:00', 'Z')}'"
        after: str | None = None
        while True:
            data = self.transport.execute(
                "orders",
                q.ORDERS,
                {"first": q.ORDERS_PAGE_SIZE, "after": after, "query": search},
            )
            page = _get(self.name, data, "orders")
            for node in _get(self.name, page, "nodes"):
                yield self._polled(self._complete_lines(node))
            info = _get(self.name, page, "pageInfo")
            if not info.get("hasNextPage"):
                return
            after = info.get("endCursor")
            if not after:
                raise ChannelError(self.name, "orders", "hasNextPage without an endCursor")

    def _complete_lines(self, node: dict[str, Any]) -> dict[str, Any]:
        """Fetch line items beyond the first page so the stored body is the whole order."""
        lines = _get(self.name, node, "lineItems")
        nodes = list(_get(self.name, lines, "nodes"))
        info = lines.get("pageInfo") or {}
        after = info.get("endCursor")
        while info.get("hasNextPage"):
            data = self.transport.execute(
                "order_line_items", q.ORDER_LINE_ITEMS, {"id": node["id"], "after": after}
            )
            more = _get(self.name, _get(self.name, data, "order"), "lineItems")
            nodes.extend(_get(self.name, more, "nodes"))
            info = more.get("pageInfo") or {}
            after = info.get("endCursor")
        return {**node, "lineItems": {"nodes": nodes}}

    def _polled(self, node: dict[str, Any]) -> PolledOrder:
        order = parse_graphql_order(self.name, node)
        body = json.dumps(node, separators=(",", ":"), sort_keys=True).encode("utf-8")
        key = f"{order.external_id}@{node.get('updatedAt')}"
        return PolledOrder(order=order, event_key=key, body=body)

    # -- the connection -------------------------------------------------------------------
    def probe(self) -> ProbeResult:
        """The shop and the token's scopes (one call), then the configured location (one call
        per 250 locations) when the token may read locations."""
        data = self.transport.execute("app_check", q.APP_CHECK, attempts=PROBE_ATTEMPTS)
        shop = _get(self.name, data, "shop")
        installation = data.get("currentAppInstallation") or {}
        granted = sorted(
            str(scope.get("handle"))
            for scope in installation.get("accessScopes") or []
            if isinstance(scope, Mapping)
        )
        missing = missing_scopes(granted, self.needed_scopes)
        problems = [
            f"missing access scope {scope} (needed to {self.needed_scopes[scope]})"
            for scope in missing
        ]
        facts: dict[str, object] = {
            "shop": shop.get("name"),
            "domain": shop.get("myshopifyDomain"),
            "scopes": granted,
            "missing_scopes": missing,
            "location": self.location_name,
        }
        location = None
        if "read_locations" not in missing:
            location, names = self._find_location(attempts=PROBE_ATTEMPTS)
            facts["location_id"] = location
            if location is None:
                known = ", ".join(repr(n) for n in names) or "none"
                problems.append(f"no location named {self.location_name!r} (found: {known})")
        where = f"location {self.location_name!r}" + (
            f" ({location})" if location else " (not found)" if "location_id" in facts else ""
        )
        summary = f"shop {shop.get('name')!r} ({shop.get('myshopifyDomain')}), {where}, " + (
            "every required scope granted" if not missing else f"missing {', '.join(missing)}"
        )
        return ProbeResult(summary=summary, facts=facts, problems=tuple(problems))

    # -- catalog ---------------------------------------------------------------------------
    def location_id(self) -> str:
        with self._lock:
            if self._location_id is not None:
                return self._location_id
        found, _names = self._find_location()
        if found is None:
            raise ChannelError(self.name, "locations", f"no location named {self.location_name!r}")
        with self._lock:
            self._location_id = found
        return found

    def _find_location(self, attempts: int | None = None) -> tuple[str | None, list[str]]:
        """The id of the location named in the config (None when there is none), and the
        names of the locations read on the way."""
        names: list[str] = []
        after: str | None = None
        while True:
            data = self.transport.execute(
                "locations", q.LOCATIONS, {"after": after}, attempts=attempts
            )
            page = _get(self.name, data, "locations")
            for node in _get(self.name, page, "nodes"):
                if node.get("name") == self.location_name:
                    return str(node["id"]), names
                names.append(str(node.get("name")))
            info = _get(self.name, page, "pageInfo")
            after = info.get("endCursor")
            if not info.get("hasNextPage") or not after:
                return None, names

    def fetch_listings(self, skus: Sequence[str]) -> dict[str, Listing]:
        location = self.location_id()
        wanted = list(dict.fromkeys(skus))
        found: dict[str, Listing] = {}
        for start in range(0, len(wanted), q.SKU_BATCH_SIZE):
            batch = wanted[start : start + q.SKU_BATCH_SIZE]
            search = " OR ".join(f'sku:"{_quote(sku)}"' for sku in batch)
            data = self.transport.execute(
                "variants_by_sku",
                q.VARIANTS_BY_SKU,
                {"first": q.SKU_BATCH_SIZE, "query": search, "locationId": location},
            )
            for node in _get(self.name, _get(self.name, data, "productVariants"), "nodes"):
                sku = node.get("sku")
                # search matching is looser than equality (prefixes, case): keep exact hits only
                if sku not in batch or sku in found:
                    continue
                found[sku] = self._listing(sku, node, location)
        with self._lock:
            self._ids.update({sku: listing.external_ids for sku, listing in found.items()})
        return found

    def list_listings(self) -> Iterator[Listing]:
        """Every variant with a SKU, what the location has available and on hand (quantities
        None when Shopify does not track the item), page by page."""
        location = self.location_id()
        after: str | None = None
        while True:
            data = self.transport.execute(
                "all_variants", q.ALL_VARIANTS, {"after": after, "locationId": location}
            )
            page = _get(self.name, data, "productVariants")
            for node in _get(self.name, page, "nodes"):
                sku = node.get("sku")
                if not isinstance(sku, str) or not sku.strip():
                    continue  # a variant without a SKU is nothing stocksync can count
                listing = self._listing(sku, node, location)
                item = node.get("inventoryItem") or {}
                if item.get("tracked") is False:
                    yield replace(listing, quantity=None)
                else:
                    yield replace(listing, on_hand=_level_quantity(item, "on_hand"))
            info = _get(self.name, page, "pageInfo")
            if not info.get("hasNextPage"):
                return
            after = info.get("endCursor")
            if not after:
                raise ChannelError(self.name, "all_variants", "hasNextPage without an endCursor")

    def _listing(self, sku: str, node: Mapping[str, Any], location: str) -> Listing:
        item = node.get("inventoryItem")
        if not isinstance(item, Mapping) or not item.get("id"):
            raise PayloadError(self.name, f"variant {node.get('id')}", "inventoryItem missing")
        quantity = None
        level = item.get("inventoryLevel")
        if isinstance(level, Mapping):
            for entry in level.get("quantities") or []:
                if entry.get("name") == "available":
                    quantity = int(entry["quantity"])
        ids = {"variant_id": str(node["id"]), "inventory_item_id": str(item["id"])}
        return Listing(sku=sku, external_ids=ids | {"location_id": location}, quantity=quantity)

    # -- pushes ----------------------------------------------------------------------------
    def push_offers(self, pushes: Sequence[OfferPush]) -> list[PushResult]:
        """Set `available` with compare-and-set, in calls of up to 250 rows, decreases first.

        A stale row fails its whole call (Shopify applies all rows or none, and names the stale
        rows by index): the stale rows come back not ok with CHANGE_FROM_QUANTITY_STALE and the
        quantity re-read now, so the caller can recompute them; the rows held back only by them
        are sent again at once, without them (up to STALE_RETRIES times). Under steady sales
        on the shop a call of many rows is rarely free of a stale one, and without the resend
        no row would ever land.
        """
        with self._lock:
            missing = [p.sku for p in pushes if p.sku not in self._ids]
        if missing:
            self.fetch_listings(missing)
        results: dict[int, PushResult] = {}
        rows: list[tuple[int, OfferPush, Mapping[str, str]]] = []
        with self._lock:
            for index, push in enumerate(pushes):
                ids = self._ids.get(push.sku)
                if ids is None:
                    results[index] = PushResult(
                        push.sku, ok=False, error_code="UNKNOWN_SKU", message="no such SKU"
                    )
                else:
                    rows.append((index, push, ids))
        # decreases first: if we stop half way, we have undersold rather than oversold
        rows.sort(key=lambda r: r[1].quantity - (r[1].last_seen or 0))
        for start in range(0, len(rows), q.MAX_ROWS_PER_MUTATION):
            batch = rows[start : start + q.MAX_ROWS_PER_MUTATION]
            for attempt in range(STALE_RETRIES + 1):
                done, held_back = self._push_batch(batch)
                results.update(done)
                if not held_back:
                    break
                if attempt == STALE_RETRIES:
                    results.update(self._not_applied_stale(held_back))
                batch = held_back
        self._update_pages(pushes, results)
        return [results[i] for i in range(len(pushes))]

    # -- shop pages ------------------------------------------------------------------------
    def _update_pages(self, pushes: Sequence[OfferPush], results: dict[int, PushResult]) -> None:
        """The expected date metafield of each variant whose quantity landed: set while its
        offer counts incoming units, deleted when it no longer does; written only where it
        differs from what the last landed push gave the page (`expected_on_shown`), so a push
        that changes no date makes no call. A row whose page write fails is reported
        PAGE_NOT_UPDATED (its quantity landed). A token without write_products (an app
        installed before pages had dates) is refused once: pages are then left alone for the
        life of this process, logged, and quantities go on (`check --online` names the
        scope); it does not hold the channel's calls as other auth errors do."""
        if self._pages_refused:
            return
        sets: list[tuple[int, OfferPush, str]] = []
        deletes: list[tuple[int, OfferPush, str]] = []
        with self._lock:
            for index, push in enumerate(pushes):
                ids = self._ids.get(push.sku)
                if not results[index].ok or ids is None:
                    continue
                wanted = push.expected_on if push.incoming > 0 else None
                if not push.page_unknown and wanted == push.expected_on_shown:
                    continue
                (sets if wanted else deletes).append((index, push, ids["variant_id"]))
        for start in range(0, len(sets), q.MAX_METAFIELDS_PER_MUTATION):
            chunk = sets[start : start + q.MAX_METAFIELDS_PER_MUTATION]
            metafields = [
                {
                    "ownerId": variant,
                    "namespace": PAGE_NAMESPACE,
                    "key": PAGE_KEY,
                    "type": PAGE_TYPE,
                    "value": push.expected_on.isoformat() if push.expected_on else "",
                }
                for _, push, variant in chunk
            ]
            self._page_call("metafields_set", q.SET_METAFIELDS, metafields, chunk, results)
        for start in range(0, len(deletes), q.MAX_METAFIELDS_PER_MUTATION):
            chunk = deletes[start : start + q.MAX_METAFIELDS_PER_MUTATION]
            identifiers = [
                {"ownerId": variant, "namespace": PAGE_NAMESPACE, "key": PAGE_KEY}
                for _, _push, variant in chunk
            ]
            self._page_call("metafields_delete", q.DELETE_METAFIELDS, identifiers, chunk, results)

    def _page_call(
        self,
        operation: str,
        document: str,
        metafields: list[dict[str, str]],
        chunk: list[tuple[int, OfferPush, str]],
        results: dict[int, PushResult],
    ) -> None:
        root = "metafieldsSet" if operation == "metafields_set" else "metafieldsDelete"
        try:
            data = self.transport.execute(operation, document, {"metafields": metafields})
            errors = _get(self.name, data, root).get("userErrors") or []
        except ChannelError as exc:
            if is_auth_error(exc):
                # the quantities landed; only the page is refused: leave pages alone
                self._pages_refused = exc.message
                log.warning("shop_pages_refused", channel=self.name, error=exc.message,
                            scope="write_products")  # fmt: skip
                return
            errors = [{"message": str(exc)}]
        if not errors:
            return
        # both mutations are atomic: a user error means none of the call's metafields changed
        message = f"{root}: {_messages(errors)}"
        for index, push, _ in chunk:
            landed = results[index].channel_quantity
            results[index] = PushResult(push.sku, False, landed, PAGE_NOT_UPDATED, message)

    # -- shop notes (connectors.base.AnnotatesOrders) --------------------------------------
    def add_customer_note(self, order_ref: str, text: str) -> None:
        """Append "stocksync: <text>" to the order's note, once (not when the note has that
        line already). Shopify's Admin API has no note a customer sees: the order note is for
        staff (the admin's Notes card, order printouts); the customer hears by email."""
        order_gid = (
            order_ref if order_ref.startswith("gid://") else f"gid://shopify/Order/{order_ref}"
        )
        data = self.transport.execute("order_note", q.ORDER_NOTE, {"id": order_gid})
        order = data.get("order")
        if not isinstance(order, dict):
            raise ChannelError(self.name, "order_note", f"no order {order_ref}", code="NOT_FOUND")
        line = NOTE_PREFIX + " ".join(text.split())
        note = str(order.get("note") or "")
        if line in note.splitlines():
            return
        combined = f"{note.rstrip()}\n{line}" if note.strip() else line
        data = self.transport.execute(
            "order_update", q.SET_ORDER_NOTE, {"input": {"id": order_gid, "note": combined}}
        )
        errors = _get(self.name, data, "orderUpdate").get("userErrors") or []
        if errors:
            raise ChannelError(
                self.name, "order_update", f"order {order_ref}: {_messages(errors)}",
                code="NOTE_NOT_SAVED",
            )  # fmt: skip

    def _not_applied_stale(
        self, rows: list[tuple[int, OfferPush, Mapping[str, str]]]
    ) -> dict[int, PushResult]:
        """Rows never applied because other rows of their calls kept being stale: reported
        stale with what the shop holds now, so the caller recomputes them like the others."""
        now = self.fetch_listings([push.sku for _, push, _ in rows])
        out = {}
        for index, push, _ in rows:
            listing = now.get(push.sku)
            out[index] = PushResult(
                push.sku,
                ok=False,
                channel_quantity=listing.quantity if listing else None,
                error_code=STALE,
                message="not applied: other rows of the same call kept being stale",
            )
        return out

    def _push_batch(
        self, batch: list[tuple[int, OfferPush, Mapping[str, str]]]
    ) -> tuple[dict[int, PushResult], list[tuple[int, OfferPush, Mapping[str, str]]]]:
        """One call: the rows' results, and the rows to send again (held back by stale rows
        named by the shop; those rows themselves are in the results, re-read)."""
        quantities = [
            {
                "inventoryItemId": ids["inventory_item_id"],
                "locationId": ids["location_id"],
                "quantity": push.quantity,
                "changeFromQuantity": push.last_seen,  # explicit null skips the check
            }
            for _, push, ids in batch
        ]
        variables = {
            "input": {"name": "available", "reason": PUSH_REASON, "quantities": quantities},
            # one key per call, reused by every retry of it: a retried call replays, never doubles
            "key": str(uuid.uuid4()),
        }
        data = self.transport.execute("inventory_set_quantities", q.SET_QUANTITIES, variables)
        payload = _get(self.name, data, "inventorySetQuantities")
        errors = payload.get("userErrors") or []
        if not errors:
            return {
                i: PushResult(p.sku, ok=True, channel_quantity=p.quantity) for i, p, _ in batch
            }, []
        by_row: dict[int, dict[str, Any]] = {}
        for error in errors:
            row = _row_index(error.get("field"))
            if row is not None and row < len(batch):
                by_row.setdefault(row, error)
        if any(e.get("code") == STALE for e in errors):
            stale_rows = {row for row, e in by_row.items() if e.get("code") == STALE}
            if not stale_rows:
                stale_rows = set(range(len(batch)))  # not told which rows: treat all as stale
            stale = [batch[row] for row in sorted(stale_rows)]
            now = self.fetch_listings([push.sku for _, push, _ in stale])
            out = {}
            for row in sorted(stale_rows):
                index, push, _ = batch[row]
                listing = now.get(push.sku)
                own = by_row.get(row)
                out[index] = PushResult(
                    push.sku,
                    ok=False,
                    channel_quantity=listing.quantity if listing else None,
                    error_code=STALE,
                    message=str(own.get("message", "")) if own else "stale",
                )
            held_back = [entry for row, entry in enumerate(batch) if row not in stale_rows]
            return out, held_back
        general = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors)
        out = {}
        for row, (index, push, _) in enumerate(batch):
            own = by_row.get(row)
            out[index] = PushResult(
                push.sku,
                ok=False,
                error_code=str(own.get("code")) if own else "NOT_APPLIED",
                message=str(own.get("message")) if own else f"call rejected: {general}",
            )
        return out, []

    # -- backorder holds -------------------------------------------------------------------
    def place_hold(self, hold: BackorderHold) -> None:
        """Hold the backordered units on their fulfillment orders (reason INVENTORY_OUT_OF_STOCK,
        handle stocksync-backorder). Holding again while our hold stands changes nothing."""
        fulfillment_orders = self._fulfillment_orders(hold.order_external_id)
        if any(_our_holds(fo) for fo in fulfillment_orders):
            return
        left = {gid_tail(k): v for k, v in hold.line_quantities.items() if v > 0}
        for fo in fulfillment_orders:
            if fo.get("status") not in HOLDABLE or not any(left.values()):
                continue
            rows = []
            for fol in fo["lineItems"]["nodes"]:
                line_id = gid_tail(fol["lineItem"]["id"])
                take = min(left.get(line_id, 0), int(fol["remainingQuantity"]))
                if take > 0:
                    rows.append({"id": fol["id"], "quantity": take})
                    left[line_id] -= take
            if rows:
                self._hold(str(fo["id"]), rows, hold)
        unheld = {k: v for k, v in left.items() if v > 0}
        if unheld:
            raise ChannelError(
                self.name,
                "fulfillment_order_hold",
                f"order {hold.order_external_id}: no open fulfillment order line for {unheld}",
                code="LINE_NOT_HOLDABLE",
            )

    def _hold(self, fo_id: str, rows: list[dict[str, Any]], hold: BackorderHold) -> None:
        variables = {
            "id": fo_id,
            "hold": {
                "reason": HOLD_REASON,
                "reasonNotes": "Waiting for incoming stock (stocksync backorder)"
                + (f", expected {hold.expected_on.isoformat()}" if hold.expected_on else ""),
                "handle": HOLD_HANDLE,
                "notifyMerchant": False,
                "fulfillmentOrderLineItems": rows,
            },
        }
        data = self.transport.execute("fulfillment_order_hold", q.HOLD, variables)
        errors = _get(self.name, data, "fulfillmentOrderHold").get("userErrors") or []
        errors = [e for e in errors if e.get("code") != "DUPLICATE_FULFILLMENT_HOLD_HANDLE"]
        if errors:
            raise ChannelError(
                self.name,
                "fulfillment_order_hold",
                f"order {hold.order_external_id}: {_messages(errors)}",
                code=str(errors[0].get("code")),
            )

    def lift_hold(self, hold: BackorderHold) -> None:
        """Release our holds on the order; a hold that is already gone is not an error."""
        for fo in self._fulfillment_orders(hold.order_external_id):
            ours = _our_holds(fo)
            if not ours:
                continue
            data = self.transport.execute(
                "fulfillment_order_release_hold",
                q.RELEASE_HOLD,
                {"id": fo["id"], "holdIds": ours},
            )
            errors = _get(self.name, data, "fulfillmentOrderReleaseHold").get("userErrors") or []
            errors = [e for e in errors if e.get("code") != "FULFILLMENT_ORDER_NOT_FOUND"]
            if errors:
                raise ChannelError(
                    self.name,
                    "fulfillment_order_release_hold",
                    f"order {hold.order_external_id}: {_messages(errors)}",
                    code=str(errors[0].get("code")),
                )

    def _fulfillment_orders(self, order_external_id: str) -> list[dict[str, Any]]:
        order_gid = (
            order_external_id
            if order_external_id.startswith("gid://")
            else f"gid://shopify/Order/{order_external_id}"
        )
        data = self.transport.execute(
            "order_fulfillment_orders", q.ORDER_FULFILLMENT_ORDERS, {"id": order_gid}
        )
        order = data.get("order")
        if not isinstance(order, dict):
            raise ChannelError(
                self.name,
                "order_fulfillment_orders",
                f"no order {order_external_id}",
                code="NOT_FOUND",
            )
        return list(_get(self.name, _get(self.name, order, "fulfillmentOrders"), "nodes"))

    # -- campaign payments (connectors/shopify_payments.py: a draft order per allocation;
    # connectors/shopify_deposits.py: the balance of a pre-order's deposit order) ----------
    def request_payment(self, request: PaymentRequest) -> PaymentLink:
        if request.deposit_order:
            return shopify_deposits.charge_balance(self, request)
        return shopify_payments.request(self, request)

    def remind_payment(self, ref: str, request: PaymentRequest) -> None:
        if shopify_deposits.is_order_ref(ref):
            shopify_deposits.send_balance_link(self, ref, request)
        else:
            shopify_payments.remind(self, ref, request)

    def withdraw_payment(self, ref: str) -> bool:
        if shopify_deposits.is_order_ref(ref):
            return shopify_deposits.cancel_unpaid(self, ref)
        return shopify_payments.withdraw(self, ref)

    def refund(self, request: RefundRequest) -> str:
        return shopify_deposits.refund(self, request)

    def ensure_selling_plan(self, spec: PlanSpec) -> PlanRef:
        return shopify_deposits.ensure_plan(self, spec)

    def remove_selling_plan(self, code: str) -> bool:
        return shopify_deposits.remove_plan(self, code)

    def close(self) -> None:
        self.transport.close()


def _our_holds(fo: Mapping[str, Any]) -> list[str]:
    return [
        str(h["id"]) for h in fo.get("fulfillmentHolds") or [] if h.get("handle") == HOLD_HANDLE
    ]


def _row_index(field: Any) -> int | None:
    """`["input", "quantities", "3", "changeFromQuantity"]` -> 3."""
    if isinstance(field, list) and len(field) >= 3 and field[1] == "quantities":
        text = str(field[2])
        return int(text) if text.isdigit() else None
    return None


def _level_quantity(item: Mapping[str, Any], name: str) -> int | None:
    level = item.get("inventoryLevel")
    if isinstance(level, Mapping):
        for entry in level.get("quantities") or []:
            if entry.get("name") == name and isinstance(entry.get("quantity"), int):
                return int(entry["quantity"])
    return None


def _messages(errors: list[dict[str, Any]]) -> str:
    return "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors)


def _quote(sku: str) -> str:
    return sku.replace("\\", "\\\\").replace('"', '\\"')


def _get(channel: str, data: Mapping[str, Any], key: str) -> Any:
    value = data.get(key)
    if value is None:
        raise PayloadError(channel, key, "missing from the response")
    return value
