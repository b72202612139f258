"""A loopback Shopify: the Admin GraphQL API executed against Shopify's real schema, a storefront
checkout, merchant actions, and signed order webhooks.

API: `POST /admin/api/<version>/graphql.json` with `X-Shopify-Access-Token`.
Test routes (never faulted): `POST /_sandbox/checkout`, `POST /_sandbox/orders/<id>/cancel`,
`POST /_sandbox/orders/<id>/fulfill`, `POST /_sandbox/orders/<id>/refund`,
`PUT /_sandbox/inventory`, `GET|PUT /_sandbox/bucket`, `GET|PUT /_sandbox/app` (the app's token
and access scopes), plus the shared faults/state/flush routes.

Draft orders (made with `draftOrderCreate`): `POST /_sandbox/draft_orders/<numeric id>/pay` is
the customer paying the invoice: the draft completes into an order (source_name
`shopify_draft_order`, the draft's attributes as `note_attributes`) and `orders/create` is sent as
for a checkout. It answers 200 `{"order_id", "order_gid", "name"}`, 404 for an unknown draft, 409
`{"error": ...}` when the draft was completed already or its reservation lapsed and a DENY
variant is short of stock. `GET /_sandbox/mail` lists the invoice emails the shop sent
(`{to, subject, customMessage, invoiceUrl, draftOrderId, sentAt}`; an order's, from
`orderInvoiceSend`, has `orderId` in place of `draftOrderId`), oldest first.
A draft's `reserveInventoryUntil` is honoured by the shop's clock (`clock=` to replace it): the
reserved units go back to available when it passes, checked before every request.

Metafields (`metafieldsSet`, `metafieldsDelete`, a variant's `metafield` and `metafields`:
shopify_metafields.py) and `orderUpdate` (an order's note, email, tags and custom attributes:
shopify_order_update.py) follow Shopify's rules and scopes; `/_sandbox/state` lists
`metafields`.

Pre-orders: a checkout line may name a selling plan (`"selling_plan": "<SellingPlan gid>"`, in
`lines` or the single-sku form); the variant must be sold with it (else 409 `{"error", "sku",
"selling_plan"}`, 404 for an unknown plan). The order charges each plan line's checkout charge
(plain lines in full) as one SALE, vaults the card as a payment mandate for the balance and is
PARTIALLY_PAID (PENDING when nothing was charged). `GET|PUT /_sandbox/payments` are the card
gateway's test switches: `{"decline_next": N}` declines the next N mandate charges,
`{"decline_orders": [numeric order ids]}` every charge on those orders (until replaced), and
`{"error_code": "INSUFFICIENT_FUNDS"}` picks the decline's error code (CARD_DECLINED by default).

An open order with a balance left (after its authorizations) has a payment link,
`paymentCollectionDetails.additionalPaymentCollectionUrl` =
`<sandbox URL>/_sandbox/orders/<numeric id>/pay_balance` (null when cancelled or settled), which
`orderInvoiceSend` emails. `POST /_sandbox/orders/<numeric id>/pay_balance` is the customer paying
it: one successful SALE of the whole balance by card (not the mandate: the decline switches do
not apply), then `orders/paid` (when the order became paid) and `orders/updated`. It answers 200
`{"order_id", "amount"}`, 404 for an unknown order, 409 `{"error"}` when the order is cancelled
or owes nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import graphql

from connectors.sandbox.common import (
    DEFAULT_CATALOG,
    WEBHOOK_SECRET,
    Request,
    Response,
    SandboxServer,
    load_seed,
)
from connectors.sandbox.shopify_bucket import CostBucket, actual_cost
from connectors.sandbox.shopify_metafields import MetafieldMutations, metafields_json
from connectors.sandbox.shopify_mutations import MutationRoot
from connectors.sandbox.shopify_nodes import Context, Idempotent, QueryRoot, iso
from connectors.sandbox.shopify_order_update import OrderUpdateMutation
from connectors.sandbox.shopify_payments_mutations import PaymentMutations, announce_payment
from connectors.sandbox.shopify_payments_nodes import PaymentQueries, SellingPlanNode
from connectors.sandbox.shopify_payments_state import (
    NothingToPay,
    PlanRefused,
    SellingPlan,
    SellingPlanGroup,
    declines_json,
    find_plan,
    pay_balance,
    set_declines,
)
from connectors.sandbox.shopify_payments_state import checkout as plan_checkout
from connectors.sandbox.shopify_schema import (
    DEFAULT_VERSION,
    SCHEMA_VERSIONS,
    SINGLE_QUERY_MAX_COST,
    CostError,
    graphql_error_json,
    load_schema,
    requested_cost,
    shopify_error,
    validation_code,
)
from connectors.sandbox.shopify_scopes import DEFAULT_SCOPES, access_denied
from connectors.sandbox.shopify_state import (
    DraftError,
    DraftOrder,
    Order,
    ShopState,
    StockRefused,
    Variant,
    gid,
    now_utc,
    parse_gid,
)
from connectors.sandbox.shopify_webhooks import order_rest_json, webhook_delivery

_GRAPHQL_PATH = re.compile(r"^/admin/api/(?P<version>[0-9]{4}-[0-9]{2}|unstable)/graphql\.json$")
_ORDER_ACTION = re.compile(r"^/_sandbox/orders/(?P<id>[0-9]+)/(?P<action>cancel|fulfill|refund)$")
_DRAFT_PAY = re.compile(r"^/_sandbox/draft_orders/(?P<id>[0-9]+)/pay$")
_BALANCE_PAY = re.compile(r"^/_sandbox/orders/(?P<id>[0-9]+)/pay_balance$")  # BALANCE_PATH
# Shopify's 401 body, word for word; a message, not a credential
INVALID_TOKEN = "[API] Invalid API key or access token (unrecognized login or wrong password)"  # noqa: S105


class _QueryRoot(QueryRoot, PaymentQueries):
    """Every root query field the sandbox serves."""


class _MutationRoot(MutationRoot, PaymentMutations, MetafieldMutations, OrderUpdateMutation):
    """Every root mutation field the sandbox serves."""


class ShopifySandbox(SandboxServer):
    name = "shopify"

    def __init__(
        self,
        *,
        catalog: Mapping[str, int] | None = None,
        webhook_url: str | None = None,
        webhook_secret: str = WEBHOOK_SECRET,
        token: str = "shpat_sandbox",  # noqa: S107 documented sandbox default
        shop: str = "sandbox.myshopify.com",
        restore_rate: float = 100.0,
        seed: int | None = None,
        api_version: str = DEFAULT_VERSION,
        access_scopes: Sequence[str] = DEFAULT_SCOPES,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__(webhook_url=webhook_url, seed=seed)
        self.webhook_secret = webhook_secret
        self.token = token
        # what the app was granted; a root field beyond them is refused with ACCESS_DENIED
        self.access_scopes = tuple(access_scopes)
        self.shop = shop
        self.api_version = api_version  # the version webhooks are sent with
        # `clock`: an aware datetime source, e.g. a test's movable clock
        self.state = ShopState(
            DEFAULT_CATALOG if catalog is None else catalog, clock=clock or now_utc
        )
        self.bucket = CostBucket(restore_rate)
        self.throttle_http_status = 200  # Shopify answers THROTTLED with 200 (sometimes 429)
        self.idempotency: dict[tuple[str, str], Idempotent] = {}
        self.webhook_log: list[dict[str, Any]] = []
        self._webhook_lock = threading.Lock()

    def __enter__(self) -> ShopifySandbox:
        self.start()
        return self

    @contextlib.contextmanager
    def _shop(self) -> Iterator[ShopState]:
        """The shop under the lock, brought up to date first: reservations whose
        reserveInventoryUntil passed since the last access give their units back now."""
        with self.lock:
            self.state.release_lapsed_reservations()
            yield self.state

    # -- GraphQL -----------------------------------------------------------------------------
    def route(self, request: Request) -> Response:
        found = _GRAPHQL_PATH.match(request.path)
        if found is None:
            return Response(404, {"errors": "Not Found"})
        version = found.group("version")
        if version not in SCHEMA_VERSIONS:
            return Response(404, {"errors": "Not Found"})
        if request.method != "POST":
            return Response(405, {"errors": "Method Not Allowed"})
        if request.headers.get("x-shopify-access-token") != self.token:
            return Response(401, {"errors": INVALID_TOKEN})
        try:
            payload = request.json()
        except (ValueError, UnicodeDecodeError):
            return Response(400, {"errors": {"query": "Required parameter missing or invalid"}})
        if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
            return Response(400, {"errors": {"query": "Required parameter missing or invalid"}})
        variables = payload.get("variables") or {}
        if not isinstance(variables, dict):
            return Response(400, {"errors": {"variables": "must be a JSON object"}})
        return self.execute(version, payload["query"], variables, payload.get("operationName"))

    def execute(
        self,
        version: str,
        query: str,
        variables: dict[str, Any],
        operation_name: str | None = None,
    ) -> Response:
        schema = load_schema(version)
        try:
            document = graphql.parse(query)
        except graphql.GraphQLError as exc:
            return Response(200, {"errors": [graphql_error_json(exc, "PARSE_ERROR")]})
        problems = graphql.validate(schema, document)
        if problems:
            errors = [graphql_error_json(e, validation_code(e.message)) for e in problems]
            return Response(200, {"errors": errors})
        denied = access_denied(document, operation_name, self.access_scopes)
        if denied:
            return Response(200, {"errors": denied})
        try:
            cost = requested_cost(schema, document, operation_name, variables)
        except CostError as exc:
            return Response(200, {"errors": [shopify_error(str(exc), "BAD_REQUEST")]})
        if cost > SINGLE_QUERY_MAX_COST:
            message = (
                f"Query cost is {cost}, which exceeds the single query max cost limit "
                f"({SINGLE_QUERY_MAX_COST})."
            )
            extra = {"cost": cost, "maxCost": SINGLE_QUERY_MAX_COST}
            return Response(200, {"errors": [shopify_error(message, "MAX_COST_EXCEEDED", **extra)]})
        ok, status = self.bucket.take(cost)
        if not ok:
            throttled = {
                "errors": [
                    shopify_error(
                        "Throttled",
                        "THROTTLED",
                        documentation="https://shopify.dev/api/usage/rate-limits",
                    )
                ],
                "extensions": {
                    "cost": {
                        "requestedQueryCost": cost,
                        "actualQueryCost": None,
                        "throttleStatus": status,
                    }
                },
            }
            return Response(self.throttle_http_status, throttled)
        emitted: list[tuple[str, Order, dict[str, Any] | None]] = []
        with self._shop():
            context = Context(
                self.state,
                lambda topic, order, body=None: emitted.append((topic, order, body)),
                self.idempotency,
                shop_domain=self.shop,
                scopes=self.access_scopes,
                base_url=self._base_url(),
            )
            result = graphql.execute_sync(
                schema,
                document,
                root_value=_MutationRoot()
                if _is_mutation(document, operation_name)
                else _QueryRoot(),
                context_value=context,
                variable_values=variables,
                operation_name=operation_name,
            )
            for topic, order, webhook_body in emitted:
                self.send_order_webhook(topic, order, webhook_body)
        body: dict[str, Any] = {}
        if result.errors:
            body["errors"] = [graphql_error_json(e, "INTERNAL_SERVER_ERROR") for e in result.errors]
        body["data"] = result.data
        if _is_mutation(document, operation_name):
            actual = cost
        else:
            # the data root is not an object Shopify bills for
            actual = min(cost, max(actual_cost(result.data) - 1, 1))
        self.bucket.refund(cost - actual)
        body["extensions"] = {
            "cost": {
                "requestedQueryCost": cost,
                "actualQueryCost": actual,
                "throttleStatus": self.bucket.status(),
            }
        }
        return Response(200, body)

    def _base_url(self) -> str:
        """Where links the shop hands out lead: this server while it serves (documents executed
        in-process without one get the shop's own domain)."""
        try:
            return self.url
        except RuntimeError:
            return f"https://{self.shop}"

    def fault_response(self, status: int) -> Response:
        if status == 429:
            return Response(429, {"errors": "Exceeded 2 calls per second for api client."})
        return Response(status, {"errors": "Internal Server Error" if status >= 500 else "Error"})

    # -- webhooks ----------------------------------------------------------------------------
    def send_order_webhook(
        self, topic: str, order: Order, body: dict[str, Any] | None = None
    ) -> None:
        """Queue one signed delivery; call with the lock held so the body is consistent.
        `body` replaces the order's REST shape (a refund for refunds/create)."""
        if body is None:
            body = order_rest_json(self.state, order)
        headers, raw = webhook_delivery(
            topic=topic,
            body=body,
            secret=self.webhook_secret,
            shop=self.shop,
            api_version=self.api_version,
        )
        with self._webhook_lock:
            self.webhook_log.append({"topic": topic, "order_id": order.id, "headers": headers})
        if self.webhook_url:
            self.outbox.send(self.webhook_url, headers, raw)

    # -- merchant and customer actions (also used in-process by tests) ------------------------
    def checkout(
        self,
        lines: Sequence[tuple[str, int]],
        email: str | None = None,
        tags: Sequence[str] | None = None,
        selling_plans: Sequence[str | None] | None = None,
    ) -> dict[str, Any]:
        """A storefront sale: obeys each variant's policy, raises StockRefused when it refuses.

        `tags` (a sandbox shortcut for a merchant tagging the customer in the admin) replace the
        customer's tags before the order is placed; the order's payloads carry them as a real
        shop's do (`customer.tags` in webhooks, `customer { tags }` in GraphQL). Tags belong to
        a customer, so they need an `email`.

        `selling_plans` (a SellingPlan gid or None per line) buys lines through a plan: the
        customer pays its checkout charge now and the rest is left outstanding against a
        vaulted card. Raises PlanRefused when a variant is not sold with its plan, LookupError
        for an unknown plan.
        """
        if tags is not None and not email:
            raise ValueError("'tags' belong to a customer: give an 'email' too")
        plans = list(selling_plans or [None] * len(lines))
        if len(plans) != len(lines):
            raise ValueError("give one selling plan (or None) per line")
        with self._shop():
            wanted: list[tuple[Variant, int, SellingPlan | None]] = []
            for (sku, qty), plan_gid in zip(lines, plans, strict=True):
                variant = self.state.variant_by_sku(sku)
                if variant is None:
                    raise KeyError(sku)
                if qty <= 0:
                    raise ValueError(f"{sku}: quantity must be positive, got {qty}")
                wanted.append((variant, qty, self._plan(plan_gid) if plan_gid else None))
            customer = self.state.customer_for(email)
            if tags is not None and customer is not None:
                self.state.tag_customer(customer, tags)
            order = plan_checkout(self.state, wanted, email)
            self.send_order_webhook("orders/create", order)
            return order_rest_json(self.state, order)

    def _plan(self, plan_gid: str) -> SellingPlan:
        found = find_plan(self.state, parse_gid(plan_gid, "SellingPlan") or -1)
        if found is None:
            raise LookupError(f"unknown selling plan {plan_gid!r}")
        return found[1]

    def set_payments(self, settings: Mapping[str, Any]) -> dict[str, Any]:
        """The card gateway's test switches (see the module docstring)."""
        unknown = set(settings) - {"decline_next", "decline_orders", "error_code"}
        if unknown:
            raise ValueError(f"unknown payment setting(s) {sorted(unknown)}")
        decline_next = settings.get("decline_next")
        if decline_next is not None and not _is_int(decline_next):
            raise ValueError("'decline_next' must be a whole number")
        orders = settings.get("decline_orders")
        if orders is not None and (
            not isinstance(orders, list) or not all(_is_int(o) for o in orders)
        ):
            raise ValueError("'decline_orders' must be a list of numeric order ids")
        code = settings.get("error_code")
        if code is not None and not isinstance(code, str):
            raise ValueError("'error_code' must be a string")
        with self._shop() as state:
            return set_declines(
                state, decline_next=decline_next, decline_orders=orders, error_code=code
            )

    def cancel_order(
        self, order_id: int, *, restock: bool = True, reason: str = "CUSTOMER"
    ) -> dict[str, Any]:
        with self._shop():
            order = self._order(order_id)
            self.state.cancel_order(order, reason=reason.upper(), restock=restock)
            self.send_order_webhook("orders/cancelled", order)
            self.send_order_webhook("orders/updated", order)
            return order_rest_json(self.state, order)

    def fulfill_order(self, order_id: int) -> dict[str, Any]:
        with self._shop():
            order = self._order(order_id)
            self.state.fulfill_order(order)
            self.send_order_webhook("orders/updated", order)
            if order.fulfillment_status() == "FULFILLED":
                self.send_order_webhook("orders/fulfilled", order)
            return order_rest_json(self.state, order)

    def refund(
        self, order_id: int, quantities: Mapping[int, int], *, restock: bool = True
    ) -> dict[str, Any]:
        with self._shop():
            order = self._order(order_id)
            self.state.refund_lines(order, quantities, restock=restock)
            self.send_order_webhook("orders/updated", order)
            return order_rest_json(self.state, order)

    def set_inventory(self, sku: str, available: int, *, policy: str | None = None) -> int:
        """Set `available` as a merchant would in the admin; adds the SKU if it is new."""
        if policy is not None and policy not in ("DENY", "CONTINUE"):
            raise ValueError(f"policy must be DENY or CONTINUE, got {policy!r}")
        with self._shop():
            return self.state.set_available(sku, available, policy).available

    def available(self, sku: str) -> int:
        with self._shop():
            variant = self.state.variant_by_sku(sku)
            if variant is None:
                raise KeyError(sku)
            return self.state.primary_level(variant).available

    def pay_draft(self, draft_id: int | str) -> dict[str, Any]:
        """The customer pays a draft's invoice (a numeric id or a DraftOrder gid): the draft
        completes into a paid order and orders/create goes out as for a checkout.

        Raises KeyError for an unknown draft, DraftError when it was completed already and
        StockRefused when its reservation lapsed and a DENY variant is short of stock."""
        with self._shop() as state:
            draft = self._draft(draft_id)
            order = state.complete_draft(draft)
            self.send_order_webhook("orders/create", order)
            return {"order_id": order.id, "order_gid": gid("Order", order.id), "name": order.name}

    def pay_balance(self, order_id: int) -> dict[str, Any]:
        """The customer pays an order's balance through its payment link: one SALE, announced
        as a mandate charge is. Raises KeyError for an unknown order, NothingToPay when it is
        cancelled or owes nothing."""
        with self._shop() as state:
            order = self._order(order_id)
            was = order.display_financial_status()
            paid = pay_balance(state, order)
            announce_payment(self.send_order_webhook, order, was)
            return {"order_id": order.id, "amount": str(paid.amount)}

    def sent_mail(self) -> list[dict[str, Any]]:
        """The emails the shop sent (draft order and order invoices), oldest first."""
        with self._shop() as state:
            return [dict(mail) for mail in state.mail]

    def _draft(self, draft_id: int | str) -> DraftOrder:
        if isinstance(draft_id, str) and not draft_id.isdigit():
            number = parse_gid(draft_id, "DraftOrder")
        else:
            number = int(draft_id)
        draft = self.state.draft_orders.get(number if number is not None else -1)
        if draft is None:
            raise KeyError(f"no draft order {draft_id}")
        return draft

    def _order(self, order_id: int) -> Order:
        order = self.state.orders.get(order_id)
        if order is None:
            raise KeyError(f"no order {order_id}")
        return order

    # -- /_sandbox routes ---------------------------------------------------------------------
    def sandbox_route(self, request: Request) -> Response | None:
        if request.path == "/_sandbox/checkout" and request.method == "POST":
            return self._checkout_route(request.json())
        if request.path == "/_sandbox/inventory" and request.method in ("PUT", "POST"):
            body = _object(request.json())
            sku, available = body.get("sku"), body.get("available", body.get("quantity"))
            if not isinstance(sku, str) or not isinstance(available, int):
                raise ValueError("body needs 'sku' and a whole-number 'available'")
            quantity = self.set_inventory(sku, available, policy=body.get("policy"))
            return Response(200, {"sku": sku, "available": quantity})
        if request.path == "/_sandbox/app":
            return self._app_route(request)
        if request.path == "/_sandbox/bucket":
            if request.method == "GET":
                return Response(200, self._bucket_json())
            body = _object(request.json())
            if "throttle_http_status" in body:
                if body["throttle_http_status"] not in (200, 429):
                    raise ValueError("throttle_http_status must be 200 or 429")
                self.throttle_http_status = int(body.pop("throttle_http_status"))
            self.bucket.configure(body)
            return Response(200, self._bucket_json())
        found = _ORDER_ACTION.match(request.path)
        if found is not None and request.method == "POST":
            return self._order_action(int(found.group("id")), found.group("action"), request)
        paying = _DRAFT_PAY.match(request.path)
        if paying is not None and request.method == "POST":
            return self._pay_route(int(paying.group("id")))
        balance = _BALANCE_PAY.match(request.path)
        if balance is not None and request.method == "POST":
            return self._pay_balance_route(int(balance.group("id")))
        if request.path == "/_sandbox/mail" and request.method == "GET":
            return Response(200, self.sent_mail())
        if request.path == "/_sandbox/payments":
            if request.method in ("PUT", "POST"):
                return Response(200, self.set_payments(_object(request.json())))
            with self._shop() as state:
                return Response(200, declines_json(state))
        return None

    def _pay_route(self, draft_id: int) -> Response:
        try:
            return Response(200, self.pay_draft(draft_id))
        except KeyError as exc:
            return Response(404, {"error": str(exc.args[0])})
        except DraftError as exc:
            return Response(409, {"error": str(exc), "draft_order_id": draft_id})
        except StockRefused as exc:
            return _stock_refused(exc)

    def _pay_balance_route(self, order_id: int) -> Response:
        try:
            return Response(200, self.pay_balance(order_id))
        except KeyError as exc:
            return Response(404, {"error": str(exc.args[0])})
        except NothingToPay as exc:
            return Response(409, {"error": str(exc)})

    def _app_route(self, request: Request) -> Response:
        """The installed app: PUT `{"token": T}` to revoke the token in use (a new one must be
        configured), `{"access_scopes": [...]}` to change what the app was granted."""
        if request.method in ("PUT", "POST"):
            body = _object(request.json())
            unknown = set(body) - {"token", "access_scopes"}
            if unknown:
                raise ValueError(f"unknown app setting(s) {sorted(unknown)}")
            if "token" in body:
                if not isinstance(body["token"], str) or not body["token"]:
                    raise ValueError("'token' must be a non-empty string")
                self.token = body["token"]
            if "access_scopes" in body:
                scopes = body["access_scopes"]
                if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
                    raise ValueError("'access_scopes' must be a list of scope handles")
                self.access_scopes = tuple(scopes)
        return Response(200, {"access_scopes": list(self.access_scopes)})

    def _bucket_json(self) -> dict[str, Any]:
        return {**self.bucket.status(), "throttle_http_status": self.throttle_http_status}

    def _checkout_route(self, body: Any) -> Response:
        body = _object(body)
        if "lines" in body:
            raw_lines = body["lines"]
            if not isinstance(raw_lines, list) or not raw_lines:
                raise ValueError("'lines' must be a non-empty list")
        else:
            raw_lines = [
                {
                    "sku": body.get("sku"),
                    "quantity": body.get("quantity", 1),
                    "selling_plan": body.get("selling_plan"),
                }
            ]
        lines = []
        plans: list[str | None] = []
        for line in raw_lines:
            if not isinstance(line, dict) or not isinstance(line.get("sku"), str):
                raise ValueError("each line needs a 'sku'")
            if not _is_int(line.get("quantity")) or line["quantity"] <= 0:
                raise ValueError(f"{line['sku']}: quantity must be a positive whole number")
            plan = line.get("selling_plan")
            if plan is not None and not isinstance(plan, str):
                raise ValueError(f"{line['sku']}: 'selling_plan' must be a SellingPlan gid")
            lines.append((line["sku"], int(line["quantity"])))
            plans.append(plan)
        email = body.get("email")
        tags = body.get("tags")
        if tags is not None and (
            not isinstance(tags, list) or not all(isinstance(t, str) for t in tags)
        ):
            raise ValueError("'tags' must be a list of strings, e.g. [\"vip\"]")
        try:
            order = self.checkout(lines, email if isinstance(email, str) else None, tags, plans)
        except StockRefused as exc:
            return _stock_refused(exc)
        except PlanRefused as exc:
            body = {"error": str(exc), "sku": exc.sku, "selling_plan": exc.plan_gid}
            return Response(409, body)
        except KeyError as exc:
            return Response(404, {"error": f"unknown sku {exc.args[0]!r}"})
        except LookupError as exc:
            return Response(404, {"error": str(exc)})
        return Response(201, order)

    def _order_action(self, order_id: int, action: str, request: Request) -> Response:
        body = _object(request.json() or {})
        try:
            if action == "cancel":
                order = self.cancel_order(
                    order_id,
                    restock=bool(body.get("restock", True)),
                    reason=str(body.get("reason", "CUSTOMER")),
                )
            elif action == "fulfill":
                order = self.fulfill_order(order_id)
            else:
                raw = body.get("line_items")
                if not isinstance(raw, list):
                    raise ValueError("'line_items' must be a list of {id, quantity}")
                quantities = {int(li["id"]): int(li["quantity"]) for li in raw}
                order = self.refund(order_id, quantities, restock=bool(body.get("restock", True)))
        except KeyError as exc:
            return Response(404, {"error": str(exc.args[0])})
        return Response(200, order)

    def state_snapshot(self) -> Any:
        state = self.state
        state.release_lapsed_reservations()  # the caller holds the lock
        return {
            "shop": self.shop,
            "location": {
                "id": gid("Location", state.primary_location.id),
                "name": state.primary_location.name,
            },
            "inventory": {
                v.sku: {
                    "variant_id": gid("ProductVariant", v.id),
                    "inventory_item_id": gid("InventoryItem", v.inventory_item_id),
                    "policy": v.policy,
                    "available": state.primary_level(v).available,
                    "committed": state.primary_level(v).committed,
                    "reserved": state.primary_level(v).reserved,
                    "on_hand": state.primary_level(v).on_hand,
                }
                for v in state.variants.values()
            },
            "orders": [order_rest_json(state, o) for o in state.orders.values()],
            "fulfillment_orders": [
                {
                    "id": gid("FulfillmentOrder", fo.id),
                    "order_id": fo.order_id,
                    "status": fo.status,
                    "holds": [
                        {"id": gid("FulfillmentHold", h.id), "handle": h.handle, "reason": h.reason}
                        for h in fo.holds
                    ],
                    "line_items": [
                        {
                            "id": gid("FulfillmentOrderLineItem", f.id),
                            "line_item_id": f.line_item_id,
                            "total": f.total,
                            "remaining": f.remaining,
                        }
                        for f in fo.lines
                    ],
                    "updated_at": iso(fo.updated_at),
                }
                for fo in state.fulfillment_orders.values()
            ],
            "draft_orders": [_draft_json(d) for d in state.draft_orders.values()],
            "selling_plan_groups": [_group_json(g) for g in state.selling_plan_groups.values()],
            "metafields": metafields_json(state),
            "payments": declines_json(state),
            "mail": [dict(mail) for mail in state.mail],
            "webhooks": {
                "sent": len(self.outbox.sent),
                "dropped": len(self.outbox.dropped),
                "log": list(self.webhook_log),
            },
            "bucket": self._bucket_json(),
            "requests": dict(self.request_count),
        }


def _draft_json(draft: DraftOrder) -> dict[str, Any]:
    return {
        "id": gid("DraftOrder", draft.id),
        "name": draft.name,
        "status": draft.status,
        "email": draft.email,
        "reserve_until": iso(draft.reserve_until),
        "holds_stock": draft.holds_stock,
        "invoice_url": draft.invoice_url,
        "invoice_sent_at": iso(draft.invoice_sent_at),
        "completed_at": iso(draft.completed_at),
        "order_id": draft.order_id,
        "tags": list(draft.tags),
        "custom_attributes": [{"key": k, "value": v} for k, v in draft.custom_attributes],
        "line_items": [
            {
                "id": gid("DraftOrderLineItem", li.id),
                "variant_id": gid("ProductVariant", li.variant_id) if li.variant_id else None,
                "sku": li.sku,
                "title": li.title,
                "quantity": li.quantity,
            }
            for li in draft.line_items
        ],
    }


def _group_json(group: SellingPlanGroup) -> dict[str, Any]:
    return {
        "id": gid("SellingPlanGroup", group.id),
        "name": group.name,
        "merchant_code": group.merchant_code,
        "variant_ids": [gid("ProductVariant", v) for v in group.variant_ids],
        "product_ids": [gid("Product", p) for p in group.product_ids],
        "selling_plans": [
            {
                "id": node.id,
                "name": node.name,
                "category": node.category,
                "billing_policy": node.billingPolicy,
                "inventory_policy": node.inventoryPolicy,
            }
            for node in (SellingPlanNode(plan) for plan in group.plans)
        ],
    }


def _is_mutation(document: graphql.DocumentNode, operation_name: str | None) -> bool:
    operation = graphql.get_operation_ast(document, operation_name)
    return operation is not None and operation.operation == graphql.OperationType.MUTATION


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError("body must be a JSON object")
    return value


def main(argv: list[str] | None = None) -> int:
    """`stocksync sandbox shopify`: print the bound URL on the first line, serve until ^C."""
    parser = argparse.ArgumentParser(prog="stocksync sandbox shopify")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--seed", default=None, help="YAML/JSON file of SKUs and quantities")
    parser.add_argument("--webhook-url", default=None)
    parser.add_argument("--restore-rate", type=float, default=100.0)
    args = parser.parse_args(argv)
    try:
        catalog = load_seed(args.seed)
        load_schema(DEFAULT_VERSION)  # fail now, not on the first request, if it is missing
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    sandbox = ShopifySandbox(
        catalog=catalog, webhook_url=args.webhook_url, restore_rate=args.restore_rate
    )
    try:
        sandbox.serve_forever(host=args.host, port=args.port)
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.outbox.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def _stock_refused(exc: StockRefused) -> Response:
    """409 for a purchase the shop's stock rule refuses (checkout, paying a draft)."""
    body = {"error": "not enough stock", "sku": exc.sku, "wanted": exc.wanted,
            "available": exc.available}  # fmt: skip
    return Response(409, body)
