"""A loopback WooCommerce (REST wc/v3) for tests, the demo and `stocksync sandbox woocommerce`.

Serves /wp-json/wc/v3/ orders, order notes, order refunds, products, variations, their batch
endpoints, customers/{id} and webhooks, authenticated as WooCommerce does (OAuth 1.0a over http,
Basic over https), with the stock rules in woocommerce_store. Sandbox extras, never faulted:
- POST /_sandbox/checkout: a storefront purchase (`"role": R` registers the email as a customer
  with that role first, so the order carries its customer_id; `"meta_data": [...]` is stored on
  the order as a plugin would; `"payment_method"`: the gateway, default bacs, which cannot
  refund by API; stripe and woocommerce_payments can);
- POST /_sandbox/orders/{id}/pay: the customer pays at the order's payment_url. An optional
  JSON body `{"key": order_key}` (or `?key=` as in the URL) must match the order's key;
  `"transaction_id"` names the charge (one is made up otherwise). 200 with the order, now
  processing; 409 when it cannot be paid (not pending/failed, or a failed order short of
  stock), 403 wrong key, 404 unknown order;
- GET /_sandbox/mail: the emails the shop sent customers (a customer note goes to the billing
  email), oldest first: `[{"to", "order_id", "note", "sent_at" (GMT)}]`;
- GET /_sandbox/state, and the shared /_sandbox/faults and /_sandbox/webhooks/flush.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode

from connectors.sandbox.common import (
    WEBHOOK_SECRET,
    Delivery,
    Request,
    Response,
    SandboxServer,
    load_seed,
)
from connectors.sandbox.woocommerce_auth import (
    AuthRefused,
    OAuthVerifier,
    basic_credentials,
)
from connectors.sandbox.woocommerce_query import (
    InvalidParam,
    bool_param,
    date_param,
    id_list,
    paginate,
    text_list,
)
from connectors.sandbox.woocommerce_shapes import (
    GATEWAY_TITLES,
    Order,
    Product,
    billing_address,
    customer_json,
    decimal_money,
    error_json,
    gmt_text,
    local_text,
    meta_json,
    newest_first,
    note_json,
    order_json,
    product_json,
    refund_json,
    refunded_units,
    shipping_address,
    variation_json,
)
from connectors.sandbox.woocommerce_store import (
    CANNOT_REFUND,
    BareDataError,
    OutOfStock,
    PaymentRefused,
    RefundLineRequest,
    Store,
    StoreError,
    default_variable,
)
from connectors.signatures import sign

API_PREFIX = "/wp-json/wc/v3/"
BATCH_LIMIT = 100  # woocommerce_rest_batch_items_limit
MAX_WEBHOOK_FAILURES = 5
USER_AGENT = "WooCommerce/3.0.0 Hookshot (WordPress/6.4)"


@dataclass
class Webhook:
    id: int
    name: str
    topic: str  # "order.created" | "order.updated"
    delivery_url: str
    secret: str
    created: datetime
    status: str = "active"  # "active" | "paused" | "disabled"
    failure_count: int = 0
    ping_status: int | None = None

    def to_json(self, base: str) -> dict[str, Any]:
        resource, _, event = self.topic.partition(".")
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "topic": self.topic,
            "resource": resource,
            "event": event,
            "hooks": [f"woocommerce_{event}_{resource}"],
            "delivery_url": self.delivery_url,
            "date_created": local_text(self.created),
            "date_created_gmt": gmt_text(self.created),
            "date_modified": local_text(self.created),
            "date_modified_gmt": gmt_text(self.created),
            "_links": {
                "self": [{"href": f"{base}/wp-json/wc/v3/webhooks/{self.id}"}],
                "collection": [{"href": f"{base}/wp-json/wc/v3/webhooks"}],
            },
        }


Handler = Callable[[Request, re.Match[str]], Response]


def _now() -> datetime:
    # WordPress stores post dates to the second
    return datetime.now(UTC).replace(microsecond=0)


def _woo_error(exc: StoreError | AuthRefused | InvalidParam) -> Response:
    if isinstance(exc, BareDataError):
        return Response(500, {"code": exc.code, "message": exc.message, "data": exc.bare})
    if isinstance(exc, AuthRefused):
        return Response(401, error_json(exc.code, exc.message, 401))
    if isinstance(exc, InvalidParam):
        return Response(400, exc.body())
    return Response(exc.status, error_json(exc.code, exc.message, exc.status, **exc.data))


def _object_body(request: Request) -> dict[str, Any]:
    try:
        body = request.json()
    except (ValueError, UnicodeDecodeError):
        raise StoreError("rest_invalid_json", "Invalid JSON body passed.", 400) from None
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise StoreError("rest_invalid_json", "Invalid JSON body passed.", 400)
    return body


class WooCommerceSandbox(SandboxServer):
    """A WooCommerce shop on loopback; every state change happens under `self.lock`."""

    name = "woocommerce"

    def __init__(
        self,
        *,
        catalog: dict[str, int] | None = None,
        webhook_url: str | None = None,
        webhook_secret: str = WEBHOOK_SECRET,
        consumer_key: str = "ck_sandbox",
        consumer_secret: str = "cs_sandbox",  # noqa: S107 documented sandbox default
        seed: int | None = None,
        variable: Mapping[str, Sequence[str]] | None = None,
        oauth_window_seconds: int = 300,
    ) -> None:
        super().__init__(webhook_url=webhook_url, seed=seed)
        chosen = dict(load_seed(None) if catalog is None else catalog)
        self.webhook_secret = webhook_secret
        self.consumer_key = consumer_key
        self.consumer_secret = consumer_secret
        self.oauth = OAuthVerifier(consumer_key, consumer_secret, oauth_window_seconds)
        self.store = Store(
            chosen, default_variable(chosen) if variable is None else variable, _now()
        )
        self.webhooks: dict[int, Webhook] = {}
        # order id -> refund objects a real shop answered (see _record_refunds)
        self.recorded_refunds: dict[int, list[dict[str, Any]]] = {}
        self._webhooks_activated = False
        self.outbox.on_result = self._delivery_result
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = [
            ("GET", re.compile(r"orders"), self._list_orders),
            ("POST", re.compile(r"orders"), self._create_order),
            ("GET", re.compile(r"orders/(\d+)"), self._get_order),
            ("PUT", re.compile(r"orders/(\d+)"), self._update_order),
            ("GET", re.compile(r"orders/(\d+)/notes"), self._list_notes),
            ("POST", re.compile(r"orders/(\d+)/notes"), self._create_note),
            ("GET", re.compile(r"orders/(\d+)/notes/(\d+)"), self._get_note),
            ("GET", re.compile(r"orders/(\d+)/refunds"), self._list_refunds),
            ("POST", re.compile(r"orders/(\d+)/refunds"), self._create_refund),
            ("GET", re.compile(r"orders/(\d+)/refunds/(\d+)"), self._get_refund),
            ("GET", re.compile(r"products"), self._list_products),
            ("POST", re.compile(r"products/batch"), self._batch_products),
            ("GET", re.compile(r"products/(\d+)"), self._get_product),
            ("PUT", re.compile(r"products/(\d+)"), self._update_product),
            ("GET", re.compile(r"products/(\d+)/variations"), self._list_variations),
            ("POST", re.compile(r"products/(\d+)/variations/batch"), self._batch_variations),
            ("GET", re.compile(r"products/(\d+)/variations/(\d+)"), self._get_variation),
            ("PUT", re.compile(r"products/(\d+)/variations/(\d+)"), self._update_variation),
            ("GET", re.compile(r"customers/(\d+)"), self._get_customer),
            ("GET", re.compile(r"webhooks"), self._list_webhooks),
            ("GET", re.compile(r"webhooks/(\d+)"), self._get_webhook),
            ("PUT", re.compile(r"webhooks/(\d+)"), self._update_webhook),
        ]

    # -- lifecycle ------------------------------------------------------------------------
    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        url = super().start(host, port)
        self._activate_webhooks()
        return url

    def serve_forever(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._activate_webhooks()
        super().serve_forever(host, port)

    def __enter__(self) -> WooCommerceSandbox:
        self.start()
        return self

    def _activate_webhooks(self) -> None:
        """Create order.created and order.updated webhooks; each sends its ping first."""
        with self.lock:
            if self._webhooks_activated or not self.webhook_url:
                return
            self._webhooks_activated = True
            for topic, name in (
                ("order.created", "Order created"),
                ("order.updated", "Order updated"),
            ):
                hook_id = len(self.webhooks) + 1
                hook = Webhook(hook_id, name, topic, self.webhook_url, self.webhook_secret, _now())
                self.webhooks[hook_id] = hook
                # WC_Webhook::deliver_ping: form body, no X-WC-* headers, no signature
                self.outbox.send(
                    hook.delivery_url,
                    {"Content-Type": "application/x-www-form-urlencoded", "User-Agent": USER_AGENT},
                    urlencode({"webhook_id": hook_id}).encode(),
                )

    # -- webhooks -------------------------------------------------------------------------
    def _fire(self, topic: str, order: Order) -> None:
        """Queue the topic's deliveries; the caller holds the lock so the order is kept."""
        body = json.dumps(order_json(order, self._base(), links=False), separators=(",", ":"))
        raw = body.encode("utf-8")
        resource, _, event = topic.partition(".")
        for hook in self.webhooks.values():
            if hook.topic != topic or hook.status != "active":
                continue
            # wp_hash(id . time()): two deliveries in one second share a Delivery-ID
            delivery_id = hmac.new(
                b"sandbox-salt", f"{hook.id}{int(time.time())}".encode(), hashlib.md5
            ).hexdigest()
            headers = {
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                "X-WC-Webhook-Source": f"{self._base()}/",
                "X-WC-Webhook-Topic": topic,
                "X-WC-Webhook-Resource": resource,
                "X-WC-Webhook-Event": event,
                "X-WC-Webhook-Signature": sign(hook.secret, raw),
                "X-WC-Webhook-ID": str(hook.id),
                "X-WC-Webhook-Delivery-ID": delivery_id,
            }
            self.outbox.send(hook.delivery_url, headers, raw)

    def _delivery_result(self, delivery: Delivery) -> None:
        ok = delivery.status is not None and 200 <= delivery.status < 300
        with self.lock:
            if delivery.body.startswith(b"webhook_id="):
                hook = self.webhooks.get(int(delivery.body.split(b"=", 1)[1] or b"0"))
                if hook is not None:
                    hook.ping_status = delivery.status
                return
            hook = self.webhooks.get(int(delivery.headers.get("X-WC-Webhook-ID", "0")))
            if hook is None:
                return
            if ok:
                hook.failure_count = 0
                return
            hook.failure_count += 1
            if hook.failure_count >= MAX_WEBHOOK_FAILURES:
                hook.status = "disabled"

    # -- dispatch -------------------------------------------------------------------------
    def _base(self) -> str:
        return self.url if self._httpd is not None else "http://127.0.0.1"

    def fault_response(self, status: int) -> Response:
        headers = {"Retry-After": "1"} if status == 429 else {}
        code = "woocommerce_rest_too_many_requests" if status == 429 else "sandbox_fault"
        return Response(
            status, error_json(code, f"Sandbox injected fault {status}.", status), headers
        )

    def route(self, request: Request) -> Response:
        if not request.path.startswith(API_PREFIX):
            return Response(404, error_json("rest_no_route", _NO_ROUTE, 404))
        try:
            self._authenticate(request)
        except AuthRefused as exc:
            return _woo_error(exc)
        rest = request.path[len(API_PREFIX) :].strip("/")
        method = "PUT" if request.method in ("POST", "PATCH") and _is_edit(rest) else request.method
        for verb, pattern, handler in self._routes:
            match = pattern.fullmatch(rest)
            if match is not None and verb == method:
                try:
                    with self.lock:
                        return handler(request, match)
                except (StoreError, InvalidParam) as exc:
                    return _woo_error(exc)
        return Response(404, error_json("rest_no_route", _NO_ROUTE, 404))

    def _authenticate(self, request: Request) -> None:
        query = request.query_dict()  # last value wins, as in PHP's $_GET
        secure = request.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"
        if secure:
            creds = basic_credentials(request.headers.get("authorization"))
            if creds is None and "consumer_key" in query:
                creds = (query["consumer_key"], query.get("consumer_secret", ""))
            if creds is None:
                raise AuthRefused("Consumer key is missing.")
            key, secret = creds
            if not (
                hmac.compare_digest(key, self.consumer_key)
                and hmac.compare_digest(secret, self.consumer_secret)
            ):
                raise AuthRefused("Consumer secret is invalid.")
            return
        if "oauth_signature" not in query and "oauth_consumer_key" not in query:
            # WooCommerce only reads Basic credentials over https
            raise AuthRefused("Consumer key is missing.")
        base_url = f"http://{request.host}{request.path}"
        self.oauth.verify(request.method, base_url, query, time.time())

    # -- orders ---------------------------------------------------------------------------
    def _list_orders(self, request: Request, match: re.Match[str]) -> Response:
        query = request.query_dict()
        gmt = bool_param(query, "dates_are_gmt")
        orders = list(self.store.orders.values())
        statuses = _order_statuses(query)
        if statuses and "any" not in statuses:
            orders = [o for o in orders if o.status in statuses]
        elif not statuses or "any" in statuses:
            orders = [o for o in orders if o.status != "trash"]
        for name, attr, after in (
            ("modified_after", "modified", True),
            ("modified_before", "modified", False),
            ("after", "created", True),
            ("before", "created", False),
        ):
            bound = date_param(query, name, gmt)
            if bound is not None:
                orders = [
                    o
                    for o in orders
                    if (getattr(o, attr) > bound if after else getattr(o, attr) < bound)
                ]
        include = id_list(query, "include")
        term = " ".join(query.get("search", "").split())  # sanitize_text_field
        if term:
            found = _search_orders(self.store.orders.values(), term)
            # the ids found replace include's post__in; with none, WordPress searches the
            # order posts' titles and excerpts instead, which the sandbox does not keep
            include = found or [0]
        if include is not None:
            orders = [o for o in orders if o.id in include]
        orderby = query.get("orderby", "date")
        if orderby not in ("date", "id", "include", "title", "slug", "modified"):
            raise InvalidParam(
                "orderby", "orderby is not one of date, id, include, title, slug, and modified."
            )
        key: Callable[[Order], Any] = {
            "date": lambda o: (o.created, o.id),
            "modified": lambda o: (o.modified, o.id),
        }.get(orderby, lambda o: o.id)
        direction = query.get("order", "desc")
        if direction not in ("asc", "desc"):
            raise InvalidParam("order", "order is not one of asc and desc.")
        orders.sort(key=key, reverse=direction == "desc")
        page, headers = paginate(orders, query)
        base = self._base()
        return Response(200, [order_json(o, base) for o in page], headers)

    def _get_order(self, request: Request, match: re.Match[str]) -> Response:
        return Response(200, order_json(self.store.order(int(match[1])), self._base()))

    def _create_order(self, request: Request, match: re.Match[str]) -> Response:
        body = _object_body(request)
        lines = body.get("line_items", [])
        meta = body.get("meta_data", [])
        if not isinstance(lines, list) or not isinstance(meta, list):
            raise StoreError("rest_invalid_param", "Invalid parameter(s): line_items", 400)
        status = str(body.get("status", "pending"))
        if body.get("set_paid") is True and status == "pending":
            status = "processing"
        billing = body.get("billing") if isinstance(body.get("billing"), dict) else {}
        order = self.store.create_order(
            lines=lines,
            status=status,
            email=str((billing or {}).get("email", "")),
            created_via="rest-api",
            now=_now(),
            customer_id=_customer_id(body.get("customer_id", 0)),
            customer_note=str(body.get("customer_note", "")),
            meta=meta,
        )
        self._fire("order.created", order)
        return Response(201, order_json(order, self._base()))

    def _update_order(self, request: Request, match: re.Match[str]) -> Response:
        order = self.store.order(int(match[1]))
        self.store.update_order(order, _object_body(request), _now())
        self._fire("order.updated", order)
        return Response(200, order_json(order, self._base()))

    def _get_customer(self, request: Request, match: re.Match[str]) -> Response:
        return Response(200, customer_json(self.store.customer(int(match[1])), self._base()))

    def _list_notes(self, request: Request, match: re.Match[str]) -> Response:
        order = self.store.order(int(match[1]))
        notes = sorted(self.store.notes[order.id], key=lambda n: n.id, reverse=True)
        kind = request.query_dict().get("type", "any")
        if kind == "customer":
            notes = [n for n in notes if n.customer_note]
        elif kind == "internal":
            notes = [n for n in notes if not n.customer_note]
        return Response(200, [note_json(n, self._base()) for n in notes])

    def _create_note(self, request: Request, match: re.Match[str]) -> Response:
        order = self.store.order(int(match[1]))
        body = _object_body(request)
        text = body.get("note")
        if not isinstance(text, str) or not text:
            raise StoreError("rest_missing_callback_param", "Missing parameter(s): note", 400)
        # a REST boolean, so "false" is false; absent, the note is private
        customer = _rest_bool(body, "customer_note") if "customer_note" in body else False
        note = self.store.add_note(order, text, customer, _now())
        return Response(201, note_json(note, self._base()))

    def _get_note(self, request: Request, match: re.Match[str]) -> Response:
        order = self.store.order(int(match[1]))
        for note in self.store.notes[order.id]:
            if note.id == int(match[2]):
                return Response(200, note_json(note, self._base()))
        raise StoreError("woocommerce_rest_invalid_id", "Invalid resource ID.", 404)

    # -- refunds --------------------------------------------------------------------------
    def _list_refunds(self, request: Request, match: re.Match[str]) -> Response:
        # the collection is a query on post_parent: an unknown order is an empty list, not 404
        order_id = int(match[1])
        order = self.store.orders.get(order_id)
        if order is None and order_id in self.recorded_refunds:
            recorded, found = paginate(self.recorded_refunds[order_id], request.query_dict())
            return Response(200, recorded, found)
        refunds = newest_first(order.refunds) if order is not None else []
        page, headers = paginate(refunds, request.query_dict())
        base = self._base()
        return Response(200, [refund_json(r, base) for r in page], headers)

    def _get_refund(self, request: Request, match: re.Match[str]) -> Response:
        refund_id = int(match[2])
        refund = self.store.refund(refund_id)
        if refund is None and refund_id not in self.store.orders:  # wc_get_order() found nothing
            raise StoreError("woocommerce_rest_shop_order_refund_invalid_id", "Invalid ID.", 404)
        order = self.store.orders.get(int(match[1]))
        if order is None:
            raise BareDataError("woocommerce_rest_invalid_order_id", "Invalid order ID.", 404)
        if refund is None or refund.order_id != order.id:
            raise BareDataError(
                "woocommerce_rest_invalid_order_refund_id", "Invalid order refund ID.", 404
            )
        return Response(200, refund_json(refund, self._base()))

    def _create_refund(self, request: Request, match: re.Match[str]) -> Response:
        """WC_REST_Order_Refunds_Controller::create_item over wc_create_refund.

        The request takes api_refund and api_restock (both default true); restock_items is
        wc_create_refund's own argument, not a REST one, and is ignored as WordPress ignores
        unknown parameters. Refusals after argument validation are WP_Errors with bare data,
        so they reach the client as HTTP 500 (see BareDataError).
        """
        body = _object_body(request)
        for name in ("amount", "reason"):
            if name in body and not isinstance(body[name], str):
                raise InvalidParam(name, f"{name} is not of type string.")
        refund_payment = _rest_bool(body, "api_refund")
        restock = _rest_bool(body, "api_restock")
        meta = body.get("meta_data", [])
        if not isinstance(meta, list):
            raise InvalidParam("meta_data", "meta_data is not of type array.")
        order = self.store.orders.get(int(match[1]))
        if order is None:
            raise BareDataError("woocommerce_rest_invalid_order_id", "Invalid order ID.", 404)
        known = {line.id for line in order.line_items}
        lines, any_lines, line_sum = _refund_lines(body.get("line_items"), known)
        amount = _refund_amount(body.get("amount"), line_sum)
        refund = self.store.create_refund(
            order,
            amount=amount,
            reason=str(body.get("reason") or ""),
            lines=lines,
            any_lines=any_lines,
            refund_payment=refund_payment,
            restock=restock,
            meta=meta,
            now=_now(),
        )
        self._fire("order.updated", order)
        base = self._base()
        location = f"{base}/wp-json/wc/v3/orders/{order.id}/refunds/{refund.id}"
        return Response(201, refund_json(refund, base), {"Location": location})

    # -- products -------------------------------------------------------------------------
    def _list_products(self, request: Request, match: re.Match[str]) -> Response:
        query = request.query_dict()
        skus = text_list(query, "sku")
        products = sorted(self.store.products.values(), key=lambda p: p.id, reverse=True)
        if skus is not None:
            # with ?sku= WooCommerce searches product and product_variation posts alike
            products = [p for p in products if p.sku in skus]
        else:
            products = [p for p in products if p.type != "variation"]
        include = id_list(query, "include")
        if include is not None:
            products = [p for p in products if p.id in include]
        kind = query.get("type")
        if kind:
            products = [p for p in products if p.type == kind]
        page, headers = paginate(products, query)
        base = self._base()
        return Response(200, [product_json(p, base) for p in page], headers)

    def _get_product(self, request: Request, match: re.Match[str]) -> Response:
        return Response(200, product_json(self.store.product(int(match[1])), self._base()))

    def _update_product(self, request: Request, match: re.Match[str]) -> Response:
        product = self.store.product(int(match[1]))
        self.store.update_product(product, _object_body(request), _now())
        return Response(200, product_json(product, self._base()))

    def _list_variations(self, request: Request, match: re.Match[str]) -> Response:
        parent = self.store.product(int(match[1]))
        query = request.query_dict()
        variations = [self.store.products[vid] for vid in reversed(parent.variation_ids)]
        include = id_list(query, "include")
        if include is not None:
            variations = [v for v in variations if v.id in include]
        skus = text_list(query, "sku")
        if skus is not None:
            variations = [v for v in variations if v.sku in skus]
        page, headers = paginate(variations, query)
        base = self._base()
        return Response(200, [variation_json(v, base) for v in page], headers)

    def _get_variation(self, request: Request, match: re.Match[str]) -> Response:
        variation = self.store.variation(int(match[1]), int(match[2]))
        return Response(200, variation_json(variation, self._base()))

    def _update_variation(self, request: Request, match: re.Match[str]) -> Response:
        variation = self.store.variation(int(match[1]), int(match[2]))
        self.store.update_product(variation, _object_body(request), _now())
        return Response(200, variation_json(variation, self._base()))

    def _batch(
        self,
        request: Request,
        find: Callable[[int], Product],
        render: Callable[[Product, str], dict[str, Any]],
        invalid_code: str,
    ) -> Response:
        body = _object_body(request)
        groups = {name: body.get(name) or [] for name in ("create", "update", "delete")}
        if any(not isinstance(items, list) for items in groups.values()):
            raise StoreError("rest_invalid_param", "Invalid parameter(s): update", 400)
        total = sum(len(items) for items in groups.values())
        if total > BATCH_LIMIT:
            raise StoreError(
                "rest_request_entity_too_large",
                f"Unable to accept more than {BATCH_LIMIT} items for this request.",
                413,
            )
        base = self._base()
        out: dict[str, list[dict[str, Any]]] = {}
        if groups["update"]:
            out["update"] = [
                self._batch_update_item(item, find, render, invalid_code, base)
                for item in groups["update"]
            ]
        for name in ("create", "delete"):
            if groups[name]:
                # the sandbox only updates stock; each item says so, as a per-item error would
                refusal = error_json(
                    "sandbox_not_implemented", f"The sandbox does not {name} products.", 501
                )
                out[name] = [
                    {"id": item.get("id", 0) if isinstance(item, dict) else item, "error": refusal}
                    for item in groups[name]
                ]
        return Response(200, out)

    def _batch_update_item(
        self,
        item: Any,
        find: Callable[[int], Product],
        render: Callable[[Product, str], dict[str, Any]],
        invalid_code: str,
        base: str,
    ) -> dict[str, Any]:
        item_id = item.get("id") if isinstance(item, dict) else None
        try:
            if not isinstance(item, dict) or not isinstance(item_id, int):
                raise StoreError(invalid_code, "Invalid ID.", 400)
            try:
                product = find(item_id)
            except StoreError:
                raise StoreError(invalid_code, "Invalid ID.", 400) from None
            self.store.update_product(product, item, _now())
        except StoreError as exc:
            return {"id": item_id or 0, "error": error_json(exc.code, exc.message, exc.status)}
        return render(product, base)

    def _batch_products(self, request: Request, match: re.Match[str]) -> Response:
        return self._batch(
            request, self.store.product, product_json, "woocommerce_rest_product_invalid_id"
        )

    def _batch_variations(self, request: Request, match: re.Match[str]) -> Response:
        parent_id = int(match[1])
        self.store.product(parent_id)
        return self._batch(
            request,
            lambda vid: self.store.variation(parent_id, vid),
            variation_json,
            "woocommerce_rest_product_variation_invalid_id",
        )

    # -- webhooks REST --------------------------------------------------------------------
    def _webhook(self, hook_id: int) -> Webhook:
        hook = self.webhooks.get(hook_id)
        if hook is None:
            raise StoreError("woocommerce_rest_webhook_invalid_id", "Invalid ID.", 404)
        return hook

    def _list_webhooks(self, request: Request, match: re.Match[str]) -> Response:
        hooks = [h.to_json(self._base()) for h in self.webhooks.values()]
        page, headers = paginate(hooks, request.query_dict())
        return Response(200, page, headers)

    def _get_webhook(self, request: Request, match: re.Match[str]) -> Response:
        return Response(200, self._webhook(int(match[1])).to_json(self._base()))

    def _update_webhook(self, request: Request, match: re.Match[str]) -> Response:
        hook = self._webhook(int(match[1]))
        body = _object_body(request)
        if "status" in body:
            if body["status"] not in ("active", "paused", "disabled"):
                raise StoreError("rest_invalid_param", "Invalid parameter(s): status", 400)
            hook.status = str(body["status"])
            if hook.status == "active":
                hook.failure_count = 0
        if "delivery_url" in body:
            hook.delivery_url = str(body["delivery_url"])
        return Response(200, hook.to_json(self._base()))

    # -- sandbox extras -------------------------------------------------------------------
    def sandbox_route(self, request: Request) -> Response | None:
        if request.path == "/_sandbox/checkout" and request.method == "POST":
            return self._checkout(request)
        pay = _PAY.fullmatch(request.path)
        if pay and request.method == "POST":
            return self._pay(int(pay[1]), request)
        if request.path == "/_sandbox/mail" and request.method == "GET":
            return Response(200, self.sent_mail())
        recorded = _RECORDED_REFUNDS.fullmatch(request.path)
        if recorded and request.method == "PUT":
            return self._record_refunds(int(recorded[1]), request)
        return None

    def _pay(self, order_id: int, request: Request) -> Response:
        body = request.json()
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise ValueError("pay body must be a JSON object")
        key = body.get("key", request.query_dict().get("key"))
        if key is not None and not isinstance(key, str):
            raise ValueError(f"key must be the order_key string, got {key!r}")
        transaction_id = body.get("transaction_id", "")
        if not isinstance(transaction_id, str):
            raise ValueError(f"transaction_id must be a string, got {transaction_id!r}")
        method = body.get("payment_method")
        if method is not None and method not in GATEWAY_TITLES:
            raise ValueError(f"payment_method must be one of {', '.join(GATEWAY_TITLES)}")
        try:
            order = self.pay_order(
                order_id, key=key, transaction_id=transaction_id, payment_method=method
            )
        except PaymentRefused as exc:
            return Response(exc.status, error_json(exc.code, exc.message, exc.status))
        return Response(200, order)

    # -- customer actions (also used in-process by tests) ---------------------------------
    def pay_order(
        self,
        order_id: int,
        *,
        key: str | None = None,
        transaction_id: str = "",
        payment_method: str | None = None,
    ) -> dict[str, Any]:
        """The customer pays at the order's payment_url; returns the order JSON, raises
        PaymentRefused (code, message, HTTP status) when the shop would not take payment.
        Fires order.updated as any status change does."""
        with self.lock:
            order = self.store.pay_for_order(order_id, key, _now(), transaction_id)
            if payment_method is not None:  # the gateway the customer chose on the pay page
                order.payment_method = payment_method
            self._fire("order.updated", order)
            return order_json(order, self._base())

    def sent_mail(self) -> list[dict[str, Any]]:
        """The emails sent to customers so far (customer notes), oldest first."""
        with self.lock:
            return [mail.to_json() for mail in self.store.mail]

    def _record_refunds(self, order_id: int, request: Request) -> Response:
        """Refunds a real shop answered for an order this sandbox never held (a replayed real
        payload): GET orders/{id}/refunds then returns them as they were recorded."""
        refunds = request.json()
        if not isinstance(refunds, list) or not all(isinstance(r, dict) for r in refunds):
            raise ValueError("recorded refunds must be a JSON list of refund objects")
        with self.lock:
            if order_id in self.store.orders:
                raise ValueError(f"order {order_id} is the sandbox's own: refund it instead")
            self.recorded_refunds[order_id] = refunds
        return Response(200, {"order": order_id, "refunds": len(refunds)})

    def _checkout(self, request: Request) -> Response:
        body = request.json()
        if not isinstance(body, dict):
            raise ValueError("checkout body must be a JSON object")
        raw_lines = body.get("lines", [body])
        if not isinstance(raw_lines, list) or not raw_lines:
            raise ValueError("checkout needs a sku and quantity, or lines")
        lines: list[tuple[str, int]] = []
        for line in raw_lines:
            if not isinstance(line, dict) or not isinstance(line.get("sku"), str):
                raise ValueError(f"each checkout line needs a sku, got {line!r}")
            quantity = line.get("quantity", 1)
            if not isinstance(quantity, int) or isinstance(quantity, bool):
                raise ValueError(f"quantity must be a whole number, got {quantity!r}")
            lines.append((line["sku"], quantity))
        email = str(body.get("email") or "guest@example.com")
        role = body.get("role")
        if role is not None and (not isinstance(role, str) or not role.strip()):
            raise ValueError(f"role must be a WordPress role name, got {role!r}")
        if role is not None and not body.get("email"):
            raise ValueError("a role belongs to a registered customer: give an email too")
        meta = body.get("meta_data", [])
        if not isinstance(meta, list) or not all(
            isinstance(m, dict) and isinstance(m.get("key"), str) for m in meta
        ):
            raise ValueError('meta_data must be a list of {"key": K, "value": V}')
        with self.lock:
            if role is not None:
                self.store.register(email, role.strip(), _now())
            try:
                order = self.store.checkout(
                    lines, email, _now(), meta=meta,
                    payment_method=str(body.get("payment_method") or "bacs"),
                )  # fmt: skip
            except OutOfStock as exc:
                shortages = [
                    {"sku": s.sku, "requested": s.requested, "available": s.available}
                    for s in exc.shortages
                ]
                message = f"Not enough stock: {exc}"
                return Response(
                    409, error_json("woocommerce_out_of_stock", message, 409, shortages=shortages)
                )
            self._fire("order.created", order)
            return Response(201, order_json(order, self._base()))

    def state_snapshot(self) -> Any:
        store = self.store
        return {
            "stock": store.stock(),
            "products": [
                {
                    "id": p.id,
                    "sku": p.sku,
                    "type": p.type,
                    "parent_id": p.parent_id,
                    "manage_stock": p.manage_stock,
                    "stock_quantity": p.stock_quantity,
                    "backorders": p.backorders,
                    "stock_status": p.stock_status,
                    "backordered": p.backordered,
                    "meta_data": meta_json(p.meta),
                }
                for p in sorted(store.products.values(), key=lambda p: p.id)
            ],
            "orders": [
                {
                    "id": o.id,
                    "status": o.status,
                    "stock_reduced": o.stock_reduced,
                    "email": o.email,
                    "date_modified_gmt": gmt_text(o.modified),
                    "lines": [
                        {
                            "id": li.id,
                            "sku": li.sku,
                            "quantity": li.quantity,  # as ordered: refunds do not change it
                            "reduced": li.reduced,
                            "refunded": refunded_units(o).get(li.id, 0),
                            "restocked": li.restocked,
                        }
                        for li in o.line_items
                    ],
                    "refunds": [
                        {
                            "id": r.id,
                            "amount": decimal_money(r.amount),
                            "reason": r.reason,
                            "lines": {str(rl.refunded_item_id): -rl.quantity for rl in r.lines},
                        }
                        for r in o.refunds
                    ],
                    "meta": {m.key: m.value for m in o.meta},
                    "notes": [
                        {"note": n.note, "customer_note": n.customer_note}
                        for n in store.notes[o.id]
                    ],
                }
                for o in sorted(store.orders.values(), key=lambda o: o.id)
            ],
            "customers": [
                {"id": c.id, "email": c.email, "role": c.role}
                for c in sorted(store.customers.values(), key=lambda c: c.id)
            ],
            "webhooks": [
                {
                    "id": h.id,
                    "topic": h.topic,
                    "status": h.status,
                    "failure_count": h.failure_count,
                    "ping_status": h.ping_status,
                    "delivery_url": h.delivery_url,
                }
                for h in self.webhooks.values()
            ],
            "deliveries": {"sent": len(self.outbox.sent), "dropped": len(self.outbox.dropped)},
        }


_RECORDED_REFUNDS = re.compile(r"/_sandbox/orders/(\d+)/refunds")
_PAY = re.compile(r"/_sandbox/orders/(\d+)/pay")
# the status argument's enum in wc/v3 (WC_REST_Orders_Controller::get_collection_params)
_STATUS_ENUM = (
    "any",
    "trash",
    "pending",
    "processing",
    "on-hold",
    "completed",
    "cancelled",
    "refunded",
    "failed",
)
_NO_ROUTE = "No route was found matching the URL and request method"
_EDITABLE = re.compile(r"(orders|products|webhooks)/\d+(/variations/\d+)?")


def _order_statuses(query: Mapping[str, str]) -> list[str] | None:
    """The status argument: an array given as a list (wp_parse_list splits on commas and
    whitespace), each item checked against the enum as WordPress validates arrays."""
    raw = query.get("status")
    if raw is None or raw == "":
        return None
    statuses = [part for part in re.split(r"[\s,]+", raw) if part]
    for index, status in enumerate(statuses):
        if status not in _STATUS_ENUM:
            listed = ", ".join(_STATUS_ENUM[:-1]) + f", and {_STATUS_ENUM[-1]}"
            raise InvalidParam("status", f"status[{index}] is not one of {listed}.")
    return statuses


def _search_orders(orders: Iterable[Order], term: str) -> list[int]:
    """wc_order_search: the id a numeric term names, and orders whose billing or shipping
    address index (every field, email included, joined by spaces) or a line item's name
    contains the term, compared as MySQL's LIKE does under its default collation."""
    found: list[int] = []
    number = _php_number(term)
    if number is not None:
        found.append(abs(int(number)))  # absint, whether or not such an order exists
    needle = term.lower()
    for order in orders:
        texts = [
            " ".join(billing_address(order).values()),  # _billing_address_index
            " ".join(shipping_address(order).values()),  # _shipping_address_index
            *(line.name for line in order.line_items),
        ]
        if any(needle in text.lower() for text in texts) and order.id not in found:
            found.append(order.id)
    return found


def _customer_id(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        if value in (None, ""):
            return 0
        raise StoreError("rest_invalid_param", "Invalid parameter(s): customer_id", 400)
    return value


def _rest_bool(body: Mapping[str, Any], name: str) -> bool:
    """A boolean argument as rest_is_boolean/rest_sanitize_boolean read it; absent: true."""
    value = body.get(name, True)
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    raise InvalidParam(name, f"{name} is not of type boolean.")


def _php_number(value: Any) -> Decimal | None:
    """The value when PHP's is_numeric() holds for it, else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _php_empty(value: Any) -> bool:
    if value is None or isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value == 0
    if isinstance(value, str):
        return value in ("", "0")
    if isinstance(value, (list, dict)):
        return not value
    return False


def _refund_amount(raw: str | None, line_sum: Decimal | None) -> Decimal:
    """The amount wc_create_refund gets; a missing one is the lines' sum (RestApiParameterUtil)."""
    amount = (line_sum or Decimal(0)) if raw is None else _php_number(raw)
    # PHP 8 compares 0 > "" as strings, which holds; other non-numbers fail the remaining check
    blank = raw is not None and not raw.strip()
    if blank or (amount is not None and amount < 0):
        raise BareDataError(
            "woocommerce_rest_invalid_order_refund", "Refund amount must be greater than zero.", 400
        )
    if amount is None:
        raise BareDataError(CANNOT_REFUND, "Invalid refund amount.")
    return amount


def _item_key(value: Any) -> int | None:
    """The order line id a PHP array key names, when it names one."""
    if isinstance(value, (bool, int)):
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"0|-?[1-9][0-9]*", value):
        return int(value)
    return None


def _refund_lines(
    raw: Any, known: set[int]
) -> tuple[dict[int, RefundLineRequest], bool, Decimal | None]:
    """line_items as RestApiParameterUtil hands them to wc_create_refund: entries keyed by order
    line id (a list where an entry lacks an id stays keyed by position), whether any were given,
    and the sum of refund_total and refund_tax when every entry has numeric ones."""
    if _php_empty(raw):
        return {}, False, None
    if isinstance(raw, list):
        keyed = all(isinstance(i, dict) and _item_key(i.get("id")) is not None for i in raw)
        entries = {i["id"]: i for i in raw} if keyed else dict(enumerate(raw))
    elif isinstance(raw, dict):
        entries = dict(raw)
    else:
        return {}, True, None  # not an array: wc_create_refund adds no lines
    lines: dict[int, RefundLineRequest] = {}
    total: Decimal | None = Decimal(0)
    for key, item in entries.items():
        part = _refund_sum(item)
        total = None if total is None or part is None else total + part
        line_id = _item_key(key)
        if isinstance(item, dict) and line_id in known:
            lines[line_id] = _refund_line(item)
    return lines, True, total


def _refund_sum(item: Any) -> Decimal | None:
    """One entry's refund_total plus its refund_tax values, or None when one is not numeric."""
    if not isinstance(item, dict):
        return None
    amount = _php_number(item.get("refund_total"))
    taxes = item.get("refund_tax")
    if isinstance(taxes, dict):
        taxes = list(taxes.values())
    elif isinstance(taxes, list):
        if all(isinstance(t, dict) and "id" in t and "refund_total" in t for t in taxes):
            taxes = [t["refund_total"] for t in taxes]
    else:
        taxes = []  # PHP's foreach skips a scalar
    for tax in taxes:
        value = _php_number(tax)
        if amount is None or value is None:
            return None
        amount += value
    return amount


def _refund_line(item: dict[str, Any]) -> RefundLineRequest:
    qty = item.get("qty") if item.get("qty") is not None else item.get("quantity")
    quantity = _php_number(qty)
    refund_total = _php_number(item.get("refund_total"))
    if (qty is not None and quantity is None) or (
        item.get("refund_total") is not None and refund_total is None
    ):
        # PHP 8 stops with a TypeError on such arithmetic; the sandbox names the field instead
        raise InvalidParam("line_items", "quantity and refund_total must be numbers.")
    return RefundLineRequest(
        quantity=int(quantity) if quantity is not None else None,
        refund_total=refund_total or Decimal(0),
        has_tax=not _php_empty(item.get("refund_tax")),
    )


def _is_edit(rest: str) -> bool:
    # WP REST EDITABLE routes take POST, PUT and PATCH alike
    return _EDITABLE.fullmatch(rest) is not None


def main(argv: list[str] | None = None) -> int:
    """`stocksync sandbox woocommerce`: print the bound URL first, serve until interrupted."""
    parser = argparse.ArgumentParser(prog="stocksync sandbox woocommerce")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--seed", default=None, help="YAML or JSON file: SKUs with quantities")
    parser.add_argument("--webhook-url", default=None, help="where signed webhooks go")
    args = parser.parse_args(argv)
    try:
        catalog = load_seed(args.seed)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", flush=True)
        return 2
    sandbox = WooCommerceSandbox(catalog=catalog, webhook_url=args.webhook_url)
    try:
        sandbox.serve_forever(args.host, args.port)
    except KeyboardInterrupt:
        return 0
    finally:
        sandbox.outbox.close()
    return 0
