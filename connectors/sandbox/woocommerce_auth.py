"""How WooCommerce authenticates REST calls, done server-side for the sandbox.

Over plain http WooCommerce accepts only OAuth 1.0a "one-legged" signatures in the query string
(WC_REST_Authentication::perform_oauth_authentication); over https it takes HTTP Basic auth with
the consumer key and secret. The signature base string is built like WooCommerce's PHP does it:
parameters rawurlencoded, encoded once more (`%` -> `%25`), sorted by key, joined with `%3D` and
`%26`; the key is the consumer secret plus "&" (wc/v3 and later); HMAC-SHA1 or HMAC-SHA256.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, unquote

AUTH_ERROR = "woocommerce_rest_authentication_error"
_REQUIRED = (
    "oauth_consumer_key",
    "oauth_timestamp",
    "oauth_nonce",
    "oauth_signature",
    "oauth_signature_method",
)
_HASHES = {"HMAC-SHA1": hashlib.sha1, "HMAC-SHA256": hashlib.sha256}


class AuthRefused(Exception):
    """A request WooCommerce would answer with 401 and this message."""

    def __init__(self, message: str, code: str = AUTH_ERROR) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _php_rawurlencode(text: str) -> str:
    # PHP rawurlencode leaves only A-Z a-z 0-9 - _ . ~ unescaped; Python's quote also keeps "/"
    # unless told otherwise, which WooCommerce would not
    return quote(text, safe="")


def _normalize(text: str) -> str:
    return _php_rawurlencode(unquote(text)).replace("%", "%25")


def string_to_sign(method: str, base_url: str, params: Mapping[str, str]) -> str:
    """The OAuth 1.0a base string as WooCommerce computes it (oauth_signature excluded)."""
    normalized = {
        _normalize(key): _normalize(value)
        for key, value in params.items()
        if key != "oauth_signature"
    }
    # strcmp order, as uksort($params, 'strcmp') does
    joined = "%26".join(
        f"{key}%3D{normalized[key]}" for key in sorted(normalized, key=lambda k: k.encode())
    )
    return f"{method.upper()}&{_php_rawurlencode(base_url)}&{joined}"


def signature(
    method: str, base_url: str, params: Mapping[str, str], secret: str, algorithm: str
) -> str:
    digest = _HASHES[algorithm]
    key = f"{secret}&".encode()
    mac = hmac.new(key, string_to_sign(method, base_url, params).encode(), digest).digest()
    return base64.b64encode(mac).decode("ascii")


@dataclass
class OAuthVerifier:
    """Checks one-legged OAuth 1.0a requests; remembers nonces like WooCommerce's key table."""

    consumer_key: str
    consumer_secret: str
    window_seconds: int = 300

    def __post_init__(self) -> None:
        self._nonces: dict[str, int] = {}  # nonce -> timestamp, pruned as the window moves
        self._lock = threading.Lock()

    def verify(self, method: str, base_url: str, params: Mapping[str, str], now: float) -> None:
        """Raise AuthRefused unless the parameters carry a fresh, correctly signed request."""
        for name in _REQUIRED:
            if not params.get(name):
                raise AuthRefused(f"Missing OAuth parameter {name}")
        if not hmac.compare_digest(params["oauth_consumer_key"], self.consumer_key):
            raise AuthRefused("Consumer key is invalid.")
        algorithm = params["oauth_signature_method"]
        if algorithm not in _HASHES:
            raise AuthRefused("Invalid signature method - must be HMAC-SHA1 or HMAC-SHA256.")
        expected = signature(method, base_url, params, self.consumer_secret, algorithm)
        if not hmac.compare_digest(expected, params["oauth_signature"]):
            raise AuthRefused("Invalid signature - provided signature does not match.")
        try:
            timestamp = int(params["oauth_timestamp"])
        except ValueError:
            raise AuthRefused("Invalid timestamp.") from None
        if abs(timestamp - now) > self.window_seconds:
            raise AuthRefused("Invalid timestamp.")
        nonce = params["oauth_nonce"]
        with self._lock:
            horizon = now - self.window_seconds
            for old in [n for n, ts in self._nonces.items() if ts < horizon]:
                del self._nonces[old]
            if nonce in self._nonces:
                raise AuthRefused("Invalid nonce - nonce has already been used.")
            self._nonces[nonce] = timestamp


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """(key, secret) from an `Authorization: Basic` header, or None when there is none."""
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise AuthRefused("Invalid Basic authorization header.") from None
    key, sep, secret = decoded.partition(":")
    if not sep:
        raise AuthRefused("Invalid Basic authorization header.")
    return key, secret
