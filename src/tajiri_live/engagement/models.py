"""Comments on streams."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Index, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tajiri_live.core.columns import created_at, flag, stream_fk, updated_at, user_fk
from tajiri_live.core.db import Base, BigIntId

if TYPE_CHECKING:
    from tajiri_live.users.models import User


class StreamComment(Base):
    __tablename__ = "stream_comments"
    __table_args__ = (
        Index("ix_stream_comments_stream_id_id", "stream_id", "id"),
        Index("ix_stream_comments_user_id", "user_id"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    stream_id: Mapped[int] = stream_fk()
    user_id: Mapped[int] = user_fk()
    content: Mapped[str] = mapped_column(Text)
    is_pinned: Mapped[bool] = flag(False)
    is_highlighted: Mapped[bool] = flag(False)
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()

    user: Mapped[User] = relationship(lazy="raise")
