"""Group commit for profiles: the users that concurrent sign-ins bring are upserted together.

A join storm is thousands of new users in seconds; an upsert and a commit each on the
handshake path made the database the limit. The socket handshake only queues its user and
goes on (what needs the row, its first action or viewing session, waits for it with
`ready`); REST requests wait for the batch their user is in. A batch is what arrived while
the previous one was written: nothing waits for it to fill.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tajiri_live.core.auth import Principal
from tajiri_live.core.batches import write_in_halves
from tajiri_live.core.columns import utcnow
from tajiri_live.core.db import dialect_insert
from tajiri_live.users.service import PROFILE_FIELDS, profile_upsert

log = logging.getLogger(__name__)

WRITER = "profiles"
MAX_CACHED = 100_000


@dataclass
class PendingProfile:
    user_id: int
    profile: tuple[str | None, ...]
    written: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def values(self) -> dict[str, Any]:
        now = utcnow()
        values: dict[str, Any] = {"id": self.user_id, "created_at": now, "updated_at": now}
        fields = zip(PROFILE_FIELDS, self.profile, strict=True)
        values.update({k: v for k, v in fields if v is not None})
        return values


class ProfileWriter:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        cache: dict[int, tuple[str | None, ...]],
    ) -> None:
        self.sessions = sessions
        self.cache = cache  # user id -> the profile last written
        self._queued: dict[int, PendingProfile] = {}
        self._writing: dict[int, PendingProfile] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def submit(self, principal: Principal) -> asyncio.Future[None] | None:
        """Queue the user's profile unless it is already written; None: nothing to wait for."""
        profile = principal.profile()
        user_id = principal.user_id
        if self.cache.get(user_id) == profile:
            return None
        queued = self._queued.get(user_id)
        if queued is not None and queued.profile == profile:
            return queued.written
        if queued is not None:  # a newer profile: the older one is superseded
            self._queued[user_id] = PendingProfile(user_id, profile, queued.written)
            return queued.written
        pending = PendingProfile(user_id, profile)
        pending.written.add_done_callback(_retrieve)  # a socket may never wait for it
        self._queued[user_id] = pending
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="profiles.writer")
        self._wake.set()
        return pending.written

    async def write(self, principal: Principal) -> None:
        """The user's row matches the token once this returns."""
        written = self.submit(principal)
        if written is not None:
            await asyncio.shield(written)

    async def ready(self, user_id: int) -> None:
        """Wait for the user's queued or in-flight row, if any (not for its failure)."""
        for pending in (self._writing.get(user_id), self._queued.get(user_id)):
            if pending is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(pending.written)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            self._writing, self._queued = self._queued, {}
            batch = sorted(self._writing.values(), key=lambda p: p.user_id)  # lock order
            try:
                failed = await write_in_halves(
                    batch, self._write, writer=WRITER, describe=_describe
                )
            except asyncio.CancelledError:
                for pending in batch:
                    pending.written.cancel()
                raise
            except Exception as away:  # the database is away: each waiting request hears it
                failed = [(pending, away) for pending in batch]
            for pending, error in failed:
                if not pending.written.done():
                    pending.written.set_exception(error)
            self._writing = {}

    async def _write(self, batch: Sequence[PendingProfile]) -> None:
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
        for pending in batch:
            values = pending.values()
            groups[tuple(values)].append(values)
        async with self.sessions() as session:
            insert = dialect_insert(session)
            for columns, rows in groups.items():
                await session.execute(profile_upsert(insert, columns), rows)
            await session.commit()
        if len(self.cache) > MAX_CACHED:
            self.cache.clear()
        for pending in batch:
            self.cache[pending.user_id] = pending.profile
            if not pending.written.done():
                pending.written.set_result(None)


def _describe(pending: PendingProfile) -> str:
    return f"the profile of user {pending.user_id}"


def _retrieve(written: asyncio.Future[None]) -> None:
    if not written.cancelled():
        written.exception()  # logged by the batch writer; never "never retrieved"
