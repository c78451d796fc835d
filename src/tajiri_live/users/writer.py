"""Profiles upserted in batches: the users that concurrent sign-ins bring are written together.

A join storm is thousands of new users in seconds; an upsert and a commit each on the
handshake path made the database the limit. The socket handshake only hands its user in and
goes on (what needs the row, its first action or viewing session, waits for it with
`ready`); REST requests wait for the batch their user is in (core/groupcommit.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Select, Table
from sqlalchemy.ext.asyncio import AsyncEngine

from tajiri_live.core.arrayinsert import array_insert, arrays, counting
from tajiri_live.core.auth import Principal
from tajiri_live.core.columns import utcnow
from tajiri_live.core.db import dialect_insert
from tajiri_live.core.groupcommit import GroupCommit
from tajiri_live.core.reads import Reader, direct_writer
from tajiri_live.users.models import User
from tajiri_live.users.service import PROFILE_FIELDS, profile_upsert, upserting_profile

USERS = cast(Table, User.__table__)
MAX_CACHED = 100_000
# A join storm brings a few new users a millisecond: batches of dozens, not of one or two
# (a transaction each cost more than the handshake); a REST request waits this much more.
LINGER_SECONDS = 0.01


@functools.cache
def _upsert_alone(columns: tuple[str, ...]) -> Select[Any]:
    """`profile_upsert` from one array per column, as one statement (it counts its rows)."""
    return counting(upserting_profile(array_insert(USERS, columns), columns), USERS.c.id)


@dataclass(frozen=True)
class PendingProfile:
    user_id: int
    profile: tuple[str | None, ...]

    def values(self) -> dict[str, Any]:
        now = utcnow()
        values: dict[str, Any] = {"id": self.user_id, "created_at": now, "updated_at": now}
        fields = zip(PROFILE_FIELDS, self.profile, strict=True)
        values.update({k: v for k, v in fields if v is not None})
        return values


class ProfileWriter:
    def __init__(
        self,
        engine: AsyncEngine,
        cache: dict[int, tuple[str | None, ...]],
        reader: Reader | None = None,
    ) -> None:
        self.engine = engine
        # Where the reader writes directly (asyncpg): each batch's upserts as statements
        # that commit alone (core/reads.py).
        self.reader = direct_writer(reader)
        self.cache = cache  # user id -> the profile last written
        self._writing: dict[int, tuple[PendingProfile, asyncio.Future[None]]] = {}
        self._batches: GroupCommit[PendingProfile, None] = GroupCommit(
            "profiles",
            self._write,
            describe=_describe,
            refused=lambda _, error: error,
            linger=LINGER_SECONDS,
        )

    def submit(self, principal: Principal) -> asyncio.Future[None] | None:
        """Hand the user's profile in unless it is written already; None: nothing to wait for."""
        pending = PendingProfile(principal.user_id, principal.profile())
        if self.cache.get(pending.user_id) == pending.profile:
            return None
        writing = self._writing.get(pending.user_id)
        if writing is not None and writing[0] == pending:
            return writing[1]
        written = self._batches.submit(pending)
        self._writing[pending.user_id] = (pending, written)
        written.add_done_callback(lambda done: self._settled(pending, done))
        return written

    async def write(self, principal: Principal) -> None:
        """The user's row matches the token once this returns."""
        written = self.submit(principal)
        if written is not None:
            await asyncio.shield(written)  # a waiter that gives up does not cancel the write

    async def ready(self, user_id: int) -> None:
        """Wait for the user's row being written, if it is (not for its failure)."""
        writing = self._writing.get(user_id)
        if writing is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(writing[1])

    async def close(self) -> None:
        await self._batches.close()

    def _settled(self, pending: PendingProfile, written: asyncio.Future[None]) -> None:
        if not written.cancelled():
            written.exception()  # a socket may never wait for it: the writer logged it
        writing = self._writing.get(pending.user_id)
        if writing is not None and writing[1] is written:
            del self._writing[pending.user_id]

    async def _write(self, batch: Sequence[PendingProfile]) -> list[None]:
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
        for pending in sorted(batch, key=lambda p: p.user_id):  # one lock order for all nodes
            values = pending.values()
            groups[tuple(values)].append(values)
        if self.reader is not None:
            # Each row stands alone (nothing to commit together): a statement per set of
            # columns, in user id order as before. One statement may update a row once: a
            # user twice in it is written with their last profile, as in turn.
            for columns, rows in groups.items():
                last = list({row["id"]: row for row in rows}.values())
                await self.reader.write(_upsert_alone(columns), arrays(last, columns))
        else:
            # Core on a connection: the ORM session's bookkeeping cost more than the statements.
            async with self.engine.begin() as connection:
                insert = dialect_insert(connection)
                for columns, rows in groups.items():
                    await connection.execute(profile_upsert(insert, columns), rows)
        if len(self.cache) > MAX_CACHED:
            self.cache.clear()
        for pending in batch:
            self.cache[pending.user_id] = pending.profile
        return [None] * len(batch)


def _describe(pending: PendingProfile) -> str:
    return f"the profile of user {pending.user_id}"
