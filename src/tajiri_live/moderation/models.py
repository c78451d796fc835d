"""Per-stream bans and mutes, and the moderation audit log."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tajiri_live.core.columns import created_at, stream_fk, user_fk
from tajiri_live.core.db import Base, BigIntId, UTCDateTime


class StreamRestriction(Base):
    """A ban (no end) or a mute (until `expires_at`) of one user on one stream."""

    __tablename__ = "stream_restrictions"
    __table_args__ = (
        UniqueConstraint("stream_id", "user_id", "kind"),
        CheckConstraint("kind IN ('ban', 'mute')", name="kind"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    stream_id: Mapped[int] = stream_fk()
    user_id: Mapped[int] = user_fk()
    kind: Mapped[str] = mapped_column(String(10))
    reason: Mapped[str | None] = mapped_column(String(255))
    created_by: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = created_at()


class ModerationAction(Base):
    """Who did what, when, why, to whom and on which comment or question."""

    __tablename__ = "moderation_actions"
    __table_args__ = (Index("ix_moderation_actions_stream_id_id", "stream_id", "id"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    stream_id: Mapped[int] = stream_fk()
    actor_id: Mapped[int | None] = mapped_column(BigInteger)  # None: the automatic filter
    action: Mapped[str] = mapped_column(String(30))
    target_user_id: Mapped[int | None] = mapped_column(BigInteger)
    comment_id: Mapped[int | None] = mapped_column(BigInteger)
    question_id: Mapped[int | None] = mapped_column(BigInteger)  # a Q&A question it concerns
    reason: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = created_at()
