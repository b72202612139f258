"""The Shopify schemas shipped in the package are Shopify's own, byte for byte."""

from __future__ import annotations

import hashlib

import pytest

from connectors.sandbox.shopify_schema import PACKAGED_SCHEMAS, SCHEMA_VERSIONS
from tests.shared_fixtures import needs_shared, shared_path

REFERENCE = shared_path("fixtures/shopify")

pytestmark = needs_shared("fixtures/shopify", "the packaged-schema comparison needs it")


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
def test_packaged_schema_equals_reference_fixture(version: str) -> None:
    name = f"admin_{version}.json.gz"
    packaged = hashlib.sha256((PACKAGED_SCHEMAS / name).read_bytes()).hexdigest()
    reference = hashlib.sha256((REFERENCE / name).read_bytes()).hexdigest()
    assert packaged == reference
