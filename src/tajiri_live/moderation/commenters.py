"""Commenters' checks, read together: one statement for the comments that arrive at once.

Every comment first reads its author's profile and whether they are banned, muted or
repeating themselves here (`check_commenter`). On PostgreSQL the checks that concurrent
requests ask for are read as one batch (the group-commit batcher, core/groupcommit.py: a
batch is what arrived while the last one was read, so a lone comment is read at once): one
round trip and one statement for the batch, against one each per comment, which was the
largest part of a comment's own CPU in the closed-loop profile. Elsewhere (SQLite) each is
read alone, as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ARRAY, BigInteger, Text, bindparam, column, exists, func, select

from tajiri_live.core.groupcommit import GroupCommit
from tajiri_live.core.runtime import Runtime
from tajiri_live.moderation.service import (
    AUTHOR_COLUMNS,
    AuthorCheck,
    check_commenter,
    commenter_check,
    repeat_condition,
    repeat_since,
    restriction_conditions,
)
from tajiri_live.users.models import User
from tajiri_live.users.presenters import UserProfile

BATCH = "commenter_checks"
_ASKED = (
    func.unnest(
        bindparam("stream_ids", type_=ARRAY(BigInteger)),
        bindparam("user_ids", type_=ARRAY(BigInteger)),
        bindparam("contents", type_=ARRAY(Text)),
    )
    .table_valued(
        column("stream_id", BigInteger),
        column("user_id", BigInteger),
        column("content", Text),
        with_ordinality="n",
    )
    .render_derived()
)
# Built once; one row per check asked, in the order asked (the author's columns are NULL
# when they have no profile row yet).
_BATCH_CHECK = (
    select(
        *AUTHOR_COLUMNS,
        exists()
        .where(*restriction_conditions(_ASKED.c.stream_id, _ASKED.c.user_id, bindparam("now")))
        .label("restricted"),
        repeat_condition(
            _ASKED.c.stream_id, _ASKED.c.user_id, bindparam("since"), _ASKED.c.content
        ).label("repeated"),
    )
    .select_from(_ASKED.outerjoin(User, User.id == _ASKED.c.user_id))
    .order_by(_ASKED.c.n)
)


@dataclass(frozen=True, slots=True)
class Asked:
    stream_id: int
    user_id: int
    content: str


class CommenterChecks:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._batches: GroupCommit[Asked, AuthorCheck[UserProfile]] | None = None
        if runtime.engine.dialect.name == "postgresql":
            self._batches = GroupCommit(
                BATCH,
                self._read,
                describe=lambda asked: f"a check of user {asked.user_id} on {asked.stream_id}",
                refused=lambda _, error: error,  # as the same read alone would have failed
            )

    async def check(
        self, *, stream_id: int, user_id: int, content: str
    ) -> AuthorCheck[UserProfile]:
        """`check_commenter`'s answer, read in a batch where the database allows."""
        if self._batches is None:
            return await check_commenter(
                self.runtime, stream_id=stream_id, user_id=user_id, content=content
            )
        return await self._batches.write(Asked(stream_id, user_id, content))

    @property
    def batched(self) -> tuple[int, int]:
        """Batches read so far and the checks they held ((0, 0) where each is read alone)."""
        if self._batches is None:
            return (0, 0)
        return (self._batches.batches, self._batches.items)

    async def close(self) -> None:
        if self._batches is not None:
            await self._batches.close()

    async def _read(self, batch: Sequence[Asked]) -> list[AuthorCheck[UserProfile]]:
        values = {
            "stream_ids": [asked.stream_id for asked in batch],
            "user_ids": [asked.user_id for asked in batch],
            "contents": [asked.content for asked in batch],
            "now": self.runtime.clock.now(),
            "since": repeat_since(self.runtime),
        }
        rows = await self.runtime.reader.rows(_BATCH_CHECK, values)
        return [commenter_check(row) for row in rows]
