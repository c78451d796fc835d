"""Users are created or updated just in time from token claims; follows are read here."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession

from tajiri_live.core.auth import Principal
from tajiri_live.core.columns import utcnow
from tajiri_live.core.db import dialect_insert
from tajiri_live.users.models import Follow, User

PROFILE_FIELDS = ("first_name", "last_name", "username", "profile_photo_path")


async def sync_user(
    session: AsyncSession,
    *,
    principal: Principal,
    cache: dict[int, tuple[str | None, ...]],
) -> None:
    """Make sure the caller has a row whose profile matches the token (one upsert, cached)."""
    profile = principal.profile()
    if cache.get(principal.user_id) == profile:
        return
    now = utcnow()
    values: dict[str, Any] = {"id": principal.user_id, "created_at": now, "updated_at": now}
    values.update({k: v for k, v in zip(PROFILE_FIELDS, profile, strict=True) if v is not None})
    statement = profile_upsert(dialect_insert(session), tuple(values))
    await session.execute(statement, values)
    await session.commit()
    if len(cache) > 100_000:
        cache.clear()
    cache[principal.user_id] = profile


@functools.cache
def profile_upsert(insert: Any, columns: tuple[str, ...]) -> Any:
    """One statement per dialect and set of columns, built once: building it per call made a
    table alias (`excluded`) per request, cyclic garbage that lengthens the collector's pauses."""
    return upserting_profile(insert(User), columns)


def upserting_profile(statement: Any, columns: tuple[str, ...]) -> Any:
    """`statement`, an INSERT of `columns` into users, as an upsert of the profile."""
    changes = {k: statement.excluded[k] for k in columns if k not in ("id", "created_at")}
    return statement.on_conflict_do_update(index_elements=["id"], set_=changes)


async def ensure_user(session: AsyncSession, *, user_id: int, now: datetime) -> None:
    """A row for a user known here only by id (invited, banned or credited before they
    ever signed in); their profile fills in from their first token. One insert that a
    concurrent request making the same row cannot fail (it used to: a read, then an insert)."""
    if await session.get(User, user_id) is not None:  # the usual case: one read, no write
        return
    insert = dialect_insert(session)
    await session.execute(
        insert(User)
        .values(id=user_id, created_at=now, updated_at=now)
        .on_conflict_do_nothing(index_elements=["id"])
    )


async def lock_user(session: AsyncSession, user_id: int) -> None:
    """Hold the user's row until the transaction ends: that user's read-modify-write requests
    run one at a time (PostgreSQL; SQLite has one writer at a time anyway)."""
    await session.execute(select(User.id).where(User.id == user_id).with_for_update())


async def get_user(session: AsyncSession, user_id: int) -> User | None:
    return await session.get(User, user_id)


async def is_mutual_follow(session: AsyncSession, *, a: int, b: int) -> bool:
    follows_ab = select(Follow.id).where(and_(Follow.follower_id == a, Follow.followed_id == b))
    follows_ba = select(Follow.id).where(and_(Follow.follower_id == b, Follow.followed_id == a))
    return bool(await session.scalar(select(follows_ab.exists() & follows_ba.exists())))
