"""Viewing sessions (`stream_viewers` rows), written in batches off the socket path."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import insert, update
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tajiri_live.core.batches import write_in_halves
from tajiri_live.core.text import has_control
from tajiri_live.streams.models import StreamViewer

log = logging.getLogger(__name__)

MAX_REGION_LENGTH = 64


def clean_region(value: object) -> str | None:
    """A region, trimmed and bounded; blanks, non-strings and text with control characters
    (a token claim the boundary did not see) are unknown."""
    if not isinstance(value, str) or not value.strip() or has_control(value):
        return None
    return value.strip()[:MAX_REGION_LENGTH]


MAX_PENDING = 100_000  # records kept while the database is unreachable
NOT_STORED = -1  # row_id of a session that could not be written (quarantined)
WRITER = "viewer_sessions"


@dataclass(eq=False)
class ViewingSession:
    stream_id: int
    user_id: int | None
    joined_at: datetime
    left_at: datetime | None = None
    row_id: int | None = field(default=None)
    region: str | None = None  # as the client said on join (analytics' viewers by region)

    @property
    def watch_seconds(self) -> int:
        end = self.left_at or self.joined_at
        return max(0, int((end - self.joined_at).total_seconds()))


class ViewerLog:
    """Queues joins and leaves; `flush()` writes them with two statements."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._joins: list[ViewingSession] = []
        self._leaves: list[ViewingSession] = []

    def joined(self, session: ViewingSession) -> None:
        self._joins.append(session)

    def left(self, session: ViewingSession, at: datetime) -> None:
        session.left_at = at
        self._leaves.append(session)

    async def flush(self) -> int:
        joins, self._joins = self._joins, []
        leaves, self._leaves = self._leaves, []
        if not joins and not leaves:
            return 0
        written_now = {id(j) for j in joins}  # rows inserted now carry their leave already
        try:
            # A bad row (its stream deleted meanwhile, a value the column refuses) is
            # quarantined; the rest of the batch is written.
            for viewing, _ in await write_in_halves(
                joins, self._insert, writer=WRITER, describe=_describe
            ):
                viewing.row_id = NOT_STORED
            done = [
                v for v in leaves if v.row_id not in (None, NOT_STORED) and id(v) not in written_now
            ]
            await write_in_halves(done, self._update, writer=WRITER, describe=_describe)
        except (OperationalError, InterfaceError, OSError):
            # The database is away: keep what was not written for the next flush (bounded).
            unwritten = [j for j in joins if j.row_id is None]
            self._joins = (unwritten + self._joins)[-MAX_PENDING:]
            self._leaves = (leaves + self._leaves)[-MAX_PENDING:]
            raise
        # A leave whose join was not written yet waits for the next flush.
        self._leaves.extend(v for v in leaves if v.row_id is None)
        return len(joins) + len(leaves)

    async def _insert(self, joins: Sequence[ViewingSession]) -> None:
        rows = [
            {
                "stream_id": j.stream_id,
                "user_id": j.user_id,
                "joined_at": j.joined_at,
                "created_at": j.joined_at,
                "left_at": j.left_at,
                "watch_duration": j.watch_seconds,
                "region": j.region,
            }
            for j in joins
        ]
        async with self._sessions() as db:
            result = await db.execute(
                insert(StreamViewer).returning(StreamViewer.id, sort_by_parameter_order=True),
                rows,
            )
            ids = result.scalars().all()
            await db.commit()
        for viewing, row_id in zip(joins, ids, strict=True):
            viewing.row_id = row_id

    async def _update(self, leaves: Sequence[ViewingSession]) -> None:
        async with self._sessions() as db:
            await db.execute(
                update(StreamViewer).execution_options(synchronize_session=False),
                [
                    {"id": v.row_id, "left_at": v.left_at, "watch_duration": v.watch_seconds}
                    for v in leaves
                ],
            )
            await db.commit()


def _describe(viewing: ViewingSession) -> str:
    return f"a viewing session of stream {viewing.stream_id}"
