"""Token introspection: ask the main app who a bearer token belongs to (e.g. Laravel's
`GET /api/user` behind `auth:sanctum`). 200 with a user object signs the caller in; 401 or
403 refuses; anything else means the main app cannot answer now (503, never cached)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import aiohttp
import orjson

from tajiri_live.core.auth.httpbody import TooLarge, read_capped
from tajiri_live.core.auth.principal import INTROSPECTION, Principal, profile_text
from tajiri_live.core.errors import ApiError

log = logging.getLogger(__name__)

MAX_ANSWER_BYTES = 256 * 1024


class IntrospectionUnavailable(ApiError):
    def __init__(self) -> None:
        super().__init__(
            503,
            "Sign-in is unavailable: the account service does not answer. Try again shortly.",
            headers={"Retry-After": "5"},
        )


class Introspection:
    def __init__(self, url: str, *, timeout_seconds: float = 5.0) -> None:
        self.url = url
        self._timeout = timeout_seconds
        self._http: aiohttp.ClientSession | None = None
        self.calls = 0

    async def authenticate(self, token: str) -> Principal:
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout))
        self.calls += 1
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        try:
            async with self._http.get(self.url, headers=headers, allow_redirects=False) as answer:
                status = answer.status
                body = await read_capped(answer, MAX_ANSWER_BYTES) if status == 200 else b""
        except (aiohttp.ClientError, TimeoutError, TooLarge) as error:
            log.warning("introspection failed: %s", type(error).__name__)
            raise IntrospectionUnavailable() from error
        if status in (401, 403):
            raise ApiError(401, "The token was refused by the account service.")
        if status != 200:
            log.warning("introspection answered HTTP %s", status)
            raise IntrospectionUnavailable()
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError as error:
            log.warning("introspection answered something that is not JSON")
            raise IntrospectionUnavailable() from error
        return _principal(document)

    async def ping(self) -> None:
        """Raises when the account service does not answer at all (readiness): any HTTP
        answer, a 401 to this tokenless call included, means it is up."""
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout))
        async with self._http.get(
            self.url, headers={"Accept": "application/json"}, allow_redirects=False
        ):
            return

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None


def _principal(document: Any) -> Principal:
    """Laravel answers the user itself, or wrapped in `data` or `user`."""
    user = document
    for wrapper in ("data", "user"):
        if isinstance(user, dict) and isinstance(user.get(wrapper), dict):
            user = user[wrapper]
    user_id = user.get("id") if isinstance(user, dict) else None
    if isinstance(user_id, str) and user_id.isascii() and user_id.isdigit():
        user_id = int(user_id)
    if not isinstance(user_id, int) or isinstance(user_id, bool) or not 0 < user_id <= 2**62:
        raise IntrospectionUnavailable()
    assert isinstance(user, dict)
    roles = user.get("roles") or []
    return Principal(
        user_id=user_id,
        is_admin=user.get("is_admin") is True or (isinstance(roles, list) and "admin" in roles),
        first_name=profile_text(user.get("first_name")),
        last_name=profile_text(user.get("last_name")),
        username=profile_text(user.get("username")),
        picture=profile_text(user.get("profile_photo_path")),
        source=INTROSPECTION,
        expires_at=_expiry(user.get("token_expires_at")),
    )


def _expiry(value: Any) -> float | None:
    """An optional expiry the main app may add to its answer (ISO 8601 or epoch seconds)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return moment.timestamp() if moment.tzinfo is not None else None
    return None
