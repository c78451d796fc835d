"""Column helpers shared by the domain models."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Integer, false, true
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from tajiri_live.core.db import UTCDateTime

JSONType = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(UTC)


def created_at() -> Mapped[datetime]:
    return mapped_column(UTCDateTime, default=utcnow)


def updated_at() -> Mapped[datetime]:
    return mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


def counter() -> Mapped[int]:
    return mapped_column(Integer, default=0, server_default="0")


def coins() -> Mapped[int]:
    # Coins are whole TZS: integers keep every sum exact.
    return mapped_column(BigInteger, default=0, server_default="0")


def flag(default: bool) -> Mapped[bool]:
    return mapped_column(Boolean, default=default, server_default=true() if default else false())


def user_fk(*, nullable: bool = False, **kwargs: Any) -> Mapped[Any]:
    return mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), nullable=nullable, **kwargs
    )


def stream_fk(**kwargs: Any) -> Mapped[int]:
    return mapped_column(
        BigInteger, ForeignKey("live_streams.id", ondelete="CASCADE"), nullable=False, **kwargs
    )
