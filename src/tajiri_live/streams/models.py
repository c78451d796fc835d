"""Streams, their co-hosts and their viewers' sessions."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Float,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tajiri_live.core.columns import (
    JSONType,
    coins,
    counter,
    created_at,
    flag,
    stream_fk,
    updated_at,
    user_fk,
)
from tajiri_live.core.db import Base, BigIntId, UTCDateTime
from tajiri_live.streams.lifecycle import StreamStatus

if TYPE_CHECKING:
    from tajiri_live.users.models import User

STATUS_VALUES = ", ".join(f"'{s.value}'" for s in StreamStatus)
PRIVACY_VALUES = ("public", "friends", "private")
COHOST_STATUSES = ("invited", "accepted", "declined", "removed", "left")


class LiveStream(Base):
    __tablename__ = "live_streams"
    __table_args__ = (
        CheckConstraint(f"status IN ({STATUS_VALUES})", name="status"),
        CheckConstraint("privacy IN ('public', 'friends', 'private')", name="privacy"),
        Index("ix_live_streams_status_scheduled_at", "status", "scheduled_at"),
        Index("ix_live_streams_user_id_created_at", "user_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    user_id: Mapped[int] = user_fk()
    stream_key: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    thumbnail_path: Mapped[str | None] = mapped_column(String(500))
    category: Mapped[str | None] = mapped_column(String(100), index=True)
    tags: Mapped[list[str]] = mapped_column(JSONType, default=list)
    status: Mapped[str] = mapped_column(String(20), default=StreamStatus.SCHEDULED.value)
    privacy: Mapped[str] = mapped_column(String(20), default="public", server_default="public")
    recording_path: Mapped[str | None] = mapped_column(String(500))
    is_recorded: Mapped[bool] = flag(False)
    allow_comments: Mapped[bool] = flag(True)
    allow_gifts: Mapped[bool] = flag(True)
    allow_co_hosts: Mapped[bool] = flag(True)
    # Gifts' creator share divided equally with the accepted co-hosts (rest to the owner).
    split_gifts_with_cohosts: Mapped[bool] = flag(False)
    current_viewers: Mapped[int] = counter()
    peak_viewers: Mapped[int] = counter()
    total_viewers: Mapped[int] = counter()
    unique_viewers: Mapped[int] = counter()
    likes_count: Mapped[int] = counter()
    comments_count: Mapped[int] = counter()
    gifts_count: Mapped[int] = counter()
    shares_count: Mapped[int] = counter()
    gifts_value: Mapped[int] = coins()
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    pre_live_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    live_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ending_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When an `ending` stream becomes `ended` unless its encoder comes back first.
    ending_deadline: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    duration: Mapped[int | None] = mapped_column(Integer)
    # --- ingest (nginx-rtmp callbacks) ---
    # Set when the key is revoked (the stream ended) or rotated; else it expires by the settings.
    stream_key_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    publish_count: Mapped[int] = counter()  # HLS and recordings are named {id}_{publish_count}
    # nginx's client id and the encoder's address; every ingest callback looks it up
    publisher_client: Mapped[str | None] = mapped_column(String(64), index=True)
    publisher_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    playback_ready_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # playlist exists
    # The nginx the current (or last) publish went through: its /control and its media base.
    ingest_control_url: Mapped[str | None] = mapped_column(String(500))
    ingest_media_url: Mapped[str | None] = mapped_column(String(500))
    ingest_health: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    live_thumbnail_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    recording_claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set when a stream with money is deleted: every read treats it as absent, its gifts and
    # ledger entries keep pointing at it (streams/softdelete.py).
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # --- health (the encoder's reports and ingest's samples; health/service.py) ---
    network_quality: Mapped[str] = mapped_column(
        String(20), default="good", server_default="good"
    )  # the latest sample's: excellent, good or poor
    # Running averages over the samples that carried the value (the counts beside them).
    average_bitrate: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    average_fps: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    average_latency: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    bitrate_samples: Mapped[int] = counter()
    fps_samples: Mapped[int] = counter()
    latency_samples: Mapped[int] = counter()
    total_dropped_frames: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # The encoder reports its dropped frames as a running count: the last one, to add the rest.
    encoder_dropped_frames: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()

    user: Mapped[User] = relationship(lazy="raise")
    cohosts: Mapped[list[StreamCoHost]] = relationship(
        lazy="raise", order_by="StreamCoHost.id", viewonly=True
    )

    @property
    def status_enum(self) -> StreamStatus:
        return StreamStatus(self.status)


class StreamCoHost(Base):
    __tablename__ = "stream_co_hosts"
    __table_args__ = (
        UniqueConstraint("stream_id", "user_id"),
        CheckConstraint(
            "status IN ('invited', 'accepted', 'declined', 'removed', 'left')", name="status"
        ),
        Index("ix_stream_co_hosts_user_id", "user_id"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    stream_id: Mapped[int] = stream_fk()
    user_id: Mapped[int] = user_fk()
    status: Mapped[str] = mapped_column(String(20), default="invited")
    joined_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    left_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()

    user: Mapped[User] = relationship(lazy="raise")


class StreamViewer(Base):
    """One viewing session: a visit (a viewer's continuous presence), its end, the time
    watched. Written under the visit's key, so whichever node sees it end closes it."""

    __tablename__ = "stream_viewers"
    __table_args__ = (
        Index("ix_stream_viewers_stream_id_joined_at", "stream_id", "joined_at"),
        Index("ix_stream_viewers_user_id", "user_id"),
        # Open sessions only: what a starting node checks against presence.
        Index(
            "ix_stream_viewers_open",
            "stream_id",
            postgresql_where=text("left_at IS NULL"),
            sqlite_where=text("left_at IS NULL"),
        ),
        UniqueConstraint("visit_key"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    stream_id: Mapped[int] = stream_fk()
    user_id: Mapped[int | None] = user_fk(nullable=True)
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime)
    left_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    watch_duration: Mapped[int] = counter()
    region: Mapped[str | None] = mapped_column(String(64))  # as the client said; None: unknown
    visit_key: Mapped[str | None] = mapped_column(String(32))  # None: written before visits
    created_at: Mapped[datetime] = created_at()

    user: Mapped[User | None] = relationship(lazy="raise")
