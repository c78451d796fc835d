"""Notifications about streams, one row per recipient."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tajiri_live.core.columns import created_at, stream_fk, user_fk
from tajiri_live.core.db import Base, BigIntId, UTCDateTime


class StreamNotification(Base):
    __tablename__ = "stream_notifications"
    __table_args__ = (
        Index("ix_stream_notifications_user_id_created_at", "user_id", "created_at"),
        Index("ix_stream_notifications_stream_id", "stream_id"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    stream_id: Mapped[int] = stream_fk()
    user_id: Mapped[int] = user_fk()
    type: Mapped[str] = mapped_column(String(32))
    title: Mapped[str | None] = mapped_column(String(255))
    message: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = created_at()
