"""Bearer JWTs: signing (for `tajiri-live token`), verification, and the caller's identity."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import jwt

from tajiri_live.core.errors import ApiError
from tajiri_live.core.settings import Settings


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller, as the token describes them."""

    user_id: int
    is_admin: bool = False
    first_name: str | None = None
    last_name: str | None = None
    username: str | None = None
    picture: str | None = None
    region: str | None = None  # the profile's region claim (analytics: viewers by region)

    def profile(self) -> tuple[str | None, ...]:
        return (self.first_name, self.last_name, self.username, self.picture)


VERIFIED_CACHE_SIZE = 50_000  # tokens; the cache starts over when full


class TokenCodec:
    def __init__(self, settings: Settings) -> None:
        self._verified: dict[str, tuple[Principal, float]] = {}
        self._algorithm = settings.signing_algorithm()
        self._verify_key = settings.jwt_public_key or settings.jwt_secret
        self._sign_key = settings.jwt_private_key or settings.jwt_secret
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._default_ttl = settings.jwt_default_ttl_seconds
        if not self._verify_key:
            raise RuntimeError("no JWT secret or public key configured")
        self._key: str = self._verify_key

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
        return jwt.encode(claims, self._sign_key, algorithm=self._algorithm)

    def decode(self, token: str) -> Principal:
        """The token's principal. A token verified before is not verified again until it
        expires: the signature check is the costliest step of a small request."""
        cached = self._verified.get(token)
        if cached is not None:
            principal, expires = cached
            if time.time() < expires:
                return principal
            del self._verified[token]
        principal, expires = self._verify(token)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.clear()
        self._verified[token] = (principal, expires)
        return principal

    def _verify(self, token: str) -> tuple[Principal, float]:
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[self._algorithm],
                issuer=self._issuer,
                audience=self._audience,
                options={"require": ["sub", "exp"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise ApiError(401, "The token has expired.") from exc
        except jwt.PyJWTError as exc:
            raise ApiError(401, "The token is invalid.") from exc
        try:
            user_id = int(claims["sub"])
        except (TypeError, ValueError) as exc:
            raise ApiError(401, "The token subject must be a user id.") from exc
        if user_id <= 0:
            raise ApiError(401, "The token subject must be a user id.")
        roles = claims.get("roles") or []
        principal = Principal(
            user_id=user_id,
            is_admin=bool(claims.get("admin")) or (isinstance(roles, list) and "admin" in roles),
            first_name=_text(claims.get("given_name")),
            last_name=_text(claims.get("family_name")),
            username=_text(claims.get("preferred_username")),
            picture=_text(claims.get("picture")),
            region=_text(claims.get("region")),
        )
        return principal, float(claims["exp"])


def _text(value: Any) -> str | None:
    return str(value)[:500] if value not in (None, "") else None


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "Use an Authorization header of the form 'Bearer <token>'.")
    return token.strip()
