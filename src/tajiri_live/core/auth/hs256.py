"""HS256 JWTs on the hot paths: signing a viewer token at every join, and checking the
common user token at every join and socket handshake.

PyJWT stays the verifier of record. `Hs256Checker` only *accepts*, and only the plainest
tokens (the header `{"alg":"HS256","typ":"JWT"}`, canonical base64url, claims whose types
and times leave no doubt); for anything else it answers None and the caller asks PyJWT,
whose verdict and errors stand. So it never accepts a token PyJWT would refuse: each of its
conditions is one of PyJWT's, or narrower (tests/test_identity.py checks both on a matrix
of tokens). Why: in a profile of REST joins, PyJWT's `decode` and `encode` were about a
quarter of the server's busy samples (33 to 40 and 73 µs a call on that host, against 12.6 and
18 µs for these).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypeGuard

import orjson
from jwt.algorithms import HMACAlgorithm
from jwt.exceptions import InvalidKeyError
from jwt.utils import base64url_encode as base64url

_BASE64URL_ONLY = re.compile(rb"[A-Za-z0-9_-]*")
# Where orjson and PyJWT's json read the same text differently, the checker steps aside:
# integers past 64 bits (orjson makes them floats) and deep nesting (json's recursion limit
# refuses what orjson takes).
_LONG_NUMBER = re.compile(rb"[0-9]{19}")
MAX_BRACKETS = 64


def pyjwt_takes_hmac_key(secret: str) -> bool:
    """PyJWT refuses an HMAC secret that looks like a PEM or SSH key; so must we."""
    try:
        HMACAlgorithm(HMACAlgorithm.SHA256).prepare_key(secret)
    except InvalidKeyError:
        return False
    return True


def canonical_base64url(segment: bytes) -> bytes | None:
    """The bytes an unpadded, canonical base64url segment encodes; None for anything else
    (padding, another character, a last character with stray bits)."""
    if len(segment) % 4 == 1 or not _BASE64URL_ONLY.fullmatch(segment):
        return None
    decoded = base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4))
    return decoded if base64url(decoded) == segment else None


class Hs256Signer:
    """Signs HS256 JWTs (RFC 7519, compact form) with one key and one header. The key's
    HMAC state is computed once and copied per token."""

    def __init__(self, secret: str, *, header: Mapping[str, Any] | None = None) -> None:
        if not pyjwt_takes_hmac_key(secret):
            raise ValueError("an HS256 secret must be a random value, not a PEM or SSH key")
        fields = {"alg": "HS256", "typ": "JWT", **(header or {})}
        self._head = base64url(orjson.dumps(fields)) + b"."
        self._keyed = hmac.new(secret.encode(), digestmod=hashlib.sha256)

    def sign(self, claims: Mapping[str, Any]) -> str:
        try:
            payload = orjson.dumps(claims)
        except orjson.JSONEncodeError:  # a lone surrogate from a claim: json escapes it
            payload = json.dumps(claims, separators=(",", ":")).encode()
        signing_input = self._head + base64url(payload)
        mac = self._keyed.copy()
        mac.update(signing_input)
        return (signing_input + b"." + base64url(mac.digest())).decode("ascii")


class Hs256Checker:
    """Accepts the plainest HS256 tokens signed with `secret` (see the module's note);
    None: ask PyJWT. `issuer`, `audience` and `required` as PyJWT's `decode` takes them
    (one string each; `exp` is always required). `token_type`: the header's `typ`."""

    def __init__(
        self,
        secret: str,
        *,
        issuer: str | None,
        audience: str | None,
        required: tuple[str, ...] = (),
        token_type: str = "JWT",
    ) -> None:
        self._enabled = pyjwt_takes_hmac_key(secret)
        self._keyed = hmac.new(secret.encode(), digestmod=hashlib.sha256)
        self._issuer = issuer
        self._audience = audience
        self._required = required
        headers = [{"alg": "HS256", "typ": token_type}, {"typ": token_type, "alg": "HS256"}]
        if token_type == "JWT":  # `typ` is optional (RFC 7519, 5.1)
            headers.append({"alg": "HS256"})
        self._plain_heads = {base64url(json.dumps(h).encode()) for h in headers} | {
            base64url(orjson.dumps(h)) for h in headers
        }

    def claims(self, token: str) -> dict[str, Any] | None:
        if not self._enabled or not token.isascii() or token.count(".") != 2:
            return None
        parts = token.encode().split(b".")
        if parts[0] not in self._plain_heads:
            return None
        head, body, signature = parts
        mac = self._keyed.copy()
        mac.update(head + b"." + body)
        expected = canonical_base64url(signature)
        if expected is None or not hmac.compare_digest(mac.digest(), expected):
            return None  # PyJWT says why
        payload = canonical_base64url(body)
        if (
            payload is None
            or payload.count(b"[") + payload.count(b"{") > MAX_BRACKETS
            or _LONG_NUMBER.search(payload)
        ):
            return None
        try:
            claims = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return None
        # PyJWT's clock, to the microsecond: the same verdict at an expiry's very edge.
        now = datetime.now(tz=UTC).timestamp()
        if not isinstance(claims, dict) or not self._plain_claims(claims, now):
            return None
        return claims

    def _plain_claims(self, claims: dict[str, Any], now: float) -> bool:
        exp, iat, nbf = claims.get("exp"), claims.get("iat", 0), claims.get("nbf", 0)
        if not (_is_int(exp) and exp > now):
            return False
        if not (_is_int(iat) and iat <= now and _is_int(nbf) and nbf <= now):
            return False
        for text in ("sub", "jti"):
            if text in claims and not isinstance(claims[text], str):
                return False
        if any(claims.get(name) is None for name in self._required):
            return False
        if self._issuer is not None and claims.get("iss") != self._issuer:
            return False
        aud = claims.get("aud")
        if self._audience is None:
            return "aud" not in claims
        if not aud:  # PyJWT: an empty audience is a missing one
            return False
        return aud == self._audience or (
            isinstance(aud, list)
            and all(isinstance(item, str) for item in aud)
            and self._audience in aud
        )


def _is_int(value: Any) -> TypeGuard[int]:
    return type(value) is int
