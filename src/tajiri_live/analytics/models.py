"""Periodic snapshots of a stream's audience and engagement, and the report after it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tajiri_live.core.columns import JSONType, counter, created_at, stream_fk
from tajiri_live.core.db import Base, BigIntId, UTCDateTime


class StreamAnalytics(Base):
    """One snapshot per stream and slot: the slot's time is part of the key, so two nodes
    taking the same snapshot write one row."""

    __tablename__ = "stream_analytics"
    __table_args__ = (UniqueConstraint("stream_id", "recorded_at"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    stream_id: Mapped[int] = stream_fk()
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    viewers_count: Mapped[int] = counter()
    likes_count: Mapped[int] = counter()
    comments_count: Mapped[int] = counter()
    gifts_count: Mapped[int] = counter()
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = created_at()


class StreamReport(Base):
    """The post-stream report (GenerateStreamAnalytics): kept after the viewer rows it was
    computed from are aggregated away."""

    __tablename__ = "stream_reports"

    stream_id: Mapped[int] = mapped_column(
        ForeignKey("live_streams.id", ondelete="CASCADE"), primary_key=True
    )
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    generated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Set once the stream's stream_viewers rows were deleted: the report is then final.
    sessions_purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
