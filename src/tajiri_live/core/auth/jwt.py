"""Bearer JWTs: signing (for `tajiri-live token`) and verification with a static key (HS256
secret, RS256/ES256 public key) or keys from a JWKS endpoint."""

from __future__ import annotations

import base64
import copy
import functools
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import jwt
import orjson
from jwt.algorithms import get_default_algorithms

from tajiri_live.core.auth.hs256 import Hs256Checker, canonical_base64url
from tajiri_live.core.auth.jwks import JwksKeys, KeysUnavailable
from tajiri_live.core.auth.principal import JWT, Principal, profile_text
from tajiri_live.core.errors import ApiError
from tajiri_live.core.settings import Settings

VERIFIED_CACHE_SIZE = 50_000  # tokens; the cache starts over when full
MAX_EPOCH = 2**40  # seconds: far past any real expiry, well inside a float's exact range
VIEWER_TOKEN_TYPE = "viewer+jwt"  # the header `typ` of socket tokens (see viewer.py)


def looks_like_jwt(token: str) -> bool:
    """Three base64url parts: the only shape this authenticator claims."""
    parts = token.split(".")
    return len(parts) == 3 and all(parts[:2])


MAX_HEADER_CHARS = 2048
KNOWN_HEADERS_SIZE = 256  # distinct header segments; the memo starts over when full
_known_headers: dict[str, Mapping[str, Any]] = {}


def unverified_header(token: str) -> Mapping[str, Any] | None:
    """A JWT's header, read before verifying it only to choose how to verify it (None: not a
    readable one). PyJWT's reader checks every character of the whole token in Python, and a
    socket's token was read three times before its signature: 0.4 ms of a 1.2 ms handshake.
    An issuer sends the same header on every token, so each header segment is parsed once
    (read-only). `jwt.decode` still checks the whole token strictly."""
    segment = token.partition(".")[0]
    known = _known_headers.get(segment)
    if known is not None:
        return known
    if not segment or len(segment) > MAX_HEADER_CHARS:
        return None
    try:
        header = orjson.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, orjson.JSONDecodeError):
        return None
    if not isinstance(header, dict) or not isinstance(header.get("kid", ""), str):
        return None
    if len(_known_headers) >= KNOWN_HEADERS_SIZE:
        _known_headers.clear()
    _known_headers[segment] = read_only = MappingProxyType(header)
    return read_only


def _segments_checked_in_c(
    check: Callable[[bytes, str], bytes],
) -> Callable[[bytes, str], bytes]:
    """PyJWT's strict base64url reader, with its alphabet check made by a regular expression
    instead of a Python loop over every byte (half of what verifying a token cost). A
    segment it accepts unpadded is decoded exactly as PyJWT would; anything else (padding,
    another character, a non-canonical end) goes to PyJWT's own reader, which accepts or
    refuses it with its own errors."""

    def decode_segment(segment: bytes, name: str) -> bytes:
        decoded = canonical_base64url(segment)
        return decoded if decoded is not None else check(segment, name)

    return decode_segment


def prepared_key_jwt() -> jwt.PyJWT:
    """A PyJWT whose algorithms prepare each key once. PyJWT prepares the key at every check
    and signature (an HMAC secret is parsed as JSON and matched against two patterns, a PEM
    key is loaded): half of what checking a token costs. The keys are the configured ones,
    the JWKS's and the viewer tokens'."""
    codec = jwt.PyJWT()
    signatures = codec._jws  # PyJWT's own signature checker: it has no public setter
    strict_reader = getattr(signatures, "_decode_base64url_segment", None)  # recent PyJWTs
    if strict_reader is not None:
        signatures._decode_base64url_segment = _segments_checked_in_c(  # type: ignore[method-assign, assignment]
            strict_reader
        )
    for name, algorithm in get_default_algorithms().items():
        prepared = copy.copy(algorithm)
        prepared.prepare_key = _once_per_key(algorithm.prepare_key)  # type: ignore[method-assign, assignment]
        signatures.unregister_algorithm(name)
        signatures.register_algorithm(name, prepared)
    return codec


def _once_per_key(prepare: Callable[[Any], Any]) -> Callable[[Any], Any]:
    remembered = functools.lru_cache(maxsize=16)(prepare)

    def prepare_key(key: Any) -> Any:
        # Text and bytes are what PyJWT parses; a key object is returned as it is.
        return remembered(key) if isinstance(key, str | bytes) else prepare(key)

    return prepare_key


class TokenCodec:
    """Signs and verifies the service's bearer JWTs. Verified tokens are remembered until they
    expire: the signature check is the costliest step of a small request."""

    def __init__(self, settings: Settings, *, jwks: JwksKeys | None = None) -> None:
        self._verified: dict[str, tuple[Principal, float]] = {}
        self._jwt = prepared_key_jwt()
        self._algorithm = settings.signing_algorithm()
        self._verify_key = settings.jwt_public_key or settings.jwt_secret
        self._sign_key = settings.jwt_private_key or settings.jwt_secret
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._default_ttl = settings.jwt_default_ttl_seconds
        self._user_claim = settings.jwt_user_id_claim
        self._jwks = jwks
        if not self._verify_key and jwks is None:
            raise RuntimeError("no JWT secret, public key or JWKS URL configured")
        # The quick check of plain HS256 tokens; it stays off for a key PyJWT would not take
        # as an HMAC secret (a public key, say).
        self._plain_tokens = (
            Hs256Checker(self._verify_key, issuer=self._issuer, audience=self._audience)
            if self._algorithm == "HS256" and self._verify_key
            else None
        )

    @property
    def jwks(self) -> JwksKeys | None:
        return self._jwks

    @property
    def enabled(self) -> bool:
        return bool(self._verify_key) or self._jwks is not None

    def encode(
        self,
        user_id: int,
        *,
        first_name: str | None = None,
        last_name: str | None = None,
        username: str | None = None,
        picture: str | None = None,
        region: str | None = None,
        admin: bool = False,
        ttl_seconds: int | None = None,
    ) -> str:
        if not self._sign_key:
            raise RuntimeError("signing needs TAJIRI_JWT_SECRET or TAJIRI_JWT_PRIVATE_KEY")
        now = int(time.time())
        claims: dict[str, Any] = {
            "sub": str(user_id),
            "iat": now,
            "exp": now + (ttl_seconds if ttl_seconds is not None else self._default_ttl),
        }
        if self._user_claim != "sub":
            claims[self._user_claim] = user_id
        optional = {
            "given_name": first_name,
            "family_name": last_name,
            "preferred_username": username,
            "picture": picture,
            "region": region,
            "iss": self._issuer,
            "aud": self._audience,
        }
        claims.update({k: v for k, v in optional.items() if v is not None})
        if admin:
            claims["admin"] = True
        return self._jwt.encode(claims, self._sign_key, algorithm=self._algorithm)

    def decode(self, token: str) -> Principal:
        """Verify with the static key (no JWKS): for callers that cannot wait."""
        cached = self._cached(token)
        if cached is not None:
            return cached
        return self._remember(token, *self._verify_static(token))

    def checks_locally(self, token: str) -> bool:
        """`verify` needs nothing but the static key for this token (no JWKS fetch): it may
        be checked at once with `decode`. A token whose header cannot be read counts too
        (`decode` refuses it)."""
        if self._jwks is None:
            return True
        header = unverified_header(token)
        return header is None or ("kid" not in header and bool(self._verify_key))

    async def verify(self, token: str) -> Principal:
        """Verify with the static key, or the JWKS key the token names."""
        cached = self._cached(token)
        if cached is not None:
            return cached
        header = _header(token)
        if self._jwks is not None and ("kid" in header or not self._verify_key):
            try:
                key = await self._jwks.key_for(_text_or_none(header.get("kid")))
            except KeysUnavailable as exc:
                raise ApiError(
                    503,
                    "Sign-in is unavailable: the identity provider's keys cannot be fetched. "
                    "Try again shortly.",
                    headers={"Retry-After": "5"},
                ) from exc
            except jwt.PyJWTError as exc:
                raise ApiError(401, "The token is invalid: its signing key is unknown.") from exc
            claims = self._claims(token, key.key, [key.algorithm_name])
        else:
            return self._remember(token, *self._verify_static(token))
        return self._remember(token, *self._principal(claims))

    def _cached(self, token: str) -> Principal | None:
        cached = self._verified.get(token)
        if cached is None:
            return None
        principal, expires = cached
        if time.time() < expires:
            return principal
        del self._verified[token]
        return None

    def _remember(self, token: str, principal: Principal, expires: float) -> Principal:
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.clear()
        self._verified[token] = (principal, expires)
        return principal

    def _verify_static(self, token: str) -> tuple[Principal, float]:
        if not self._verify_key:
            raise ApiError(401, "The token is invalid.")
        if _header(token).get("typ") == VIEWER_TOKEN_TYPE:
            raise ApiError(
                401,
                "This is a viewer token: it opens sockets only. "
                "Send the user's own token to the API.",
            )
        plain = self._plain_tokens.claims(token) if self._plain_tokens is not None else None
        if plain is not None:
            return self._principal(plain)
        return self._principal(self._claims(token, self._verify_key, [self._algorithm]))

    def _claims(self, token: str, key: Any, algorithms: list[str]) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = self._jwt.decode(
                token,
                key,
                algorithms=algorithms,
                issuer=self._issuer,
                audience=self._audience,
                options={"require": ["exp"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise ApiError(401, "The token has expired.") from exc
        except jwt.PyJWTError as exc:
            raise ApiError(401, "The token is invalid.") from exc
        return claims

    def _principal(self, claims: dict[str, Any]) -> tuple[Principal, float]:
        user_id = _user_id(claims.get(self._user_claim))
        if user_id is None:
            raise ApiError(401, f"The token's {self._user_claim} claim must be a user id.")
        roles = claims.get("roles") or []
        expires = claims["exp"]
        if not isinstance(expires, int | float) or not 0 < expires < MAX_EPOCH:
            raise ApiError(401, "The token's expiry is not a time.")
        expires = float(expires)
        principal = Principal(
            user_id=user_id,
            is_admin=claims.get("admin") is True or (isinstance(roles, list) and "admin" in roles),
            first_name=profile_text(claims.get("given_name")),
            last_name=profile_text(claims.get("family_name")),
            username=profile_text(claims.get("preferred_username")),
            picture=profile_text(claims.get("picture")),
            region=profile_text(claims.get("region")),
            source=JWT,
            expires_at=expires,
        )
        return principal, expires

    async def close(self) -> None:
        if self._jwks is not None:
            await self._jwks.close()


def _header(token: str) -> Mapping[str, Any]:
    header = unverified_header(token)
    if header is None:
        raise ApiError(401, "The token is invalid.")
    return header


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _user_id(value: Any) -> int | None:
    """A positive id that fits a BIGINT, from an int or a string of digits."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        value = int(value)
    if isinstance(value, int) and 0 < value <= 2**62:
        return value
    return None


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer` header; None when there is no header or it
    is blank (the caller decides what a blank header means)."""
    if not authorization or not authorization.strip():
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "Use an Authorization header of the form 'Bearer <token>'.")
    return token.strip()
