"""Periodic snapshots of a stream's audience and engagement."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index
from sqlalchemy.orm import Mapped, mapped_column

from tajiri_live.core.columns import JSONType, counter, created_at, stream_fk
from tajiri_live.core.db import Base, BigIntId, UTCDateTime


class StreamAnalytics(Base):
    __tablename__ = "stream_analytics"
    __table_args__ = (
        Index("ix_stream_analytics_stream_id_recorded_at", "stream_id", "recorded_at"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    stream_id: Mapped[int] = stream_fk()
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    viewers_count: Mapped[int] = counter()
    likes_count: Mapped[int] = counter()
    comments_count: Mapped[int] = counter()
    gifts_count: Mapped[int] = counter()
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = created_at()
