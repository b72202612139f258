"""WooCommerce REST (wc/v3) channel, through the `woocommerce` package.

Facts it honours (DESIGN §5): OAuth 1.0a over http and Basic over https (the package picks);
query values go in `params=`; lists page by X-WP-TotalPages with per_page <= 100; batches take
<= 100 items and report per-item errors inside a 200; variations take a stock_quantity only next
to manage_stock: true; WooCommerce has no compare-and-set, so a push re-reads stock first and
never raises a quantity that moved since our last read.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from woocommerce import API

from connectors import woocommerce_payments
from connectors.base import (
    BackorderHold,
    ChannelError,
    ChannelOrder,
    Listing,
    OfferPush,
    OrderStatus,
    PayloadError,
    PaymentLink,
    PaymentRequest,
    PolledOrder,
    ProbeResult,
    PushResult,
    RefundRequest,
    WebhookEvent,
    WebhookRejected,
)
from connectors.signatures import verify
from connectors.woocommerce_parse import (
    CUSTOMER_ROLE_KEY,
    event_key,
    is_ping,
    load_object,
    parse_gmt,
    parse_order_json,
)
from connectors.woocommerce_retry import (
    RetryPolicy,
    WooCommerceError,
    call_with_retries,
    classify,
    maybe_applied,
    parse_retry_after,
)

BATCH_LIMIT = 100
PER_PAGE = 100
SKU_CHUNK = 50  # SKUs per ?sku= list read, keeping URLs short
BACKORDER_META = "_stocksync_backorder"
# on a product or variation whose offer counts incoming units (issue #17, docs/woocommerce.md):
# how many of the offered units are incoming (the stock_quantity we set leaves them out) and
# when the first of them is expected (ISO date, "" for none), for themes
INCOMING_META = "_stocksync_incoming"
EXPECTED_META = "_stocksync_expected_date"
OPEN_FOR_HOLD = frozenset({"processing", "on-hold"})
ROLE_TTL_S = 300.0  # a customer's role read from the shop is reused this long
ROLE_CACHE_SIZE = 10_000
PROBE_POLICY = RetryPolicy(max_attempts=2, backoff=0.5)  # `check --online` answers in seconds
LATE_WRITE_TIMEOUTS = 3  # an unanswered write may land until this many request timeouts later


@dataclass(frozen=True, slots=True)
class Reply:
    body: Any
    headers: Mapping[str, str]


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _units_text(units: Mapping[str, int], skus: Mapping[str, str]) -> str:
    return ", ".join(f"{skus.get(line, 'line ' + line)} x {qty}" for line, qty in units.items())


class WooCommerceChannel:
    """One WooCommerce shop. Thread-safe: the API object is immutable, the id cache is locked."""

    def __init__(
        self,
        name: str,
        *,
        url: str,
        consumer_key: str,
        consumer_secret: str,
        webhook_secrets: Sequence[str],
        api_url: str | None = None,
        timeout: float = 10.0,
        max_attempts: int = 5,
        backoff: float = 0.5,
        status_map: Mapping[str, OrderStatus] | None = None,
        customer_roles: bool = False,
    ) -> None:
        """`customer_roles`: orders of registered customers are completed with the customer's
        role (GET customers/{id}) before they are applied (see needs_fetch), for
        `tier_from: {role: ...}`."""
        self.name = name
        self._api = API(
            url=api_url or url,
            consumer_key=consumer_key,
            consumer_secret=consumer_secret,
            version="wc/v3",
            timeout=timeout,
        )
        self._secrets = tuple(webhook_secrets)
        self._policy = RetryPolicy(max_attempts=max_attempts, backoff=backoff)
        self._write_policy = replace(self._policy, retry_maybe_applied=False)
        # stock writes are absolute: one we gave up on may land late, over a newer one; we
        # assume the host ends a request within a few of our timeouts (PHP's
        # max_execution_time defaults to 30 s) and read such listings again after that
        self.late_write_window: float | None = LATE_WRITE_TIMEOUTS * timeout
        self._status_map = dict(status_map or {})
        self._listings: dict[str, Listing] = {}
        self._lock = threading.Lock()
        self._customer_roles = customer_roles
        self._roles: dict[int, tuple[float, str | None]] = {}  # id -> (read at, role)

    # -- transport ------------------------------------------------------------------------
    def _call(
        self,
        operation: str,
        method: str,
        endpoint: str,
        *,
        params: Mapping[str, str | int] | None = None,
        data: Any = None,
        policy: RetryPolicy | None = None,
    ) -> Reply:
        def attempt() -> Reply:
            query = dict(params or {})  # the package may add to it; each attempt signs anew
            try:
                if method == "GET":
                    response = self._api.get(endpoint, params=query)
                elif method == "POST":
                    response = self._api.post(endpoint, data, params=query)
                else:
                    response = self._api.put(endpoint, data, params=query)
            except requests.RequestException as exc:
                rule = classify(exc)
                raise WooCommerceError(
                    self.name, operation, f"{rule.reason}: {exc}", retryable=rule.retryable,
                    maybe_applied=maybe_applied(exc),
                ) from exc  # fmt: skip
            return self._reply(operation, response)

        return call_with_retries(policy or self._policy, attempt)

    def _reply(self, operation: str, response: requests.Response) -> Reply:
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        if status >= 400:
            rule = classify(status)
            code = body.get("code") if isinstance(body, dict) else None
            message = body.get("message") if isinstance(body, dict) else response.text[:200]
            raise WooCommerceError(
                self.name,
                operation,
                f"HTTP {status} ({rule.reason}): {message}",
                status=status,
                code=str(code) if code else None,
                retryable=rule.retryable,
                retry_after=parse_retry_after(
                    response.headers.get("Retry-After"), datetime.now(UTC)
                ),
                maybe_applied=maybe_applied(status),
            )
        if body is None:
            raise WooCommerceError(
                self.name,
                operation,
                f"HTTP {status} with a body that is not JSON: {response.text[:200]!r}",
                status=status,
                code="invalid_json",
            )
        return Reply(body, response.headers)

    def _pages(
        self, operation: str, endpoint: str, params: Mapping[str, str | int]
    ) -> Iterator[list[dict[str, Any]]]:
        """Every page of a list endpoint, following X-WP-TotalPages."""
        page = 1
        while True:
            reply = self._call(operation, "GET", endpoint, params={**params, "page": page})
            yield self._list_body(operation, reply)
            if page >= self._total_pages(operation, reply):
                return
            page += 1

    def _list_body(self, operation: str, reply: Reply) -> list[dict[str, Any]]:
        if not isinstance(reply.body, list) or not all(isinstance(i, dict) for i in reply.body):
            raise WooCommerceError(self.name, operation, f"expected a list: {reply.body!r:.200}")
        return reply.body

    def _total_pages(self, operation: str, reply: Reply) -> int:
        raw = reply.headers.get("X-WP-TotalPages", "")
        try:
            return int(raw)
        except ValueError:
            raise WooCommerceError(
                self.name, operation, f"X-WP-TotalPages missing or bad: {raw!r}"
            ) from None

    # -- the connection -------------------------------------------------------------------
    def probe(self) -> ProbeResult:
        """One page of one product: the keys are accepted and may read the catalog (a key
        without write access shows only when stocksync first writes)."""
        reply = self._call("probe", "GET", "products", params={"per_page": 1}, policy=PROBE_POLICY)
        self._list_body("probe", reply)
        total = reply.headers.get("X-WP-Total")
        url = _without_userinfo(str(self._api.url))
        return ProbeResult(
            summary=f"{url}: keys accepted, {total or 'unknown'} products readable",
            facts={"url": url, "products": _int_or_none(total)},
        )

    # -- webhooks and orders --------------------------------------------------------------
    def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookEvent | None:
        lowered = {k.lower(): v for k, v in headers.items()}
        signature = lowered.get("x-wc-webhook-signature")
        if not signature and is_ping(body):
            return None  # the creation ping: answer 200, store nothing
        if not verify(body, signature, self._secrets):
            raise WebhookRejected(401, "missing or bad X-WC-Webhook-Signature")
        topic = lowered.get("x-wc-webhook-topic", "")
        if not topic:
            raise WebhookRejected(400, "missing X-WC-Webhook-Topic")
        try:
            data = load_object(self.name, "webhook body", body)
            key = event_key(self.name, data)
        except ValueError as exc:
            raise WebhookRejected(400, str(exc)) from None
        return WebhookEvent(event_key=key, topic=topic, body=body)

    def parse_order(self, topic: str, body: bytes) -> ChannelOrder:
        data = load_object(self.name, f"{topic} body", body)
        return parse_order_json(self.name, data, self._status_map)

    def needs_fetch(self, topic: str, body: bytes) -> bool:
        """An order that lists refunds without their lines: the order endpoint and webhooks
        give refunds as {id, reason, total} only, so refunded units are not visible in it.
        With `customer_roles`, also an order of a registered customer (customer_id > 0): no
        order payload carries the customer's role, the customer resource does."""
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return False  # parse_order reports it
        if not isinstance(data, dict):
            return False
        return _refunds_lack_lines(data) or self._lacks_role(data)

    def _lacks_role(self, data: Mapping[str, Any]) -> bool:
        return (
            self._customer_roles
            and _customer_id(data) is not None
            and CUSTOMER_ROLE_KEY not in data
        )

    def complete_order(self, topic: str, body: bytes) -> bytes:
        """The order with what needs_fetch found missing, read from the shop now:
        `refunds` replaced by the full refund objects of GET orders/{id}/refunds, whose lines
        say which order line lost how many units; the customer's role (GET customers/{id}) put
        under CUSTOMER_ROLE_KEY."""
        data = json.loads(body)
        changes: dict[str, Any] = {}
        if _refunds_lack_lines(data):
            refunds = self._order_refunds(data)
            if refunds is not None:
                changes["refunds"] = refunds
        customer_id = _customer_id(data)
        if self._lacks_role(data) and customer_id is not None:
            changes[CUSTOMER_ROLE_KEY] = self.customer_role(customer_id)
        if not changes:
            return body
        return json.dumps({**data, **changes}, separators=(",", ":")).encode("utf-8")

    def _order_refunds(self, data: Mapping[str, Any]) -> list[dict[str, Any]] | None:
        order_id = data.get("id")
        if isinstance(order_id, bool) or not isinstance(order_id, int):
            raise WooCommerceError(
                self.name, "order_refunds", f"order id is not a number: {order_id!r}"
            )
        try:
            # what the shop holds now wins, also over a refund the body listed and the shop
            # deleted
            return [
                refund
                for page in self._pages(
                    "order_refunds", f"orders/{order_id}/refunds", {"per_page": PER_PAGE}
                )
                for refund in page
            ]
        except WooCommerceError as exc:
            if exc.status != 404:
                raise
            # the shop no longer has the order (deleted since): nothing more can be learnt,
            # and the refunds stay what the body lists (they cannot free any unit)
            return None

    def customer_role(self, customer_id: int) -> str | None:
        """The customer's role (GET customers/{id} `role`, e.g. "customer", "wholesale"), read
        at most every ROLE_TTL_S per customer; None when the shop has no such customer (deleted:
        404 woocommerce_rest_invalid_id). Other failures raise ChannelError (retryable or not,
        as classified): a REST key that may not read customers stops these orders visibly."""
        now = time.monotonic()
        with self._lock:
            cached = self._roles.get(customer_id)
        if cached is not None and now - cached[0] < ROLE_TTL_S:
            return cached[1]
        try:
            reply = self._call("customer_role", "GET", f"customers/{customer_id}")
        except WooCommerceError as exc:
            # only "no such customer" means none; another 404 (no route: the REST API is off
            # or behind a rewrite) must not read as "no role" for every customer
            if exc.status != 404 or exc.code != "woocommerce_rest_invalid_id":
                raise
            role = None
        else:
            raw = reply.body.get("role") if isinstance(reply.body, dict) else None
            if raw is not None and not isinstance(raw, str):
                raise WooCommerceError(
                    self.name, "customer_role", f"role is not text: {reply.body!r:.200}"
                )
            role = raw or None
        with self._lock:
            if len(self._roles) >= ROLE_CACHE_SIZE:
                self._roles.clear()  # a rare full reset beats tracking ages per entry
            self._roles[customer_id] = (now, role)
        return role

    def pull_orders(self, updated_after: datetime) -> Iterator[PolledOrder]:
        """Orders modified after the watermark, oldest first.

        Pages by moving the modified_after cursor to the last second seen rather than by page
        number alone: an order modified while we page moves to the end of the list, which would
        shift later pages and skip one. Overlap is removed by event key.
        """
        if updated_after.tzinfo is None:
            raise ValueError("updated_after must be timezone-aware")
        cursor = updated_after.astimezone(UTC).replace(microsecond=0, tzinfo=None)
        page = 1
        seen: set[str] = set()
        while True:
            params: dict[str, str | int] = {
                "modified_after": cursor.isoformat(timespec="seconds"),
                "dates_are_gmt": "true",
                "orderby": "modified",
                "order": "asc",
                "per_page": PER_PAGE,
                "page": page,
            }
            reply = self._call("pull_orders", "GET", "orders", params=params)
            items = self._list_body("pull_orders", reply)
            last: datetime | None = None
            for data in items:
                key = event_key(self.name, data)
                last = parse_gmt(data.get("date_modified_gmt"), self.name, "date_modified_gmt")
                if key in seen:
                    continue
                seen.add(key)
                order = parse_order_json(self.name, data, self._status_map)
                body = json.dumps(data, separators=(",", ":")).encode("utf-8")
                yield PolledOrder(order=order, event_key=key, body=body)
            if last is None or page >= self._total_pages("pull_orders", reply):
                return
            # strictly-after filter at one-second resolution: back off a second to keep ties
            following = last.replace(tzinfo=None) - timedelta(seconds=1)
            if following > cursor:
                cursor, page = following, 1
            else:
                page += 1  # a whole page within one second: step through it by number

    # -- listings -------------------------------------------------------------------------
    def fetch_listings(self, skus: Sequence[str]) -> dict[str, Listing]:
        wanted = list(dict.fromkeys(s for s in skus if s))
        found: dict[str, Listing] = {}
        # a SKU with a comma cannot travel in a comma-separated list; ask for it alone
        plain = [s for s in wanted if "," not in s]
        batches = [*_chunks(plain, SKU_CHUNK), *([s] for s in wanted if "," in s)]
        for batch in batches:
            params: dict[str, str | int] = {"sku": ",".join(batch), "per_page": PER_PAGE}
            for page in self._pages("fetch_listings", "products", params):
                for item in page:
                    listing = self._listing(item)
                    if listing is not None and listing.sku in batch:
                        found[listing.sku] = listing
        with self._lock:
            self._listings.update(found)
        return found

    def list_listings(self) -> Iterator[Listing]:
        """Every product with a SKU and the variations of variable products, page by page."""
        for page in self._pages("list_listings", "products", {"per_page": PER_PAGE}):
            for item in page:
                listing = self._listing(item)
                if listing is not None:
                    yield listing
                product_id = item.get("id")
                if item.get("type") == "variable" and isinstance(product_id, int):
                    yield from self._variation_listings(product_id)

    def _variation_listings(self, product_id: int) -> Iterator[Listing]:
        endpoint = f"products/{product_id}/variations"
        for page in self._pages("list_listings", endpoint, {"per_page": PER_PAGE}):
            for item in page:
                sku, item_id = item.get("sku"), item.get("id")
                if isinstance(sku, str) and sku and isinstance(item_id, int):
                    ids = {"product_id": str(product_id), "variation_id": str(item_id)}
                    yield Listing(sku=sku, external_ids=ids, quantity=_stock_of(item))

    def _listing(self, item: Mapping[str, Any]) -> Listing | None:
        sku, item_id = item.get("sku"), item.get("id")
        if not isinstance(sku, str) or not sku or not isinstance(item_id, int):
            return None
        ids = {"product_id": str(item_id)}
        if item.get("type") == "variation":
            ids = {"product_id": str(item.get("parent_id")), "variation_id": str(item_id)}
        return Listing(sku=sku, external_ids=ids, quantity=_stock_of(item))

    # -- pushes ---------------------------------------------------------------------------
    def push_offers(self, pushes: Sequence[OfferPush]) -> list[PushResult]:
        skus = [p.sku for p in pushes]
        if len(set(skus)) != len(skus):
            raise ValueError(f"push_offers: one push per SKU, got duplicates in {skus}")
        with self._lock:
            missing = [s for s in skus if s not in self._listings]
        if missing:
            self.fetch_listings(missing)
        with self._lock:
            listings = {s: self._listings[s] for s in skus if s in self._listings}
        current = self._reread(list(listings.values()))
        results: dict[str, PushResult] = {}
        # push, listing, the fields to write, is a decrease
        writes: list[tuple[OfferPush, Listing, dict[str, Any], bool]] = []
        for push in pushes:
            listing = listings.get(push.sku)
            if listing is None:
                results[push.sku] = PushResult(
                    push.sku, False, None, "UNKNOWN_SKU", "no product or variation has this SKU"
                )
                continue
            if push.sku not in current:
                # gone since we cached its ids (deleted, or its SKU changed): look it up anew
                with self._lock:
                    self._listings.pop(push.sku, None)
                results[push.sku] = PushResult(
                    push.sku, False, None, "NOT_FOUND", f"{listing.external_ids} no longer exists"
                )
                continue
            item = current[push.sku]
            now = _stock_of(item)
            moved = push.last_seen is not None and now != push.last_seen
            if moved and (now is None or push.quantity > now):
                results[push.sku] = PushResult(
                    push.sku,
                    False,
                    now,
                    "STALE",
                    f"channel holds {now}, last seen {push.last_seen}: pull orders first",
                )
                continue
            changes = _stock_changes(item, push)
            if not changes:
                results[push.sku] = PushResult(push.sku, True, now)
            else:
                writes.append((push, listing, changes, now is not None and push.quantity < now))
        # decreases first: they protect against overselling, raises can wait
        for decreasing in (True, False):
            chosen = [(p, li, ch) for p, li, ch, dec in writes if dec is decreasing]
            results.update(self._write(chosen))
        return [results[p.sku] for p in pushes]

    def _reread(self, listings: Sequence[Listing]) -> dict[str, Mapping[str, Any]]:
        """What these listings' records say now (stock, backorders, our meta), with include=
        list reads (≤ 100 ids a call)."""
        by_endpoint: dict[str, dict[int, str]] = {}
        for listing in listings:
            endpoint, item_id = _endpoint_of(listing)
            by_endpoint.setdefault(endpoint, {})[item_id] = listing.sku
        current: dict[str, Mapping[str, Any]] = {}
        for endpoint, ids in by_endpoint.items():
            listing_endpoint = endpoint.removesuffix("/batch")
            for chunk in _chunks(sorted(ids), BATCH_LIMIT):
                params: dict[str, str | int] = {
                    "include": ",".join(map(str, chunk)),
                    "per_page": PER_PAGE,
                }
                for page in self._pages("push_offers.reread", listing_endpoint, params):
                    for item in page:
                        if item.get("id") in ids:
                            current[ids[item["id"]]] = item
        return current

    def _write(
        self, chosen: Sequence[tuple[OfferPush, Listing, Mapping[str, Any]]]
    ) -> dict[str, PushResult]:
        groups: dict[str, list[tuple[int, OfferPush, Mapping[str, Any]]]] = {}
        for push, listing, changes in chosen:
            endpoint, item_id = _endpoint_of(listing)
            groups.setdefault(endpoint, []).append((item_id, push, changes))
        results: dict[str, PushResult] = {}
        for endpoint, rows in groups.items():
            for chunk in _chunks(rows, BATCH_LIMIT):
                # manage_stock: true in every item: a variation takes a quantity only next to it
                update = [
                    {"id": item_id, "manage_stock": True, **changes}
                    for item_id, _push, changes in chunk
                ]
                reply = self._call(
                    "push_offers", "POST", endpoint, data={"update": update},
                    policy=self._write_policy,
                )  # fmt: skip
                results.update(self._batch_results(reply, [(i, p) for i, p, _ in chunk]))
        return results

    def _batch_results(
        self, reply: Reply, chunk: Sequence[tuple[int, OfferPush]]
    ) -> dict[str, PushResult]:
        answered = reply.body.get("update", []) if isinstance(reply.body, dict) else []
        by_id = {item.get("id"): item for item in answered if isinstance(item, dict)}
        results: dict[str, PushResult] = {}
        for item_id, push in chunk:
            item = by_id.get(item_id)
            if item is None:
                results[push.sku] = PushResult(
                    push.sku, False, None, "NO_RESULT", "the batch answer did not mention this item"
                )
            elif isinstance(item.get("error"), dict):
                error = item["error"]
                results[push.sku] = PushResult(
                    push.sku,
                    False,
                    None,
                    str(error.get("code") or "ITEM_ERROR"),
                    str(error.get("message") or error),
                )
            else:
                results[push.sku] = PushResult(push.sku, True, _stock_of(item))
        return results

    # -- backorder write-back -------------------------------------------------------------
    def place_hold(self, hold: BackorderHold) -> None:
        """Order on-hold, a customer note naming the waiting units, the units in meta."""
        waiting = {line: qty for line, qty in hold.line_quantities.items() if qty > 0}
        if not waiting:
            raise ValueError(f"place_hold: no units wait in {hold!r}")
        order = self._order("place_hold", hold.order_external_id)
        if order["status"] not in OPEN_FOR_HOLD:
            raise ChannelError(
                self.name,
                "place_hold",
                f"order {hold.order_external_id} is {order['status']}, not open",
                code="order_not_open",
            )
        skus = _line_skus(order)
        note = (
            "Some items of your order are on backorder and will ship when they arrive: "
            f"{_units_text(waiting, skus)}."
            + (f" Expected by {hold.expected_on.isoformat()}." if hold.expected_on else "")
        )
        self._write_back("place_hold", order, note, waiting, "on-hold")

    def lift_hold(self, hold: BackorderHold) -> None:
        """The lines in `hold` no longer wait; with nothing left waiting, status processing."""
        order = self._order("lift_hold", hold.order_external_id)
        status = order["status"]
        if status not in OPEN_FOR_HOLD and status != "completed":
            raise ChannelError(
                self.name,
                "lift_hold",
                f"order {hold.order_external_id} is {status}, nothing to release",
                code="order_not_open",
            )
        waiting = _waiting(order)
        if not waiting and status != "on-hold":
            return  # nothing is held: releasing again writes no second note
        # an empty hold means "release everything of ours", whatever we recorded
        lines = hold.line_quantities or waiting
        remaining = {k: v for k, v in waiting.items() if k not in lines}
        released = {k: v for k, v in lines.items() if v > 0}
        target = "processing" if status == "on-hold" and not remaining else status
        note = (
            "Good news: these backordered items are now in stock and on their way: "
            f"{_units_text(released, _line_skus(order))}."
        )
        self._write_back("lift_hold", order, note, remaining, target)

    def _order(self, operation: str, order_id: str) -> dict[str, Any]:
        if not order_id.isdigit():
            raise ValueError(f"{operation}: WooCommerce order ids are numbers, got {order_id!r}")
        reply = self._call(operation, "GET", f"orders/{order_id}")
        if not isinstance(reply.body, dict) or not isinstance(reply.body.get("status"), str):
            raise WooCommerceError(self.name, operation, f"not an order: {reply.body!r:.200}")
        return reply.body

    def _write_back(
        self,
        operation: str,
        order: Mapping[str, Any],
        note: str,
        waiting: Mapping[str, int],
        status: str,
    ) -> None:
        """Note, meta and status, each only when not already there, so a repeat is a no-op."""
        order_id = order["id"]
        value = json.dumps(dict(sorted(waiting.items())), separators=(",", ":"))
        if (
            _waiting(order) == dict(waiting)
            and _meta_value(order) is not None
            and (order["status"] == status)
        ):
            return
        notes = self._call(operation, "GET", f"orders/{order_id}/notes")
        if not any(isinstance(n, dict) and n.get("note") == note for n in notes.body or []):
            self._call(
                operation,
                "POST",
                f"orders/{order_id}/notes",
                data={"note": note, "customer_note": True},
            )
        changes: dict[str, Any] = {"meta_data": [{"key": BACKORDER_META, "value": value}]}
        if order["status"] != status:
            changes["status"] = status
        self._call(operation, "PUT", f"orders/{order_id}", data=changes)

    # -- campaign payments (connectors/woocommerce_payments.py) ----------------------------
    def request_payment(self, request: PaymentRequest) -> PaymentLink:
        return woocommerce_payments.request(self, request)

    def remind_payment(self, ref: str, request: PaymentRequest) -> None:
        woocommerce_payments.remind(self, ref, request)

    def withdraw_payment(self, ref: str) -> bool:
        return woocommerce_payments.withdraw(self, ref)

    def refund(self, request: RefundRequest) -> str:
        return woocommerce_payments.refund(self, request)

    # -- shop notes (connectors.base.AnnotatesOrders) --------------------------------------
    def add_customer_note(self, order_ref: str, text: str) -> None:
        """A customer note on the order (WooCommerce emails it to the billing address), once:
        skipped when the order already has a note with this text."""
        if not order_ref.isdigit():
            raise ValueError(f"add_customer_note: WooCommerce order ids are numbers: {order_ref!r}")
        woocommerce_payments.customer_note_once(self, "add_customer_note", order_ref, text)

    def call(
        self,
        operation: str,
        method: str,
        endpoint: str,
        *,
        params: Mapping[str, str | int] | None = None,
        data: Any = None,
        write: bool = False,
    ) -> Reply:
        """One REST call with this shop's retries; `write`: not repeated when it may have
        landed (a create is not idempotent)."""
        policy = self._write_policy if write else None
        return self._call(operation, method, endpoint, params=params, data=data, policy=policy)

    def order(self, operation: str, order_id: str) -> dict[str, Any]:
        return self._order(operation, order_id)

    def close(self) -> None:
        """Nothing to release: the package opens a connection per request."""


def _without_userinfo(url: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=host))


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _refunds_lack_lines(data: Mapping[str, Any]) -> bool:
    refunds = data.get("refunds")
    if not isinstance(refunds, list):
        return False
    return any(isinstance(r, dict) and "line_items" not in r for r in refunds)


def _customer_id(data: Mapping[str, Any]) -> int | None:
    """A registered customer's id; None for a guest (customer_id 0) or an odd value."""
    value = data.get("customer_id")
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return None
    return value


def _stock_of(item: Mapping[str, Any]) -> int | None:
    """The units the record offers as stocksync counts them: its stock_quantity, plus the
    incoming units we left out of it while backorders are allowed (INCOMING_META)."""
    quantity = item.get("stock_quantity")
    if not item.get("manage_stock") or not isinstance(quantity, int):
        return None
    return quantity + incoming_shown(item)


def offered_quantity(item: Mapping[str, Any]) -> int | None:
    """`_stock_of` for other readers of a product's REST shape (the sandbox's state, tests):
    what stocksync reads as the quantity the shop offers; None without managed stock."""
    return _stock_of(item)


def incoming_shown(item: Mapping[str, Any]) -> int:
    """The incoming units our meta says the record's stock leaves out; 0 while backorders are
    not allowed (whoever switched them off: the shop then sells its stock_quantity only)."""
    if item.get("backorders", "no") == "no":
        return 0
    return max(_meta_int(item, INCOMING_META), 0)


def _stock_changes(item: Mapping[str, Any], push: OfferPush) -> dict[str, Any]:
    """The fields to write so the record offers `push.quantity` and its page tells the truth:
    only those that differ from `item` (empty: nothing to write).

    Units on hand are stock, incoming units are not: with `push.incoming` > 0 the record's
    stock_quantity leaves them out and backorders are "notify", so WooCommerce shows "N in
    stock (can be backordered)", or "Available on backorder" (stock_status onbackorder) when
    every offered unit is incoming; our meta keeps the count (and the expected date), so the
    quantity stocksync reads back is still the offer. With none incoming, backorders go back
    to "no" where we switched them on; a merchant's own setting is left as it is."""
    incoming = min(max(push.incoming, 0), max(push.quantity, 0))
    expected = push.expected_on.isoformat() if incoming and push.expected_on else ""
    current = str(item.get("backorders") or "no")
    ours = current == "notify" and _meta_int(item, INCOMING_META) > 0
    if incoming:
        backorders = current if current == "yes" else "notify"  # "yes": allowed, no notice
    else:
        backorders = "no" if ours else current
    changes: dict[str, Any] = {}
    stock = push.quantity - incoming
    if not item.get("manage_stock") or item.get("stock_quantity") != stock:
        changes["stock_quantity"] = stock
    if backorders != current:
        changes["backorders"] = backorders
    meta = []
    if _meta_int(item, INCOMING_META) != incoming:
        meta.append({"key": INCOMING_META, "value": str(incoming)})
    if str(_item_meta(item, EXPECTED_META) or "") != expected:
        meta.append({"key": EXPECTED_META, "value": expected})
    if meta:
        changes["meta_data"] = meta
    return changes


def _item_meta(item: Mapping[str, Any], key: str) -> Any:
    for meta in item.get("meta_data") or []:
        if isinstance(meta, dict) and meta.get("key") == key:
            return meta.get("value")
    return None


def _meta_int(item: Mapping[str, Any], key: str) -> int:
    """A meta value written as a whole number (WordPress hands it back as text); 0 otherwise."""
    raw = _item_meta(item, key)
    if isinstance(raw, bool) or raw is None:
        return 0
    try:
        return int(str(raw))
    except ValueError:
        return 0


def _endpoint_of(listing: Listing) -> tuple[str, int]:
    """The batch endpoint that writes this listing's stock, and its id there."""
    ids = listing.external_ids
    if "variation_id" in ids:
        return f"products/{ids['product_id']}/variations/batch", int(ids["variation_id"])
    return "products/batch", int(ids["product_id"])


def _line_skus(order: Mapping[str, Any]) -> dict[str, str]:
    return {
        str(item.get("id")): str(item.get("sku") or item.get("name") or "")
        for item in order.get("line_items") or []
        if isinstance(item, dict)
    }


def _meta_value(order: Mapping[str, Any]) -> Any:
    for meta in order.get("meta_data") or []:
        if isinstance(meta, dict) and meta.get("key") == BACKORDER_META:
            return meta.get("value")
    return None


def _waiting(order: Mapping[str, Any]) -> dict[str, int]:
    """Units recorded as waiting in our meta; absent meta means none."""
    raw = _meta_value(order)
    if raw is None:
        return {}
    try:
        data = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        data = None
    if not isinstance(data, dict) or not all(isinstance(v, int) for v in data.values()):
        # someone edited our meta by hand: guessing could ship or hold the wrong units
        raise PayloadError(
            "woocommerce", f"order {order.get('id')} meta {BACKORDER_META}", f"unreadable: {raw!r}"
        )
    return {str(k): v for k, v in data.items() if v > 0}
