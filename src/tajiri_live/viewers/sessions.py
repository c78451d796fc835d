"""Viewing sessions (`stream_viewers` rows), written in batches off the socket path.

A row is a visit (docs/architecture.md, "Counting viewers") and is written under the visit's
key: its start by the node that began it, its end by whichever node saw it end (another node,
a reaper, a sweep). Both writes are upserts, so they may arrive in either order.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from tajiri_live.core.arrayinsert import array_insert, arrays, counting
from tajiri_live.core.batches import write_in_halves
from tajiri_live.core.db import dialect_insert
from tajiri_live.core.reads import Reader, direct_writer
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
WRITER = "viewer_sessions"


@dataclass(eq=False)
class ViewingSession:
    stream_id: int
    user_id: int | None
    joined_at: datetime
    left_at: datetime | None = None
    key: str | None = None  # the visit's key: the row is found by it
    region: str | None = None  # as the client said on join (analytics' viewers by region)

    @property
    def watch_seconds(self) -> int:
        end = self.left_at or self.joined_at
        return max(0, int((end - self.joined_at).total_seconds()))

    def row(self) -> dict[str, Any]:
        return {
            "stream_id": self.stream_id,
            "user_id": self.user_id,
            "joined_at": self.joined_at,
            "created_at": self.joined_at,
            "left_at": self.left_at,
            "watch_duration": self.watch_seconds,
            "region": self.region,
            "visit_key": self.key,
        }


async def record(
    db: AsyncSession,
    *,
    opened: Sequence[ViewingSession] = (),
    closed: Sequence[ViewingSession] = (),
) -> None:
    """Write visits' starts and ends (`write_visits`), and commit."""
    await write_visits(db, opened=opened, closed=closed)
    await db.commit()


async def write_visits(
    db: AsyncSession | AsyncConnection,
    *,
    opened: Sequence[ViewingSession] = (),
    closed: Sequence[ViewingSession] = (),
) -> None:
    """Write visits' starts and ends in the caller's transaction. A start never undoes an end
    written first; an end writes the whole row when its start has not arrived yet."""
    insert = dialect_insert(db)
    on_postgresql = insert is pg_insert
    if opened:
        rows = [s.row() for s in opened]
        if on_postgresql:  # one statement for the batch (core/arrayinsert.py)
            await db.execute(_OPEN_ARRAYS, arrays(rows, VISIT_COLUMNS))
        else:
            await db.execute(_open(insert(VISITS)), rows)
    if closed:
        rows = [s.row() for s in closed]
        if on_postgresql:
            # One statement may update a row once: a visit ended twice in a batch is
            # written with its last end, as two statements in turn would leave it.
            await db.execute(_CLOSE_ARRAYS, arrays(_last_per_key(rows), VISIT_COLUMNS))
        else:
            await db.execute(_close(insert(VISITS)), rows)


def _last_per_key(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    last = {row["visit_key"]: row for row in rows if row["visit_key"] is not None}
    return [row for row in rows if row["visit_key"] is None or last[row["visit_key"]] is row]


def _open(statement: Any) -> Any:
    """A start never undoes an end written first."""
    return statement.on_conflict_do_nothing(index_elements=["visit_key"])


def _close(statement: Any) -> Any:
    """An end writes the whole row when its start has not arrived yet."""
    return statement.on_conflict_do_update(
        index_elements=["visit_key"],
        set_={
            "left_at": statement.excluded.left_at,
            "watch_duration": statement.excluded.watch_duration,
        },
    )


# The table, not the mapped class: the ORM's bulk-insert bookkeeping for the mapped class
# was its own line in a join storm's profile.
VISITS = cast(Table, StreamViewer.__table__)
VISIT_COLUMNS = (  # every key of `ViewingSession.row()`
    "stream_id",
    "user_id",
    "joined_at",
    "created_at",
    "left_at",
    "watch_duration",
    "region",
    "visit_key",
)
_OPEN_ARRAYS = _open(array_insert(VISITS, VISIT_COLUMNS))
# The same as one statement the reader's connections run alone (it counts what it wrote).
_OPEN_ALONE = counting(_OPEN_ARRAYS, VISITS.c.visit_key)


async def open_visits(reader: Reader, opened: Sequence[ViewingSession]) -> None:
    """PostgreSQL: visits' starts written in one statement that commits on its own (one
    round trip, where a transaction around it takes three)."""
    await reader.write(_OPEN_ALONE, arrays([s.row() for s in opened], VISIT_COLUMNS))


_CLOSE_ARRAYS = _close(array_insert(VISITS, VISIT_COLUMNS))
_CLOSE_ALONE = counting(_CLOSE_ARRAYS, VISITS.c.visit_key)


async def close_visits(reader: Reader, closed: Sequence[ViewingSession]) -> None:
    """PostgreSQL: visits' ends written in one statement that commits on its own."""
    rows = _last_per_key([s.row() for s in closed])
    await reader.write(_CLOSE_ALONE, arrays(rows, VISIT_COLUMNS))


class ViewerLog:
    """Queues visits' starts and ends; `flush()` writes them with two statements (on
    PostgreSQL through `reader`, when given: each one statement that commits alone)."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], reader: Reader | None = None
    ) -> None:
        self._sessions = sessions
        self._reader = direct_writer(reader)
        self._joins: list[ViewingSession] = []
        self._leaves: list[ViewingSession] = []

    def joined(self, session: ViewingSession) -> None:
        self._joins.append(session)

    def left(self, session: ViewingSession) -> None:
        self._leaves.append(session)

    async def flush(self) -> int:
        joins, self._joins = self._joins, []
        leaves, self._leaves = self._leaves, []
        if not joins and not leaves:
            return 0
        try:
            # A bad row (its stream deleted meanwhile, a value the column refuses) is
            # quarantined; the rest of the batch is written. Both writes are upserts by the
            # visit's key, so starts and ends may land in either order, or twice.
            await write_in_halves(joins, self._open, writer=WRITER, describe=_describe)
            await write_in_halves(leaves, self._close, writer=WRITER, describe=_describe)
        except (OperationalError, InterfaceError, OSError):
            # The database is away: keep the records for the next flush (bounded).
            self._joins = (joins + self._joins)[-MAX_PENDING:]
            self._leaves = (leaves + self._leaves)[-MAX_PENDING:]
            raise
        return len(joins) + len(leaves)

    async def _open(self, joins: Sequence[ViewingSession]) -> None:
        if self._reader is not None:
            await open_visits(self._reader, joins)
            return
        async with self._sessions() as db:
            await record(db, opened=joins)

    async def _close(self, leaves: Sequence[ViewingSession]) -> None:
        if self._reader is not None:
            await close_visits(self._reader, leaves)
            return
        async with self._sessions() as db:
            await record(db, closed=leaves)


def _describe(viewing: ViewingSession) -> str:
    return f"a viewing session of stream {viewing.stream_id}"
