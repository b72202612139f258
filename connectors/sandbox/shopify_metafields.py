"""Metafields in the sandbox shop: `metafieldsSet`, `metafieldsDelete`, and a variant's
`metafield(namespace:, key:)` and `metafields` (stocksync's shop pages, issue #17).

Rules kept as Shopify documents them (Admin GraphQL 2026-07/10, `metafieldsSet` and
`metafieldsDelete`):
- at most 25 metafields a call; `metafieldsSet` is atomic (one user error: nothing changes);
- a metafield is (owner, namespace, key); namespace 3-255 and key 2-64 characters of letters,
  digits, `-` and `_` (an omitted namespace is the app-reserved one); `type` is required when
  the metafield does not exist yet (the sandbox has no metafield definitions) and cannot change;
  the value must suit the type (a `date` is `YYYY-MM-DD`);
- `compareDigest`: a given digest must be the stored value's, an explicit null means "must not
  exist yet";
- `metafieldsDelete` answers null for an identifier it finds nothing for;
- both need the access that changing the owner needs (a variant's or a product's:
  `write_products`; an order's: `write_orders`), else ACCESS_DENIED.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from graphql import GraphQLError, GraphQLResolveInfo

from connectors.sandbox.shopify_nodes import ctx, iso, page_args
from connectors.sandbox.shopify_paging import connection
from connectors.sandbox.shopify_scopes import DOCUMENTATION, granted
from connectors.sandbox.shopify_state import Metafield, ShopState, Variant, gid, parse_gid

MAX_METAFIELDS = 25
APP_NAMESPACE = "$app"  # what an omitted namespace means (the app's reserved namespace)
_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
# owner gid kind -> (MetafieldOwnerType, the scopes that may change such an owner)
OWNERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "ProductVariant": ("PRODUCTVARIANT", ("write_products",)),
    "Product": ("PRODUCT", ("write_products",)),
    "Order": ("ORDER", ("write_orders", "write_marketplace_orders")),
}


def _valid_date(value: str) -> bool:
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return re.fullmatch(r"\d{4}-\d{2}-\d{2}", value) is not None


def _valid_integer(value: str) -> bool:
    return re.fullmatch(r"-?\d+", value) is not None


def _valid_decimal(value: str) -> bool:
    try:
        Decimal(value)
    except InvalidOperation:
        return False
    return True


def _valid_json(value: str) -> bool:
    try:
        json.loads(value)
    except ValueError:
        return False
    return True


# the types the sandbox checks values of; the other documented types are taken as they come
VALUE_CHECKS: dict[str, tuple[Callable[[str], bool], str]] = {
    "date": (_valid_date, "Value must be in YYYY-MM-DD format."),
    "number_integer": (_valid_integer, "Value must be an integer."),
    "number_decimal": (_valid_decimal, "Value must be a decimal."),
    "boolean": (lambda v: v in ("true", "false"), "Value must be true or false."),
    "json": (_valid_json, "Value must be valid JSON."),
    "single_line_text_field": (lambda v: "\n" not in v, "Value must be a single line of text."),
}
KNOWN_TYPES = frozenset(
    {
        *VALUE_CHECKS,
        "date_time",
        "multi_line_text_field",
        "rich_text_field",
        "url",
        "color",
        "weight",
        "volume",
        "dimension",
        "rating",
        "money",
        "link",
        "id",
        "product_reference",
        "variant_reference",
        "collection_reference",
        "page_reference",
        "file_reference",
        "metaobject_reference",
        "customer_reference",
        "company_reference",
    }
)


def digest(value: str) -> str:
    """The compareDigest of a stored value (opaque to clients, as Shopify's is)."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


class MetafieldNode:
    def __init__(self, metafield: Metafield) -> None:
        kind = metafield.owner_id.split("/")[-2]
        self.id = gid("Metafield", metafield.id)
        self.legacyResourceId = str(metafield.id)
        self.namespace = metafield.namespace
        self.key = metafield.key
        self.type = metafield.type
        self.value = metafield.value
        self.jsonValue = _json_value(metafield)
        self.compareDigest = digest(metafield.value)
        self.createdAt = iso(metafield.created_at)
        self.updatedAt = iso(metafield.updated_at)
        self.ownerType = OWNERS.get(kind, (kind.upper(), ()))[0]
        self.description = None
        self.sizeInBytes = len(metafield.value.encode("utf-8"))


def _json_value(metafield: Metafield) -> Any:
    if metafield.type == "json":
        return json.loads(metafield.value)
    if metafield.type == "number_integer":
        return int(metafield.value)
    if metafield.type == "boolean":
        return metafield.value == "true"
    return metafield.value


def variant_metafield(
    state: ShopState, variant: Variant, namespace: str | None, key: str
) -> MetafieldNode | None:
    """ProductVariant.metafield: by namespace and key; an omitted namespace is the app's, or
    the part before a dot in `key` ("namespace.key")."""
    if namespace is None and "." in key:
        namespace, key = key.split(".", 1)
    found = state.metafields.get(
        (gid("ProductVariant", variant.id), namespace or APP_NAMESPACE, key)
    )
    return MetafieldNode(found) if found else None


def variant_metafields(state: ShopState, variant: Variant, args: dict[str, Any]) -> dict[str, Any]:
    """ProductVariant.metafields: a connection, filtered by `namespace` and `keys`
    ("namespace.key" each)."""
    owner = gid("ProductVariant", variant.id)
    namespace, keys = args.get("namespace"), args.get("keys")
    chosen = [
        m
        for (owner_id, ns, key), m in state.metafields.items()
        if owner_id == owner
        and (namespace is None or ns == namespace)
        and (keys is None or f"{ns}.{key}" in keys)
    ]
    nodes = [MetafieldNode(m) for m in chosen]
    return connection(nodes, key=lambda n: (0, int(n.legacyResourceId)), **page_args(args))


def _owner_exists(state: ShopState, owner_id: str) -> bool:
    for kind, table in (
        ("ProductVariant", state.variants),
        ("Order", state.orders),
    ):
        number = parse_gid(owner_id, kind)
        if number is not None:
            return number in table
    number = parse_gid(owner_id, "Product")
    return number is not None and any(v.product_id == number for v in state.variants.values())


def _check_access(info: GraphQLResolveInfo, owner_ids: list[str]) -> None:
    """The access changing each owner needs, as Shopify checks it for metafield mutations."""
    held = granted(ctx(info).scopes)
    for owner_id in owner_ids:
        kind = owner_id.split("/")[-2] if owner_id.startswith("gid://shopify/") else ""
        scopes = OWNERS.get(kind, ("", ()))[1]
        if scopes and not held.intersection(scopes):
            needed = " or ".join(f"`{s}`" for s in scopes)
            raise GraphQLError(
                f"Access denied for {info.field_name} field. Required access: {needed} access "
                "scope (the access needed to change the metafields' owner).",
                extensions={
                    "code": "ACCESS_DENIED",
                    "documentation": DOCUMENTATION,
                    "requiredAccess": f"{needed} access scope.",
                },
            )


def _error(code: str, message: str, index: int | None, name: str | None) -> dict[str, Any]:
    path = ["metafields"] + ([str(index)] if index is not None else []) + ([name] if name else [])
    return {"code": code, "message": message, "field": path, "elementIndex": index}


def _name_errors(index: int, namespace: str, key: str) -> list[dict[str, Any]]:
    errors = []
    if namespace != APP_NAMESPACE and not namespace.startswith(f"{APP_NAMESPACE}:"):
        if not 3 <= len(namespace) <= 255:
            errors.append(
                _error("INVALID", "Namespace must be 3-255 characters long.", index, "namespace")
            )
        elif not _NAME.match(namespace):
            errors.append(
                _error(
                    "INVALID",
                    "Namespace contains one or more invalid characters.",
                    index,
                    "namespace",
                )
            )
    if not 2 <= len(key) <= 64:
        errors.append(_error("INVALID", "Key must be 2-64 characters long.", index, "key"))
    elif not _NAME.match(key):
        errors.append(
            _error("INVALID", "Key contains one or more invalid characters.", index, "key")
        )
    return errors


class MetafieldMutations:
    """Root mutation fields: metafieldsSet and metafieldsDelete."""

    def metafieldsSet(
        self, info: GraphQLResolveInfo, metafields: list[dict[str, Any]]
    ) -> dict[str, Any]:
        state = ctx(info).state
        if len(metafields) > MAX_METAFIELDS:
            message = f"Exceeded the maximum metafields input limit of {MAX_METAFIELDS}."
            return {
                "metafields": None,
                "userErrors": [_error("LESS_THAN_OR_EQUAL_TO", message, None, None)],
            }
        _check_access(info, [str(m["ownerId"]) for m in metafields])
        errors: list[dict[str, Any]] = []
        planned: list[tuple[tuple[str, str, str], str, str]] = []
        for index, given in enumerate(metafields):
            owner_id = str(given["ownerId"])
            namespace = given.get("namespace") or APP_NAMESPACE
            key, value = str(given["key"]), str(given["value"])
            if not _owner_exists(state, owner_id):
                errors.append(_error("INVALID", "Owner does not exist.", index, "ownerId"))
                continue
            naming = _name_errors(index, namespace, key)
            if naming:
                errors.extend(naming)
                continue
            found = state.metafields.get((owner_id, namespace, key))
            kind = given.get("type") or (found.type if found else None)
            if kind is None:
                errors.append(_error("BLANK", "Type can't be blank.", index, "type"))
                continue
            if kind not in KNOWN_TYPES:
                message = f"Type '{kind}' is not a valid type."
                errors.append(_error("INVALID_TYPE", message, index, "type"))
                continue
            if found is not None and found.type != kind:
                message = "The type of an existing metafield can't be changed."
                errors.append(_error("INVALID_TYPE", message, index, "type"))
                continue
            check = VALUE_CHECKS.get(kind)
            if check is not None and not check[0](value):
                errors.append(_error("INVALID_VALUE", check[1], index, "value"))
                continue
            if "compareDigest" in given:
                expected = given["compareDigest"]
                current = digest(found.value) if found else None
                if expected != current:
                    errors.append(
                        _error(
                            "STALE_OBJECT",
                            "The resource has been updated since it was loaded. Try again "
                            "with an updated `compareDigest` value.",
                            index,
                            "compareDigest",
                        )
                    )
                    continue
            planned.append(((owner_id, namespace, key), kind, value))
        if errors:  # atomic: nothing is persisted
            return {"metafields": [], "userErrors": errors}
        now = state.now()
        written = []
        for identity, kind, value in planned:
            found = state.metafields.get(identity)
            if found is None:
                owner_id, namespace, key = identity
                found = Metafield(state.next_id(), owner_id, namespace, key, kind, value, now, now)
                state.metafields[identity] = found
            elif found.value != value:
                found.value, found.updated_at = value, now
            written.append(MetafieldNode(found))
        return {"metafields": written, "userErrors": []}

    def metafieldsDelete(
        self, info: GraphQLResolveInfo, metafields: list[dict[str, Any]]
    ) -> dict[str, Any]:
        state = ctx(info).state
        if not metafields:
            return {
                "deletedMetafields": None,
                "userErrors": [
                    {"field": ["metafields"], "message": "At least one identifier is required."}
                ],
            }
        if len(metafields) > MAX_METAFIELDS:
            message = f"Exceeded the maximum metafields input limit of {MAX_METAFIELDS}."
            return {
                "deletedMetafields": None,
                "userErrors": [{"field": ["metafields"], "message": message}],
            }
        _check_access(info, [str(m["ownerId"]) for m in metafields])
        deleted: list[dict[str, str] | None] = []
        for given in metafields:
            identity = (str(given["ownerId"]), str(given["namespace"]), str(given["key"]))
            if state.metafields.pop(identity, None) is None:
                deleted.append(None)
            else:
                owner_id, namespace, key = identity
                deleted.append({"ownerId": owner_id, "namespace": namespace, "key": key})
        return {"deletedMetafields": deleted, "userErrors": []}


def metafields_json(state: ShopState) -> list[dict[str, Any]]:
    """The shop's metafields for `/_sandbox/state`, oldest first."""
    return [
        {
            "owner_id": m.owner_id,
            "namespace": m.namespace,
            "key": m.key,
            "type": m.type,
            "value": m.value,
            "updated_at": iso(m.updated_at),
        }
        for m in sorted(state.metafields.values(), key=lambda m: m.id)
    ]
