"""Comments on streams."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tajiri_live.core.columns import created_at, flag, stream_fk, updated_at, user_fk
from tajiri_live.core.db import Base, BigIntId, UTCDateTime

if TYPE_CHECKING:
    from tajiri_live.users.models import User


class StreamComment(Base):
    __tablename__ = "stream_comments"
    __table_args__ = (
        Index("ix_stream_comments_stream_id_id", "stream_id", "id"),
        Index("ix_stream_comments_user_id", "user_id"),
        # the spam check: this user's recent comments on this stream
        Index(
            "ix_stream_comments_stream_id_user_id_created_at", "stream_id", "user_id", "created_at"
        ),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    stream_id: Mapped[int] = stream_fk()
    user_id: Mapped[int] = user_fk()
    content: Mapped[str] = mapped_column(Text)
    is_pinned: Mapped[bool] = flag(False)
    is_highlighted: Mapped[bool] = flag(False)
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A super chat's comment is shown pinned until its display time is over.
    pinned_until: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship(lazy="raise")


class StreamLike(Base):
    """One like per user and stream."""

    __tablename__ = "stream_likes"
    __table_args__ = (
        UniqueConstraint("stream_id", "user_id"),
        Index("ix_stream_likes_user_id", "user_id"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    stream_id: Mapped[int] = stream_fk()
    user_id: Mapped[int] = user_fk()
    created_at: Mapped[datetime] = created_at()


class StreamReactionCount(Base):
    """Exact reaction tallies per stream and type (incremented in SQL, never read-modify-write)."""

    __tablename__ = "stream_reaction_counts"

    stream_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("live_streams.id", ondelete="CASCADE"), primary_key=True
    )
    reaction_type: Mapped[str] = mapped_column(String(20), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
