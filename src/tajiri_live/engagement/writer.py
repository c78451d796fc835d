"""Group commit for comments: the comments that concurrent requests accept are written together.

One transaction, one multi-row INSERT and one counter UPDATE per stream stand for a whole
batch (core/groupcommit.py). Each request still answers only after its comment is
committed: persisted, then published.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Select, Table, bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from tajiri_live.core.arrayinsert import array_insert, arrays
from tajiri_live.core.batches import is_deadlock
from tajiri_live.core.errors import ApiError
from tajiri_live.core.groupcommit import GroupCommit
from tajiri_live.core.reads import Reader
from tajiri_live.engagement.models import StreamComment
from tajiri_live.streams.models import LiveStream

WRITER = "comments"
DEADLOCK_ATTEMPTS = 3
COMMENTS = cast(Table, StreamComment.__table__)
STREAMS = cast(Table, LiveStream.__table__)
_COUNT = (
    update(STREAMS)
    .where(STREAMS.c.id == bindparam("stream_id"))
    .values(comments_count=STREAMS.c.comments_count + bindparam("count"))
)
_COLUMNS = (  # every key of `PendingComment.row()`
    "stream_id",
    "user_id",
    "content",
    "is_pinned",
    "is_highlighted",
    "created_at",
    "updated_at",
)


def _insert_and_count() -> Select[tuple[int]]:
    """PostgreSQL: the batch's rows and its streams' counts in one statement, so it commits
    on its own (no BEGIN and COMMIT round trips around it)."""
    inserted = (
        array_insert(COMMENTS, _COLUMNS)
        .returning(COMMENTS.c.id, COMMENTS.c.stream_id)
        .cte("inserted")
    )
    added = (
        select(inserted.c.stream_id, func.count().label("added"))
        .group_by(inserted.c.stream_id)
        .order_by(inserted.c.stream_id)
        .subquery("added")
    )
    counted = (
        update(STREAMS)
        .where(STREAMS.c.id == added.c.stream_id)
        .values(
            comments_count=STREAMS.c.comments_count + added.c.added,
            updated_at=bindparam("counted_at"),
        )
        .cte("counted")
    )
    return select(inserted.c.id).add_cte(counted)


_INSERT_AND_COUNT = _insert_and_count()


@dataclass(frozen=True)
class PendingComment:
    stream_id: int
    user_id: int
    content: str
    created_at: datetime

    def row(self) -> dict[str, object]:
        return {
            "stream_id": self.stream_id,
            "user_id": self.user_id,
            "content": self.content,
            "is_pinned": False,
            "is_highlighted": False,
            "created_at": self.created_at,
            "updated_at": self.created_at,
        }


class CommentWriter:
    def __init__(self, engine: AsyncEngine, reader: Reader) -> None:
        self.engine = engine
        self.reader = reader
        # A comment the database refuses (its stream deleted meanwhile) is answered alone.
        self._batches: GroupCommit[PendingComment, int] = GroupCommit(
            WRITER,
            self._write,
            describe=_describe,
            refused=lambda _, __: ApiError(
                409, "The comment could not be stored: reload the stream."
            ),
        )

    async def write(
        self, *, stream_id: int, user_id: int, content: str, created_at: datetime
    ) -> int:
        """Store the comment (and count it on its stream); returns its id once committed."""
        return await self._batches.write(PendingComment(stream_id, user_id, content, created_at))

    async def close(self) -> None:
        await self._batches.close()

    async def _write(self, batch: Sequence[PendingComment]) -> list[int]:
        rows = [pending.row() for pending in batch]
        if self.reader.direct:
            values = {**arrays(rows, _COLUMNS), "counted_at": max(p.created_at for p in batch)}
            for attempt in range(1, DEADLOCK_ATTEMPTS + 1):
                try:
                    written = await self.reader.write(_INSERT_AND_COUNT, values)
                    break
                except Exception as error:
                    # Two nodes' batches counting on the same streams may lock them in
                    # different orders; the one PostgreSQL aborts wrote nothing: again.
                    if attempt == DEADLOCK_ATTEMPTS or not is_deadlock(error):
                        raise
            # Ids are assigned in the batch's order: ascending, they are its rows'.
            return sorted(row.id for row in written)
        # Core on a connection: the ORM session's bookkeeping cost more than the statements.
        async with self.engine.begin() as connection:
            ids = list(
                await connection.scalars(
                    insert(COMMENTS).returning(COMMENTS.c.id, sort_by_parameter_order=True),
                    rows,
                )
            )
            counts = Counter(p.stream_id for p in batch)
            await connection.execute(
                _COUNT, [{"stream_id": sid, "count": counts[sid]} for sid in sorted(counts)]
            )
        return ids


def _describe(pending: PendingComment) -> str:
    return f"a comment on stream {pending.stream_id} by user {pending.user_id}"
