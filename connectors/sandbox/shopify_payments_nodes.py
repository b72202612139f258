"""GraphQL resolvers for selling plans (pre-orders) and deferred payments: SellingPlanGroup and
SellingPlan nodes, and the root queries `sellingPlanGroup`, `sellingPlanGroups`,
`orderPaymentStatus` and `job`.

Union-typed values (billing, delivery and pricing policies, checkout charge values) are dicts
carrying `__typename`, which graphql-core's default type resolver reads.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from graphql import GraphQLResolveInfo

from connectors.sandbox.shopify_nodes import (
    TransactionNode,
    VariantNode,
    ctx,
    iso,
    money,
    page_args,
)
from connectors.sandbox.shopify_paging import Term, compare, connection, parse_search
from connectors.sandbox.shopify_payments_state import (
    DECLINE_MESSAGES,
    SellingPlan,
    SellingPlanGroup,
    groups_of_variant,
)
from connectors.sandbox.shopify_state import ShopState, Variant, gid, parse_gid


def _charge_value(plan: SellingPlan) -> dict[str, Any]:
    billing = plan.billing
    if billing.charge_type == "PERCENTAGE":
        return {
            "__typename": "SellingPlanCheckoutChargePercentageValue",
            "percentage": float(billing.charge_value),
        }
    return {"__typename": "MoneyV2", **money(billing.charge_value)}


def _pricing_policy(plan: SellingPlan, kind: str, value: Decimal) -> dict[str, Any]:
    adjustment: dict[str, Any]
    if kind == "PERCENTAGE":
        adjustment = {
            "__typename": "SellingPlanPricingPolicyPercentageValue",
            "percentage": float(value),
        }
    else:
        adjustment = {"__typename": "MoneyV2", **money(value)}
    return {
        "__typename": "SellingPlanFixedPricingPolicy",
        "adjustmentType": kind,
        "adjustmentValue": adjustment,
        "createdAt": iso(plan.created_at),
    }


class SellingPlanNode:
    def __init__(self, plan: SellingPlan) -> None:
        self._plan = plan
        self.id = gid("SellingPlan", plan.id)
        self.name = plan.name
        self.category = plan.category
        self.description = plan.description
        self.options = list(plan.options)
        self.position = plan.position
        self.createdAt = iso(plan.created_at)
        billing = plan.billing
        self.billingPolicy = {
            "__typename": "SellingPlanFixedBillingPolicy",
            "checkoutCharge": {"type": billing.charge_type, "value": _charge_value(plan)},
            "remainingBalanceChargeTrigger": billing.trigger,
            "remainingBalanceChargeExactTime": iso(billing.exact_time),
            "remainingBalanceChargeTimeAfterCheckout": billing.time_after_checkout,
        }
        delivery = plan.delivery
        self.deliveryPolicy = {
            "__typename": "SellingPlanFixedDeliveryPolicy",
            "fulfillmentTrigger": delivery.trigger,
            "fulfillmentExactTime": iso(delivery.exact_time),
            "cutoff": delivery.cutoff,
            "intent": delivery.intent,
            "preAnchorBehavior": delivery.pre_anchor_behavior,
            "anchors": [dict(anchor) for anchor in delivery.anchors],
        }
        self.inventoryPolicy = {"reserve": plan.reserve}
        self.pricingPolicies = [_pricing_policy(plan, k, v) for k, v in plan.pricing]


class SellingPlanGroupNode:
    def __init__(self, state: ShopState, group: SellingPlanGroup) -> None:
        self._state = state
        self._group = group
        self.id = gid("SellingPlanGroup", group.id)
        self.name = group.name
        self.merchantCode = group.merchant_code
        self.appId = group.app_id
        self.description = group.description
        self.options = list(group.options)
        self.position = group.position
        self.createdAt = iso(group.created_at)
        self.summary = _summary(group)

    def sellingPlans(self, info: GraphQLResolveInfo, **args: Any) -> dict[str, Any]:
        plans = self._group.plans
        nodes = [SellingPlanNode(plan) for plan in plans]
        order = {plan.id: index for index, plan in enumerate(plans)}
        return connection(nodes, key=lambda n: (order[n._plan.id], n._plan.id), **page_args(args))

    def _variants(self, product_id: str | None) -> list[Variant]:
        variants = [self._state.variants[v] for v in self._group.variant_ids]
        if product_id is not None:
            wanted = parse_gid(product_id, "Product")
            variants = [v for v in variants if v.product_id == wanted]
        return variants

    def productVariants(
        self, info: GraphQLResolveInfo, productId: str | None = None, **args: Any
    ) -> dict[str, Any]:
        variants = self._variants(productId)
        order = {v.id: index for index, v in enumerate(variants)}
        nodes = [VariantNode(self._state, v) for v in variants]
        return connection(
            nodes, key=lambda n: (order[n._variant.id], n._variant.id), **page_args(args)
        )

    def productVariantsCount(
        self, info: GraphQLResolveInfo, productId: str | None = None
    ) -> dict[str, Any]:
        return {"count": len(self._variants(productId)), "precision": "EXACT"}

    def productsCount(self, info: GraphQLResolveInfo) -> dict[str, Any]:
        return {"count": len(self._group.product_ids), "precision": "EXACT"}

    def appliesToProductVariant(self, info: GraphQLResolveInfo, productVariantId: str) -> bool:
        return parse_gid(productVariantId, "ProductVariant") in self._group.variant_ids

    def appliesToProductVariants(self, info: GraphQLResolveInfo, productId: str) -> bool:
        return bool(self._variants(productId))

    def appliesToProduct(self, info: GraphQLResolveInfo, productId: str) -> bool:
        return parse_gid(productId, "Product") in self._group.product_ids


def _summary(group: SellingPlanGroup) -> str:
    count = len(group.plans)
    return f"{count} selling plan{'s' if count != 1 else ''}, {group.name}"


def variant_selling_plan_groups(
    state: ShopState, variant: Variant, paging: dict[str, Any]
) -> dict[str, Any]:
    """ProductVariant.sellingPlanGroups."""
    nodes = [SellingPlanGroupNode(state, g) for g in groups_of_variant(state, variant)]
    return connection(nodes, key=lambda n: (n._group.id, n._group.id), **paging)


# sellingPlanGroups(query:) filters the sandbox evaluates; others match everything, as Shopify
# ignores unknown ones. app_id is CURRENT by default and every group here is this app's.
_GROUP_SEARCH = {"id", "name", "category", "created_at", "app_id"}


def _group_matches(group: SellingPlanGroup, groups: list[list[Term]]) -> bool:
    def term_holds(term: Term) -> bool:
        if term.field not in _GROUP_SEARCH or term.field == "app_id":
            return True
        if term.field == "category":  # a comma-separated list of categories
            wanted = {c.strip().upper() for c in term.value.split(",")}
            return any((p.category or "") in wanted for p in group.plans)
        value = {"id": group.id, "name": group.name, "created_at": group.created_at}
        return compare(value[term.field], term)

    return any(all(term_holds(t) for t in terms) for terms in groups)


_GROUP_SORT: dict[str, Callable[[SellingPlanGroup], Any]] = {
    "ID": lambda g: g.id,
    "NAME": lambda g: g.name.casefold(),
    "CREATED_AT": lambda g: g.created_at,
    "UPDATED_AT": lambda g: g.updated_at,
}


class PaymentQueries:
    """Root query fields for selling plans and deferred payments (mixed into the query root)."""

    def sellingPlanGroup(self, info: GraphQLResolveInfo, id: str) -> SellingPlanGroupNode | None:  # noqa: A002 GraphQL argument name
        state = ctx(info).state
        group = state.selling_plan_groups.get(parse_gid(id, "SellingPlanGroup") or -1)
        return SellingPlanGroupNode(state, group) if group else None

    def sellingPlanGroups(
        self, info: GraphQLResolveInfo, sortKey: str = "ID", **args: Any
    ) -> dict[str, Any]:
        state = ctx(info).state
        terms = parse_search(args.get("query"))
        chosen = [g for g in state.selling_plan_groups.values() if _group_matches(g, terms)]
        sort = _GROUP_SORT.get(sortKey, _GROUP_SORT["ID"])
        nodes = [SellingPlanGroupNode(state, g) for g in chosen]
        return connection(nodes, key=lambda n: (sort(n._group), n._group.id), **page_args(args))

    def orderPaymentStatus(
        self, info: GraphQLResolveInfo, orderId: str, paymentReferenceId: str
    ) -> dict[str, Any] | None:
        state = ctx(info).state
        order = state.orders.get(parse_gid(orderId, "Order") or -1)
        if order is None:
            return None
        found = [t for t in order.transactions if t.payment_reference == paymentReferenceId]
        if not found:
            return None
        [transaction] = found
        message = None
        if transaction.succeeded:
            status = "PURCHASED" if transaction.kind == "SALE" else "AUTHORIZED"
        else:
            status = "ERROR"
            code = transaction.error_code or "GENERIC_ERROR"
            message = DECLINE_MESSAGES.get(code, "The payment could not be processed.")
        return {
            "paymentReferenceId": paymentReferenceId,
            "status": status,
            "errorMessage": message,
            "translatedErrorMessage": message,
            "transactions": [TransactionNode(state, order, transaction)],
        }

    def job(self, info: GraphQLResolveInfo, id: str) -> dict[str, Any] | None:  # noqa: A002 GraphQL argument name
        # the sandbox finishes every job before answering the mutation that started it
        return {"id": id, "done": True, "query": None} if id in ctx(info).state.jobs else None
