"""Identity: the authenticator chain (JWT, JWKS, Sanctum, introspection), socket tokens and
the caller they describe."""

from tajiri_live.core.auth.identity import Identity
from tajiri_live.core.auth.jwt import TokenCodec, bearer_token
from tajiri_live.core.auth.principal import Principal

__all__ = ["Identity", "Principal", "TokenCodec", "bearer_token"]
