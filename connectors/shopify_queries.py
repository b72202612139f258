"""Every GraphQL document the Shopify connector sends, as constants.

Tests validate each one against the pinned Admin API schemas (2026-07 and 2026-10) and check
its requested cost stays under Shopify's single-query limit of 1000 points. Page sizes are
chosen for that limit: a connection costs 2 + page size x node cost.
"""

from __future__ import annotations

from typing import Final

# orders: node = order 1 + customer 1 (its tags are scalars: 0) + totalOutstandingSet 1 +
# shopMoney 1 + lineItems (2 + 25 x (line 1 + sellingPlan 1)) = 56 -> 17 per page (954 points)
ORDERS_PAGE_SIZE: Final = 17
ORDER_LINES_PAGE_SIZE: Final = 25
# line items beyond the first page of an order: 2 + 250 x 2
MORE_LINES_PAGE_SIZE: Final = 250
# variants by SKU: node = variant 1 + inventoryItem 1 + inventoryLevel 1 + quantities 1 = 4
SKU_BATCH_SIZE: Final = 100
# every variant (`stocksync adopt`): node = variant 1 + inventoryItem 1 + inventoryLevel 1 +
# quantities 1 = 4 -> 2 + 240 x 4 = 962 points a page
LISTINGS_PAGE_SIZE: Final = 240
# fulfillment orders: 10 x (1 + holds 1 + lineItems (2 + 40 x (1 + lineItem 1))) + order 1
FULFILLMENT_ORDERS_PAGE_SIZE: Final = 10
FULFILLMENT_LINES_PAGE_SIZE: Final = 40
MAX_ROWS_PER_MUTATION: Final = 250
# metafieldsSet and metafieldsDelete take at most 25 metafields a call
MAX_METAFIELDS_PER_MUTATION: Final = 25


def _sized(document: str, **sizes: int) -> str:
    """Put the page sizes above into a document (`<name>` marks where), so they are the truth."""
    for name, size in sizes.items():
        document = document.replace(f"<{name}>", str(size))
    return document


LOCATIONS: Final = """
query StocksyncLocations($after: String) {
  locations(first: 250, after: $after) {
    pageInfo { hasNextPage endCursor }
    nodes { id name isActive }
  }
}
"""

# `stocksync check --online`: who we are talking to and what the token may do (no scope needed)
APP_CHECK: Final = """
query StocksyncCheck {
  shop { name myshopifyDomain }
  currentAppInstallation { accessScopes { handle } }
}
"""

ORDER_FIELDS: Final = _sized(
    """
fragment StocksyncOrder on Order {
  id
  legacyResourceId
  name
  email
  createdAt
  updatedAt
  cancelledAt
  displayFulfillmentStatus
  customer { id email tags }
  customAttributes { key value }
  customerLocale
  totalOutstandingSet { shopMoney { amount } }
  lineItems(first: <lines>) {
    pageInfo { hasNextPage endCursor }
    nodes {
      id sku name quantity currentQuantity unfulfilledQuantity
      sellingPlan { sellingPlanId }
    }
  }
}
""",
    lines=ORDER_LINES_PAGE_SIZE,
)

ORDERS: Final = (
    """
query StocksyncOrders($first: Int!, $after: String, $query: String) {
  orders(first: $first, after: $after, sortKey: UPDATED_AT, query: $query) {
    pageInfo { hasNextPage endCursor }
    nodes { ...StocksyncOrder }
  }
}
"""
    + ORDER_FIELDS
)

ORDER_LINE_ITEMS: Final = _sized(
    """
query StocksyncOrderLines($id: ID!, $after: String) {
  order(id: $id) {
    lineItems(first: <lines>, after: $after) {
      pageInfo { hasNextPage endCursor }
      nodes {
        id sku name quantity currentQuantity unfulfilledQuantity
        sellingPlan { sellingPlanId }
      }
    }
  }
}
""",
    lines=MORE_LINES_PAGE_SIZE,
)

VARIANTS_BY_SKU: Final = """
query StocksyncVariantsBySku($first: Int!, $query: String!, $locationId: ID!) {
  productVariants(first: $first, query: $query) {
    nodes {
      id
      sku
      inventoryItem {
        id
        inventoryLevel(locationId: $locationId) {
          quantities(names: ["available"]) { name quantity }
        }
      }
    }
  }
}
"""

ALL_VARIANTS: Final = _sized(
    """
query StocksyncAllVariants($after: String, $locationId: ID!) {
  productVariants(first: <variants>, after: $after) {
    pageInfo { hasNextPage endCursor }
    nodes {
      id
      sku
      inventoryItem {
        id
        tracked
        inventoryLevel(locationId: $locationId) {
          quantities(names: ["available", "on_hand"]) { name quantity }
        }
      }
    }
  }
}
""",
    variants=LISTINGS_PAGE_SIZE,
)

# @idempotent sits on the mutation field, not the operation (Shopify 2026-04+)
SET_QUANTITIES: Final = """
mutation StocksyncSetQuantities($input: InventorySetQuantitiesInput!, $key: String!) {
  inventorySetQuantities(input: $input) @idempotent(key: $key) {
    inventoryAdjustmentGroup { id }
    userErrors { code field message }
  }
}
"""

ORDER_FULFILLMENT_ORDERS: Final = _sized(
    """
query StocksyncFulfillmentOrders($id: ID!) {
  order(id: $id) {
    id
    fulfillmentOrders(first: <orders>) {
      nodes {
        id
        status
        fulfillmentHolds { id handle reason }
        lineItems(first: <lines>) {
          nodes { id totalQuantity remainingQuantity lineItem { id } }
        }
      }
    }
  }
}
""",
    orders=FULFILLMENT_ORDERS_PAGE_SIZE,
    lines=FULFILLMENT_LINES_PAGE_SIZE,
)

HOLD: Final = """
mutation StocksyncHold($id: ID!, $hold: FulfillmentOrderHoldInput!) {
  fulfillmentOrderHold(id: $id, fulfillmentHold: $hold) {
    fulfillmentHold { id handle }
    fulfillmentOrder { id status }
    remainingFulfillmentOrder { id status }
    userErrors { code field message }
  }
}
"""

RELEASE_HOLD: Final = """
mutation StocksyncReleaseHold($id: ID!, $holdIds: [ID!]) {
  fulfillmentOrderReleaseHold(id: $id, holdIds: $holdIds) {
    fulfillmentOrder { id status }
    userErrors { code field message }
  }
}
"""

# the shop page's expected date (issue #17, docs/shopify.md): a `date` metafield on the variant,
# namespace `stocksync`, key `expected_date`, set while its offer counts incoming units
SET_METAFIELDS: Final = """
mutation StocksyncSetMetafields($metafields: [MetafieldsSetInput!]!) {
  metafieldsSet(metafields: $metafields) {
    metafields { namespace key value }
    userErrors { code field message elementIndex }
  }
}
"""

DELETE_METAFIELDS: Final = """
mutation StocksyncDeleteMetafields($metafields: [MetafieldIdentifierInput!]!) {
  metafieldsDelete(metafields: $metafields) {
    deletedMetafields { ownerId namespace key }
    userErrors { field message }
  }
}
"""

# a variant's expected date, as a theme or a test reads it
VARIANT_EXPECTED_DATE: Final = """
query StocksyncVariantExpectedDate($id: ID!) {
  productVariant(id: $id) {
    id
    sku
    metafield(namespace: "stocksync", key: "expected_date") { type value }
  }
}
"""

# shop notes: the Admin API has no customer-visible order note; stocksync appends to the
# order's staff note (`note`, which orderUpdate overwrites: read it first)
ORDER_NOTE: Final = """
query StocksyncOrderNote($id: ID!) {
  order(id: $id) { id note }
}
"""

SET_ORDER_NOTE: Final = """
mutation StocksyncSetOrderNote($input: OrderInput!) {
  orderUpdate(input: $input) {
    order { id note }
    userErrors { field message }
  }
}
"""

ALL_DOCUMENTS: Final = {
    "APP_CHECK": APP_CHECK,
    "LOCATIONS": LOCATIONS,
    "ORDERS": ORDERS,
    "ORDER_LINE_ITEMS": ORDER_LINE_ITEMS,
    "VARIANTS_BY_SKU": VARIANTS_BY_SKU,
    "ALL_VARIANTS": ALL_VARIANTS,
    "SET_QUANTITIES": SET_QUANTITIES,
    "ORDER_FULFILLMENT_ORDERS": ORDER_FULFILLMENT_ORDERS,
    "HOLD": HOLD,
    "RELEASE_HOLD": RELEASE_HOLD,
    "SET_METAFIELDS": SET_METAFIELDS,
    "DELETE_METAFIELDS": DELETE_METAFIELDS,
    "VARIANT_EXPECTED_DATE": VARIANT_EXPECTED_DATE,
    "ORDER_NOTE": ORDER_NOTE,
    "SET_ORDER_NOTE": SET_ORDER_NOTE,
}
