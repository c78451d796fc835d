"""Q&A questions of a stream and one upvote per user per question."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tajiri_live.core.columns import created_at, flag, stream_fk, user_fk
from tajiri_live.core.db import Base, BigIntId, UTCDateTime

if TYPE_CHECKING:
    from tajiri_live.users.models import User


class StreamQuestion(Base):
    __tablename__ = "stream_questions"
    __table_args__ = (
        # the list: unanswered first, most upvoted first
        Index(
            "ix_stream_questions_stream_id_is_answered_upvotes",
            "stream_id",
            "is_answered",
            "upvotes",
        ),
        # the repeated-text check: this user's recent questions on this stream
        Index(
            "ix_stream_questions_stream_id_user_id_created_at", "stream_id", "user_id", "created_at"
        ),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    stream_id: Mapped[int] = stream_fk()
    user_id: Mapped[int] = user_fk()
    question: Mapped[str] = mapped_column(Text)
    upvotes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    is_answered: Mapped[bool] = flag(False)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Dismissed by a host: hidden from the list, kept (with the moderation log's entry).
    dismissed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = created_at()

    user: Mapped[User] = relationship(lazy="raise")


class StreamQuestionUpvote(Base):
    __tablename__ = "stream_question_upvotes"
    __table_args__ = (UniqueConstraint("question_id", "user_id"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    question_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("stream_questions.id", ondelete="CASCADE")
    )
    user_id: Mapped[int] = user_fk(index=True)
    created_at: Mapped[datetime] = created_at()
