"""Who is calling: the authenticator chain, its cache, socket tokens and claimed ids.

Authenticators are tried in a fixed order, each only when configured: JWT (a static key or a
JWKS endpoint) for JWT-shaped tokens, then Sanctum (the main app's `personal_access_tokens`),
then introspection (the main app answers who the token is). The first that recognises the
token decides. Answers are cached per process for `TAJIRI_AUTH_CACHE_SECONDS`, refusals too
(so a flood of bad tokens costs one lookup per distinct token per window), and concurrent
requests with the same unknown token wait for one lookup. "Cannot answer now" (a database
or service that is down) is never cached: it is a 503 until the dependency is back.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from tajiri_live.core.auth.introspection import Introspection
from tajiri_live.core.auth.jwks import JwksKeys
from tajiri_live.core.auth.jwt import TokenCodec, looks_like_jwt
from tajiri_live.core.auth.principal import LEGACY, Principal
from tajiri_live.core.auth.sanctum import SanctumConfig, SanctumTokens
from tajiri_live.core.auth.viewer import ViewerTokens, is_viewer_token
from tajiri_live.core.errors import ApiError
from tajiri_live.core.medialinks import derive
from tajiri_live.core.settings import Settings

log = logging.getLogger(__name__)

MAX_TOKEN_CHARS = 4096
CACHE_SIZE = 100_000
VIEWER_TOKEN_REFUSAL = (
    "This is a viewer token: it opens sockets only. Send the user's own token to the API."
)
T = TypeVar("T")


@dataclass
class IdentityStats:
    """What /metrics shows of identity."""

    legacy_requests: int = 0  # REST requests identified by a claimed id (no token)
    legacy_sockets: int = 0  # sockets opened with ?user_id= and no token
    cache_hits: int = 0
    lookups: int = 0  # tokens resolved by an authenticator (cache misses)
    refused: int = 0
    unavailable: int = 0
    by_source: dict[str, int] = field(default_factory=dict)


# What the cache keeps of a refusal: its status and message. Not the exception: one with its
# traceback holds the frames and the token text (kilobytes per bad token).
Refusal = tuple[int, str]
# (until, answer): plain tuples, which the garbage collector stops tracking.
Entry = tuple[float, "Principal | Refusal | bool | None"]


class Identity:
    def __init__(
        self,
        *,
        jwt: TokenCodec | None,
        sanctum: SanctumTokens | None,
        introspection: Introspection | None,
        viewer_tokens: ViewerTokens,
        cache_seconds: float,
        legacy_client_identity: bool,
        refusals_per_address: int = 0,
    ) -> None:
        self.jwt = jwt if jwt is not None and jwt.enabled else None
        self.sanctum = sanctum
        self.introspection = introspection
        self.viewer_tokens = viewer_tokens
        self.cache_seconds = cache_seconds
        self.legacy_client_identity = legacy_client_identity
        self.stats = IdentityStats()
        self.refusals_per_address = refusals_per_address
        self._cache: dict[bytes, Entry] = {}
        self._inflight: dict[bytes, asyncio.Task[object]] = {}
        self._refusals: dict[str, tuple[float, int]] = {}  # address -> (window start, count)

    @property
    def authenticators(self) -> list[str]:
        present = {"jwt": self.jwt, "sanctum": self.sanctum, "introspection": self.introspection}
        return [name for name, part in present.items() if part is not None]

    # --- bearer tokens (REST) -------------------------------------------------------------

    async def authenticate(self, token: str, *, address: str | None = None) -> Principal:
        """The token's principal, or ApiError 401 (refused) / 503 (cannot tell now).

        `address` (the client's) bounds the lookups a stream of bad tokens may cause: past
        `refusals_per_address` refused lookups in a window, its uncached tokens get a 429."""
        _check_shape(token)
        key = b"t:" + _digest(token)
        found = self._hit(key)
        if found is _MISS:
            if address is not None and self._too_many_refusals(address):
                raise ApiError(
                    429,
                    "Too many sign-ins with unknown tokens from this address: "
                    f"try again in {int(REFUSAL_WINDOW_SECONDS)} s.",
                    headers={"Retry-After": str(int(REFUSAL_WINDOW_SECONDS))},
                )
            # Requests that wait on a lookup already under way are not lookups of their own.
            leads = key not in self._inflight
            if self._resolves_now(token):
                # Checked with a key in hand, nothing awaited: no task for others to share
                # (a task and its shield were a twentieth of a new user's join).
                self.stats.lookups += 1
                found = self._settled_now(key, token)
            else:
                found = await self._lookup(key, lambda: self._resolve(token))
            if address is not None and leads and _is_refusal(found):
                self._note_refusal(address)
        return _principal_or_raise(found)

    def _resolves_now(self, token: str) -> bool:
        """What `_resolve` answers without awaiting anything: a viewer token's refusal, or a
        JWT the static key checks."""
        return looks_like_jwt(token) and (
            is_viewer_token(token) or (self.jwt is not None and self.jwt.checks_locally(token))
        )

    def _resolve_now(self, token: str) -> Principal:
        if is_viewer_token(token):
            raise ApiError(401, VIEWER_TOKEN_REFUSAL)
        assert self.jwt is not None  # as _resolves_now found
        return self._count(self.jwt.decode(token))

    async def _resolve(self, token: str) -> Principal:
        if looks_like_jwt(token) and is_viewer_token(token):
            raise ApiError(401, VIEWER_TOKEN_REFUSAL)
        if self.jwt is not None and looks_like_jwt(token):
            return self._count(await self.jwt.verify(token))
        if self.sanctum is not None and self.sanctum.recognises(token):
            principal = await self.sanctum.authenticate(token)
            if principal is not None:
                return self._count(principal)
        if self.introspection is not None:
            return self._count(await self.introspection.authenticate(token))
        raise ApiError(401, "The token is invalid.")

    def _count(self, principal: Principal) -> Principal:
        by_source = self.stats.by_source
        by_source[principal.source] = by_source.get(principal.source, 0) + 1
        return principal

    # --- sockets -------------------------------------------------------------------------

    async def authenticate_socket(self, token: str, *, address: str | None = None) -> Principal:
        """A user token, or a viewer token minted by `join` (sockets only)."""
        _check_shape(token)
        viewer = self.viewer_tokens.read(token)
        if viewer is None:
            return await self.authenticate(token, address=address)
        if viewer.source == LEGACY and not self.legacy_client_identity:
            raise ApiError(401, "This viewer token came from a request without a token: sign in.")
        credential = viewer.credential or ""
        if credential.startswith("sanctum:") and not await self._credential_alive(
            credential, viewer.user_id
        ):
            raise ApiError(401, "The sign-in this viewer token came from was revoked.")
        return viewer

    async def _credential_alive(self, credential: str, user_id: int) -> bool:
        sanctum = self.sanctum
        if sanctum is None:
            return False
        _, token_id, fingerprint = [*credential.split(":"), "", ""][:3]
        if not token_id.isdigit():
            return False
        alive = await self._cached(
            b"c:" + credential.encode(),
            lambda: sanctum.token_alive(int(token_id), fingerprint=fingerprint, user_id=user_id),
        )
        return bool(alive)

    def mint_viewer_token(self, principal: Principal) -> str:
        return self.viewer_tokens.mint(principal)

    # --- ids a client names ----------------------------------------------------------------

    async def claimed(self, user_id: int) -> Principal:
        """The unmodified client's caller: trusted by setting. When the main app's users table
        is reachable, the id must exist there and the profile comes from it."""
        if self.sanctum is None:
            return Principal(user_id=user_id, source=LEGACY)
        found = await self.known_user(user_id)
        if found is None:
            raise ApiError(401, "Unknown user.")
        return Principal(
            user_id=user_id,
            first_name=found.first_name,
            last_name=found.last_name,
            username=found.username,
            picture=found.picture,
            source=LEGACY,
        )

    async def known_user(self, user_id: int) -> Principal | None:
        """The main app's user with this id; None when it has none. ApiError 404 when no
        identity source can tell (the caller decides what that means)."""
        sanctum = self.sanctum
        if sanctum is None:
            raise ApiError(404, "Users are not known here until they sign in.")
        found = await self._cached(b"u:%d" % user_id, lambda: sanctum.user_profile(user_id))
        return found if isinstance(found, Principal) else None

    # --- the cache ---------------------------------------------------------------------------

    async def _cached(self, key: bytes, resolve: Callable[[], Awaitable[T]]) -> T:
        found = self._hit(key)
        if found is _MISS:
            found = await self._lookup(key, resolve)
        if _is_refusal(found):
            raise _error(found)  # type: ignore[arg-type]
        return found  # type: ignore[return-value]

    def _hit(self, key: bytes) -> object:
        entry = self._cache.get(key)
        if entry is None or entry[0] <= time.monotonic():
            return _MISS
        self.stats.cache_hits += 1
        return entry[1]

    async def _lookup(self, key: bytes, resolve: Callable[[], Awaitable[object]]) -> object:
        """One lookup per key at a time, in a task of its own: a caller that hangs up does not
        cancel it for the others waiting on the same answer."""
        task = self._inflight.get(key)
        if task is None:
            self.stats.lookups += 1
            task = asyncio.get_running_loop().create_task(self._settle(key, resolve))
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))
        return await asyncio.shield(task)

    async def _settle(self, key: bytes, resolve: Callable[[], Awaitable[object]]) -> object:
        try:
            value = await resolve()
        except ApiError as error:
            return self._refused(key, error)
        self._store(key, value)  # type: ignore[arg-type]
        return value

    def _settled_now(self, key: bytes, token: str) -> object:
        """`_settle` for a token `_resolves_now`."""
        try:
            value = self._resolve_now(token)
        except ApiError as error:
            return self._refused(key, error)
        self._store(key, value)
        return value

    def _refused(self, key: bytes, error: ApiError) -> object:
        if error.status_code >= 500:
            self.stats.unavailable += 1  # "cannot tell now" is never remembered
            return _Unavailable(error.status_code, error.message, error.headers)
        refusal: Refusal = (error.status_code, error.message)
        self.stats.refused += 1
        self._store(key, refusal)
        return refusal

    def _forget(self, key: bytes, task: asyncio.Task[object]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]

    def _store(self, key: bytes, value: Principal | Refusal | bool | None) -> None:
        now = time.monotonic()
        until = now + self.cache_seconds
        if isinstance(value, Principal) and value.expires_at is not None:
            until = min(until, now + (value.expires_at - time.time()))
        if len(self._cache) >= CACHE_SIZE:
            self._make_room(now)
        self._cache[key] = (until, value)

    def _make_room(self, now: float) -> None:
        """Drop what has expired; if that is not enough, the oldest tenth."""
        expired = [k for k, (until, _) in self._cache.items() if until <= now]
        for stale in expired:
            del self._cache[stale]
        if len(self._cache) >= CACHE_SIZE * 0.9:
            for stale in list(self._cache)[: CACHE_SIZE // 10]:
                del self._cache[stale]

    def _too_many_refusals(self, address: str) -> bool:
        if not self.refusals_per_address:
            return False
        start, count = self._refusals.get(address, (0.0, 0))
        return time.monotonic() - start < REFUSAL_WINDOW_SECONDS and count >= (
            self.refusals_per_address
        )

    def _note_refusal(self, address: str) -> None:
        now = time.monotonic()
        start, count = self._refusals.get(address, (now, 0))
        if now - start >= REFUSAL_WINDOW_SECONDS:
            start, count = now, 0
        if len(self._refusals) > 100_000:  # forget finished windows now and then
            self._refusals = {
                a: w for a, w in self._refusals.items() if now - w[0] < REFUSAL_WINDOW_SECONDS
            }
        self._refusals[address] = (start, count + 1)

    # --- operations --------------------------------------------------------------------------

    def readiness(self) -> list[tuple[str, Callable[[], Awaitable[str | None]]]]:
        """Identity's dependencies for /ready: name -> a check answering None when it is up,
        else what is wrong (provider details stay in the logs)."""
        checks: list[tuple[str, Callable[[], Awaitable[str | None]]]] = []
        sanctum, introspection = self.sanctum, self.introspection
        if sanctum is not None:

            async def sanctum_database() -> str | None:
                try:
                    await sanctum.ping()
                except Exception as error:  # any failure means sign-ins will fail
                    return f"unreachable ({type(error).__name__})"
                return None

            checks.append(("sanctum_database", sanctum_database))
        if introspection is not None:

            async def account_service() -> str | None:
                try:
                    await introspection.ping()
                except Exception as error:  # no answer at all: every new sign-in is a 503
                    return f"unreachable ({type(error).__name__})"
                return None

            checks.append(("introspection", account_service))
        jwks = self.jwt.jwks if self.jwt is not None else None
        if jwks is not None:
            keys = jwks

            async def key_set() -> str | None:
                if not keys.loaded and keys.last_error:
                    return "no keys loaded yet: the key set cannot be read (see the logs)"
                return None

            checks.append(("jwks", key_set))
        return checks

    def describe(self) -> dict[str, object]:
        return {
            "authenticators": self.authenticators,
            "legacy_client_identity": self.legacy_client_identity,
        }

    # --- lifecycle ---------------------------------------------------------------------------

    async def flush(self) -> None:
        """Background work: Sanctum's `last_used_at` writes."""
        if self.sanctum is not None:
            await self.sanctum.flush_last_used()

    async def close(self) -> None:
        for part in (self.jwt, self.sanctum, self.introspection):
            if part is not None:
                await part.close()


_MISS = object()
REFUSAL_WINDOW_SECONDS = 10.0


@dataclass(frozen=True)
class _Unavailable:
    """A 503 handed to every caller waiting on the same lookup (never cached)."""

    status: int
    message: str
    headers: dict[str, str]


def _is_refusal(found: object) -> bool:
    return isinstance(found, tuple | _Unavailable)


def _error(found: Refusal | _Unavailable) -> ApiError:
    if isinstance(found, _Unavailable):
        return ApiError(found.status, found.message, headers=found.headers)
    return ApiError(found[0], found[1])


def _principal_or_raise(found: object) -> Principal:
    if _is_refusal(found):
        raise _error(found)  # type: ignore[arg-type]
    assert isinstance(found, Principal)
    return found


def _digest(token: str) -> bytes:
    # Tokens may be 4 KB: the cache keeps 16 bytes of them, not the text.
    return hashlib.blake2b(token.encode(), digest_size=16).digest()


def _check_shape(token: str) -> None:
    if len(token) > MAX_TOKEN_CHARS:
        raise ApiError(401, "The token is invalid: it is too long.")
    if not token.isascii() or not token.isprintable():
        raise ApiError(401, "The token is invalid: it has characters no token has.")


def build_identity(settings: Settings, tokens: TokenCodec | None) -> Identity:
    """The chain the settings describe (each authenticator only when configured)."""
    sanctum = None
    if settings.auth_sanctum_database_url:
        sanctum = SanctumTokens(
            SanctumConfig(
                database_url=settings.auth_sanctum_database_url,
                user_model=settings.auth_sanctum_user_model,
                expiration_minutes=settings.auth_sanctum_expiration_minutes,
                tokens_table=settings.auth_sanctum_tokens_table,
                users_table=settings.auth_sanctum_users_table,
                timezone=settings.auth_sanctum_timezone,
                touch_last_used=settings.auth_sanctum_touch_last_used,
                admin_ability=settings.auth_sanctum_admin_ability,
            )
        )
    introspection = None
    if settings.auth_introspection_url:
        introspection = Introspection(
            settings.auth_introspection_url,
            timeout_seconds=settings.auth_introspection_timeout_seconds,
        )
    secret = settings.viewer_token_secret or derive(settings, "viewer tokens")
    identity = Identity(
        jwt=tokens,
        sanctum=sanctum,
        introspection=introspection,
        viewer_tokens=ViewerTokens(
            secret,
            ttl_seconds=settings.viewer_token_ttl_seconds,
            unchecked_ttl_seconds=settings.viewer_token_unchecked_ttl_seconds,
        ),
        cache_seconds=settings.auth_cache_seconds,
        legacy_client_identity=settings.legacy_client_identity,
        refusals_per_address=settings.auth_refusals_per_address,
    )
    if not identity.authenticators:
        raise RuntimeError(
            "no authenticator configured: set TAJIRI_JWT_SECRET, TAJIRI_JWT_PUBLIC_KEY, "
            "TAJIRI_JWT_JWKS_URL, TAJIRI_AUTH_SANCTUM_DATABASE_URL or "
            "TAJIRI_AUTH_INTROSPECTION_URL"
        )
    return identity


def build_token_codec(settings: Settings) -> TokenCodec | None:
    """The JWT verifier (and the signer of `tajiri-live token`), when JWTs are configured."""
    jwks = None
    if settings.jwt_jwks_url:
        jwks = JwksKeys(
            settings.jwt_jwks_url,
            min_refresh_seconds=settings.jwt_jwks_min_refresh_seconds,
            timeout_seconds=settings.jwt_jwks_timeout_seconds,
        )
    if not (settings.jwt_secret or settings.jwt_public_key or jwks):
        return None
    return TokenCodec(settings, jwks=jwks)
