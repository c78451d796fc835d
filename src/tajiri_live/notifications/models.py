"""Notifications about streams: triggers, one row per recipient, devices, preferences and
the push outbox the worker drains."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from tajiri_live.core.columns import JSONType, created_at, stream_fk, user_fk
from tajiri_live.core.db import Base, BigIntId, UTCDateTime


class NotificationTrigger(Base):
    """Something followers should hear about (a stream scheduled, starting soon, live, ended,
    or a manual reminder). Written with the transition; the worker turns it into rows."""

    __tablename__ = "notification_triggers"
    __table_args__ = (Index("ix_notification_triggers_processed_at", "processed_at"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    # "{stream}:{type}" for the four lifecycle types (so each fires once per stream);
    # reminders add their time.
    dedupe_key: Mapped[str] = mapped_column(String(100), unique=True)
    stream_id: Mapped[int] = stream_fk()
    streamer_id: Mapped[int] = user_fk()
    type: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = created_at()
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    recipients: Mapped[int | None] = mapped_column(Integer)  # how many rows it made
    skipped: Mapped[str | None] = mapped_column(String(100))  # why it made none (quiet period)


class StreamNotification(Base):
    __tablename__ = "stream_notifications"
    __table_args__ = (
        Index("ix_stream_notifications_user_id_created_at", "user_id", "created_at"),
        Index("ix_stream_notifications_stream_id", "stream_id"),
        UniqueConstraint("stream_id", "user_id", "type"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    stream_id: Mapped[int] = stream_fk()
    user_id: Mapped[int] = user_fk()
    type: Mapped[str] = mapped_column(String(32))
    title: Mapped[str | None] = mapped_column(String(255))
    message: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = created_at()
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    trigger_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("notification_triggers.id", ondelete="SET NULL")
    )
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, server_default="{}")


class Device(Base):
    """An FCM registration token of a user's device."""

    __tablename__ = "devices"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    user_id: Mapped[int] = user_fk(index=True)
    token: Mapped[str] = mapped_column(String(4096), unique=True)
    platform: Mapped[str] = mapped_column(String(16))
    locale: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class NotificationPreference(Base):
    """An explicit choice: one type (or all, `type` null) from one streamer (or all,
    `streamer_id` null) on or off. Absent: the type's default."""

    __tablename__ = "notification_preferences"
    __table_args__ = (UniqueConstraint("user_id", "streamer_id", "type"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    user_id: Mapped[int] = user_fk()
    streamer_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE")
    )
    type: Mapped[str | None] = mapped_column(String(32))
    enabled: Mapped[bool] = mapped_column(Boolean)


class PushOutbox(Base):
    """One push to one device; the worker claims rows with a lease, so a crashed worker's
    rows are taken up again and sent ones never are."""

    __tablename__ = "push_outbox"
    __table_args__ = (
        UniqueConstraint("notification_id", "device_id", "trigger_id"),
        Index("ix_push_outbox_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    notification_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("stream_notifications.id", ondelete="CASCADE")
    )
    trigger_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("notification_triggers.id", ondelete="CASCADE")
    )
    device_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("devices.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending, sent, failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = created_at()
