"""Viewer tokens: what `join` hands a viewer for their socket.

Signed with a key of the service's own (so they work when the service only *verifies* user
tokens: an RS256 public key, JWKS, Sanctum), marked with their own header `typ` and audience
so the API refuses them, and never outliving the credential they were minted from: their
expiry is capped by that credential's, and a Sanctum-backed one names its token, which the
socket checks again (through the identity cache) before it trusts the viewer token.
"""

from __future__ import annotations

import time
from typing import Any

import jwt

from tajiri_live.core.auth.hs256 import Hs256Checker, Hs256Signer
from tajiri_live.core.auth.jwt import (
    VIEWER_TOKEN_TYPE,
    _user_id,
    prepared_key_jwt,
    unverified_header,
)
from tajiri_live.core.auth.principal import (
    INTROSPECTION,
    LEGACY,
    VIEWER,
    Principal,
    profile_text,
)
from tajiri_live.core.errors import ApiError

AUDIENCE = "tajiri-live:sockets"
ALGORITHM = "HS256"
REQUIRED_CLAIMS = ("sub", "exp")


def is_viewer_token(token: str) -> bool:
    header = unverified_header(token)
    return header is not None and header.get("typ") == VIEWER_TOKEN_TYPE


class ViewerTokens:
    def __init__(
        self, secret: str, *, ttl_seconds: float, unchecked_ttl_seconds: float | None = None
    ) -> None:
        self._secret = secret
        self._jwt = prepared_key_jwt()
        self._signer = Hs256Signer(secret, header={"typ": VIEWER_TOKEN_TYPE})
        self._plain_tokens = Hs256Checker(
            secret,
            issuer=None,
            audience=AUDIENCE,
            required=REQUIRED_CLAIMS,
            token_type=VIEWER_TOKEN_TYPE,
        )
        self._ttl = ttl_seconds
        self._unchecked_ttl = unchecked_ttl_seconds or ttl_seconds

    def mint(self, principal: Principal) -> str:
        now = time.time()
        expires = now + self._ttl
        if principal.expires_at is not None:
            expires = min(expires, principal.expires_at)
        elif principal.source == INTROSPECTION:
            # Neither an expiry nor a way to ask again without the user's token: short-lived.
            expires = min(expires, now + self._unchecked_ttl)
        claims: dict[str, Any] = {
            "sub": str(principal.user_id),
            "aud": AUDIENCE,
            "iat": int(now),
            "exp": int(expires),
            "src": principal.credential,
            "legacy": principal.source == LEGACY or None,
            "given_name": principal.first_name,
            "family_name": principal.last_name,
            "preferred_username": principal.username,
            "picture": principal.picture,
            "region": principal.region,
        }
        return self._signer.sign({k: v for k, v in claims.items() if v is not None})

    def read(self, token: str) -> Principal | None:
        """The viewer a token of ours names; None when it is not a viewer token at all;
        ApiError 401 when it is one but expired or forged."""
        if not is_viewer_token(token):
            return None
        claims = self._plain_tokens.claims(token)
        if claims is None:
            claims = self._checked_by_pyjwt(token)
        user_id = _user_id(claims.get("sub"))
        if user_id is None:
            raise ApiError(401, "The viewer token is invalid.")
        return Principal(
            user_id=user_id,
            first_name=profile_text(claims.get("given_name")),
            last_name=profile_text(claims.get("family_name")),
            username=profile_text(claims.get("preferred_username")),
            picture=profile_text(claims.get("picture")),
            region=profile_text(claims.get("region")),
            source=LEGACY if claims.get("legacy") is True else VIEWER,
            expires_at=float(claims["exp"]),
            credential=claims.get("src") if isinstance(claims.get("src"), str) else None,
        )

    def _checked_by_pyjwt(self, token: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = self._jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.ExpiredSignatureError as exc:
            raise ApiError(401, "The viewer token has expired: join the stream again.") from exc
        except jwt.PyJWTError as exc:
            raise ApiError(401, "The viewer token is invalid.") from exc
        return claims
