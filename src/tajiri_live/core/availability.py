"""Dependencies that fail are named and degrade cleanly.

- At start, `preflight` reaches the database and Redis and fails in seconds with one line
  naming what is unreachable (a URL's password masked).
- At run time, an error of the connection to Redis or the database is answered 503 with
  `Retry-After` and a readable message (never a 500); `/ready` runs the named checks of
  `readiness_checks` and answers 503 naming the one that is down. The service recovers by
  itself: nothing here holds state, every request tries again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine

from tajiri_live.core.db import create_engine
from tajiri_live.core.reads import ConnectionLost
from tajiri_live.core.settings import Settings

RETRY_AFTER_SECONDS = 5
CHECK_TIMEOUT_SECONDS = 3.0

DATABASE_ERRORS = (OperationalError, InterfaceError, PoolTimeout)
CONNECTION_ERRORS = (ConnectionError, TimeoutError)


class DependencyUnavailable(Exception):
    """A dependency cannot be reached at start; the message is the one line to print."""


def mask_url(url: str) -> str:
    """The URL with its password (if any) replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))


def dependency_of(exc: BaseException) -> str | None:
    """Which dependency an error says is unavailable, or None when it is not such an error."""
    if isinstance(exc, RedisError):
        return "Redis"
    if isinstance(exc, DATABASE_ERRORS):
        return "the database"
    if isinstance(exc, ConnectionLost):
        return "the database"
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        # The connection dropped mid-statement: asyncpg says so with a plain driver error.
        return "the database"
    if isinstance(exc, CONNECTION_ERRORS):
        return _raised_by(exc) or "a backing service"
    return None


# A driver's own connection errors are plain OSErrors: who raised one says which it was.
DRIVER_PACKAGES = {
    "sqlalchemy": "the database",
    "asyncpg": "the database",
    "aiosqlite": "the database",
    "asyncmy": "the database",
    "redis": "Redis",
}


def _raised_by(exc: BaseException) -> str | None:
    traceback = exc.__traceback__
    found = None
    while traceback is not None:  # the innermost driver frame decides
        package = str(traceback.tb_frame.f_globals.get("__name__", "")).split(".")[0]
        found = DRIVER_PACKAGES.get(package, found)
        traceback = traceback.tb_next
    return found


def unavailable_message(dependency: str) -> str:
    return (
        f"The service is temporarily unavailable ({dependency} cannot be reached); "
        f"retry in {RETRY_AFTER_SECONDS} seconds."
    )


Check = Callable[[], Awaitable[str | None]]


@dataclass(frozen=True)
class ReadinessCheck:
    """A named dependency check: None when it answers, else a readable problem."""

    name: str
    check: Check


def _problem(exc: BaseException) -> str:
    detail = str(exc).splitlines()[0][:120] if str(exc) else ""
    return f"unreachable ({type(exc).__name__}{': ' + detail if detail else ''})"


def database_check(engine: AsyncEngine) -> Check:
    async def check() -> str | None:
        try:
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception as exc:
            return _problem(exc)
        return None

    return check


def redis_check(redis: Redis) -> Check:
    async def check() -> str | None:
        try:
            await redis.ping()
        except Exception as exc:
            return _problem(exc)
        return None

    return check


async def run_checks(checks: list[ReadinessCheck]) -> dict[str, str]:
    """name -> "ok" or the problem, each check bounded in time, all at once."""

    async def one(item: ReadinessCheck) -> str:
        try:
            problem = await asyncio.wait_for(item.check(), CHECK_TIMEOUT_SECONDS)
        except TimeoutError:
            problem = f"no answer within {CHECK_TIMEOUT_SECONDS:g} s"
        except Exception as exc:  # a check that raises is a failed check
            problem = _problem(exc)
        return problem or "ok"

    results = await asyncio.gather(*(one(item) for item in checks))
    return {item.name: result for item, result in zip(checks, results, strict=True)}


async def check_dependencies(settings: Settings) -> None:
    """Before serving: the database and Redis answer, or one line says which does not."""
    engine = create_engine(settings.resolved_database_url)
    try:
        problem = (await run_checks([ReadinessCheck("database", database_check(engine))]))[
            "database"
        ]
    finally:
        await engine.dispose()
    if problem != "ok":
        where = mask_url(settings.resolved_database_url)
        raise DependencyUnavailable(f"The database at {where} is {problem}")
    if settings.redis_url:
        redis = Redis.from_url(
            settings.redis_url,
            socket_connect_timeout=settings.redis_connect_timeout_seconds,
            socket_timeout=settings.redis_socket_timeout_seconds,
        )
        try:
            await preflight(redis_url=settings.redis_url, redis=redis)
        finally:
            await redis.aclose()


async def preflight(*, redis_url: str | None, redis: Redis | None) -> None:
    """Fail fast, with the URL, when Redis cannot be reached at start."""
    if redis is None or redis_url is None:
        return
    problem = await run_checks([ReadinessCheck("redis", redis_check(redis))])
    if problem["redis"] != "ok":
        raise DependencyUnavailable(f"Redis at {mask_url(redis_url)} is {problem['redis']}")
