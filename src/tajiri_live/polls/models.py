"""Polls of a stream, their options, and one vote per user per poll."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tajiri_live.core.columns import created_at, flag, stream_fk, user_fk
from tajiri_live.core.db import Base, BigIntId, UTCDateTime


class StreamPoll(Base):
    __tablename__ = "stream_polls"
    __table_args__ = (Index("ix_stream_polls_stream_id_is_closed", "stream_id", "is_closed"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    stream_id: Mapped[int] = stream_fk()
    question: Mapped[str] = mapped_column(String(255))
    is_closed: Mapped[bool] = flag(False)
    created_by: Mapped[int] = user_fk()
    created_at: Mapped[datetime] = created_at()
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    options: Mapped[list[StreamPollOption]] = relationship(
        lazy="raise", order_by="StreamPollOption.id", viewonly=True
    )


class StreamPollOption(Base):
    """An option and its total, raised in SQL by the vote writer (never read-modify-write)."""

    __tablename__ = "stream_poll_options"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    poll_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("stream_polls.id", ondelete="CASCADE"), index=True
    )
    text: Mapped[str] = mapped_column(String(100))
    votes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class StreamPollVote(Base):
    """The database itself keeps a user to one vote per poll."""

    __tablename__ = "stream_poll_votes"
    __table_args__ = (UniqueConstraint("poll_id", "user_id"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    poll_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("stream_polls.id", ondelete="CASCADE")
    )
    option_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("stream_poll_options.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int] = user_fk(index=True)
    created_at: Mapped[datetime] = created_at()
