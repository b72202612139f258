"""Selling plan input as Shopify checks it: SellingPlanGroupInput and SellingPlanInput turned
into the sandbox's fixed (deferred) plans, with SellingPlanGroupUserError codes and field paths
for everything refused. Nothing here changes the shop; the mutations save what passes."""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from graphql import GraphQLError

from connectors.sandbox.shopify_mutations import _date_time, user_error
from connectors.sandbox.shopify_payments_state import (
    FixedBilling,
    FixedDelivery,
    SellingPlan,
    SellingPlanGroup,
)
from connectors.sandbox.shopify_state import ShopState, parse_gid

MAX_SELLING_PLANS = 31  # per group
MAX_OPTIONS = 3  # option labels of a group, option values of a plan
_DURATION = re.compile(
    r"^P(?:(?P<y>\d+)Y)?(?:(?P<mo>\d+)M)?(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?"
    r"(?:T(?:(?P<h>\d+)H)?(?:(?P<mi>\d+)M)?(?:(?P<s>\d+)S)?)?$"
)

Errors = list[dict[str, Any]]


def decimal_input(value: Any, where: str) -> Decimal:
    """A Decimal or Money input (a string or number on the wire)."""
    try:
        return Decimal(str(value))
    except InvalidOperation as exc:
        raise GraphQLError(
            f"Variable {where} has an invalid value: {value!r} is not a decimal amount.",
            extensions={"code": "INVALID_VARIABLE"},
        ) from exc


# -- selling plan input ------------------------------------------------------------------------
def _blank(label: str, path: list[str]) -> dict[str, Any]:
    return user_error("BLANK", f"{label} can't be blank", path)


def _range(
    value: Decimal, low: Decimal | None, high: Decimal | None, label: str, path: list[str]
) -> dict[str, Any] | None:
    if low is not None and value < low:
        return user_error(
            "GREATER_THAN_OR_EQUAL_TO", f"{label} must be greater than or equal to {low}", path
        )
    if high is not None and value > high:
        return user_error(
            "LESS_THAN_OR_EQUAL_TO", f"{label} must be less than or equal to {high}", path
        )
    return None


def _duration_seconds(text: str) -> int | None:
    found = _DURATION.match(text)
    if found is None or text in ("P", "PT") or text.endswith("T"):
        return None
    parts = {k: int(v) for k, v in found.groupdict().items() if v}
    days = parts.get("y", 0) * 365 + parts.get("mo", 0) * 30 + parts.get("w", 0) * 7
    days += parts.get("d", 0)
    return ((days * 24 + parts.get("h", 0)) * 60 + parts.get("mi", 0)) * 60 + parts.get("s", 0)


def _billing(raw: dict[str, Any], path: list[str], errors: Errors) -> FixedBilling | None:
    fixed, recurring = raw.get("fixed"), raw.get("recurring")
    if fixed is not None and recurring is not None:
        errors.append(
            user_error(
                "ONLY_NEED_ONE_BILLING_POLICY_TYPE",
                "Only one billing policy type can be defined",
                path,
            )
        )
        return None
    if recurring is not None:
        errors.append(
            user_error(
                "INVALID",
                "Recurring (subscription) billing is not modelled by the sandbox: it sells "
                "fixed, deferred plans (pre-order, try before you buy) only",
                [*path, "recurring"],
            )
        )
        return None
    if fixed is None:
        errors.append(
            user_error(
                "SELLING_PLAN_BILLING_POLICY_MISSING",
                "Selling plan billing policy must be present",
                path,
            )
        )
        return None
    path = [*path, "fixed"]
    before = len(errors)
    charge = fixed.get("checkoutCharge")
    charge_type, amount = None, Decimal(0)
    if not charge:
        errors.append(_blank("Checkout charge", [*path, "checkoutCharge"]))
    else:
        charge_type = charge.get("type")
        value = charge.get("value") or {}
        percentage, fixed_value = value.get("percentage"), value.get("fixedValue")
        at = [*path, "checkoutCharge", "value"]
        if charge_type is None:
            errors.append(_blank("Type", [*path, "checkoutCharge", "type"]))
        elif percentage is not None and fixed_value is not None:
            errors.append(
                user_error(
                    "ONLY_NEED_ONE_CHECKOUT_CHARGE_VALUE",
                    "Only one checkout charge value can be defined",
                    at,
                )
            )
        elif percentage is None and fixed_value is None:
            errors.append(_blank("Value", at))
        elif (charge_type == "PERCENTAGE") != (percentage is not None):
            errors.append(
                user_error(
                    "CHECKOUT_CHARGE_VALUE_AND_TYPE_MUST_MATCH",
                    "Checkout charge value must match the checkout charge type",
                    at,
                )
            )
        elif percentage is not None:
            amount = decimal_input(percentage, "checkoutCharge.value.percentage")
            problem = _range(amount, Decimal(0), Decimal(100), "Percentage", [*at, "percentage"])
            if problem:
                errors.append(problem)
        else:
            amount = decimal_input(fixed_value, "checkoutCharge.value.fixedValue")
            problem = _range(amount, Decimal(0), None, "Fixed value", [*at, "fixedValue"])
            if problem:
                errors.append(problem)
    trigger = fixed.get("remainingBalanceChargeTrigger")
    exact = fixed.get("remainingBalanceChargeExactTime")
    after = fixed.get("remainingBalanceChargeTimeAfterCheckout")
    at = [*path, "remainingBalanceChargeTrigger"]
    if trigger is None:
        errors.append(_blank("Remaining balance charge trigger", at))
    elif trigger == "NO_REMAINING_BALANCE" and charge_type == "PRICE":
        errors.append(
            user_error(
                "REMAINING_BALANCE_CHARGE_TRIGGER_NO_REMAINING_BALANCE_ON_PRICE_CHECKOUT_CHARGE",
                "Remaining balance charge trigger can't be NO_REMAINING_BALANCE with a PRICE "
                "checkout charge",
                at,
            )
        )
    elif trigger == "NO_REMAINING_BALANCE" and charge_type == "PERCENTAGE" and amount < 100:
        errors.append(
            user_error(
                "REMAINING_BALANCE_CHARGE_TRIGGER_NO_REMAINING_BALANCE_ON_PARTIAL_PERCENTAGE_CHECKOUT_CHARGE",
                "Remaining balance charge trigger can't be NO_REMAINING_BALANCE when the "
                "checkout charge is less than 100%",
                at,
            )
        )
    elif trigger != "NO_REMAINING_BALANCE" and charge_type == "PERCENTAGE" and amount == 100:
        errors.append(
            user_error(
                "REMAINING_BALANCE_CHARGE_TRIGGER_ON_FULL_CHECKOUT",
                "Remaining balance charge trigger must be NO_REMAINING_BALANCE when the whole "
                "price is charged at checkout",
                at,
            )
        )
    if trigger == "EXACT_TIME" and exact is None:
        errors.append(
            user_error(
                "REMAINING_BALANCE_CHARGE_EXACT_TIME_REQUIRED",
                "Remaining balance charge exact time is required with EXACT_TIME",
                [*path, "remainingBalanceChargeExactTime"],
            )
        )
    elif trigger != "EXACT_TIME" and exact is not None:
        errors.append(
            user_error(
                "REMAINING_BALANCE_CHARGE_EXACT_TIME_NOT_ALLOWED",
                "Remaining balance charge exact time is only allowed with EXACT_TIME",
                [*path, "remainingBalanceChargeExactTime"],
            )
        )
    if trigger == "TIME_AFTER_CHECKOUT" or after is not None:
        seconds = _duration_seconds(str(after)) if after is not None else None
        if trigger != "TIME_AFTER_CHECKOUT":
            errors.append(
                user_error(
                    "INVALID",
                    "Remaining balance charge time after checkout is only allowed with "
                    "TIME_AFTER_CHECKOUT",
                    [*path, "remainingBalanceChargeTimeAfterCheckout"],
                )
            )
        elif not seconds:
            errors.append(
                user_error(
                    "REMAINING_BALANCE_CHARGE_TIME_AFTER_CHECKOUT_MUST_BE_GREATER_THAN_ZERO",
                    "Remaining balance charge time after checkout must be an ISO 8601 duration "
                    "greater than zero",
                    [*path, "remainingBalanceChargeTimeAfterCheckout"],
                )
            )
    if len(errors) > before or charge_type is None or trigger is None:
        return None
    return FixedBilling(
        charge_type=charge_type,
        charge_value=amount,
        trigger=trigger,
        exact_time=_date_time(exact, "remainingBalanceChargeExactTime") if exact else None,
        time_after_checkout=after,
    )


def _delivery(raw: dict[str, Any], path: list[str], errors: Errors) -> FixedDelivery | None:
    fixed, recurring = raw.get("fixed"), raw.get("recurring")
    if fixed is not None and recurring is not None:
        errors.append(
            user_error(
                "ONLY_NEED_ONE_DELIVERY_POLICY_TYPE",
                "Only one delivery policy type can be defined",
                path,
            )
        )
        return None
    if recurring is not None:
        errors.append(
            user_error(
                "BILLING_AND_DELIVERY_POLICY_TYPES_MUST_BE_THE_SAME",
                "Billing and delivery policy types must be the same",
                [*path, "recurring"],
            )
        )
        return None
    if fixed is None:
        errors.append(
            user_error(
                "SELLING_PLAN_DELIVERY_POLICY_MISSING",
                "Selling plan delivery policy must be present",
                path,
            )
        )
        return None
    path = [*path, "fixed"]
    before = len(errors)
    trigger = fixed.get("fulfillmentTrigger")
    exact = fixed.get("fulfillmentExactTime")
    anchors = list(fixed.get("anchors") or [])
    if trigger is None:
        errors.append(_blank("Fulfillment trigger", [*path, "fulfillmentTrigger"]))
    if trigger == "EXACT_TIME" and exact is None:
        errors.append(
            user_error(
                "FULFILLMENT_EXACT_TIME_REQUIRED",
                "Fulfillment exact time is required with EXACT_TIME",
                [*path, "fulfillmentExactTime"],
            )
        )
    elif trigger != "EXACT_TIME" and exact is not None:
        errors.append(
            user_error(
                "FULFILLMENT_EXACT_TIME_NOT_ALLOWED",
                "Fulfillment exact time is only allowed with EXACT_TIME",
                [*path, "fulfillmentExactTime"],
            )
        )
    if trigger == "ANCHOR" and not anchors:
        errors.append(
            user_error(
                "SELLING_PLAN_ANCHORS_REQUIRED",
                "Anchors are required with ANCHOR",
                [*path, "anchors"],
            )
        )
    elif trigger != "ANCHOR" and anchors:
        errors.append(
            user_error(
                "SELLING_PLAN_ANCHORS_NOT_ALLOWED",
                "Anchors are only allowed with ANCHOR",
                [*path, "anchors"],
            )
        )
    if len(errors) > before or trigger is None:
        return None
    return FixedDelivery(
        trigger=trigger,
        exact_time=_date_time(exact, "fulfillmentExactTime") if exact else None,
        cutoff=fixed.get("cutoff"),
        intent=fixed.get("intent") or "FULFILLMENT_BEGIN",
        pre_anchor_behavior=fixed.get("preAnchorBehavior") or "ASAP",
        anchors=[
            {
                "type": a.get("type"),
                "day": a.get("day"),
                "month": a.get("month"),
                "cutoffDay": a.get("cutoffDay"),
            }
            for a in anchors
        ],
    )


def _pricing(
    policies: Sequence[dict[str, Any]], path: list[str], errors: Errors
) -> list[tuple[str, Decimal]]:
    kept: list[tuple[str, Decimal]] = []
    if len(policies) > 2:
        errors.append(
            user_error(
                "SELLING_PLAN_PRICING_POLICIES_LIMIT",
                "A selling plan can have at most 2 pricing policies",
                path,
            )
        )
        return kept
    for index, policy in enumerate(policies):
        at = [*path, str(index)]
        fixed, recurring = policy.get("fixed"), policy.get("recurring")
        if (fixed is None) == (recurring is None):
            errors.append(
                user_error(
                    "ONLY_NEED_ONE_PRICING_POLICY_TYPE",
                    "Only one pricing policy type can be defined",
                    at,
                )
            )
            continue
        if recurring is not None:
            # documented: pre-order and TBYB options take one fixed pricing policy only
            errors.append(
                user_error(
                    "SELLING_PLAN_PRICING_POLICIES_MUST_CONTAIN_A_FIXED_PRICING_POLICY",
                    "Recurring pricing policies aren't available for pre-order and TBYB options",
                    [*at, "recurring"],
                )
            )
            continue
        assert fixed is not None  # exactly one of the two, checked above
        kind = fixed.get("adjustmentType")
        value = fixed.get("adjustmentValue") or {}
        percentage, fixed_value = value.get("percentage"), value.get("fixedValue")
        vat = [*at, "fixed", "adjustmentValue"]
        if kind is None:
            errors.append(_blank("Adjustment type", [*at, "fixed", "adjustmentType"]))
        elif percentage is not None and fixed_value is not None:
            errors.append(
                user_error(
                    "ONLY_NEED_ONE_PRICING_POLICY_VALUE",
                    "Only one pricing policy adjustment value can be defined",
                    vat,
                )
            )
        elif percentage is None and fixed_value is None:
            errors.append(_blank("Adjustment value", vat))
        elif (kind == "PERCENTAGE") != (percentage is not None):
            errors.append(
                user_error(
                    "PRICING_POLICY_ADJUSTMENT_VALUE_AND_TYPE_MUST_MATCH",
                    "Pricing policy adjustment value must match the adjustment type",
                    vat,
                )
            )
        else:
            amount = decimal_input(percentage if percentage is not None else fixed_value, "pricing")
            high = Decimal(100) if kind == "PERCENTAGE" else None
            problem = _range(amount, Decimal(0), high, "Adjustment value", vat)
            if problem:
                errors.append(problem)
            else:
                kept.append((kind, amount))
    if len(kept) > 1:
        errors.append(
            user_error(
                "SELLING_PLAN_FIXED_PRICING_POLICIES_LIMIT",
                "Pre-order and TBYB options can have only one fixed pricing policy",
                path,
            )
        )
    return kept


def parse_plan(
    state: ShopState,
    data: dict[str, Any],
    path: list[str],
    errors: Errors,
    base: SellingPlan | None = None,
) -> SellingPlan | None:
    """A plan from SellingPlanInput (`base`: the plan being updated; absent inputs keep it)."""
    before = len(errors)
    name = data["name"] if data.get("name") is not None else (base.name if base else "")
    if not name.strip():
        errors.append(_blank("Name", [*path, "name"]))
    if data.get("options") is not None:
        options = list(data["options"])
    else:
        options = list(base.options) if base else []
    billing = base.billing if base else None
    if data.get("billingPolicy") is not None:
        billing = _billing(data["billingPolicy"], [*path, "billingPolicy"], errors)
    elif base is None:
        errors.append(
            user_error(
                "SELLING_PLAN_BILLING_POLICY_MISSING",
                "Selling plan billing policy must be present",
                [*path, "billingPolicy"],
            )
        )
    delivery = base.delivery if base else None
    if data.get("deliveryPolicy") is not None:
        delivery = _delivery(data["deliveryPolicy"], [*path, "deliveryPolicy"], errors)
    elif base is None:
        errors.append(
            user_error(
                "SELLING_PLAN_DELIVERY_POLICY_MISSING",
                "Selling plan delivery policy must be present",
                [*path, "deliveryPolicy"],
            )
        )
    pricing = list(base.pricing) if base else []
    if data.get("pricingPolicies") is not None:
        pricing = _pricing(data["pricingPolicies"], [*path, "pricingPolicies"], errors)
    reserve = base.reserve if base else "ON_SALE"
    if (data.get("inventoryPolicy") or {}).get("reserve"):
        reserve = data["inventoryPolicy"]["reserve"]
    if len(errors) > before or billing is None or delivery is None:
        return None
    return SellingPlan(
        id=base.id if base else 0,  # a new plan gets its id once the whole input is accepted
        name=name,
        options=options,
        billing=billing,
        delivery=delivery,
        created_at=base.created_at if base else state.now(),
        category=data.get("category", base.category if base else None),
        description=data.get("description", base.description if base else None),
        position=data.get("position", base.position if base else None),
        reserve=reserve,
        pricing=pricing,
    )


def check_group(group: SellingPlanGroup, paths: dict[int, list[str]], errors: Errors) -> None:
    """Rules over the whole group as it would be saved: names, options, plan count."""
    if not group.name.strip():
        errors.append(_blank("Name", ["input", "name"]))
    if not group.merchant_code.strip():
        errors.append(_blank("Merchant code", ["input", "merchantCode"]))
    labels = len(group.options)
    if labels == 0:
        errors.append(_blank("Options", ["input", "options"]))
    elif labels > MAX_OPTIONS:
        errors.append(
            user_error(
                "TOO_LONG", f"Options is too long (maximum is {MAX_OPTIONS})", ["input", "options"]
            )
        )
    if not group.plans:
        errors.append(
            user_error(
                "SELLING_PLAN_COUNT_LOWER_BOUND",
                "A selling plan group must have at least 1 selling plan",
                ["input"],
            )
        )
    elif len(group.plans) > MAX_SELLING_PLANS:
        errors.append(
            user_error(
                "SELLING_PLAN_COUNT_UPPER_BOUND",
                f"A selling plan group can have at most {MAX_SELLING_PLANS} selling plans",
                ["input"],
            )
        )
    names: set[str] = set()
    option_sets: set[tuple[str, ...]] = set()
    for index, plan in enumerate(group.plans):
        path = paths.get(index, ["input"])
        given = len(plan.options)
        if given == 0:
            errors.append(_blank("Options", [*path, "options"]))
        elif labels and given > labels:
            ordinal = min(labels + 1, MAX_OPTIONS)
            errors.append(
                user_error(
                    f"SELLING_PLAN_MISSING_OPTION{ordinal}_LABEL_ON_PARENT_GROUP",
                    f"Selling plan option {ordinal} has no label on the selling plan group",
                    [*path, "options"],
                )
            )
        elif given < labels:
            ordinal = given + 1
            errors.append(
                user_error(
                    f"SELLING_PLAN_OPTION{ordinal}_REQUIRED_AS_DEFINED_ON_PARENT_GROUP",
                    f"Selling plan option {ordinal} is required, as the selling plan group "
                    "defines it",
                    [*path, "options"],
                )
            )
        if plan.name.casefold() in names:
            errors.append(
                user_error(
                    "SELLING_PLAN_DUPLICATE_NAME",
                    "Selling plans in a group must have unique names",
                    [*path, "name"],
                )
            )
        names.add(plan.name.casefold())
        key = tuple(o.casefold() for o in plan.options)
        if key and key in option_sets:
            errors.append(
                user_error(
                    "SELLING_PLAN_DUPLICATE_OPTIONS",
                    "Selling plans in a group must have unique options",
                    [*path, "options"],
                )
            )
        option_sets.add(key)


def known_variants(
    state: ShopState, ids: Sequence[str], path: list[str], errors: Errors
) -> list[int]:
    found: list[int] = []
    for raw in ids:
        number = parse_gid(raw, "ProductVariant")
        if number is None or number not in state.variants:
            errors.append(
                user_error("PRODUCT_VARIANT_DOES_NOT_EXIST", "Product variant does not exist", path)
            )
        elif number not in found:
            found.append(number)
    return found


def known_products(
    state: ShopState, ids: Sequence[str], path: list[str], errors: Errors
) -> list[int]:
    known = {v.product_id for v in state.variants.values()}
    found: list[int] = []
    for raw in ids:
        number = parse_gid(raw, "Product")
        if number is None or number not in known:
            errors.append(user_error("PRODUCT_DOES_NOT_EXIST", "Product does not exist", path))
        elif number not in found:
            found.append(number)
    return found


def apply_group_fields(group: SellingPlanGroup, data: dict[str, Any]) -> None:
    if data.get("name") is not None:
        group.name = data["name"]
    if data.get("merchantCode") is not None:
        group.merchant_code = data["merchantCode"]
    if data.get("options") is not None:
        group.options = list(data["options"])
    for name, attr in (
        ("appId", "app_id"),
        ("description", "description"),
        ("position", "position"),
    ):
        if name in data:
            setattr(group, attr, data[name])


def assign_ids(state: ShopState, group: SellingPlanGroup) -> None:
    for plan in group.plans:
        if plan.id == 0:
            plan.id = state.next_id()
