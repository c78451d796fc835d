"""Laravel Sanctum personal access tokens, read from the main app's own database.

A token is `{id}|{plaintext}`: the row is found by id and its `token` column (the SHA-256 of
the plaintext, hex) compared in constant time. A token without `|` is found by its hash, as
Sanctum does. The main app's tables are read with plain SQL on a pool of their own, so any
SQLAlchemy async URL works (`postgresql+asyncpg://`, `mysql+asyncmy://`). `last_used_at` is
written at most once a minute per token by a background flush, never while a request waits,
and not at all when the setting switches it off (read-only credentials are then enough).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy import bindparam, column, select, table, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tajiri_live.core.auth.principal import SANCTUM, Principal, profile_text
from tajiri_live.core.errors import ApiError

log = logging.getLogger(__name__)

LOOKUP_TIMEOUT_SECONDS = 5.0
QUEUE_TIMEOUT_SECONDS = 10.0  # a lookup that cannot even start within this is a 503
POOL_SIZE = 10
TOUCH_EVERY_SECONDS = 60.0  # Sanctum's own throttle on last_used_at writes is per request
MAX_PLAINTEXT = 255
FINGERPRINT_CHARS = 16  # of the stored hash, in the viewer tokens minted from a token


class SanctumUnavailable(ApiError):
    def __init__(self) -> None:
        super().__init__(
            503,
            "Sign-in is unavailable: the account database cannot be reached. Try again shortly.",
            headers={"Retry-After": "5"},
        )


@dataclass(frozen=True)
class SanctumConfig:
    database_url: str
    user_model: str = "App\\Models\\User"
    expiration_minutes: float | None = None
    tokens_table: str = "personal_access_tokens"
    users_table: str = "users"
    timezone: str = "UTC"  # the main app's APP_TIMEZONE: how its naive timestamps are meant
    touch_last_used: bool = True
    admin_ability: str | None = None


class SanctumTokens:
    def __init__(self, config: SanctumConfig) -> None:
        self.config = config
        self._zone = ZoneInfo(config.timezone)
        # No pre-ping (it doubles the round trips of every lookup): a connection found dead
        # is retried once on a fresh one instead.
        self._engine: AsyncEngine = create_async_engine(
            config.database_url,
            pool_size=POOL_SIZE,
            max_overflow=0,
            pool_recycle=1800,  # MySQL drops idle connections after wait_timeout
            connect_args=_connect_timeout(config.database_url),
        )
        # Lookups queue here, not in the pool: waiting for a turn is not "the database is
        # down", and the query's own timeout starts when it runs.
        self._turns = asyncio.Semaphore(POOL_SIZE)
        self._tokens = table(
            config.tokens_table,
            column("id"),
            column("tokenable_type"),
            column("tokenable_id"),
            column("token"),
            column("abilities"),
            column("last_used_at"),
            column("expires_at"),
            column("created_at"),
        )
        self._users = table(
            config.users_table,
            column("id"),
            column("first_name"),
            column("last_name"),
            column("username"),
            column("profile_photo_path"),
        )
        self._touched: dict[int, float] = {}  # token id -> when we last wrote last_used_at
        self._pending: dict[int, datetime] = {}  # token id -> last use not yet written
        self.lookups = 0  # database round trips made for tokens (tests count them)

    # --- tokens --------------------------------------------------------------------------

    @staticmethod
    def recognises(token: str) -> bool:
        """Sanctum's shapes: `{digits}|{plaintext}`, or a bare plaintext."""
        if "|" in token:
            token_id, _, plain = token.partition("|")
            return token_id.isascii() and token_id.isdigit() and 0 < len(plain) <= MAX_PLAINTEXT
        return 0 < len(token) <= MAX_PLAINTEXT and "." not in token

    async def authenticate(self, token: str) -> Principal | None:
        """The token's user; None when no row has this token (another authenticator may know
        it); ApiError 401 when a row has it but it may not be used."""
        if "|" in token:
            token_id_text, _, plain = token.partition("|")
            if not (token_id_text.isascii() and token_id_text.isdigit()):
                raise ApiError(401, "The token is invalid: its id must be a number.")
            token_id = int(token_id_text)
            if token_id <= 0 or token_id > 2**63 - 1:
                return None
            condition = self._tokens.c.id == token_id
        else:
            plain, condition = token, None
        digest = hashlib.sha256(plain.encode()).hexdigest()
        if condition is None:
            condition = self._tokens.c.token == digest
        row = await self._fetch(condition)
        if row is None or not hmac.compare_digest(str(row["token"]).encode(), digest.encode()):
            return None
        return self._principal(row)

    async def token_alive(self, token_id: int, *, fingerprint: str, user_id: int) -> bool:
        """Whether the very token a viewer token came from (its id, the start of its hash and
        its user, so a reused id is not mistaken for it) still exists, unexpired, with its
        user."""
        row = await self._fetch(self._tokens.c.id == token_id)
        if row is None or len(fingerprint) < FINGERPRINT_CHARS:
            return False
        if int(row["tokenable_id"]) != user_id or not hmac.compare_digest(
            str(row["token"])[:FINGERPRINT_CHARS].encode(), fingerprint.encode()
        ):
            return False
        try:
            self._principal(row, touch=False)
        except ApiError:
            return False
        return True

    async def _fetch(self, condition: Any) -> dict[str, Any] | None:
        tokens, users = self._tokens, self._users
        query = (
            select(
                tokens.c.id,
                tokens.c.tokenable_type,
                tokens.c.tokenable_id,
                tokens.c.token,
                tokens.c.abilities,
                tokens.c.expires_at,
                tokens.c.created_at,
                users.c.id.label("user_row"),
                users.c.first_name,
                users.c.last_name,
                users.c.username,
                users.c.profile_photo_path,
            )
            .select_from(tokens.outerjoin(users, users.c.id == tokens.c.tokenable_id))
            .where(condition)
            .limit(1)
        )
        self.lookups += 1
        row = await self._first(query)
        return dict(row) if row is not None else None

    async def _first(self, query: Any) -> Any:
        """The query's first row, on a turn of the pool; one retry on a dead connection."""
        try:
            async with asyncio.timeout(QUEUE_TIMEOUT_SECONDS):
                await self._turns.acquire()
        except TimeoutError as error:
            log.warning("Sanctum lookups queued for %.0f s", QUEUE_TIMEOUT_SECONDS)
            raise SanctumUnavailable() from error
        try:
            for attempt in (1, 2):
                try:
                    async with asyncio.timeout(LOOKUP_TIMEOUT_SECONDS):
                        async with self._engine.connect() as connection:
                            return (await connection.execute(query)).mappings().first()
                except DBAPIError as error:
                    if attempt == 1 and error.connection_invalidated:
                        continue  # the server closed an idle connection: once more, fresh
                    log.warning("Sanctum lookup failed: %s", type(error).__name__)
                    raise SanctumUnavailable() from error
                except (OSError, TimeoutError) as error:
                    log.warning("Sanctum lookup failed: %s", type(error).__name__)
                    raise SanctumUnavailable() from error
            raise SanctumUnavailable()
        finally:
            self._turns.release()

    def _principal(self, row: dict[str, Any], *, touch: bool = True) -> Principal:
        config = self.config
        if row["tokenable_type"] != config.user_model:
            raise ApiError(401, "The token does not belong to a user account.")
        now = datetime.now(UTC)
        expires = self._expiry(row)
        if expires is not None and expires <= now:
            raise ApiError(401, "The token has expired.")
        if row["user_row"] is None:
            raise ApiError(401, "The token's user no longer exists.")
        user_id = int(row["tokenable_id"])
        if touch:
            self._pending[int(row["id"])] = now
        return Principal(
            user_id=user_id,
            is_admin=self._is_admin(row["abilities"]),
            first_name=profile_text(row["first_name"]),
            last_name=profile_text(row["last_name"]),
            username=profile_text(row["username"]),
            picture=profile_text(row["profile_photo_path"]),
            source=SANCTUM,
            expires_at=expires.timestamp() if expires is not None else None,
            credential=f"sanctum:{int(row['id'])}:{str(row['token'])[:FINGERPRINT_CHARS]}",
        )

    def _expiry(self, row: dict[str, Any]) -> datetime | None:
        """The earlier of the row's `expires_at` and Sanctum's global `expiration`."""
        moments = []
        if row["expires_at"] is not None:
            moments.append(self._aware(row["expires_at"]))
        minutes = self.config.expiration_minutes
        if minutes is not None and row["created_at"] is not None:
            moments.append(self._aware(row["created_at"]) + timedelta(minutes=minutes))
        return min(moments) if moments else None

    def _aware(self, value: Any) -> datetime:
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if not isinstance(value, datetime):
            raise ApiError(401, "The token's dates cannot be read.")
        return value.replace(tzinfo=self._zone) if value.tzinfo is None else value

    def _is_admin(self, abilities: Any) -> bool:
        wanted = self.config.admin_ability
        if not wanted or not abilities:
            return False
        try:
            granted = orjson.loads(abilities) if isinstance(abilities, str | bytes) else abilities
        except orjson.JSONDecodeError:
            return False
        return isinstance(granted, list) and wanted in granted

    # --- users -----------------------------------------------------------------------------

    async def user_profile(self, user_id: int) -> Principal | None:
        """A user of the main app by id (None: no such user), for ids a client names."""
        users = self._users
        query = select(
            users.c.id,
            users.c.first_name,
            users.c.last_name,
            users.c.username,
            users.c.profile_photo_path,
        ).where(users.c.id == user_id)
        self.lookups += 1
        row = await self._first(query)
        if row is None:
            return None
        return Principal(
            user_id=user_id,
            first_name=profile_text(row["first_name"]),
            last_name=profile_text(row["last_name"]),
            username=profile_text(row["username"]),
            picture=profile_text(row["profile_photo_path"]),
        )

    # --- last_used_at ----------------------------------------------------------------------

    async def flush_last_used(self) -> int:
        """Write `last_used_at` for tokens used since their last write a minute or more ago."""
        if not self.config.touch_last_used or not self._pending:
            self._pending.clear()
            return 0
        now = time.monotonic()
        due = {
            token_id: used
            for token_id, used in self._pending.items()
            if now - self._touched.get(token_id, -TOUCH_EVERY_SECONDS) >= TOUCH_EVERY_SECONDS
        }
        for token_id in due:
            del self._pending[token_id]
        if not due:
            return 0
        tokens = self._tokens
        statement = (
            update(tokens)
            .where(tokens.c.id == bindparam("token_id"))
            .values(last_used_at=bindparam("used"))
        )
        rows = [
            {"token_id": token_id, "used": used.astimezone(self._zone).replace(tzinfo=None)}
            for token_id, used in due.items()
        ]
        try:
            async with asyncio.timeout(LOOKUP_TIMEOUT_SECONDS):
                async with self._engine.begin() as connection:
                    await connection.execute(statement, rows)
        except (OSError, TimeoutError, DBAPIError) as error:
            log.warning("Sanctum last_used_at write failed: %s", type(error).__name__)
            return 0
        for token_id in due:
            self._touched[token_id] = now
        if len(self._touched) > 100_000:  # forget tokens not written for a while
            self._touched = {k: v for k, v in self._touched.items() if now - v < 3600}
        return len(rows)

    async def ping(self) -> None:
        """Raises when the main app's database cannot be reached (readiness)."""
        from sqlalchemy import text

        async with asyncio.timeout(LOOKUP_TIMEOUT_SECONDS):
            async with self._engine.connect() as connection:
                await connection.execute(text("SELECT 1"))

    async def close(self) -> None:
        await self.flush_last_used()
        await self._engine.dispose()


def _connect_timeout(url: str) -> dict[str, Any]:
    if url.startswith("postgresql+asyncpg"):
        return {"timeout": LOOKUP_TIMEOUT_SECONDS}
    if url.startswith(("mysql+asyncmy", "mysql+aiomysql", "mariadb+asyncmy")):
        return {"connect_timeout": LOOKUP_TIMEOUT_SECONDS}
    return {}
