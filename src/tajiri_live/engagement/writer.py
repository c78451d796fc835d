"""Group commit for comments: the comments that concurrent requests accept are written together.

One transaction, one multi-row INSERT and one counter UPDATE per stream stand for a whole
batch, so a busy room costs the database (and this process) a few statements per batch
instead of a transaction per comment. Nothing waits for a batch to fill: the batch is what
arrived while the previous one was being written, so a lone comment is written at once.
Each request still answers only after its comment is committed: persisted, then published.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tajiri_live.core.batches import write_in_halves
from tajiri_live.core.errors import ApiError
from tajiri_live.engagement.models import StreamComment
from tajiri_live.streams.models import LiveStream

MAX_BATCH = 500
WRITER = "comments"


@dataclass
class PendingComment:
    stream_id: int
    user_id: int
    content: str
    created_at: datetime
    written: asyncio.Future[int] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def row(self) -> dict[str, object]:
        return {
            "stream_id": self.stream_id,
            "user_id": self.user_id,
            "content": self.content,
            "created_at": self.created_at,
            "updated_at": self.created_at,
        }


class CommentWriter:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        self._queue: asyncio.Queue[PendingComment] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def write(
        self, *, stream_id: int, user_id: int, content: str, created_at: datetime
    ) -> int:
        """Store the comment (and count it on its stream); returns its id once committed."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="comments.writer")
        pending = PendingComment(stream_id, user_id, content, created_at)
        self._queue.put_nowait(pending)
        return await pending.written

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                # A comment the database refuses (its stream deleted meanwhile) is
                # quarantined and answered alone; the rest of the batch is written.
                failed = await write_in_halves(
                    batch, self._write, writer=WRITER, describe=_describe
                )
            except asyncio.CancelledError:
                for pending in batch:
                    if not pending.written.done():
                        pending.written.cancel()
                raise
            except Exception as exc:  # the database is away: each waiting request hears it
                for pending in batch:
                    _fail(pending, exc)
                continue
            for pending, _ in failed:
                _fail(pending, ApiError(409, "The comment could not be stored: reload the stream."))

    async def _write(self, batch: Sequence[PendingComment]) -> None:
        async with self.sessions() as session:
            ids = list(
                await session.scalars(
                    insert(StreamComment).returning(StreamComment.id, sort_by_parameter_order=True),
                    [pending.row() for pending in batch],
                )
            )
            for stream_id, count in Counter(p.stream_id for p in batch).items():
                await session.execute(
                    update(LiveStream)
                    .where(LiveStream.id == stream_id)
                    .values(comments_count=LiveStream.comments_count + count)
                    .execution_options(synchronize_session=False)
                )
            await session.commit()
        for pending, comment_id in zip(batch, ids, strict=True):
            if not pending.written.done():
                pending.written.set_result(comment_id)


def _describe(pending: PendingComment) -> str:
    return f"a comment on stream {pending.stream_id} by user {pending.user_id}"


def _fail(pending: PendingComment, exc: BaseException) -> None:
    if not pending.written.done():
        pending.written.set_exception(exc)
