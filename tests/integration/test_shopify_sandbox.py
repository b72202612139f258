"""The Shopify sandbox rejects what real Shopify rejects, and its storefront obeys stock rules."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from connectors.sandbox.shopify import ShopifySandbox
from tests.shopify_support import checkout, graphql

SET = """
mutation Set($input: InventorySetQuantitiesInput!, $key: String!) {
  inventorySetQuantities(input: $input) @idempotent(key: $key) {
    inventoryAdjustmentGroup { id }
    userErrors { code field message }
  }
}
"""
SET_WITHOUT_KEY = SET.replace(" @idempotent(key: $key)", "").replace(", $key: String!", "")


@pytest.fixture
def sandbox() -> Iterator[ShopifySandbox]:
    with ShopifySandbox(restore_rate=2000) as sb:
        yield sb


def rows(sandbox: ShopifySandbox, *specs: tuple[str, int, Any]) -> list[dict[str, Any]]:
    state = sandbox.state_snapshot()
    out = []
    for sku, quantity, change_from in specs:
        row = {
            "inventoryItemId": state["inventory"][sku]["inventory_item_id"],
            "locationId": state["location"]["id"],
            "quantity": quantity,
        }
        if change_from != "omit":
            row["changeFromQuantity"] = change_from
        out.append(row)
    return out


def set_input(quantities: list[dict[str, Any]]) -> dict[str, Any]:
    return {"name": "available", "reason": "correction", "quantities": quantities}


def test_token_is_required(sandbox: ShopifySandbox) -> None:
    for token in (None, "shpat_wrong"):
        response = graphql(sandbox, "{ shop { name } }", token=token)
        assert response.status_code == 401
        assert "Invalid API key or access token" in response.json()["errors"]


def test_unknown_version_is_not_found(sandbox: ShopifySandbox) -> None:
    assert graphql(sandbox, "{ shop { name } }", version="2019-04").status_code == 404


def test_invalid_documents_get_shopify_shaped_errors(sandbox: ShopifySandbox) -> None:
    body = graphql(sandbox, "{ productVariants(first: 1) { nodes { skuu } } }").json()
    [error] = body["errors"]
    assert error["extensions"]["code"] == "undefinedField"
    assert error["locations"] == [{"line": 1, "column": 39}]
    assert "data" not in body
    syntax = graphql(sandbox, "{ productVariants(first: 1) {").json()
    assert syntax["errors"][0]["message"].startswith("Syntax Error")


@pytest.mark.slow
def test_the_2026_10_schema_is_served_too(sandbox: ShopifySandbox) -> None:
    body = graphql(sandbox, "{ locations(first: 1) { nodes { name } } }", version="2026-10").json()
    assert body["data"]["locations"]["nodes"] == [{"name": "Main"}]


def test_idempotent_directive_is_required(sandbox: ShopifySandbox) -> None:
    body = graphql(
        sandbox, SET_WITHOUT_KEY, {"input": set_input(rows(sandbox, ("DEMO-1", 3, None)))}
    ).json()
    assert "@idempotent" in body["errors"][0]["message"]
    assert sandbox.available("DEMO-1") == 20


def test_change_from_quantity_must_be_present_on_every_row(sandbox: ShopifySandbox) -> None:
    quantities = rows(sandbox, ("DEMO-1", 3, None), ("DEMO-2", 3, "omit"))
    body = graphql(sandbox, SET, {"input": set_input(quantities), "key": "k"}).json()
    assert "changeFromQuantity" in body["errors"][0]["message"]
    assert sandbox.available("DEMO-1") == 20


def test_stale_change_from_quantity_fails_the_whole_call(sandbox: ShopifySandbox) -> None:
    quantities = rows(sandbox, ("DEMO-1", 3, 20), ("DEMO-2", 3, 19))
    body = graphql(sandbox, SET, {"input": set_input(quantities), "key": "k"}).json()
    payload = body["data"]["inventorySetQuantities"]
    assert payload["inventoryAdjustmentGroup"] is None
    assert payload["userErrors"] == [
        {
            "code": "CHANGE_FROM_QUANTITY_STALE",
            "field": ["input", "quantities", "1", "changeFromQuantity"],
            "message": "The changeFromQuantity value does not match persisted value.",
        }
    ]
    assert (sandbox.available("DEMO-1"), sandbox.available("DEMO-2")) == (20, 20)
    again = graphql(sandbox, SET, {"input": set_input(quantities), "key": "k"}).json()
    code = again["data"]["inventorySetQuantities"]["userErrors"][0]["code"]
    assert code == "IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED"


def test_a_repeated_key_replays_the_first_result(sandbox: ShopifySandbox) -> None:
    variables = {"input": set_input(rows(sandbox, ("DEMO-1", 3, 20))), "key": "once"}
    first = graphql(sandbox, SET, variables).json()["data"]
    sandbox.set_inventory("DEMO-1", 20)  # the merchant resets it; a replay must not re-apply
    assert graphql(sandbox, SET, variables).json()["data"] == first
    assert sandbox.available("DEMO-1") == 20
    other = {"input": set_input(rows(sandbox, ("DEMO-1", 4, 20))), "key": "once"}
    code = graphql(sandbox, SET, other).json()["data"]["inventorySetQuantities"]["userErrors"][0]
    assert code["code"] == "IDEMPOTENCY_KEY_PARAMETER_MISMATCH"


def test_at_most_250_rows(sandbox: ShopifySandbox) -> None:
    row = rows(sandbox, ("DEMO-1", 3, None))[0]
    body = graphql(sandbox, SET, {"input": set_input([row] * 251), "key": "big"}).json()
    assert body["errors"][0]["extensions"]["code"] == "MAX_INPUT_SIZE_EXCEEDED"


def test_query_cost_limits(sandbox: ShopifySandbox) -> None:
    too_big = "{ orders(first: 250) { nodes { lineItems(first: 250) { nodes { id } } } } }"
    body = graphql(sandbox, too_big).json()
    assert body["errors"][0]["extensions"]["code"] == "MAX_COST_EXCEEDED"
    unbounded = graphql(sandbox, "{ orders { nodes { id } } }").json()
    assert "first or last" in unbounded["errors"][0]["message"]
    ok = graphql(sandbox, "{ locations(first: 5) { nodes { id } } }").json()
    cost = ok["extensions"]["cost"]
    assert cost["requestedQueryCost"] == 7
    assert set(cost["throttleStatus"]) == {"maximumAvailable", "currentlyAvailable", "restoreRate"}


def test_throttled_when_the_bucket_is_empty(sandbox: ShopifySandbox) -> None:
    requests.put(
        f"{sandbox.url}/_sandbox/bucket", json={"available": 0, "restore_rate": 1}, timeout=5
    )
    response = graphql(sandbox, "{ locations(first: 5) { nodes { id } } }")
    body = response.json()
    assert response.status_code == 200
    assert body["errors"][0]["extensions"]["code"] == "THROTTLED"
    assert body["extensions"]["cost"]["throttleStatus"]["restoreRate"] == 1


def test_checkout_obeys_the_variant_policy(sandbox: ShopifySandbox) -> None:
    sandbox.set_inventory("DEMO-1", 2)
    refused = requests.post(
        f"{sandbox.url}/_sandbox/checkout", json={"sku": "DEMO-1", "quantity": 3}, timeout=5
    )
    assert refused.status_code == 409
    assert sandbox.available("DEMO-1") == 2
    sandbox.set_inventory("DEMO-1", 2, policy="CONTINUE")
    order = checkout(sandbox, {"DEMO-1": 3})
    assert order["admin_graphql_api_id"] == f"gid://shopify/Order/{order['id']}"
    assert sandbox.available("DEMO-1") == -1
    assert sandbox.state_snapshot()["inventory"]["DEMO-1"]["committed"] == 3


def test_order_create_inventory_behaviour_and_cancel(sandbox: ShopifySandbox) -> None:
    sandbox.access_scopes = (*sandbox.access_scopes, "write_orders")  # both mutations need it
    variant = sandbox.state_snapshot()["inventory"]["DEMO-2"]["variant_id"]
    create = """
    mutation Create($order: OrderCreateOrderInput!, $options: OrderCreateOptionsInput) {
      orderCreate(order: $order, options: $options) {
        order { id lineItems(first: 5) { nodes { sku currentQuantity } } }
        userErrors { code message }
      }
    }"""
    order = {"email": "x@example.com", "lineItems": [{"variantId": variant, "quantity": 25}]}
    obey = {"inventoryBehaviour": "DECREMENT_OBEYING_POLICY"}
    refused = graphql(sandbox, create, {"order": order, "options": obey}).json()["data"]
    assert refused["orderCreate"]["userErrors"][0]["code"] == "INVENTORY_CLAIM_FAILED"
    ignore = {"inventoryBehaviour": "DECREMENT_IGNORING_POLICY"}
    made = graphql(sandbox, create, {"order": order, "options": ignore}).json()["data"]
    assert sandbox.available("DEMO-2") == -5
    cancel = """
    mutation Cancel($id: ID!) {
      orderCancel(orderId: $id, reason: CUSTOMER, restock: true, notifyCustomer: false) {
        job { id done }
        orderCancelUserErrors { code message }
      }
    }"""
    order_id = made["orderCreate"]["order"]["id"]
    done = graphql(sandbox, cancel, {"id": order_id}).json()["data"]["orderCancel"]
    assert done["orderCancelUserErrors"] == [] and done["job"]["done"]
    assert sandbox.available("DEMO-2") == 20
    again = graphql(sandbox, cancel, {"id": order_id}).json()["data"]["orderCancel"]
    assert again["orderCancelUserErrors"][0]["code"] == "INVALID"


def test_hold_rules(sandbox: ShopifySandbox) -> None:
    order = checkout(sandbox, {"DEMO-1": 1})
    [fo] = [
        f for f in sandbox.state_snapshot()["fulfillment_orders"] if f["order_id"] == order["id"]
    ]
    hold = """
    mutation Hold($id: ID!, $handle: String) {
      fulfillmentOrderHold(
        id: $id, fulfillmentHold: {reason: INVENTORY_OUT_OF_STOCK, handle: $handle}
      ) {
        fulfillmentHold { id }
        userErrors { code }
      }
    }"""

    def place(handle: str) -> list[dict[str, str]]:
        data = graphql(sandbox, hold, {"id": fo["id"], "handle": handle}).json()["data"]
        errors: list[dict[str, str]] = data["fulfillmentOrderHold"]["userErrors"]
        return errors

    assert place("h0") == []
    assert place("h0") == [{"code": "DUPLICATE_FULFILLMENT_HOLD_HANDLE"}]
    for i in range(1, 10):
        assert place(f"h{i}") == []
    assert place("h10") == [{"code": "FULFILLMENT_ORDER_HOLD_LIMIT_REACHED"}]
    bad = graphql(sandbox, hold.replace("INVENTORY_OUT_OF_STOCK", "NO_STOCK"), {"id": fo["id"]})
    assert "errors" in bad.json()


def test_cli_prints_the_url_first_and_serves() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from connectors.sandbox.shopify import main; main(['--port', '0'])",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        state = requests.get(f"{url}/_sandbox/state", timeout=5).json()
        assert set(state["inventory"]) == {f"DEMO-{i}" for i in range(1, 6)}
    finally:
        process.terminate()
        process.wait(timeout=5)
