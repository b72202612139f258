"""The Shopify schemas shipped in the package are Shopify's own, byte for byte."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from connectors.sandbox.shopify_schema import PACKAGED_SCHEMAS, SCHEMA_VERSIONS

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "shopify"


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
def test_packaged_schema_equals_reference_fixture(version: str) -> None:
    name = f"admin_{version}.json.gz"
    packaged = hashlib.sha256((PACKAGED_SCHEMAS / name).read_bytes()).hexdigest()
    reference = hashlib.sha256((REFERENCE / name).read_bytes()).hexdigest()
    assert packaged == reference
