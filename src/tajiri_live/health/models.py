"""Health samples of a stream, kept for the post-stream report (bitrate and fps over time)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Float, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from tajiri_live.core.columns import stream_fk
from tajiri_live.core.db import Base, BigIntId, UTCDateTime

SOURCES = ("encoder", "ingest")  # the app's own report, or nginx-rtmp's statistics
QUALITIES = ("excellent", "good", "poor")


class StreamHealthSample(Base):
    __tablename__ = "stream_health_samples"
    __table_args__ = (
        CheckConstraint("source IN ('encoder', 'ingest')", name="source"),
        CheckConstraint("network_quality IN ('excellent', 'good', 'poor')", name="quality"),
        Index("ix_stream_health_samples_stream_id_recorded_at", "stream_id", "recorded_at"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    stream_id: Mapped[int] = stream_fk()
    source: Mapped[str] = mapped_column(String(10))
    network_quality: Mapped[str] = mapped_column(String(20))
    bitrate: Mapped[int | None] = mapped_column(Integer)  # kbps
    fps: Mapped[float | None] = mapped_column(Float)
    dropped_frames: Mapped[int | None] = mapped_column(Integer)  # since the previous sample
    latency: Mapped[float | None] = mapped_column(Float)  # seconds
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
