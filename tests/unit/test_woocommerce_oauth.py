"""The sandbox's OAuth 1.0a check accepts exactly what the real `woocommerce` client signs."""

from __future__ import annotations

import base64
import time
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from woocommerce.oauth import OAuth

from connectors.sandbox.woocommerce_auth import AuthRefused, OAuthVerifier, basic_credentials

BASE = "http://127.0.0.1:8081/wp-json/wc/v3/orders"


def signed(
    params: dict[str, str],
    *,
    method: str = "GET",
    secret: str = "cs_sandbox",  # noqa: S107 the sandbox default secret
    ts: int | None = None,
) -> tuple[str, dict[str, str]]:
    """(base url, query) exactly as woocommerce.API builds them for a plain-http shop."""
    url = f"{BASE}?{urlencode(params)}"
    oauth = OAuth(
        url=url,
        consumer_key="ck_sandbox",
        consumer_secret=secret,
        version="wc/v3",
        method=method,
        oauth_timestamp=int(time.time()) if ts is None else ts,
    )
    parts = urlsplit(oauth.get_oauth_url())
    return f"{parts.scheme}://{parts.netloc}{parts.path}", dict(parse_qsl(parts.query))


def verifier() -> OAuthVerifier:
    return OAuthVerifier("ck_sandbox", "cs_sandbox", window_seconds=300)


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"per_page": "100", "page": "2"},
        {
            "modified_after": "2026-01-02T03:04:05",
            "dates_are_gmt": "true",
            "orderby": "modified",
            "order": "asc",
        },
        {"sku": "DEMO-1,DEMO-4", "include": "11,12,13"},
        {"search": "a b+c~d_e.f-g"},
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST", "PUT"])
def test_real_client_signatures_verify(params: dict[str, str], method: str) -> None:
    base, query = signed(params, method=method)
    assert query["oauth_signature_method"] == "HMAC-SHA256"
    verifier().verify(method, base, query, time.time())


def test_tampered_query_is_refused() -> None:
    base, query = signed({"per_page": "10"})
    query["per_page"] = "100"
    with pytest.raises(AuthRefused, match="signature"):
        verifier().verify("GET", base, query, time.time())


def test_other_method_or_url_is_refused() -> None:
    base, query = signed({})
    with pytest.raises(AuthRefused, match="signature"):
        verifier().verify("DELETE", base, query, time.time())
    with pytest.raises(AuthRefused, match="signature"):
        verifier().verify("GET", base.replace("orders", "products"), query, time.time())


def test_wrong_secret_is_refused() -> None:
    base, query = signed({}, secret="cs_other")
    with pytest.raises(AuthRefused, match="signature") as caught:
        verifier().verify("GET", base, query, time.time())
    assert caught.value.code == "woocommerce_rest_authentication_error"


@pytest.mark.parametrize("skew", [-301, 301])
def test_timestamp_outside_the_window_is_refused(skew: int) -> None:
    now = time.time()
    base, query = signed({}, ts=int(now) + skew)
    with pytest.raises(AuthRefused, match="timestamp"):
        verifier().verify("GET", base, query, now)


def test_timestamp_inside_the_window_passes() -> None:
    now = time.time()
    base, query = signed({}, ts=int(now) - 290)
    verifier().verify("GET", base, query, now)


def test_nonce_reuse_is_refused() -> None:
    check = verifier()
    base, query = signed({"page": "1"})
    check.verify("GET", base, query, time.time())
    with pytest.raises(AuthRefused, match="nonce"):
        check.verify("GET", base, query, time.time())


@pytest.mark.parametrize("missing", ["oauth_consumer_key", "oauth_nonce", "oauth_signature"])
def test_missing_parameter_is_named(missing: str) -> None:
    base, query = signed({})
    del query[missing]
    with pytest.raises(AuthRefused, match=missing):
        verifier().verify("GET", base, query, time.time())


def test_unknown_consumer_key_is_refused() -> None:
    base, query = signed({})
    query["oauth_consumer_key"] = "ck_other"
    with pytest.raises(AuthRefused, match="Consumer key"):
        verifier().verify("GET", base, query, time.time())


def test_basic_credentials() -> None:
    token = base64.b64encode(b"ck_sandbox:cs:with:colons").decode()
    assert basic_credentials(f"Basic {token}") == ("ck_sandbox", "cs:with:colons")
    assert basic_credentials(None) is None
    assert basic_credentials("Bearer abc") is None
    with pytest.raises(AuthRefused):
        basic_credentials("Basic !!!")
