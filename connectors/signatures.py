"""Webhook signatures: base64 HMAC-SHA256 of the raw body, as Shopify and WooCommerce send them."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable


def sign(secret: str, body: bytes) -> str:
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def verify(body: bytes, signature: str | None, secrets: Iterable[str]) -> bool:
    """True when any secret (old and new, during a rotation) signed exactly these bytes.

    Compared in constant time; an empty or missing signature never verifies.
    """
    if not signature:
        return False
    presented = signature.strip().encode("ascii", errors="replace")
    matched = False
    for secret in secrets:
        if not secret:
            continue
        expected = sign(secret, body).encode("ascii")
        # no early exit: every secret is checked so timing does not reveal which one matched
        matched = hmac.compare_digest(expected, presented) or matched
    return matched
