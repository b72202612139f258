"""Pre-order deposits through the Shopify connector (issue #16), against the sandbox over loopback
HTTP and the real 2026-07 schema: the campaign's selling plan group made once and kept in line
with its spec, the balance charged on the vaulted card once per key (or the payment link emailed
when the card is declined or there is none), the unpaid order cancelled, refunds made once and
spread over the order's payments."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import graphql
import pytest
import requests

from connectors import shopify_deposits as deposits
from connectors.base import (
    ChannelError,
    PaymentRequest,
    RefundRequest,
    TakesPayments,
    TakesRefunds,
    is_auth_error,
)
from connectors.sandbox.shopify import ShopifySandbox
from connectors.sandbox.shopify_schema import (
    SCHEMA_VERSIONS,
    SINGLE_QUERY_MAX_COST,
    load_schema,
    requested_cost,
)
from connectors.sandbox.shopify_scopes import DEFAULT_SCOPES, DEPOSIT_SCOPES
from connectors.shopify import DEPOSIT_SCOPE_NEEDS, ShopifyChannel
from connectors.shopify_deposits import PlanSpec
from tests.shopify_support import (
    DEPOSIT_APP_SCOPES,
    Clock,
    grant_scopes,
    graphql_data,
    make_channel,
    sandbox_fixture,
)

START = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
BALANCE_BY = datetime(2026, 9, 1, tzinfo=UTC)
SPEC = PlanSpec(
    code="stocksync-spring-drop",
    name="Spring drop pre-order",
    description="20% now, the rest on 1 September",
    deposit_percent=Decimal(20),
    deposit_per_unit=None,
    balance_by=BALANCE_BY,
    skus=("DEMO-1",),
)
ORDER = """
query($id: ID!) {
  order(id: $id) {
    id displayFinancialStatus cancelledAt cancelReason
    totalOutstandingSet { shopMoney { amount } }
    transactions(first: 20) {
      id kind status amountSet { shopMoney { amount } } parentTransaction { id }
    }
    refunds(first: 20) { id note transactions(first: 5) { nodes { parentTransaction { id } } } }
  }
}"""
# what the connector made, read back from the shop (the plans' billing policy selected as the
# connector selects it)
GROUP = f"""
query($id: ID!) {{
  sellingPlanGroup(id: $id) {{
    name merchantCode description options
    productVariants(first: 10) {{ nodes {{ sku }} }}
    sellingPlans(first: 5) {{
      nodes {{
        id name description options category
        {deposits.BILLING_POLICY}
        deliveryPolicy {{ ... on SellingPlanFixedDeliveryPolicy {{ fulfillmentTrigger }} }}
        inventoryPolicy {{ reserve }}
      }}
    }}
  }}
}}"""


@pytest.fixture
def sandbox() -> Iterator[ShopifySandbox]:
    for sb in sandbox_fixture(Clock(START)):
        # a fresh app is not granted the deposit scopes: the merchant grants them
        grant_scopes(sb, DEPOSIT_APP_SCOPES)
        yield sb


@pytest.fixture
def channel(sandbox: ShopifySandbox) -> Iterator[ShopifyChannel]:
    made = make_channel(sandbox, payments=True)
    yield made
    made.close()


@pytest.fixture
def calls(channel: ShopifyChannel, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The operations the channel sends, in order."""
    sent: list[str] = []
    execute = channel.transport.execute

    def recording(operation: str, query: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        sent.append(operation)
        return execute(operation, query, *args, **kwargs)

    monkeypatch.setattr(channel.transport, "execute", recording)
    return sent


def mutations(sent: list[str]) -> list[str]:
    reads = {
        "locations", "variants_by_sku", "selling_plan_groups", "selling_plan_group",
        "selling_plan_variants", "order_balance", "payment_status", "order_payments",
    }  # fmt: skip
    return [name for name in sent if name not in reads]


def data(sandbox: ShopifySandbox, query: str, **variables: Any) -> dict[str, Any]:
    return graphql_data(sandbox, query, variables)


def group_of(sandbox: ShopifySandbox, group_id: str) -> dict[str, Any]:
    found: dict[str, Any] = data(sandbox, GROUP, id=group_id)["sellingPlanGroup"]
    return found


def order_of(sandbox: ShopifySandbox, order_id: str) -> dict[str, Any]:
    found: dict[str, Any] = data(sandbox, ORDER, id=order_id)["order"]
    return found


def sign_up(sandbox: ShopifySandbox, plan_id: str, quantity: int = 2) -> dict[str, Any]:
    """A storefront checkout through the plan: DEMO-1 at $10 a unit, 20% paid now."""
    body = {"sku": "DEMO-1", "quantity": quantity, "email": "ann@example.com",
            "selling_plan": plan_id}  # fmt: skip
    placed = requests.post(f"{sandbox.url}/_sandbox/checkout", json=body, timeout=5)
    assert placed.status_code == 201, placed.text
    order: dict[str, Any] = placed.json()
    return order


def balance_request(
    order: dict[str, Any], key: str = "spring-7", amount: Decimal | None = Decimal("16.00"),
    deposit_order: str | None = None,
) -> PaymentRequest:  # fmt: skip
    """The balance of `order` (a checkout's body: its numeric id, unless told otherwise)."""
    deadline = datetime(2026, 9, 8, tzinfo=UTC)
    return PaymentRequest(
        key=key, email="ann@example.com", sku="DEMO-1", quantity=2, pay_by=deadline,
        reserve_until=deadline, attributes={},
        message="Your pre-order is in: pay the balance by 8 September.",
        amount=amount, currency="USD", deposit_order=deposit_order or str(order["id"]),
    )  # fmt: skip


def decline_next(sandbox: ShopifySandbox, count: int = 1) -> None:
    requests.put(
        f"{sandbox.url}/_sandbox/payments", json={"decline_next": count}, timeout=5
    ).raise_for_status()


def transactions(sandbox: ShopifySandbox, order_id: str) -> list[tuple[str, str, str]]:
    return [
        (t["kind"], t["status"], t["amountSet"]["shopMoney"]["amount"])
        for t in order_of(sandbox, order_id)["transactions"]
    ]


def refund_request(order: dict[str, Any], amount: str, key: str = "r-1") -> RefundRequest:
    return RefundRequest(order_ref=str(order["admin_graphql_api_id"]), amount=Decimal(amount),
                         currency="USD", key=key, reason="Campaign cancelled")  # fmt: skip


# -- the documents ------------------------------------------------------------------------------
@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
@pytest.mark.parametrize("name", sorted(deposits.ALL_DOCUMENTS))
def test_document_validates_and_fits_the_cost_limit(version: str, name: str) -> None:
    schema = load_schema(version)
    document = graphql.parse(deposits.ALL_DOCUMENTS[name])
    assert graphql.validate(schema, document) == []
    cost = requested_cost(schema, document, None, deposits.DOCUMENT_VARIABLES.get(name))
    assert 0 < cost <= SINGLE_QUERY_MAX_COST


def test_the_channel_takes_payments_and_refunds(channel: ShopifyChannel) -> None:
    assert isinstance(channel, TakesPayments) and isinstance(channel, TakesRefunds)
    assert set(DEPOSIT_SCOPE_NEEDS) == set(DEPOSIT_SCOPES)


# -- the selling plan ---------------------------------------------------------------------------
def test_the_plan_is_made_once(
    sandbox: ShopifySandbox, channel: ShopifyChannel, calls: list[str]
) -> None:
    made = channel.ensure_selling_plan(SPEC)
    assert mutations(calls) == ["selling_plan_group_create"]
    group = group_of(sandbox, made.group_id)
    assert (group["merchantCode"], group["name"], group["options"]) == (
        "stocksync-spring-drop", "Spring drop pre-order", ["Pre-order"],
    )  # fmt: skip
    assert [v["sku"] for v in group["productVariants"]["nodes"]] == ["DEMO-1"]
    [plan] = group["sellingPlans"]["nodes"]
    assert plan["id"] == made.plan_id and plan["category"] == "PRE_ORDER"
    assert plan["options"] == ["20% deposit"]
    assert plan["billingPolicy"] == {
        "checkoutCharge": {"type": "PERCENTAGE", "value": {"percentage": 20.0}},
        "remainingBalanceChargeTrigger": "EXACT_TIME",
        "remainingBalanceChargeExactTime": "2026-09-01T00:00:00Z",
    }
    assert plan["deliveryPolicy"] == {"fulfillmentTrigger": "UNKNOWN"}
    assert plan["inventoryPolicy"] == {"reserve": "ON_FULFILLMENT"}
    assert made.variant_ids == (sandbox.state_snapshot()["inventory"]["DEMO-1"]["variant_id"],)

    calls.clear()
    assert channel.ensure_selling_plan(SPEC) == made  # found by its code: nothing changes
    assert mutations(calls) == []
    assert len(sandbox.state_snapshot()["selling_plan_groups"]) == 1


def test_the_plan_follows_its_spec(
    sandbox: ShopifySandbox, channel: ShopifyChannel, calls: list[str]
) -> None:
    made = channel.ensure_selling_plan(SPEC)
    calls.clear()
    changed = replace(SPEC, description="30% now", deposit_percent=Decimal(30))
    again = channel.ensure_selling_plan(changed)
    assert mutations(calls) == ["selling_plan_group_update"]
    assert (again.group_id, again.plan_id) == (made.group_id, made.plan_id)
    [plan] = group_of(sandbox, made.group_id)["sellingPlans"]["nodes"]
    assert plan["description"] == "30% now" and plan["options"] == ["30% deposit"]
    assert plan["billingPolicy"]["checkoutCharge"]["value"] == {"percentage": 30.0}

    calls.clear()
    moved = channel.ensure_selling_plan(replace(changed, skus=("DEMO-2", "DEMO-3")))
    assert mutations(calls) == ["selling_plan_add_variants", "selling_plan_remove_variants"]
    skus = [v["sku"] for v in group_of(sandbox, made.group_id)["productVariants"]["nodes"]]
    assert sorted(skus) == ["DEMO-2", "DEMO-3"] and len(moved.variant_ids) == 2

    calls.clear()
    per_unit = replace(changed, deposit_percent=None, deposit_per_unit=Decimal("2.50"))
    channel.ensure_selling_plan(replace(per_unit, skus=("DEMO-2", "DEMO-3")))
    assert mutations(calls) == ["selling_plan_group_update"]
    [plan] = group_of(sandbox, made.group_id)["sellingPlans"]["nodes"]
    assert plan["billingPolicy"]["checkoutCharge"] == {"type": "PRICE", "value": {"amount": "2.5"}}
    calls.clear()
    channel.ensure_selling_plan(replace(per_unit, skus=("DEMO-2", "DEMO-3")))
    assert mutations(calls) == []


def test_paid_in_full_and_specs_shopify_would_refuse(
    sandbox: ShopifySandbox, channel: ShopifyChannel
) -> None:
    full = replace(SPEC, deposit_percent=Decimal(100), balance_by=None)
    made = channel.ensure_selling_plan(full)
    [plan] = group_of(sandbox, made.group_id)["sellingPlans"]["nodes"]
    assert plan["billingPolicy"]["remainingBalanceChargeTrigger"] == "NO_REMAINING_BALANCE"
    assert plan["options"] == ["Pay in full"]
    for wrong in (
        {"deposit_percent": Decimal(50), "balance_by": None},
        {"deposit_percent": Decimal(100)},
        {"deposit_percent": None},
        {"deposit_per_unit": Decimal(1)},
        {"balance_by": datetime(2026, 9, 1)},  # noqa: DTZ001 a naive time is what is refused
    ):
        with pytest.raises(ValueError):
            replace(SPEC, **wrong)


def test_a_second_group_with_our_code_is_deleted(
    sandbox: ShopifySandbox, channel: ShopifyChannel
) -> None:
    made = channel.ensure_selling_plan(SPEC)
    twin = data(
        sandbox,
        """mutation($input: SellingPlanGroupInput!) {
          sellingPlanGroupCreate(input: $input) { sellingPlanGroup { id } userErrors { message } }
        }""",
        input={"name": "x", "merchantCode": SPEC.code, "options": ["Pre-order"],
               "sellingPlansToCreate": [deposits.plan_input(SPEC)]},
    )["sellingPlanGroupCreate"]["sellingPlanGroup"]  # fmt: skip
    assert channel.ensure_selling_plan(SPEC) == made  # a create retried after a lost answer
    assert [g["id"] for g in sandbox.state_snapshot()["selling_plan_groups"]] == [made.group_id]
    assert twin["id"] != made.group_id


def test_an_unknown_sku_makes_nothing(sandbox: ShopifySandbox, channel: ShopifyChannel) -> None:
    with pytest.raises(ChannelError) as caught:
        channel.ensure_selling_plan(replace(SPEC, skus=("DEMO-1", "NOPE")))
    assert caught.value.code == "UNKNOWN_SKU" and "NOPE" in caught.value.message
    assert sandbox.state_snapshot()["selling_plan_groups"] == []


def test_removing_the_plan(sandbox: ShopifySandbox, channel: ShopifyChannel) -> None:
    channel.ensure_selling_plan(SPEC)
    assert channel.remove_selling_plan(SPEC.code) is True
    assert sandbox.state_snapshot()["selling_plan_groups"] == []
    assert channel.remove_selling_plan(SPEC.code) is False


def test_without_the_deposit_scopes_the_shop_refuses(
    sandbox: ShopifySandbox, channel: ShopifyChannel
) -> None:
    grant_scopes(sandbox, DEFAULT_SCOPES)
    with pytest.raises(ChannelError) as caught:
        channel.ensure_selling_plan(SPEC)
    assert is_auth_error(caught.value)


# -- the balance --------------------------------------------------------------------------------
@pytest.fixture
def signed_up(sandbox: ShopifySandbox, channel: ShopifyChannel) -> dict[str, Any]:
    """A deposit order: 2 x DEMO-1, $4 paid at checkout, $16 left on the vaulted card."""
    plan = channel.ensure_selling_plan(SPEC)
    return sign_up(sandbox, plan.plan_id)


def test_the_balance_is_charged_on_the_vaulted_card(
    sandbox: ShopifySandbox, channel: ShopifyChannel, signed_up: dict[str, Any], calls: list[str]
) -> None:
    gid = signed_up["admin_graphql_api_id"]
    link = channel.request_payment(balance_request(signed_up))
    assert link.ref == gid and link.paid is True and link.url == ""
    assert mutations(calls) == ["charge_balance"]
    assert order_of(sandbox, gid)["displayFinancialStatus"] == "PAID"
    assert transactions(sandbox, gid) == [("SALE", "SUCCESS", "4.0"), ("SALE", "SUCCESS", "16.0")]

    calls.clear()
    again = channel.request_payment(balance_request(signed_up, deposit_order=gid))
    assert again == link and mutations(calls) == []  # nothing is owed: no second charge
    assert len(transactions(sandbox, gid)) == 2 and sandbox.sent_mail() == []
    assert channel.withdraw_payment(gid) is False  # paid: not cancelled


def test_a_charge_whose_answer_was_lost_is_not_made_twice(
    sandbox: ShopifySandbox, channel: ShopifyChannel, signed_up: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    gid = signed_up["admin_graphql_api_id"]
    decline_next(sandbox)
    execute = channel.transport.execute

    def crash_after_charging(operation: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        answer = execute(operation, *args, **kwargs)
        if operation == "charge_balance":
            raise ChannelError("shop", operation, "worker killed")
        return answer

    monkeypatch.setattr(channel.transport, "execute", crash_after_charging)
    with pytest.raises(ChannelError):
        channel.request_payment(balance_request(signed_up))
    monkeypatch.setattr(channel.transport, "execute", execute)
    # the retry sends the same key: Shopify answers with the first (declined) payment
    link = channel.request_payment(balance_request(signed_up))
    assert link.paid is False and link.url.endswith(f"/orders/{signed_up['id']}/pay_balance")
    assert transactions(sandbox, gid) == [("SALE", "SUCCESS", "4.0"), ("SALE", "FAILURE", "16.0")]


def test_a_declined_card_gets_the_payment_link(
    sandbox: ShopifySandbox, channel: ShopifyChannel, signed_up: dict[str, Any]
) -> None:
    gid = signed_up["admin_graphql_api_id"]
    decline_next(sandbox)
    wanted = balance_request(signed_up)
    link = channel.request_payment(wanted)
    assert link.ref == gid and link.paid is False
    assert link.url == f"{sandbox.url}/_sandbox/orders/{signed_up['id']}/pay_balance"
    [mail] = sandbox.sent_mail()
    assert (mail["to"], mail["customMessage"], mail["invoiceUrl"], mail["orderId"]) == (
        "ann@example.com", wanted.message, link.url, gid,
    )  # fmt: skip
    assert order_of(sandbox, gid)["displayFinancialStatus"] == "PARTIALLY_PAID"

    channel.remind_payment(gid, replace(wanted, message="Two days left."))
    assert [m["customMessage"] for m in sandbox.sent_mail()] == [wanted.message, "Two days left."]
    assert requests.post(link.url, timeout=5).status_code == 200  # the customer pays the link
    channel.remind_payment(gid, wanted)  # paid meanwhile: no email
    assert len(sandbox.sent_mail()) == 2
    assert channel.withdraw_payment(gid) is False
    assert order_of(sandbox, gid)["cancelledAt"] is None


def test_an_unpaid_order_is_cancelled_at_the_deadline(
    sandbox: ShopifySandbox, channel: ShopifyChannel, signed_up: dict[str, Any]
) -> None:
    gid = signed_up["admin_graphql_api_id"]
    decline_next(sandbox)
    link = channel.request_payment(balance_request(signed_up))
    assert channel.withdraw_payment(link.ref) is True
    order = order_of(sandbox, gid)
    assert order["cancelledAt"] is not None and order["cancelReason"] == "DECLINED"
    assert transactions(sandbox, gid)[0] == ("SALE", "SUCCESS", "4.0")  # deposit kept
    assert deposits.cancel_unpaid(channel, str(signed_up["id"])) is True  # cancelled already
    with pytest.raises(ChannelError) as caught:
        channel.request_payment(balance_request(signed_up))
    assert caught.value.code == "ORDER_CANCELLED"


def test_an_order_without_a_vaulted_card_gets_the_link(
    sandbox: ShopifySandbox, channel: ShopifyChannel, calls: list[str]
) -> None:
    made = data(
        sandbox,
        """mutation($input: DraftOrderInput!) {
          draftOrderCreate(input: $input) { draftOrder { id } userErrors { message } }
        }""",
        input={"email": "bo@example.com", "lineItems": [{"title": "Balance", "quantity": 1,
                                                         "originalUnitPrice": "16.00"}]},
    )["draftOrderCreate"]["draftOrder"]  # fmt: skip
    completed = data(
        sandbox,
        """mutation($id: ID!) {
          draftOrderComplete(id: $id, paymentPending: true) {
            draftOrder { order { id } } userErrors { message }
          }
        }""",
        id=made["id"],
    )["draftOrderComplete"]["draftOrder"]["order"]
    order = {"id": completed["id"].rsplit("/", 1)[-1]}
    link = channel.request_payment(balance_request(order, key="bo-1", amount=None))
    assert link.paid is False and link.url.endswith(f"/orders/{order['id']}/pay_balance")
    assert "charge_balance" not in calls
    assert [m["to"] for m in sandbox.sent_mail()] == ["ann@example.com"]


# -- refunds ------------------------------------------------------------------------------------
def test_a_refund_is_made_once(
    sandbox: ShopifySandbox, channel: ShopifyChannel, signed_up: dict[str, Any], calls: list[str]
) -> None:
    gid = signed_up["admin_graphql_api_id"]
    made = channel.refund(refund_request(signed_up, "4.00"))
    assert made.startswith("gid://shopify/Refund/")
    calls.clear()
    assert channel.refund(refund_request(signed_up, "4.00")) == made  # found by its key
    assert mutations(calls) == []
    [refund] = order_of(sandbox, gid)["refunds"]
    assert refund["id"] == made and refund["note"] == "Campaign cancelled [r-1]"
    assert order_of(sandbox, gid)["displayFinancialStatus"] == "REFUNDED"


def test_a_refund_is_spread_over_deposit_and_balance(
    sandbox: ShopifySandbox, channel: ShopifyChannel, signed_up: dict[str, Any]
) -> None:
    gid = signed_up["admin_graphql_api_id"]
    assert channel.request_payment(balance_request(signed_up)).paid
    deposit, balance = (t["id"] for t in order_of(sandbox, gid)["transactions"])
    channel.refund(refund_request(signed_up, "15.00", key="r-1"))
    channel.refund(refund_request(signed_up, "3.00", key="r-2"))  # 1 left on the balance
    first, second = order_of(sandbox, gid)["refunds"]
    parents: Callable[[dict[str, Any]], list[str]] = lambda r: [  # noqa: E731
        n["parentTransaction"]["id"] for n in r["transactions"]["nodes"]
    ]
    assert parents(first) == [balance] and parents(second) == [balance, deposit]
    refunds = [t for t in transactions(sandbox, gid) if t[0] == "REFUND"]
    assert refunds == [("REFUND", "SUCCESS", "15.0"), ("REFUND", "SUCCESS", "1.0"),
                       ("REFUND", "SUCCESS", "2.0")]  # fmt: skip


def test_refunds_beyond_what_was_paid_are_refused(
    sandbox: ShopifySandbox, channel: ShopifyChannel, signed_up: dict[str, Any]
) -> None:
    gid = signed_up["admin_graphql_api_id"]
    with pytest.raises(ChannelError) as caught:
        channel.refund(refund_request(signed_up, "4.01"))
    assert caught.value.code == "REFUND_EXCEEDS"
    with pytest.raises(ChannelError) as caught:
        channel.refund(replace(refund_request(signed_up, "1.00"), currency="EUR"))
    assert caught.value.code == "CURRENCY_MISMATCH"
    assert order_of(sandbox, gid)["refunds"] == []
