"""A loopback WooCommerce (REST wc/v3) for tests, the demo and `stocksync sandbox woocommerce`.

Serves /wp-json/wc/v3/ orders, order notes, products, variations, their batch endpoints and
webhooks, authenticated as WooCommerce does (OAuth 1.0a over http, Basic over https), with the
stock rules in woocommerce_store. Sandbox extras: POST /_sandbox/checkout (a storefront
purchase), GET /_sandbox/state, and the shared /_sandbox/faults and /_sandbox/webhooks/flush.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
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
    Order,
    Product,
    error_json,
    gmt_text,
    local_text,
    note_json,
    order_json,
    product_json,
    variation_json,
)
from connectors.sandbox.woocommerce_store import (
    OutOfStock,
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
            ("GET", re.compile(r"products"), self._list_products),
            ("POST", re.compile(r"products/batch"), self._batch_products),
            ("GET", re.compile(r"products/(\d+)"), self._get_product),
            ("PUT", re.compile(r"products/(\d+)"), self._update_product),
            ("GET", re.compile(r"products/(\d+)/variations"), self._list_variations),
            ("POST", re.compile(r"products/(\d+)/variations/batch"), self._batch_variations),
            ("GET", re.compile(r"products/(\d+)/variations/(\d+)"), self._get_variation),
            ("PUT", re.compile(r"products/(\d+)/variations/(\d+)"), self._update_variation),
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
        statuses = text_list(query, "status")
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
        customer = bool(body.get("customer_note", False))
        note = self.store.add_note(order, text, customer, _now())
        return Response(201, note_json(note, self._base()))

    def _get_note(self, request: Request, match: re.Match[str]) -> Response:
        order = self.store.order(int(match[1]))
        for note in self.store.notes[order.id]:
            if note.id == int(match[2]):
                return Response(200, note_json(note, self._base()))
        raise StoreError("woocommerce_rest_invalid_id", "Invalid resource ID.", 404)

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
        return None

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
        with self.lock:
            try:
                order = self.store.checkout(lines, email, _now())
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
                        {"id": li.id, "sku": li.sku, "quantity": li.quantity, "reduced": li.reduced}
                        for li in o.line_items
                    ],
                    "meta": {m.key: m.value for m in o.meta},
                    "notes": [
                        {"note": n.note, "customer_note": n.customer_note}
                        for n in store.notes[o.id]
                    ],
                }
                for o in sorted(store.orders.values(), key=lambda o: o.id)
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


_NO_ROUTE = "No route was found matching the URL and request method"
_EDITABLE = re.compile(r"(orders|products|webhooks)/\d+(/variations/\d+)?")


def _customer_id(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        if value in (None, ""):
            return 0
        raise StoreError("rest_invalid_param", "Invalid parameter(s): customer_id", 400)
    return value


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
