"""Signing keys from a JWKS endpoint (OIDC providers: Firebase Auth, Keycloak, Auth0...).

Keys are parsed by PyJWT (`PyJWKSet`), chosen by `kid`, cached, and fetched again when a token
names a `kid` we do not know — at most once per `min_refresh_seconds`, so a flood of forged
`kid`s cannot turn into a flood of requests to the provider. A fetch that fails, is slow or
returns garbage leaves the keys we already have in place.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import aiohttp
import jwt
import orjson

from tajiri_live.core.auth.httpbody import read_capped

log = logging.getLogger(__name__)

MAX_JWKS_BYTES = 512 * 1024
# Only asymmetric algorithms come from a key set: an HMAC "key" published in a JWKS would let
# anyone who reads it sign tokens.
ASYMMETRIC = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


class KeysUnavailable(Exception):
    """The key set could not be fetched and the token's key is not among those we have."""


class JwksKeys:
    def __init__(
        self,
        url: str,
        *,
        min_refresh_seconds: float = 60.0,
        max_age_seconds: float = 3600.0,
        timeout_seconds: float = 5.0,
    ) -> None:
        self.url = url
        self._min_refresh = min_refresh_seconds
        self._max_age = max_age_seconds
        self._timeout = timeout_seconds
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = 0.0  # last attempt, successful or not
        self._loaded_at = 0.0  # last successful load
        self._fetching: asyncio.Task[None] | None = None
        self._http: aiohttp.ClientSession | None = None
        self.fetches = 0  # attempts, for tests and metrics
        self.last_error: str | None = None

    @property
    def loaded(self) -> bool:
        return bool(self._keys)

    async def key_for(self, kid: str | None) -> jwt.PyJWK:
        """The key a token names; fetches the set when the `kid` is unknown (rate limited)."""
        key = self._pick(kid)
        now = time.monotonic()
        if key is not None and now - self._loaded_at <= self._max_age:
            return key
        if key is not None or now - self._fetched_at >= self._min_refresh:
            await self.refresh(force=key is None)
            key = self._pick(kid) or key
        if key is not None:
            return key
        if self.last_error:
            # The set could not be read: the key may well be new. Not a refusal to remember.
            raise KeysUnavailable(self.last_error)
        raise jwt.InvalidKeyError("The token's signing key is unknown.")

    def _pick(self, kid: str | None) -> jwt.PyJWK | None:
        key = self._keys.get(kid or "")
        if key is None and kid is None and len(self._keys) == 1:
            key = next(iter(self._keys.values()))
        return key

    async def refresh(self, *, force: bool = True) -> None:
        """Fetch the set once for every caller waiting on it."""
        if not force and time.monotonic() - self._fetched_at < self._min_refresh:
            return
        if self._fetching is None or self._fetching.done():
            self._fetching = asyncio.get_running_loop().create_task(self._fetch())
        await asyncio.shield(self._fetching)

    async def _fetch(self) -> None:
        self._fetched_at = time.monotonic()
        self.fetches += 1
        try:
            document = await self._download()
            keys = _parse(document)
        except Exception as error:  # anything the endpoint does wrong: keep the old keys
            self.last_error = f"JWKS {self.url} unusable: {type(error).__name__}: {error}"[:300]
            log.warning("%s; keeping %d known keys", self.last_error, len(self._keys))
            return
        self._keys = keys
        self._loaded_at = time.monotonic()
        self.last_error = None

    async def _download(self) -> Any:
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout))
        async with self._http.get(self.url, headers={"Accept": "application/json"}) as response:
            if response.status != 200:
                raise ValueError(f"HTTP {response.status}")
            return orjson.loads(await read_capped(response, MAX_JWKS_BYTES))

    async def close(self) -> None:
        if self._fetching is not None and not self._fetching.done():
            self._fetching.cancel()
        if self._http is not None:
            await self._http.close()
            self._http = None


def _parse(document: Any) -> dict[str, jwt.PyJWK]:
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWK set")
    keys: dict[str, jwt.PyJWK] = {}
    for entry in document["keys"]:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        try:
            key = jwt.PyJWK.from_dict(entry)
        except jwt.PyJWTError:
            continue  # a key type or algorithm we do not use; the others still count
        if key.algorithm_name not in ASYMMETRIC:
            continue
        keys[str(entry.get("kid") or "")] = key
    if not keys:
        raise ValueError("no usable signing keys")
    return keys
