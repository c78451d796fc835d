"""The virtual gift catalog and the gifts sent on streams."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tajiri_live.core.columns import coins, created_at, flag, stream_fk, updated_at, user_fk
from tajiri_live.core.db import Base, BigIntId, UTCDateTime

if TYPE_CHECKING:
    from tajiri_live.users.models import User


class VirtualGift(Base):
    __tablename__ = "virtual_gifts"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    icon_path: Mapped[str | None] = mapped_column(String(500))
    animation_path: Mapped[str | None] = mapped_column(String(500))
    price: Mapped[int] = coins()
    creator_share: Mapped[int] = mapped_column(Integer, default=70, server_default="70")
    is_active: Mapped[bool] = flag(True)
    order: Mapped[int] = mapped_column("order", Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()


class StreamGift(Base):
    __tablename__ = "stream_gifts"
    __table_args__ = (
        Index("ix_stream_gifts_stream_id_created_at", "stream_id", "created_at"),
        Index("ix_stream_gifts_sender_id", "sender_id"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    stream_id: Mapped[int] = stream_fk()
    sender_id: Mapped[int] = user_fk()
    gift_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("virtual_gifts.id", ondelete="RESTRICT")
    )
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    total_value: Mapped[int] = coins()
    message: Mapped[str | None] = mapped_column(String(255))
    creator_amount: Mapped[int] = coins()  # what the streamer received
    refunded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = created_at()

    sender: Mapped[User] = relationship(lazy="raise")
    gift: Mapped[VirtualGift] = relationship(lazy="raise")
