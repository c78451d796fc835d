"""Super chats: a viewer's paid message, its tier and display time, and what paid for it."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tajiri_live.core.columns import coins as coin_column
from tajiri_live.core.columns import created_at, stream_fk, user_fk
from tajiri_live.core.db import Base, BigIntId, UTCDateTime

if TYPE_CHECKING:
    from tajiri_live.users.models import User


class StreamSuperChat(Base):
    """`amount` is in TZS as the viewer chose it; `coins` is what the ledger moved for it."""

    __tablename__ = "stream_super_chats"
    __table_args__ = (
        CheckConstraint("tier IN ('low', 'medium', 'high')", name="tier"),
        CheckConstraint("amount > 0 AND coins > 0", name="paid"),
        Index("ix_stream_super_chats_stream_id_created_at", "stream_id", "created_at"),
        Index("ix_stream_super_chats_user_id", "user_id"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    stream_id: Mapped[int] = stream_fk()
    user_id: Mapped[int] = user_fk()
    message: Mapped[str] = mapped_column(Text)
    amount: Mapped[int] = coin_column()  # TZS
    coins: Mapped[int] = coin_column()
    creator_amount: Mapped[int] = coin_column()  # what the streamer (and co-hosts) received
    tier: Mapped[str] = mapped_column(String(10))
    duration: Mapped[int] = mapped_column(Integer)  # seconds on screen
    payment_method: Mapped[str | None] = mapped_column(String(50))
    payment_reference: Mapped[str | None] = mapped_column(String(100))
    # The comment that shows it in the catch-up list (pinned until `display_until`).
    comment_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("stream_comments.id", ondelete="SET NULL")
    )
    transaction_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("ledger_transactions.id", ondelete="RESTRICT")
    )
    refund_transaction_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("ledger_transactions.id", ondelete="RESTRICT")
    )
    display_until: Mapped[datetime] = mapped_column(UTCDateTime)
    refunded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = created_at()

    user: Mapped[User] = relationship(lazy="raise")
